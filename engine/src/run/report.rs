//! What a run did, for people (the summary printed at the end) and for scripts (the exit code).

use std::fmt;
use std::time::Duration;

/// How a run ended, in the words the history uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Every row landed.
    Completed,
    /// The run finished, but some rows were rejected.
    PartialSuccess,
    /// The run stopped on an error; the target keeps the rows it had, plus whole batches already written.
    Failed,
    /// Stopped by the user (Ctrl-C).
    Stopped,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Completed => "Completed",
            Status::PartialSuccess => "Partial Success",
            Status::Failed => "Failed",
            Status::Stopped => "Stopped",
        }
    }

    /// The process exit code scripts can rely on.
    pub fn exit_code(self) -> i32 {
        match self {
            Status::Completed => 0,
            Status::Failed => 1,
            Status::PartialSuccess => 3,
            Status::Stopped => 130,
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The numbers of one run.
#[derive(Debug, Clone)]
pub struct RunReport {
    pub pipeline: String,
    pub run_id: String,
    /// 1 for a new run; more when this run resumed one that did not finish.
    pub attempt: i32,
    pub target: String,
    pub status: Status,
    /// Rows the sources gave (what the steps read).
    pub rows_read: u64,
    /// Rows the last step gave: what was sent to the target.
    pub rows_out: u64,
    pub rows_written: u64,
    pub rows_skipped: u64,
    pub rows_rejected: u64,
    /// Rows of batches an earlier attempt of this run had written, skipped this time.
    pub rows_resumed: u64,
    pub rows_deleted: u64,
    pub batches: u64,
    pub retries: u64,
    pub duration: Duration,
    pub error: Option<String>,
    /// What the target said of how the rows went in (`Sink::notes`): a slower path and its cure.
    pub notes: Vec<String>,
    /// `[run] reconcile`: what comparing the target with the source found, or why it could not.
    pub reconciled: Option<Result<super::reconcile::Reconciliation, String>>,
}

impl RunReport {
    pub fn rows_per_second(&self) -> f64 {
        let secs = self.duration.as_secs_f64();
        if secs > 0.0 {
            self.rows_out as f64 / secs
        } else {
            0.0
        }
    }
}

impl fmt::Display for RunReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.pipeline, self.status)?;
        if self.attempt > 1 {
            writeln!(
                f,
                "  run           {} (attempt {}, resumed)",
                self.run_id, self.attempt
            )?;
        } else {
            writeln!(f, "  run           {}", self.run_id)?;
        }
        writeln!(f, "  target        {}", self.target)?;
        writeln!(
            f,
            "  rows read     {} (from the sources)",
            thousands(self.rows_read)
        )?;
        if self.rows_out != self.rows_read {
            writeln!(
                f,
                "  rows out      {} (the last step's)",
                thousands(self.rows_out)
            )?;
        }
        writeln!(f, "  rows written  {}", thousands(self.rows_written))?;
        if self.rows_skipped > 0 {
            writeln!(
                f,
                "  rows skipped  {} (key already in the target)",
                thousands(self.rows_skipped)
            )?;
        }
        if self.rows_deleted > 0 {
            writeln!(
                f,
                "  rows deleted  {} (key no longer in the source)",
                thousands(self.rows_deleted)
            )?;
        }
        if self.rows_resumed > 0 {
            writeln!(
                f,
                "  rows resumed  {} (written by an earlier attempt, skipped)",
                thousands(self.rows_resumed)
            )?;
        }
        writeln!(f, "  rows rejected {}", thousands(self.rows_rejected))?;
        if self.rows_rejected > 0 {
            writeln!(
                f,
                "                see `ferry quarantine show` for the rows and their errors"
            )?;
        }
        if self.retries > 0 {
            writeln!(f, "  retries       {}", thousands(self.retries))?;
        }
        write!(
            f,
            "  duration      {:.1}s ({} rows/s, {} batches)",
            self.duration.as_secs_f64(),
            thousands(self.rows_per_second().round() as u64),
            thousands(self.batches)
        )?;
        for note in &self.notes {
            write!(f, "\n  note: {note}")?;
        }
        match &self.reconciled {
            None => {}
            Some(Ok(r)) => write!(f, "\n  reconciled    {r}")?,
            Some(Err(e)) => write!(f, "\n  reconciled    could not: {e}")?,
        }
        if let Some(e) = &self.error {
            write!(f, "\nerror: {e}")?;
        }
        Ok(())
    }
}

/// 1234567 as "1,234,567".
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration as a person reads it: "45s", "23m 5s", "1h 23m 45s", "2d 3h"; under ten seconds with
/// a tenth ("2.5s").
pub fn human_duration(d: std::time::Duration) -> String {
    let secs = d.as_secs();
    if secs < 10 {
        return format!("{:.1}s", d.as_secs_f64());
    }
    let (days, hours, minutes, seconds) =
        (secs / 86400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    let parts = [(days, "d"), (hours, "h"), (minutes, "m"), (seconds, "s")];
    let first = parts.iter().position(|(n, _)| *n > 0).unwrap_or(3);
    parts[first..(first + 3).min(4)]
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_as_hours_minutes_and_seconds() {
        use std::time::Duration;
        assert_eq!(human_duration(Duration::from_millis(2500)), "2.5s");
        assert_eq!(human_duration(Duration::from_secs(45)), "45s");
        assert_eq!(human_duration(Duration::from_secs(5025)), "1h 23m 45s");
        assert_eq!(human_duration(Duration::from_secs(3600)), "1h");
        assert_eq!(
            human_duration(Duration::from_secs(2 * 86400 + 3 * 3600 + 7)),
            "2d 3h"
        );
    }

    #[test]
    fn numbers_are_grouped() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1234567), "1,234,567");
    }
}
