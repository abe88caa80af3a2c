//! Service protection limits, per application user, as Dataverse applies them: requests in a sliding
//! window, combined execution time in the window, and concurrent requests. Over a limit the answer is
//! 429 with Retry-After and the documented error code; a client that keeps sending while told to wait
//! is told to wait longer.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use super::store::ODataError;

/// The limits, each configurable (Dataverse: 6000 requests and 1200 s of execution per 300 s, 52 at once).
#[derive(Debug, Clone)]
pub struct Limits {
    pub enabled: bool,
    pub window: Duration,
    pub requests: usize,
    pub execution: Duration,
    pub concurrency: usize,
    /// The degree of parallelism recommended in `x-ms-dop-hint`.
    pub dop_hint: usize,
    /// `Retry-After` with a fraction of a second (`0.437`) instead of HTTP's whole seconds: only for
    /// tests that compress time into windows of a second or two.
    pub retry_after_fractions: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            enabled: true,
            window: Duration::from_secs(300),
            requests: 6000,
            execution: Duration::from_secs(1200),
            concurrency: 52,
            dop_hint: 8,
            retry_after_fractions: false,
        }
    }
}

impl Limits {
    pub fn off() -> Self {
        Self {
            enabled: false,
            ..Self::default()
        }
    }
}

pub const REQUESTS_EXCEEDED: &str = "0x80072322";
pub const EXECUTION_EXCEEDED: &str = "0x80072321";
pub const CONCURRENCY_EXCEEDED: &str = "0x80072326";

/// A refusal: the error and how long to wait.
#[derive(Debug)]
pub struct Throttled {
    pub error: ODataError,
    pub retry_after: Duration,
}

#[derive(Default)]
struct Client {
    requests: VecDeque<Instant>,
    /// (when finished, how long it ran)
    executions: VecDeque<(Instant, Duration)>,
    executing: Duration,
    in_flight: usize,
    /// Told to wait until then; asking earlier makes it later.
    blocked_until: Option<Instant>,
    /// When it was told: requests already on their way in the first second are not held against it.
    blocked_at: Option<Instant>,
}

/// Every client's windows.
#[derive(Default)]
pub struct Limiter {
    clients: HashMap<String, Client>,
}

impl Limiter {
    pub fn clear(&mut self) {
        self.clients.clear();
    }

    /// Admits a request of `client` or says how long to wait. An admitted request must be `finish`ed.
    pub fn admit(&mut self, limits: &Limits, client: &str, now: Instant) -> Result<(), Throttled> {
        if !limits.enabled {
            return Ok(());
        }
        let c = self.clients.entry(client.to_string()).or_default();
        let horizon = now.checked_sub(limits.window).unwrap_or(now);
        while c.requests.front().is_some_and(|t| *t < horizon) {
            c.requests.pop_front();
        }
        while c.executions.front().is_some_and(|(t, _)| *t < horizon) {
            let (_, d) = c.executions.pop_front().expect("checked");
            c.executing = c.executing.saturating_sub(d);
        }
        if let Some(until) = c.blocked_until {
            let in_flight_then = c
                .blocked_at
                .is_some_and(|at| now < at + Duration::from_secs(1));
            if now < until && in_flight_then {
                return Err(Throttled {
                    retry_after: until - now,
                    error: requests_exceeded(limits),
                });
            }
            if now < until {
                // Sending while told to wait: the wait grows by half of what was left.
                let left = until - now;
                let longer = until + left / 2;
                c.blocked_until = Some(longer);
                return Err(Throttled {
                    retry_after: longer - now,
                    error: requests_exceeded(limits),
                });
            }
            c.blocked_until = None;
            c.blocked_at = None;
        }
        if c.in_flight >= limits.concurrency {
            return Err(Throttled {
                retry_after: Duration::from_secs(1),
                error: ODataError::new(
                    429,
                    CONCURRENCY_EXCEEDED,
                    format!(
                        "Number of concurrent requests exceeded the limit of {}.",
                        limits.concurrency
                    ),
                ),
            });
        }
        if c.requests.len() >= limits.requests {
            // The oldest request leaves the window first (with a limit of none, a whole window).
            let oldest = c.requests.front().copied().unwrap_or(now);
            let wait = (oldest + limits.window).saturating_duration_since(now);
            c.blocked_until = Some(now + wait);
            c.blocked_at = Some(now);
            return Err(Throttled {
                retry_after: wait,
                error: requests_exceeded(limits),
            });
        }
        if c.executing >= limits.execution {
            // Wait until enough execution time has left the window.
            let mut freed = Duration::ZERO;
            let mut wait = limits.window;
            for (t, d) in &c.executions {
                freed += *d;
                if c.executing - freed < limits.execution {
                    wait = (*t + limits.window).saturating_duration_since(now);
                    break;
                }
            }
            c.blocked_until = Some(now + wait);
            c.blocked_at = Some(now);
            return Err(Throttled {
                retry_after: wait,
                error: ODataError::new(
                    429,
                    EXECUTION_EXCEEDED,
                    format!(
                        "Combined execution time of incoming requests exceeded limit of {} milliseconds over time window of {} seconds. Decrease number of concurrent requests or reduce the duration of requests and try again later.",
                        limits.execution.as_millis(),
                        limits.window.as_secs()
                    ),
                ),
            });
        }
        c.requests.push_back(now);
        c.in_flight += 1;
        Ok(())
    }

    /// Records an admitted request's end and how long it ran.
    pub fn finish(&mut self, limits: &Limits, client: &str, ran: Duration) {
        if !limits.enabled {
            return;
        }
        if let Some(c) = self.clients.get_mut(client) {
            c.in_flight = c.in_flight.saturating_sub(1);
            c.executions.push_back((Instant::now(), ran));
            c.executing += ran;
        }
    }
}

fn requests_exceeded(limits: &Limits) -> ODataError {
    ODataError::new(
        429,
        REQUESTS_EXCEEDED,
        format!(
            "Number of requests exceeded the limit of {} over time window of {} seconds.",
            limits.requests,
            limits.window.as_secs()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_request_limit_refuses_then_recovers_after_the_window() {
        let limits = Limits {
            window: Duration::from_secs(10),
            requests: 3,
            ..Limits::default()
        };
        let mut limiter = Limiter::default();
        let t0 = Instant::now();
        for i in 0..3 {
            limiter
                .admit(&limits, "a", t0 + Duration::from_millis(i))
                .unwrap();
            limiter.finish(&limits, "a", Duration::ZERO);
        }
        let refused = limiter
            .admit(&limits, "a", t0 + Duration::from_secs(1))
            .unwrap_err();
        assert_eq!(refused.error.code, REQUESTS_EXCEEDED);
        assert_eq!(refused.retry_after.as_secs(), 9);
        // Another client is not affected.
        limiter
            .admit(&limits, "b", t0 + Duration::from_secs(1))
            .unwrap();
        // Asking again while told to wait makes the wait longer.
        let again = limiter
            .admit(&limits, "a", t0 + Duration::from_secs(2))
            .unwrap_err();
        assert!(
            again.retry_after > Duration::from_secs(8),
            "{:?}",
            again.retry_after
        );
        // After the (longer) wait, admitted again.
        limiter
            .admit(&limits, "a", t0 + Duration::from_secs(20))
            .unwrap();
    }
}
