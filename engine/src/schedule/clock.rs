//! The scheduler's clock: the system's, or (for tests, `--clock`) one that starts at a given time
//! and runs faster, so that a day of fires passes in seconds.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

#[derive(Debug, Clone)]
pub struct Clock {
    /// The virtual start and how many virtual seconds pass per real one; `None` for the real clock.
    accelerated: Option<(DateTime<Utc>, f64)>,
    started: Instant,
    /// After this much of its time, the clock moves forward by the second span (tests: the system
    /// time set forward, a machine waking from sleep).
    jump: Option<(Duration, Duration)>,
}

impl Clock {
    pub fn real() -> Self {
        Self {
            accelerated: None,
            started: Instant::now(),
            jump: None,
        }
    }

    /// `2026-01-01T00:00:00Z` (starts there, at real speed) or `2026-01-01T00:00:00Z*600`, and
    /// optionally `,2m=1h`: after 2 minutes of its time the clock moves forward an hour.
    pub fn parse(text: &str) -> Result<Self, String> {
        if let Some((clock, jump)) = text.split_once(',') {
            return Self::parse(clock)?.with_jump(jump);
        }
        let (start, speed) = match text.split_once('*') {
            Some((start, speed)) => (
                start,
                speed.trim().parse::<f64>().map_err(|e| e.to_string())?,
            ),
            None => (text, 1.0),
        };
        let start = DateTime::parse_from_rfc3339(start.trim())
            .map_err(|e| format!("{start}: {e}"))?
            .with_timezone(&Utc);
        if !(speed > 0.0 && speed <= 1e6) {
            return Err(format!(
                "the clock's speed must be above 0 and at most 1e6, not {speed}"
            ));
        }
        Ok(Self {
            accelerated: Some((start, speed)),
            started: Instant::now(),
            jump: None,
        })
    }

    /// `AFTER=BY` (`2m=1h`): after AFTER of its time the clock moves forward by BY.
    fn with_jump(mut self, text: &str) -> Result<Self, String> {
        let (after, by) = text
            .split_once('=')
            .ok_or_else(|| format!("{text}: write AFTER=BY, e.g. 2m=1h"))?;
        let span = |t: &str| {
            crate::spec::parse_duration(t.trim()).ok_or_else(|| format!("{t} is not a duration"))
        };
        self.jump = Some((span(after)?, span(by)?));
        Ok(self)
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self.accelerated {
            None => Utc::now(),
            Some((start, speed)) => {
                let mut elapsed = self.started.elapsed().as_secs_f64() * speed;
                if let Some((after, by)) = self.jump
                    && elapsed >= after.as_secs_f64()
                {
                    elapsed += by.as_secs_f64();
                }
                start + chrono::TimeDelta::microseconds((elapsed * 1e6) as i64)
            }
        }
    }

    /// How long to really wait for `span` of this clock's time to pass.
    pub fn real_span(&self, span: Duration) -> Duration {
        match self.accelerated {
            None => span,
            Some((_, speed)) => span.div_f64(speed),
        }
    }
}
