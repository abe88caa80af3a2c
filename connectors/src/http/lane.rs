//! Throughput control for one application user: a fixed ceiling (governor) when the target sets
//! `rate_limit`, adaptive concurrency on top, a pace learned from the service's window limits, and a
//! pause for the whole of a `Retry-After`.
//!
//! ```text
//! acquire: wait out a pause ─▶ rate limiter ─▶ the pace's next send time ─▶ a slot (in flight < limit,
//!          and never fewer than the pace needs: its rate × the latency, and one more)
//! release: no 429 and latency steady → limit grows by 1/limit (additive increase)
//!          latency doubled            → limit shrinks by a quarter
//! 429s:    concurrency     → limit halves and is capped below the refused level
//!          execution time  → before a pace, limit halves; and a lesson for the pace (`pace.rs`)
//!          request count   → a lesson for the pace
//! ```
//! So a user meets the limit while it finds the ceiling, then rides just under it with no more 429s.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

use super::pace::Pace;

pub struct Lane {
    rate: Option<DefaultDirectRateLimiter>,
    state: Mutex<State>,
    freed: Notify,
}

struct State {
    limit: f64,
    max: f64,
    in_flight: usize,
    paused_until: Option<Instant>,
    /// Smoothed latency of successful requests.
    latency: Option<Duration>,
    hinted: bool,
    pace: Pace,
}

/// Holding one means a request is in flight on the lane.
pub struct Slot<'a> {
    lane: &'a Lane,
    started: Instant,
    done: bool,
}

/// Which service protection limit a 429 was about (Dataverse's error codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// 0x80072322: too many requests in the window.
    Requests,
    /// 0x80072321: too much combined execution time in the window.
    ExecutionTime,
    /// 0x80072326: too many requests at once.
    Concurrency,
}

impl Limit {
    /// From a 429's body, when it names one of Dataverse's codes.
    pub fn from_error(text: &str) -> Option<Self> {
        if text.contains("0x80072326") {
            Some(Limit::Concurrency)
        } else if text.contains("0x80072321") {
            Some(Limit::ExecutionTime)
        } else if text.contains("0x80072322") {
            Some(Limit::Requests)
        } else {
            None
        }
    }
}

impl State {
    /// Requests allowed in flight: the adaptive limit, but never fewer than the pace needs to keep
    /// its rate at the current latency (with requests of seconds, a halved limit would otherwise
    /// hold the lane under the pace it learned), nor more than a concurrency refusal allows.
    fn allowed(&self) -> f64 {
        let paced = match (self.pace.rate(), self.latency) {
            (Some(rate), Some(latency)) => (rate * latency.as_secs_f64()).ceil() + 1.0,
            _ => 1.0,
        };
        self.limit.floor().max(paced.min(self.max)).max(1.0)
    }
}

impl Lane {
    pub fn new(rate_per_second: Option<f64>, start: usize, max: usize) -> Self {
        let rate = rate_per_second.map(|r| {
            let period = Duration::from_secs_f64(1.0 / r.max(0.001));
            let quota = Quota::with_period(period)
                .expect("positive period")
                .allow_burst(NonZeroU32::new(1).expect("one"));
            RateLimiter::direct(quota)
        });
        Self {
            rate,
            state: Mutex::new(State {
                limit: start.max(1) as f64,
                max: max.max(1) as f64,
                in_flight: 0,
                paused_until: None,
                latency: None,
                hinted: false,
                pace: Pace::default(),
            }),
            freed: Notify::new(),
        }
    }

    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.state.lock().expect("lane").limit as usize
    }

    /// Waits for the lane's turn.
    ///
    /// A pace's turn, once taken, is kept while the request waits for a slot: a turn given up
    /// because every slot was busy at that moment would be a turn the pace never gets back, and
    /// the lane would ride below the pace it learned (reads measured 87% of the ceiling at a pace
    /// of 93% that way).
    pub async fn acquire(&self) -> Slot<'_> {
        let mut has_turn = false;
        loop {
            let pause = self.state.lock().expect("lane").paused_until;
            match pause {
                Some(until) if until > Instant::now() => {
                    // The service said to wait: turns taken before are void (the pace hands
                    // out new ones from the end of the pause, without a burst).
                    has_turn = false;
                    tokio::time::sleep_until(until.into()).await;
                    continue;
                }
                _ => {}
            }
            if !has_turn {
                if let Some(rate) = &self.rate {
                    rate.until_ready().await;
                }
                let turn = self
                    .state
                    .lock()
                    .expect("lane")
                    .pace
                    .next_turn(Instant::now());
                if let Some(at) = turn {
                    tokio::time::sleep_until(at.into()).await;
                }
                has_turn = true;
            }
            let notified = self.freed.notified();
            {
                let mut s = self.state.lock().expect("lane");
                let now = Instant::now();
                if s.paused_until.is_none_or(|u| u <= now) && (s.in_flight as f64) < s.allowed() {
                    s.in_flight += 1;
                    s.pace.sent(now);
                    return Slot {
                        lane: self,
                        started: now,
                        done: false,
                    };
                }
            }
            notified.await;
        }
    }

    /// The service told everyone on this lane to wait, because of `limit`.
    ///
    /// Each limit teaches its own lesson, once per pause (requests already on their way when the
    /// first 429 came are refused too, and teach nothing new): a request-count or execution-time
    /// limit teaches the pace (and, before there is one, execution time halves the concurrency);
    /// a concurrency limit halves the concurrency and caps it below the level that was refused, so
    /// that it never climbs back into the same refusal.
    pub fn pause(&self, wait: Duration, limit: Limit) {
        let mut s = self.state.lock().expect("lane");
        let now = Instant::now();
        let until = now + wait;
        s.pace.refused();
        let fresh = s.paused_until.is_none_or(|u| u <= now);
        s.paused_until = Some(s.paused_until.map_or(until, |u| u.max(until)));
        if !fresh {
            return;
        }
        tracing::debug!(
            ?limit,
            wait_s = wait.as_secs_f64(),
            concurrency = s.limit,
            "OData lane: paused"
        );
        match limit {
            Limit::Requests => {}
            // Before a pace, fewer at once is the only lever; once paced, the pace is.
            Limit::ExecutionTime if !s.pace.is_set() => s.limit = (s.limit / 2.0).max(1.0),
            Limit::ExecutionTime => {}
            Limit::Concurrency => {
                // Never again as many at once as were refused; half as many for now. (The
                // requests counted in flight here are not what the service was running when it
                // refused: some of them were refused too.)
                s.max = s.max.min((s.limit.floor() - 1.0).max(1.0));
                s.limit = (s.limit / 2.0).max(1.0);
                return;
            }
        }
        s.pace.window_refusal(now, until, limit);
    }

    /// Takes the service's `x-ms-dop-hint` from an answer's headers, if it sent one.
    pub fn hint_from(&self, headers: &reqwest::header::HeaderMap) {
        if let Some(dop) = headers
            .get("x-ms-dop-hint")
            .and_then(|v| v.to_str().ok()?.parse().ok())
        {
            self.hint(dop);
        }
    }

    /// The service's recommended parallelism (`x-ms-dop-hint`), taken once as a starting point.
    pub fn hint(&self, dop: usize) {
        let mut s = self.state.lock().expect("lane");
        if !s.hinted && dop > 0 {
            s.hinted = true;
            s.limit = (dop as f64).min(s.max);
        }
    }
}

impl Slot<'_> {
    /// The request succeeded: grow the limit while latency stays steady.
    pub fn success(self) {
        let took = self.started.elapsed();
        self.succeeded_in(took);
    }

    /// The request succeeded after `took` (tests give it, so that a slow test machine's scheduling
    /// cannot look like the service slowing down).
    fn succeeded_in(mut self, took: Duration) {
        self.done = true;
        let mut s = self.lane.state.lock().expect("lane");
        s.in_flight -= 1;
        let steady = s.latency.is_none_or(|l| took < l * 2);
        s.latency = Some(match s.latency {
            None => took,
            Some(l) => l.mul_f64(0.8) + took.mul_f64(0.2),
        });
        s.pace.succeeded(Instant::now());
        if steady {
            s.limit = (s.limit + 1.0 / s.limit).min(s.max);
        } else {
            s.limit = (s.limit * 0.75).max(1.0);
        }
        drop(s);
        self.lane.freed.notify_waiters();
    }
}

impl Drop for Slot<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.lane.state.lock().expect("lane").in_flight -= 1;
            self.lane.freed.notify_waiters();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STEADY: Duration = Duration::from_millis(10);

    #[tokio::test]
    async fn the_limit_grows_on_success_and_halves_on_pause() {
        let lane = Lane::new(None, 4, 64);
        for _ in 0..40 {
            lane.acquire().await.succeeded_in(STEADY);
        }
        let grown = lane.limit();
        assert!(grown > 4, "{grown}");
        lane.pause(Duration::from_millis(1), Limit::ExecutionTime);
        assert_eq!(lane.limit(), (grown as f64 / 2.0) as usize);
        let held: Vec<Slot> = vec![lane.acquire().await];
        drop(held);
    }

    #[tokio::test]
    async fn a_concurrency_429_halves_and_caps_the_limit_below_what_was_refused() {
        let lane = Lane::new(None, 8, 64);
        let slots: Vec<_> = futures::future::join_all((0..8).map(|_| lane.acquire())).await;
        lane.pause(Duration::from_millis(1), Limit::Concurrency);
        assert_eq!(lane.limit(), 4);
        drop(slots);
        tokio::time::sleep(Duration::from_millis(5)).await;
        for _ in 0..200 {
            lane.acquire().await.succeeded_in(STEADY);
        }
        assert_eq!(
            lane.limit(),
            7,
            "it grows back, but not to the 8 that were refused"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
        lane.pause(Duration::from_millis(1), Limit::Concurrency);
        tokio::time::sleep(Duration::from_millis(5)).await;
        for _ in 0..200 {
            lane.acquire().await.succeeded_in(STEADY);
        }
        assert_eq!(lane.limit(), 6);
        // And no pace was set: a concurrency limit is not a rate.
        assert!(!lane.state.lock().unwrap().pace.is_set());
    }

    #[tokio::test]
    async fn a_paced_lane_keeps_its_concurrency_on_execution_time_refusals() {
        let lane = Lane::new(None, 4, 64);
        // Two requests went through, the third was refused.
        for _ in 0..2 {
            lane.acquire().await.succeeded_in(STEADY);
        }
        lane.state.lock().unwrap().pace.sent(Instant::now());
        lane.pause(Duration::ZERO, Limit::Requests);
        // The window refilled: the first lesson gives the lane a pace.
        let refilled = Instant::now();
        assert!(
            lane.state
                .lock()
                .unwrap()
                .pace
                .next_turn(refilled)
                .is_none()
        );
        assert!(lane.state.lock().unwrap().pace.is_set());
        lane.state.lock().unwrap().paused_until = None;
        lane.pause(Duration::ZERO, Limit::ExecutionTime);
        assert_eq!(lane.limit(), 4);
        // A concurrency refusal still halves it.
        lane.state.lock().unwrap().paused_until = None;
        lane.pause(Duration::ZERO, Limit::Concurrency);
        assert_eq!(lane.limit(), 2);
    }

    #[tokio::test]
    async fn a_turn_of_the_pace_is_kept_while_the_request_waits_for_a_slot() {
        // One request at a time, paced at two a second.
        let lane = Lane::new(None, 1, 1);
        lane.state.lock().unwrap().pace = Pace::at(2.0);
        let first = lane.acquire().await;
        let started = Instant::now();
        // The second's turn comes at 0.5 s, while the first still holds the only slot (0.6 s).
        let second = async { lane.acquire().await.succeeded_in(STEADY) };
        let release = async {
            tokio::time::sleep(Duration::from_millis(600)).await;
            first.succeeded_in(STEADY);
        };
        tokio::join!(second, release);
        // It went on that turn when the slot freed: two turns handed out, so the next is 1 s after
        // the first. (Giving the turn up for a busy slot took another at 1 s: the next at 1.5 s.)
        let next = lane
            .state
            .lock()
            .unwrap()
            .pace
            .next_turn(Instant::now())
            .expect("a turn ahead");
        let after = next.duration_since(started);
        assert!(after < Duration::from_millis(1250), "{after:?}");
    }

    #[test]
    fn a_paced_lane_allows_as_many_at_once_as_its_pace_needs() {
        let lane = Lane::new(None, 8, 64);
        let mut s = lane.state.lock().unwrap();
        // Halved to 2 by an execution-time refusal, with pages of 2.5 s...
        s.limit = 2.0;
        s.latency = Some(Duration::from_millis(2500));
        assert_eq!(s.allowed(), 2.0, "no pace yet: the limit");
        // ...and a pace of 1.6 a second learned: four in flight keep it, and one more.
        s.pace = Pace::at(1.6);
        assert_eq!(s.allowed(), 5.0);
        // But never more than a concurrency refusal allows.
        s.max = 3.0;
        assert_eq!(s.allowed(), 3.0);
    }
}
