//! Throughput control for one application user: a fixed ceiling (governor) when the target sets
//! `rate_limit`, adaptive concurrency on top, a pace learned from the service's window limits, and a
//! pause for the whole of a `Retry-After`.
//!
//! ```text
//! acquire: wait out a pause ─▶ rate limiter ─▶ the pace's next send time ─▶ a slot (in flight < limit)
//! release: no 429 and latency steady → limit grows by 1/limit (additive increase)
//!          latency doubled            → limit shrinks by a quarter
//! 429s:    concurrency     → limit halves and is capped below the refused level
//!          execution time  → before a pace, limit halves; and the window lesson below
//!          request count   → the window lesson:
//!            first:  pace = 0.96 × admitted / (time from the first send until the window refills),
//!                    worked out when the pause ends (every refusal already on its way is in by then);
//!                    after one more window it creeps up very slowly, in case the lane had run
//!                    longer than one window before the first 429
//!            later:  pace = 0.97 × the pace that was refused, and it holds there (for ten windows
//!                    without a refusal; then it creeps up again)
//!            within about one window of a lesson, a refusal only pauses: the service's window
//!            still holds what was sent before the pace changed (the first burst, for one)
//! ```
//! So a user meets the limit while it finds the ceiling, then rides just under it with no more 429s.

use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::Notify;

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
    /// Requests per second, once a window limit was met.
    pace: Option<f64>,
    /// Whether the pace still creeps up (until a second window lesson).
    creeping: bool,
    /// The first window lesson waits for its pause to end: when the window refills.
    refills_at: Option<Instant>,
    /// When the pace lets the next request go.
    next_send: Option<Instant>,
    /// When the pace last changed on a lesson, and how long a lesson holds: refusals in that time
    /// come from before the change (the window still holds older requests) and teach nothing.
    lesson_at: Option<Instant>,
    hold: Duration,
    first_send: Option<Instant>,
    /// Requests sent, and how many of them were refused with 429 (not counted by the service).
    sent: u64,
    refused: u64,
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
                pace: None,
                creeping: false,
                refills_at: None,
                next_send: None,
                lesson_at: None,
                hold: Duration::ZERO,
                first_send: None,
                sent: 0,
                refused: 0,
            }),
            freed: Notify::new(),
        }
    }

    #[cfg(test)]
    pub fn limit(&self) -> usize {
        self.state.lock().expect("lane").limit as usize
    }

    /// Waits for the lane's turn.
    pub async fn acquire(&self) -> Slot<'_> {
        loop {
            let pause = self.state.lock().expect("lane").paused_until;
            match pause {
                Some(until) if until > Instant::now() => {
                    tokio::time::sleep_until(until.into()).await;
                    continue;
                }
                _ => {}
            }
            if let Some(rate) = &self.rate {
                rate.until_ready().await;
            }
            let turn = self.state.lock().expect("lane").next_turn(Instant::now());
            if let Some(at) = turn {
                tokio::time::sleep_until(at.into()).await;
            }
            let notified = self.freed.notified();
            {
                let mut s = self.state.lock().expect("lane");
                let now = Instant::now();
                if s.paused_until.is_none_or(|u| u <= now)
                    && (s.in_flight as f64) < s.limit.floor().max(1.0)
                {
                    s.in_flight += 1;
                    s.sent += 1;
                    s.first_send.get_or_insert(now);
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
    /// first 429 came are refused too, and teach nothing new): a request-count limit sets the pace
    /// (requests per second); an execution-time limit halves the concurrency; a concurrency limit
    /// halves it too and caps it below the level that was refused, so that it never climbs back
    /// into the same refusal.
    pub fn pause(&self, wait: Duration, limit: Limit) {
        let mut s = self.state.lock().expect("lane");
        let now = Instant::now();
        let until = now + wait;
        s.refused += 1;
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
            Limit::ExecutionTime if s.pace.is_none() => s.limit = (s.limit / 2.0).max(1.0),
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
        let held = s.lesson_at.is_some_and(|at| now < at + s.hold);
        match s.pace {
            None if s.refills_at.is_none() => s.refills_at = Some(until),
            None => {}
            Some(_) if held => {}
            Some(p) => {
                tracing::info!(
                    ?limit,
                    refused_at = p,
                    pace = p * 0.97,
                    "OData lane: refused while pacing; slower, and holding there"
                );
                s.pace = Some(p * 0.97);
                s.creeping = false;
                s.lesson_at = Some(now);
            }
        }
        // Turns already handed out stay handed out: a pause only pushes the next one later.
        s.next_send = Some(s.next_send.map_or(until, |n| n.max(until)));
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

/// The first lesson's pace, as a share of what the service admitted over its window. A window limit
/// on the request count says nothing of the other on execution time, which may bind a little lower
/// (Dataverse's budgets are 6,000 requests and 1,200 s per 300 s: requests of 0.2 s meet both at
/// once); and the requests a lane sends wander a percent or two around its pace.
const FIRST_PACE: f64 = 0.96;

impl State {
    /// When the pace lets the next request go (None: now), reserving that turn.
    fn next_turn(&mut self, now: Instant) -> Option<Instant> {
        if let Some(refilled) = self.refills_at.filter(|r| *r <= now) {
            // The first window lesson: what the service admitted, over the window it filled.
            self.refills_at = None;
            let admitted = self.sent.saturating_sub(self.refused) as f64;
            let span = self.first_send.map_or(Duration::ZERO, |f| refilled - f);
            let pace = (FIRST_PACE * admitted / span.as_secs_f64().max(0.001)).max(0.01);
            tracing::info!(
                admitted,
                window_s = span.as_secs_f64(),
                pace,
                "OData lane: the service's window limit learned; pacing requests"
            );
            self.pace = Some(pace);
            self.creeping = true;
            self.lesson_at = Some(refilled);
            // About one window: what the service still counts from before the pace.
            self.hold = span.min(Duration::from_secs(300));
        }
        let pace = self.pace?;
        let at = self.next_send.map_or(now, |n| n.max(now));
        self.next_send = Some(at + Duration::from_secs_f64(1.0 / pace));
        (at > now).then_some(at)
    }
}

impl Slot<'_> {
    /// The request succeeded: grow the limit while latency stays steady.
    pub fn success(mut self) {
        self.done = true;
        let took = self.started.elapsed();
        let mut s = self.lane.state.lock().expect("lane");
        s.in_flight -= 1;
        let steady = s.latency.is_none_or(|l| took < l * 2);
        s.latency = Some(match s.latency {
            None => took,
            Some(l) => l.mul_f64(0.8) + took.mul_f64(0.2),
        });
        // Creeping waits out the hold: while the window still counts the requests from before
        // the pace, a refusal would teach nothing.
        let held = s.lesson_at.is_some_and(|at| at.elapsed() < s.hold);
        if let (Some(p), true, false) = (s.pace, s.creeping, held) {
            s.pace = Some(p * 1.000_03);
        }
        // Ten windows without a refusal: the service may have more room than when it last refused.
        if !s.creeping && s.lesson_at.is_some_and(|at| at.elapsed() > s.hold * 10) {
            s.creeping = true;
        }
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

    #[tokio::test]
    async fn the_limit_grows_on_success_and_halves_on_pause() {
        let lane = Lane::new(None, 4, 64);
        for _ in 0..40 {
            lane.acquire().await.success();
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
            lane.acquire().await.success();
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
            lane.acquire().await.success();
        }
        assert_eq!(lane.limit(), 6);
        // And no pace was set: a concurrency limit is not a rate.
        assert!(lane.state.lock().unwrap().pace.is_none());
    }

    #[test]
    fn the_first_window_lesson_paces_at_what_the_service_admitted_per_window() {
        let lane = Lane::new(None, 4, 64);
        let mut s = lane.state.lock().unwrap();
        let t0 = Instant::now();
        // 216 sent from t0; 16 of them were refused; the window refills at t0 + 10 s: the service
        // admits 200 per 10 s.
        s.first_send = Some(t0);
        s.sent = 216;
        s.refused = 16;
        s.refills_at = Some(t0 + Duration::from_secs(10));
        // Before the window refills there is no pace yet.
        assert_eq!(s.next_turn(t0 + Duration::from_secs(5)), None);
        let refilled = t0 + Duration::from_secs(10);
        assert_eq!(
            s.next_turn(refilled),
            None,
            "the first request goes at once"
        );
        let pace = s.pace.unwrap();
        assert!((pace - 19.2).abs() < 1e-9, "{pace}");
        // The next ones are spaced by the pace, even when they all ask at the same moment.
        let second = s.next_turn(refilled).unwrap();
        let third = s.next_turn(refilled).unwrap();
        assert_eq!(second - refilled, Duration::from_secs_f64(1.0 / 19.2));
        assert_eq!(third - second, Duration::from_secs_f64(1.0 / 19.2));
        // Idle time is not saved up for a burst.
        let later = refilled + Duration::from_secs(60);
        assert_eq!(s.next_turn(later), None);
        assert!(s.next_turn(later).is_some());
    }

    #[tokio::test]
    async fn a_second_window_lesson_slows_the_pace_and_holds_it() {
        let lane = Lane::new(None, 4, 64);
        {
            let mut s = lane.state.lock().unwrap();
            s.pace = Some(20.0);
            s.creeping = true;
            s.hold = Duration::from_secs(10);
        }
        lane.pause(Duration::ZERO, Limit::Requests);
        {
            let mut s = lane.state.lock().unwrap();
            assert!((s.pace.unwrap() - 19.4).abs() < 1e-9);
            assert!(!s.creeping);
            s.paused_until = None;
        }
        // Refused again within the hold (the window still counts what went before): a pause, no
        // new lesson; nor does a paced lane halve its concurrency for execution time.
        lane.pause(Duration::ZERO, Limit::ExecutionTime);
        lane.state.lock().unwrap().paused_until = None;
        lane.pause(Duration::ZERO, Limit::Requests);
        assert!((lane.state.lock().unwrap().pace.unwrap() - 19.4).abs() < 1e-9);
        assert_eq!(lane.limit(), 4);
        // A concurrency refusal is not a rate: the pace stays.
        lane.state.lock().unwrap().paused_until = None;
        lane.pause(Duration::ZERO, Limit::Concurrency);
        assert!((lane.state.lock().unwrap().pace.unwrap() - 19.4).abs() < 1e-9);
        assert_eq!(lane.limit(), 2);
        // Ten windows later without a refusal, it probes upwards again.
        let long_ago = Instant::now().checked_sub(Duration::from_secs(101));
        if let Some(at) = long_ago {
            {
                let mut s = lane.state.lock().unwrap();
                s.lesson_at = Some(at);
                s.paused_until = None;
            }
            lane.acquire().await.success();
            assert!(lane.state.lock().unwrap().creeping);
        }
    }
}
