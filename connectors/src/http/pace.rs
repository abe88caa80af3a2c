//! The pace of one application user: how many requests a second it may send, learned from the
//! service's window limits (request count, execution time) so that after finding the ceiling it rides
//! just under it instead of being refused every window.
//!
//! ```text
//! first window refusal:  wait for the window to refill, then
//!                        request count:  pace = 0.96 × admitted / (time from the first send
//!                                        until the refill): the service counts a request as it
//!                                        arrives;
//!                        execution time: pace = 0.96 × completed before the refusal / (time from
//!                                        the first completion until the refill): the service
//!                                        counts a request's time when it ends, so the requests
//!                                        in flight at the refusal are not what the window held
//!                                        (with requests of seconds, a page of 5,000 records or a
//!                                        bulk message of 1,000, they are a large share);
//!                        after one more window it creeps up 2% a window, in case the lane had run
//!                        longer than one window before the first 429 (or the lesson was cautious)
//! later refusals:        pace = 0.97 × the pace that was refused, and it holds there (for ten windows
//!                        without a refusal; then it creeps up again)
//! within about one window of a lesson a refusal teaches nothing: the service's window still holds
//! what was sent before the pace changed (the first burst, for one)
//! ```

use std::time::{Duration, Instant};

/// The first lesson's pace, as a share of what the service admitted over its window. A window limit
/// on the request count says nothing of the other on execution time, which may bind a little lower
/// (Dataverse's budgets are 6,000 requests and 1,200 s per 300 s: requests of 0.2 s meet both at
/// once); and the requests a lane sends wander a percent or two around its pace.
const FIRST_PACE: f64 = 0.96;
/// A later lesson's pace, as a share of the pace that was refused.
const CUT: f64 = 0.97;
/// How much a creeping pace rises over one window (the hold's length), whatever the requests'
/// rate: per request, a pace of 20 a second crept 20% a window and one of pages at 8 a second
/// 0.2%, so slow lanes stayed where their first, cautious lesson put them.
const CREEP_PER_WINDOW: f64 = 1.02;

#[derive(Default)]
pub(super) struct Pace {
    /// Requests per second, once a window limit was met.
    rate: Option<f64>,
    /// Whether the rate creeps up (until a later lesson, and again after ten quiet windows).
    creeping: bool,
    /// The first lesson waits for its pause to end: when the window refills.
    refills_at: Option<Instant>,
    /// When the next request may go.
    next_send: Option<Instant>,
    /// When the rate last changed on a lesson, and how long a lesson holds: refusals in that time
    /// come from before the change and teach nothing.
    lesson_at: Option<Instant>,
    hold: Duration,
    /// When a creeping pace last rose.
    crept_at: Option<Instant>,
    first_send: Option<Instant>,
    /// Requests sent, and how many of them were refused with 429 (not counted by the service).
    sent: u64,
    refused: u64,
    /// Requests completed, and when the first of them did.
    completed: u64,
    first_completion: Option<Instant>,
    /// The limit of the first window refusal, and the requests completed by then.
    first_lesson: Option<(super::lane::Limit, u64)>,
}

impl Pace {
    pub(super) fn is_set(&self) -> bool {
        self.rate.is_some()
    }

    /// A pace already learned (for tests of the lane).
    #[cfg(test)]
    pub(super) fn at(rate: f64) -> Self {
        Self {
            rate: Some(rate),
            ..Self::default()
        }
    }

    /// Requests per second, once learned.
    pub(super) fn rate(&self) -> Option<f64> {
        self.rate
    }

    /// A request went out.
    pub(super) fn sent(&mut self, now: Instant) {
        self.sent += 1;
        self.first_send.get_or_insert(now);
    }

    /// A request was refused with 429, whatever the limit.
    pub(super) fn refused(&mut self) {
        self.refused += 1;
    }

    /// The service refused a request for a window limit and said to wait until `until`.
    pub(super) fn window_refusal(
        &mut self,
        now: Instant,
        until: Instant,
        limit: super::lane::Limit,
    ) {
        let held = self.lesson_at.is_some_and(|at| now < at + self.hold);
        match self.rate {
            None if self.refills_at.is_none() => {
                self.refills_at = Some(until);
                self.first_lesson = Some((limit, self.completed));
            }
            None => {}
            Some(_) if held => {}
            Some(rate) => {
                tracing::info!(
                    ?limit,
                    refused_at = rate,
                    pace = rate * CUT,
                    "OData lane: refused while pacing; slower, and holding there"
                );
                self.rate = Some(rate * CUT);
                self.creeping = false;
                self.lesson_at = Some(now);
            }
        }
        // Turns already handed out stay handed out: a pause only pushes the next one later.
        self.next_send = Some(self.next_send.map_or(until, |n| n.max(until)));
    }

    /// When the next request may go (None: now), reserving that turn.
    pub(super) fn next_turn(&mut self, now: Instant) -> Option<Instant> {
        if let Some(refilled) = self.refills_at.filter(|r| *r <= now) {
            self.learn(refilled);
        }
        let rate = self.rate?;
        let at = self.next_send.map_or(now, |n| n.max(now));
        self.next_send = Some(at + Duration::from_secs_f64(1.0 / rate));
        (at > now).then_some(at)
    }

    /// The first lesson: what the service admitted, over the window it filled.
    fn learn(&mut self, refilled: Instant) {
        self.refills_at = None;
        let admitted = self.sent.saturating_sub(self.refused) as f64;
        let lesson = self.first_lesson.take();
        if admitted == 0.0 {
            // Refused before anything got through: the window was full before this lane began
            // (another run of the same application user, a storm). That says nothing of what the
            // lane may send; it measures the next window afresh.
            tracing::info!(
                "OData lane: refused before any request got through; no pace learned from it"
            );
            (self.sent, self.refused, self.first_send) = (0, 0, None);
            (self.completed, self.first_completion) = (0, None);
            return;
        }
        let (admitted, span) = match (lesson, self.first_completion) {
            (Some((super::lane::Limit::ExecutionTime, completed)), Some(first))
                if completed > 0 =>
            {
                (completed as f64, refilled.saturating_duration_since(first))
            }
            _ => (
                admitted,
                self.first_send.map_or(Duration::ZERO, |f| refilled - f),
            ),
        };
        let rate = (FIRST_PACE * admitted / span.as_secs_f64().max(0.001)).max(0.01);
        tracing::info!(
            admitted,
            window_s = span.as_secs_f64(),
            pace = rate,
            "OData lane: the service's window limit learned; pacing requests"
        );
        self.rate = Some(rate);
        self.creeping = true;
        self.crept_at = None;
        self.lesson_at = Some(refilled);
        // About one window: what the service still counts from before the pace.
        self.hold = span.min(Duration::from_secs(300));
    }

    /// A request succeeded.
    pub(super) fn succeeded(&mut self, now: Instant) {
        self.completed += 1;
        self.first_completion.get_or_insert(now);
        let since_lesson = self.lesson_at.map(|at| now.saturating_duration_since(at));
        // Creeping waits out the hold: while the window still counts the requests from before the
        // pace, a refusal would teach nothing.
        let held = since_lesson.is_some_and(|d| d < self.hold);
        if let (Some(rate), true, false) = (self.rate, self.creeping, held) {
            // From the last rise, but never from inside the hold.
            let held_until = self.lesson_at.map(|at| at + self.hold);
            let from = [self.crept_at, held_until]
                .into_iter()
                .flatten()
                .max()
                .unwrap_or(now);
            let windows = now.saturating_duration_since(from).as_secs_f64()
                / self.hold.as_secs_f64().max(0.001);
            self.rate = Some(rate * CREEP_PER_WINDOW.powf(windows));
            self.crept_at = Some(now);
        }
        // Ten windows without a refusal: the service may have more room than when it last refused.
        if !self.creeping && since_lesson.is_some_and(|d| d > self.hold * 10) {
            self.creeping = true;
            self.crept_at = Some(now);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lane::Limit;
    use super::*;

    #[test]
    fn the_first_window_lesson_paces_at_what_the_service_admitted_per_window() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        // 216 sent from t0; 16 of them were refused; the window refills at t0 + 10 s: the service
        // admits 200 per 10 s.
        p.first_send = Some(t0);
        p.sent = 216;
        p.refused = 16;
        p.refills_at = Some(t0 + Duration::from_secs(10));
        // Before the window refills there is no pace yet.
        assert_eq!(p.next_turn(t0 + Duration::from_secs(5)), None);
        let refilled = t0 + Duration::from_secs(10);
        assert_eq!(
            p.next_turn(refilled),
            None,
            "the first request goes at once"
        );
        let rate = p.rate.unwrap();
        assert!((rate - 19.2).abs() < 1e-9, "{rate}");
        // The next ones are spaced by the pace, even when they all ask at the same moment.
        let second = p.next_turn(refilled).unwrap();
        let third = p.next_turn(refilled).unwrap();
        assert_eq!(second - refilled, Duration::from_secs_f64(1.0 / 19.2));
        assert_eq!(third - second, Duration::from_secs_f64(1.0 / 19.2));
        // Idle time is not saved up for a burst.
        let later = refilled + Duration::from_secs(60);
        assert_eq!(p.next_turn(later), None);
        assert!(p.next_turn(later).is_some());
    }

    #[test]
    fn an_execution_time_lesson_paces_at_what_completed_over_the_window_it_filled() {
        // Pages of 2.5 s, eight at a time, against 40 s of execution per 10 s: the first eight
        // complete at 2.5 s, the next eight at 5 s, and the request after them is refused (the
        // window holds 40 s). Eight more are in flight; they will count when they end. The window
        // refills when the first eight leave it, at 12.5 s.
        let mut p = Pace::default();
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        for _ in 0..25 {
            p.sent(t0);
        }
        for i in 0..16 {
            p.succeeded(at(if i < 8 { 2.5 } else { 5.0 }));
        }
        p.refused();
        p.window_refusal(at(5.0), at(12.5), Limit::ExecutionTime);
        assert_eq!(p.next_turn(at(12.5)), None);
        let rate = p.rate.unwrap();
        // 16 completed over the 10 s from the first completion to the refill: 1.6 a second, which
        // sustains 4 s of execution a second. Counting the 24 sent and not refused over the
        // 12.5 s from the first send would have said 1.84, 15% over the ceiling.
        assert!((rate - 0.96 * 1.6).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_pace_creeps_by_the_window_not_by_the_request() {
        // Two lanes paced at 8 a second, lessons at t0 with windows of 10 s; one sends 20 requests
        // over the next 30 s, the other 2,000.
        let t0 = Instant::now();
        let at = |s: f64| t0 + Duration::from_secs_f64(s);
        let crept = |successes: usize| {
            let mut p = Pace {
                rate: Some(8.0),
                creeping: true,
                lesson_at: Some(t0),
                hold: Duration::from_secs(10),
                ..Pace::default()
            };
            for i in 0..=successes {
                p.succeeded(at(30.0 * i as f64 / successes as f64));
            }
            p.rate.unwrap()
        };
        // Held for the first window, then two windows of creeping: 2% each.
        let expected = 8.0 * 1.02f64.powi(2);
        for successes in [20, 2000] {
            let rate = crept(successes);
            assert!((rate - expected).abs() < 1e-6, "{successes}: {rate}");
        }
    }

    #[test]
    fn a_window_that_admitted_nothing_teaches_no_pace() {
        let mut p = Pace::default();
        let t0 = Instant::now();
        p.sent(t0);
        p.refused();
        p.window_refusal(t0, t0 + Duration::from_secs(1), Limit::Requests);
        let refilled = t0 + Duration::from_secs(1);
        assert_eq!(p.next_turn(refilled), None);
        assert!(
            !p.is_set(),
            "a pace of nothing admitted would be next to zero"
        );
        // The next window is measured from its own first request.
        p.sent(refilled);
        p.sent(refilled);
        p.refused();
        p.window_refusal(refilled, refilled + Duration::from_secs(1), Limit::Requests);
        assert_eq!(p.next_turn(refilled + Duration::from_secs(1)), None);
        let rate = p.rate.unwrap();
        assert!((rate - 0.96).abs() < 1e-9, "{rate}");
    }

    #[test]
    fn a_later_lesson_slows_the_pace_holds_it_and_probes_again_after_ten_quiet_windows() {
        let mut p = Pace {
            rate: Some(20.0),
            creeping: true,
            hold: Duration::from_secs(10),
            ..Pace::default()
        };
        let now = Instant::now();
        p.window_refusal(now, now, Limit::Requests);
        assert!((p.rate.unwrap() - 19.4).abs() < 1e-9);
        assert!(!p.creeping);
        // Refused again within the hold (the window still counts what went before): no new lesson.
        p.window_refusal(now, now, Limit::ExecutionTime);
        assert!((p.rate.unwrap() - 19.4).abs() < 1e-9);
        // Ten windows later without a refusal, it probes upwards again.
        if let Some(long_ago) = Instant::now().checked_sub(Duration::from_secs(101)) {
            p.lesson_at = Some(long_ago);
            p.succeeded(Instant::now());
            assert!(p.creeping);
        }
    }
}
