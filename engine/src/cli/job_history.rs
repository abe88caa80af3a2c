//! `ferry jobs DIR history` and `ferry jobs DIR show JOB`: what the scheduler did, read from its
//! journal as a person reads it: a retry chain (a fire's first run and its retries) as one group,
//! durations as `1h 23m 45s`, speeds as `4,146 rows/s`, and why a fire was skipped.

use std::path::Path;
use std::process::ExitCode;

use chrono::{DateTime, Utc};

use super::INVALID;
use crate::run::report::{human_duration, thousands};
use crate::schedule::journal::{Fire, Journal};

/// Which fires `history` shows.
pub struct Filter {
    pub job: Option<String>,
    pub status: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// The journal's fires, filtered, newest group first; each retry chain printed as one group.
pub async fn history(folder: &Path, filter: Filter, json: bool) -> ExitCode {
    let bound = |text: &Option<String>, flag: &str| match text
        .as_deref()
        .map(super::book::parse_since)
    {
        None => Ok(None),
        Some(Ok(t)) => Ok(Some(t)),
        Some(Err(())) => {
            eprintln!(
                "error: {flag} takes a date (2026-11-01) or a date and time (2026-11-01T08:00:00Z)"
            );
            Err(ExitCode::from(INVALID))
        }
    };
    let (since, until) = match (
        bound(&filter.since, "--since"),
        bound(&filter.until, "--until"),
    ) {
        (Ok(s), Ok(u)) => (s, u),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let fires = match Journal::new(folder).fires().await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let status = filter.status.as_deref().map(str::to_ascii_lowercase);
    let groups: Vec<Vec<&Fire>> = chains(&fires)
        .into_iter()
        .filter(|g| filter.job.as_deref().is_none_or(|j| g[0].job == j))
        // A chain is shown when any of its runs has the status (a Failed run retried to Completed).
        .filter(|g| {
            status
                .as_deref()
                .is_none_or(|s| g.iter().any(|f| f.status.to_ascii_lowercase() == s))
        })
        .filter(|g| since.is_none_or(|t| g[0].scheduled >= t))
        .filter(|g| until.is_none_or(|t| g[0].scheduled < t))
        .collect();
    if json {
        for fire in groups.iter().flatten() {
            say!("{}", fire_json(fire));
        }
        return ExitCode::SUCCESS;
    }
    if groups.is_empty() {
        say!("no runs recorded in {} match", folder.display());
        return ExitCode::SUCCESS;
    }
    print_groups(&groups);
    ExitCode::SUCCESS
}

/// The fires grouped by retry chain (same job, same fire time, consecutive attempts), newest
/// chain first, each chain oldest attempt first.
pub fn chains(fires: &[Fire]) -> Vec<Vec<&Fire>> {
    let mut groups: Vec<Vec<&Fire>> = Vec::new();
    for fire in fires {
        let joins = |g: &Vec<&Fire>| {
            let first = g[0];
            first.job == fire.job
                && first.scheduled == fire.scheduled
                && fire.attempt > 1
                && first.status != "Skipped"
        };
        match groups.iter_mut().rev().find(|g| joins(g)) {
            Some(g) => g.push(fire),
            None => groups.push(vec![fire]),
        }
    }
    groups.reverse();
    groups
}

pub fn print_groups(groups: &[Vec<&Fire>]) {
    say!(
        "{:<18} {:<9} {:<17} {:<9} {:<10} {:<16} {:>9} {:>9} {:>7} {:>11}",
        "job",
        "trigger",
        "fire (UTC)",
        "started",
        "took",
        "status",
        "read",
        "written",
        "failed",
        "rows/s"
    );
    for group in groups {
        for (i, fire) in group.iter().enumerate() {
            let job = match i {
                0 => fire.job.clone(),
                _ => format!("  └ attempt {}", fire.attempt),
            };
            let figure = |take: fn(&crate::schedule::journal::Figures) -> i64| {
                fire.figures
                    .as_ref()
                    .map_or("-".to_string(), |f| thousands(take(f) as u64))
            };
            say!(
                "{:<18} {:<9} {:<17} {:<9} {:<10} {:<16} {:>9} {:>9} {:>7} {:>11}",
                job,
                fire.trigger,
                fire.scheduled.format("%Y-%m-%d %H:%M"),
                fire.started
                    .map_or("-".to_string(), |s| s.format("%H:%M:%S").to_string()),
                fire.took().map_or("-".to_string(), human_duration),
                fire.status,
                figure(|f| f.rows_read),
                figure(|f| f.rows_written),
                figure(|f| f.rows_rejected),
                fire.figures
                    .as_ref()
                    .and_then(|f| f.rows_per_second)
                    .map_or("-".to_string(), |s| thousands(s.round() as u64)),
            );
            if let Some(reason) = &fire.reason {
                let reason: String = reason.chars().take(110).collect();
                say!("{:<18} {reason}", "");
            }
        }
    }
}

fn fire_json(fire: &Fire) -> serde_json::Value {
    let time = |t: &DateTime<Utc>| t.to_rfc3339();
    serde_json::json!({
        "job": fire.job,
        "trigger": fire.trigger,
        "scheduled": time(&fire.scheduled),
        "started": fire.started.as_ref().map(time),
        "ended": time(&fire.ended),
        "duration_s": fire.took().map(|d| d.as_secs_f64()),
        "status": fire.status,
        "reason": fire.reason,
        "attempt": fire.attempt,
        "exit_code": fire.exit_code,
        "run_id": fire.figures.as_ref().map(|f| f.run_id.clone()),
        "rows_read": fire.figures.as_ref().map(|f| f.rows_read),
        "rows_written": fire.figures.as_ref().map(|f| f.rows_written),
        "rows_rejected": fire.figures.as_ref().map(|f| f.rows_rejected),
        "rows_per_second": fire.figures.as_ref().and_then(|f| f.rows_per_second),
        "log": fire.log,
    })
}

/// One job: its file, every setting of its schedule, its next fires and its latest runs.
pub async fn show(folder: &Path, name: &str) -> ExitCode {
    let job = match super::schedule::job_of(folder, name) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let s = &job.schedule;
    say!("{}", job.name);
    say!("  file          {}", job.file.display());
    say!("  schedule      {}", s.describe());
    if let Some(cron) = &s.cron {
        say!("  cron          {} ({})", cron.expression(), cron.zone());
    }
    say!("  enabled       {}", if s.enabled { "yes" } else { "no" });
    say!(
        "  on failure    retried {} times, backoff {} doubling; timeout {}",
        s.max_retries,
        human_duration(s.retry_backoff),
        human_duration(s.timeout)
    );
    say!(
        "  overlap       {:?}; catch-up {:?}; validate {}",
        s.overlap,
        s.catch_up,
        if s.validate { "yes" } else { "no" }
    );
    for (what, alert) in [("on_failure", &s.on_failure), ("on_partial", &s.on_partial)] {
        if let Some(alert) = alert {
            say!("  {what:<13} {alert:?}");
        }
    }
    let mut t = Utc::now();
    let mut next = Vec::new();
    while let Some(n) = s.next_after(t).filter(|_| next.len() < 5) {
        next.push(n.format("%Y-%m-%d %H:%M:%S UTC").to_string());
        t = n;
    }
    if !next.is_empty() {
        say!("  next fires    {}", next.join(", "));
    }
    let fires = match Journal::new(folder).fires().await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let groups: Vec<Vec<&Fire>> = chains(&fires)
        .into_iter()
        .filter(|g| g[0].job == job.name)
        .take(10)
        .collect();
    say!("");
    if groups.is_empty() {
        say!("no runs yet");
    } else {
        print_groups(&groups);
    }
    ExitCode::SUCCESS
}
