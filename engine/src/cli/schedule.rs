//! `ferry schedule DIR` and `ferry jobs DIR ...`: the scheduler, and the catalogue of its jobs a
//! person reads (`list`, `next`) and runs by hand (`run`).

use std::path::Path;
use std::process::ExitCode;

use chrono::Utc;

use super::INVALID;
use crate::run::report::human_duration;
use crate::schedule::clock::Clock;
use crate::schedule::jobs::{self, Job};
use crate::schedule::journal::{Fire, Journal};
use crate::schedule::runner::{self, Options};

/// Set on the scheduler by itself: glibc's malloc keeps an arena per thread that ever allocated, and
/// a long-lived process whose threads take turns with short bursts (a Delta commit per fire) sees its
/// resident memory creep up with fragmentation (200 jobs x 4 fires: 185 MB -> 239 MB; with two
/// arenas it stays flat). The runs it starts get the environment it was started with.
const ARENAS: (&str, &str) = ("MALLOC_ARENA_MAX", "2");
const ARENAS_SET_BY_FERRY: &str = "FERRY_SCHEDULER_ARENAS";

/// Re-executes the scheduler (same process id, same arguments) with [`ARENAS`], unless the
/// environment already sets MALLOC_ARENA_MAX. Returns only when it could not.
#[cfg(target_os = "linux")]
fn with_bounded_arenas() {
    use std::os::unix::process::CommandExt;
    if std::env::var_os(ARENAS.0).is_some() {
        return;
    }
    let Ok(exe) = std::env::current_exe() else {
        return;
    };
    let error = std::process::Command::new(exe)
        .args(std::env::args_os().skip(1))
        .env(ARENAS.0, ARENAS.1)
        .env(ARENAS_SET_BY_FERRY, "1")
        .exec();
    tracing::debug!(%error, "the scheduler runs with the default malloc arenas");
}

#[cfg(not(target_os = "linux"))]
fn with_bounded_arenas() {}

/// The environment variables a run must not inherit from the scheduler.
pub fn scheduler_only_variables() -> Vec<&'static str> {
    match std::env::var_os(ARENAS_SET_BY_FERRY) {
        Some(_) => vec![ARENAS.0, ARENAS_SET_BY_FERRY],
        None => vec![],
    }
}

pub async fn schedule(
    folder: &Path,
    max_concurrent: Option<usize>,
    clock: Option<String>,
    stop_after: Option<String>,
) -> ExitCode {
    with_bounded_arenas();
    let clock = match clock.as_deref().map(Clock::parse).transpose() {
        Ok(c) => c.unwrap_or_else(Clock::real),
        Err(e) => {
            eprintln!("error: --clock: {e}");
            return ExitCode::from(INVALID);
        }
    };
    let stop_after = match stop_after
        .as_deref()
        .map(|s| crate::spec::parse_duration(s).ok_or(s))
    {
        None => None,
        Some(Ok(d)) => Some(d),
        Some(Err(s)) => {
            eprintln!("error: --stop-after: \"{s}\" is not a duration");
            return ExitCode::from(INVALID);
        }
    };
    let ferry = match std::env::current_exe() {
        Ok(p) => p,
        Err(e) => {
            eprintln!("error: cannot find the ferry binary to start runs with: {e}");
            return ExitCode::FAILURE;
        }
    };
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(2);
    let options = Options {
        folder: folder.to_path_buf(),
        clock,
        max_concurrent: max_concurrent.unwrap_or(cores).max(1),
        stop_after,
        ferry,
    };
    match runner::run(options).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(folder: &Path) -> Result<Vec<Job>, ExitCode> {
    let found = jobs::read_folder(folder).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(INVALID)
    })?;
    for (file, why) in &found.broken {
        eprintln!("{}: not a job: {why}", file.display());
    }
    Ok(found.jobs)
}

/// The job named `name` in `folder`; the error lists the jobs there are.
pub(super) fn job_of(folder: &Path, name: &str) -> Result<Job, ExitCode> {
    let jobs = read(folder)?;
    let names: Vec<String> = jobs.iter().map(|j| j.name.clone()).collect();
    jobs.into_iter().find(|j| j.name == name).ok_or_else(|| {
        eprintln!(
            "error: there is no job named \"{name}\" (the jobs: {})",
            names.join(", ")
        );
        ExitCode::from(INVALID)
    })
}

/// Each job: its schedule in words, whether it is enabled, when it fires next, how its last run went.
pub async fn list(folder: &Path, json: bool) -> ExitCode {
    let jobs = match read(folder) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let fires = match Journal::new(folder).fires().await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let now = Utc::now();
    let last = |name: &str| {
        fires
            .iter()
            .rev()
            .find(|f| f.job == name && f.status != "Skipped")
    };
    if json {
        for job in &jobs {
            let last = last(&job.name);
            say!(
                "{}",
                serde_json::json!({
                    "job": job.name,
                    "file": job.file.display().to_string(),
                    "cron": job.schedule.cron.as_ref().map(|c| c.expression()),
                    "after": job.schedule.after,
                    "schedule": job.schedule.describe(),
                    "enabled": job.schedule.enabled,
                    "next": job.schedule.next_after(now).map(|t| t.to_rfc3339()),
                    "last_status": last.map(|f| f.status.clone()),
                    "last_duration_s": last.and_then(Fire::took).map(|d| d.as_secs_f64()),
                })
            );
        }
        return ExitCode::SUCCESS;
    }
    if jobs.is_empty() {
        say!(
            "no jobs in {} (a job is a pipeline file with a [schedule] section)",
            folder.display()
        );
        return ExitCode::SUCCESS;
    }
    say!(
        "{:<20} {:<8} {:<22} {:<16} {:<9} schedule",
        "job",
        "enabled",
        "next fire (UTC)",
        "last status",
        "took"
    );
    for job in &jobs {
        let last = last(&job.name);
        let next = match (job.schedule.enabled, job.schedule.next_after(now)) {
            (false, _) => "-".to_string(),
            (true, Some(t)) => t.format("%Y-%m-%d %H:%M:%S").to_string(),
            (true, None) if !job.schedule.after.is_empty() => "after others".to_string(),
            (true, None) => "never".to_string(),
        };
        say!(
            "{:<20} {:<8} {:<22} {:<16} {:<9} {}",
            job.name,
            if job.schedule.enabled { "yes" } else { "no" },
            next,
            last.map(|f| f.status.as_str()).unwrap_or("-"),
            last.and_then(Fire::took)
                .map(human_duration)
                .unwrap_or_else(|| "-".into()),
            job.schedule.describe()
        );
    }
    ExitCode::SUCCESS
}

/// The job's next fire times, in UTC and in its own zone: how a person checks a cron expression.
pub fn next(folder: &Path, name: &str, count: usize) -> ExitCode {
    let job = match job_of(folder, name) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let Some(cron) = &job.schedule.cron else {
        say!(
            "{}: {} (no cron expression: it runs when those jobs complete)",
            job.name,
            job.schedule.describe()
        );
        return ExitCode::SUCCESS;
    };
    say!(
        "{}: {} ({})",
        job.name,
        job.schedule.describe(),
        cron.expression()
    );
    let mut t = Utc::now();
    for _ in 0..count {
        match cron.next_after(t) {
            Some(next) => {
                say!(
                    "  {}   {}",
                    next.format("%Y-%m-%d %H:%M:%S UTC"),
                    next.with_timezone(&cron.zone())
                        .format("%Y-%m-%d %H:%M:%S %Z")
                );
                t = next;
            }
            None => {
                say!("  (no more fires)");
                break;
            }
        }
    }
    ExitCode::SUCCESS
}

/// Runs a job now, in the foreground, leaving its schedule as it is; recorded as a manual fire.
pub async fn run_now(folder: &Path, name: &str, params: &[String]) -> ExitCode {
    let job = match job_of(folder, name) {
        Ok(j) => j,
        Err(code) => return code,
    };
    if let Some(args) = &job.dropbox {
        return run_dropbox_now(folder, &job, args).await;
    }
    let pipeline = match super::load_filled(&job.pipeline_file, params, false).await {
        Ok(p) => p,
        Err(code) => return code,
    };
    let started = Utc::now();
    let settings = crate::run::RunSettings {
        progress: true,
        fresh: false,
        confirmed: false,
    };
    let (status, code, figures, reason) = match crate::run::run(&pipeline, &settings).await {
        Ok(report) => {
            say!("{report}");
            let figures = crate::schedule::journal::Figures {
                run_id: report.run_id.clone(),
                rows_read: report.rows_read as i64,
                rows_written: report.rows_written as i64,
                rows_rejected: report.rows_rejected as i64,
                rows_per_second: Some(report.rows_per_second()),
            };
            let code = report.status.exit_code() as u8;
            (report.status.to_string(), code, Some(figures), report.error)
        }
        Err(e) => {
            eprintln!("{e}");
            let first = e.to_string().lines().next().map(str::to_string);
            ("Failed".to_string(), e.exit_code(), None, first)
        }
    };
    record_manual(
        folder,
        &job.name,
        started,
        status,
        reason,
        i32::from(code),
        figures,
    )
    .await;
    ExitCode::from(code)
}

/// Journals a job run by hand (`ferry jobs DIR run NAME`) as a manual fire.
async fn record_manual(
    folder: &Path,
    job: &str,
    started: chrono::DateTime<Utc>,
    status: String,
    reason: Option<String>,
    code: i32,
    figures: Option<crate::schedule::journal::Figures>,
) {
    let fire = Fire {
        job: job.to_string(),
        trigger: "manual".into(),
        scheduled: started,
        started: Some(started),
        ended: Utc::now(),
        status,
        reason,
        attempt: 1,
        exit_code: Some(code),
        log: None,
        figures,
    };
    if let Err(e) = Journal::new(folder).record(&fire).await {
        eprintln!("error: recording the run: {e}");
    }
}

/// A dropbox job run now: `ferry dropbox run` in the foreground, its exit code the fire's status.
async fn run_dropbox_now(
    folder: &Path,
    job: &crate::schedule::jobs::Job,
    args: &[String],
) -> ExitCode {
    let started = Utc::now();
    let exe = std::env::current_exe().unwrap_or_else(|_| "ferry".into());
    let code = match tokio::process::Command::new(exe).args(args).status().await {
        Ok(status) => status.code().unwrap_or(1),
        Err(e) => {
            eprintln!("error: cannot start the dropbox run: {e}");
            1
        }
    };
    let status = match code {
        0 => "Completed",
        3 => "Partial Success",
        _ => "Failed",
    };
    record_manual(folder, &job.name, started, status.into(), None, code, None).await;
    ExitCode::from(code.clamp(0, 255) as u8)
}

/// Turns a job on or off by its file's `enabled` line under `[schedule]` (added when missing); a
/// running scheduler reads the change within a second.
pub fn set_enabled(folder: &Path, name: &str, enabled: bool) -> ExitCode {
    let job = match job_of(folder, name) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let text = match std::fs::read_to_string(&job.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {}: {e}", job.file.display());
            return ExitCode::FAILURE;
        }
    };
    let edited = crate::schedule::jobs::with_enabled(&text, enabled);
    if let Err(e) = std::fs::write(&job.file, edited) {
        eprintln!("error: {}: {e}", job.file.display());
        return ExitCode::FAILURE;
    }
    say!(
        "{}: {} ({})",
        job.name,
        if enabled { "enabled" } else { "disabled" },
        job.file.display()
    );
    ExitCode::SUCCESS
}

/// Deletes a job softly: its file is renamed `<file>.deleted`, so it no longer fires; its fires
/// stay in the journal, and renaming it back restores it.
pub fn delete(folder: &Path, name: &str) -> ExitCode {
    let job = match job_of(folder, name) {
        Ok(j) => j,
        Err(code) => return code,
    };
    let mut moved = job.file.clone().into_os_string();
    moved.push(".deleted");
    if let Err(e) = std::fs::rename(&job.file, &moved) {
        eprintln!("error: {}: {e}", job.file.display());
        return ExitCode::FAILURE;
    }
    say!(
        "{}: deleted (its file is now {}; its history stays in the journal)",
        job.name,
        std::path::Path::new(&moved).display()
    );
    ExitCode::SUCCESS
}
