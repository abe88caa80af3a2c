//! The scheduler's loop. Each job has at most one run at a time; fires that come while it runs are
//! skipped or queued (its `overlap`), fires missed while the scheduler was down (or the clock
//! jumped) are caught up once, all, or not at all (its `catch_up`), and a failed run is retried
//! after a backoff that doubles (its `max_retries`, `retry_backoff`). A run that outlives its
//! `timeout` is sent SIGTERM: it stops at its next batch boundary, recorded as Timed Out, and the
//! next run resumes it.

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::clock::Clock;
use super::jobs::{self, Job};
use super::journal::{Fire, Journal};
use crate::run::report::human_duration;
use crate::spec::{CatchUp, Overlap};

/// How `ferry schedule` was asked to run.
#[derive(Debug, Clone)]
pub struct Options {
    pub folder: PathBuf,
    pub clock: Clock,
    /// Runs at once across all jobs.
    pub max_concurrent: usize,
    /// Stop after this much of the clock's time (tests).
    pub stop_after: Option<Duration>,
    /// The `ferry` binary the runs are started with.
    pub ferry: PathBuf,
}

/// Missed fires caught up with `catch_up = "all"` at most.
const MAX_CATCH_UP: usize = 1_000;
/// How long a run told to stop may take before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(60);

/// A run waiting to start.
#[derive(Debug, Clone)]
struct Pending {
    scheduled: DateTime<Utc>,
    trigger: &'static str,
    attempt: i32,
    not_before: DateTime<Utc>,
}

/// A run under way.
struct Running {
    child: tokio::process::Child,
    pending: Pending,
    started: DateTime<Utc>,
    deadline: DateTime<Utc>,
    log: PathBuf,
    /// Why it was told to stop, and when.
    stopping: Option<(&'static str, Instant)>,
}

struct JobState {
    job: Job,
    next: Option<DateTime<Utc>>,
    running: Option<Running>,
    waiting: VecDeque<Pending>,
    /// When its last run that completed (Completed or Partial Success) ended.
    last_completed: Option<DateTime<Utc>>,
    /// When its last run started (or a chain last queued it).
    last_started: Option<DateTime<Utc>>,
    /// "Completed in 5m 2s": how its last run ended, for the live table.
    last_outcome: Option<String>,
    row: super::board::Row,
}

impl JobState {
    fn new(job: Job, now: DateTime<Utc>) -> Self {
        Self {
            next: job.schedule.next_after(now),
            job,
            running: None,
            waiting: VecDeque::new(),
            last_completed: None,
            last_started: None,
            last_outcome: None,
            row: super::board::Row::default(),
        }
    }
}

/// Runs the folder's jobs until SIGTERM, Ctrl-C or `stop_after`.
pub async fn run(options: Options) -> Result<(), String> {
    let journal = Journal::new(&options.folder);
    let folder = jobs::read_folder(&options.folder)?;
    for (file, why) in &folder.broken {
        eprintln!("{}: not scheduled: {why}", file.display());
    }
    // The journal read once: what ran, what was cut off, and each job's latest fire.
    let rows = journal.rows().await.map_err(|e| e.to_string())?;
    let last = super::journal::last_fires(&rows);
    let clock = options.clock.clone();
    let began = clock.now();
    say(
        &clock,
        &format!(
            "scheduling {} jobs from {} (at most {} runs at once)",
            folder.jobs.len(),
            options.folder.display(),
            options.max_concurrent
        ),
    );
    let history = super::journal::ended(&rows);
    let interrupted = super::journal::interrupted(&rows);
    let names: Vec<String> = folder.jobs.iter().map(|j| j.name.clone()).collect();
    let mut states = Vec::new();
    for job in folder.jobs {
        if let Some(unknown) = job.schedule.after.iter().find(|a| !names.contains(a)) {
            eprintln!(
                "{}: not scheduled: after names \"{unknown}\", which is not a job of this folder",
                job.file.display()
            );
            continue;
        }
        let mut state = JobState::new(job, began);
        let name = state.job.name.clone();
        let mine = history.iter().filter(|f| f.job == name);
        state.last_completed = mine
            .clone()
            .filter(|f| completed(&f.status))
            .map(|f| f.ended)
            .max();
        state.last_started = mine.filter_map(|f| f.started).max();
        // A run the scheduler died during runs again (and resumes what it had written).
        for run in interrupted.iter().filter(|r| r.job == name) {
            say(
                &clock,
                &format!(
                    "{name}: the run for {} was cut off when the scheduler stopped; running it again",
                    run.scheduled.format("%Y-%m-%d %H:%M:%S")
                ),
            );
            state.waiting.push_back(Pending {
                scheduled: run.scheduled,
                trigger: "resume",
                attempt: run.attempt + 1,
                not_before: began,
            });
        }
        if let Some(last) = last.get(&name) {
            let missed = fires_between(&state.job, *last, began);
            catch_up(&mut state, missed, began, &journal, &clock).await;
        }
        states.push(state);
    }
    let stop = stop_flag();
    let mut alerts: Vec<tokio::task::JoinHandle<()>> = Vec::new();
    let mut stopping = false;
    let mut last_reload = Instant::now();
    let mut last_drawn = Instant::now();
    let mut last_compacted = Instant::now();
    let mut compacting: Option<tokio::task::JoinHandle<()>> = None;
    loop {
        let now = clock.now();
        if !stopping
            && (stop.load(Ordering::Relaxed)
                || options.stop_after.is_some_and(|d| now >= began + d))
        {
            stopping = true;
            say(
                &clock,
                "stopping: no new runs; running ones stop at their next batch",
            );
            for state in &mut states {
                if let Some(r) = state.running.as_mut() {
                    terminate(r, "Stopped");
                }
            }
        }
        if !stopping && last_reload.elapsed() >= Duration::from_secs(1) {
            last_reload = Instant::now();
            reload(&options.folder, &mut states, now, &clock);
        }
        let mut running = states.iter().filter(|s| s.running.is_some()).count();
        let completions: Vec<(String, Option<DateTime<Utc>>)> = states
            .iter()
            .map(|s| (s.job.name.clone(), s.last_completed))
            .collect();
        for state in &mut states {
            if reap(state, now, &journal, &clock, &mut alerts).await {
                running -= 1;
            }
            if !stopping {
                take_due_fires(state, now, &journal, &clock, &completions).await;
                if running < options.max_concurrent
                    && start_next(state, now, &options, &clock, &journal).await
                {
                    running += 1;
                }
            }
        }
        if !stopping {
            chain(&mut states, now, &clock);
        }
        // The journal gains a file a fire: merged every minute (in the background), so that a
        // scheduler of hundreds of jobs records as fast on its hundredth day as on its first.
        if last_compacted.elapsed() >= Duration::from_secs(60)
            && compacting.as_ref().is_none_or(|c| c.is_finished())
        {
            last_compacted = Instant::now();
            let journal = journal.clone();
            compacting = Some(tokio::spawn(async move { journal.compact().await }));
        }
        if last_drawn.elapsed() >= Duration::from_millis(500) {
            last_drawn = Instant::now();
            for state in &states {
                show(state, now);
            }
        }
        if stopping && running == 0 {
            // Alerts under way are let finish (each is bounded).
            for alert in alerts.drain(..) {
                let _ = tokio::time::timeout(Duration::from_secs(40), alert).await;
            }
            say(&clock, "stopped");
            return Ok(());
        }
        alerts.retain(|a| !a.is_finished());
        tokio::time::sleep(Duration::from_millis(50).min(clock.real_span(Duration::from_secs(1))))
            .await;
    }
}

fn completed(status: &str) -> bool {
    matches!(status, "Completed" | "Partial Success")
}

/// Queues each job without cron whose `after` jobs have all completed since it last ran.
fn chain(states: &mut [JobState], now: DateTime<Utc>, clock: &Clock) {
    for i in 0..states.len() {
        let state = &states[i];
        if state.job.schedule.cron.is_some()
            || state.job.schedule.after.is_empty()
            || !state.job.schedule.enabled
            || state.running.is_some()
            || !state.waiting.is_empty()
        {
            continue;
        }
        let since = state.last_started;
        let ready = state.job.schedule.after.iter().all(|name| {
            states
                .iter()
                .find(|s| &s.job.name == name)
                .and_then(|s| s.last_completed)
                .is_some_and(|done| since.is_none_or(|since| done > since))
        });
        if ready {
            let state = &mut states[i];
            say(
                clock,
                &format!(
                    "{}: {} completed; queued",
                    state.job.name,
                    state.job.schedule.after.join(", ")
                ),
            );
            state.last_started = Some(now);
            state.waiting.push_back(Pending {
                scheduled: now,
                trigger: "chain",
                attempt: 1,
                not_before: now,
            });
        }
    }
}

/// With cron and `after`: the predecessor that has not completed since this job last ran.
fn unmet_dependency(
    state: &JobState,
    others: &[(String, Option<DateTime<Utc>>)],
) -> Option<String> {
    state.job.schedule.after.iter().find_map(|name| {
        let done = others.iter().find(|(n, _)| n == name).and_then(|(_, d)| *d);
        let met = done.is_some_and(|d| state.last_started.is_none_or(|s| d > s));
        (!met).then(|| match done {
            Some(d) => format!(
                "dependency not met: {name} has not completed since {}",
                d.format("%Y-%m-%d %H:%M:%S")
            ),
            None => format!("dependency not met: {name} has never completed"),
        })
    })
}

/// Set by Ctrl-C or SIGTERM.
fn stop_flag() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let set = flag.clone();
    tokio::spawn(async move {
        crate::run::stop_requested().await;
        set.store(true, Ordering::Relaxed);
    });
    flag
}

fn say(clock: &Clock, line: &str) {
    super::board::line(&format!(
        "{}  {line}",
        clock.now().format("%Y-%m-%d %H:%M:%S")
    ));
}

/// Redraws the job's row of the live table (on a terminal).
fn show(state: &JobState, now: DateTime<Utc>) {
    let doing = match (&state.running, state.waiting.front()) {
        (Some(r), _) => format!(
            "running {} (fire of {})",
            human_duration((now - r.started).to_std().unwrap_or_default()),
            r.pending.scheduled.format("%H:%M")
        ),
        (None, Some(p)) if p.not_before > now => format!(
            "{} in {}",
            p.trigger,
            human_duration((p.not_before - now).to_std().unwrap_or_default())
        ),
        (None, Some(_)) => "waiting for a free slot".to_string(),
        (None, None) if !state.job.schedule.enabled => "disabled".to_string(),
        (None, None) => "idle".to_string(),
    };
    state.row.show(&super::board::JobView {
        name: &state.job.name,
        now: doing,
        next: state.next,
        last: state.last_outcome.clone(),
    });
}

/// The job's fires after `from` up to and including `to`.
fn fires_between(job: &Job, from: DateTime<Utc>, to: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    let mut fires = Vec::new();
    let mut t = from;
    while let Some(next) = job.schedule.next_after(t).filter(|n| *n <= to) {
        fires.push(next);
        t = next;
        if fires.len() > 100_000 {
            break;
        }
    }
    fires
}

/// Applies the job's `catch_up` to fires it missed.
async fn catch_up(
    state: &mut JobState,
    missed: Vec<DateTime<Utc>>,
    now: DateTime<Utc>,
    journal: &Journal,
    clock: &Clock,
) {
    let Some(latest) = missed.last().copied() else {
        return;
    };
    let name = state.job.name.clone();
    let pending = |scheduled| Pending {
        scheduled,
        trigger: "catch-up",
        attempt: 1,
        not_before: now,
    };
    match state.job.schedule.catch_up {
        CatchUp::None => {
            let why = format!(
                "{} fires missed while the scheduler was not running (catch_up = \"none\")",
                missed.len()
            );
            say(clock, &format!("{name}: {why}"));
            skip(journal, &name, latest, now, &why).await;
        }
        CatchUp::Last => {
            say(
                clock,
                &format!(
                    "{name}: catching up the fire of {latest} ({} missed)",
                    missed.len()
                ),
            );
            state.waiting.push_back(pending(latest));
        }
        CatchUp::All => {
            let from = missed.len().saturating_sub(MAX_CATCH_UP);
            say(
                clock,
                &format!("{name}: catching up {} missed fires", missed.len() - from),
            );
            state
                .waiting
                .extend(missed[from..].iter().map(|t| pending(*t)));
        }
    }
}

async fn skip(
    journal: &Journal,
    job: &str,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
    why: &str,
) {
    let fire = Fire {
        job: job.to_string(),
        trigger: "schedule".into(),
        scheduled,
        started: None,
        ended: now,
        status: "Skipped".into(),
        reason: Some(why.to_string()),
        attempt: 1,
        exit_code: None,
        log: None,
        figures: None,
    };
    if let Err(e) = journal.record(&fire).await {
        eprintln!("error: recording a skipped fire of {job}: {e}");
    }
}

/// A fire skipped, with a line saying why.
async fn skip_said(
    journal: &Journal,
    clock: &Clock,
    job: &str,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
    why: &str,
) {
    say(
        clock,
        &format!(
            "{job}: fire of {} skipped ({why})",
            scheduled.format("%H:%M:%S")
        ),
    );
    skip(journal, job, scheduled, now, why).await;
}

/// Fires that came due: run, queue or skip each; several at once (the clock jumped, the machine
/// slept) are missed fires, caught up by the job's policy.
async fn take_due_fires(
    state: &mut JobState,
    now: DateTime<Utc>,
    journal: &Journal,
    clock: &Clock,
    completions: &[(String, Option<DateTime<Utc>>)],
) {
    let mut due = Vec::new();
    while let Some(next) = state.next.filter(|n| *n <= now) {
        due.push(next);
        state.next = state.job.schedule.next_after(next);
        if due.len() > 100_000 {
            break;
        }
    }
    let mut trigger = "schedule";
    if due.len() > 1 {
        let latest = due.pop().expect("more than one");
        if state.job.schedule.catch_up == CatchUp::Last {
            // The latest fire runs once, for all of them.
            say(
                clock,
                &format!(
                    "{}: {} fires passed at once (the clock jumped or the machine slept); running the fire of {latest} once",
                    state.job.name,
                    due.len() + 1
                ),
            );
            trigger = "catch-up";
        } else {
            catch_up(state, due, now, journal, clock).await;
        }
        due = vec![latest];
    }
    let name = state.job.name.clone();
    for scheduled in due {
        if !state.job.schedule.enabled {
            skip(journal, &name, scheduled, now, "the job is disabled").await;
            continue;
        }
        if let Some(why) = unmet_dependency(state, completions) {
            skip_said(journal, clock, &name, scheduled, now, &why).await;
            continue;
        }
        let busy = state.running.is_some() || !state.waiting.is_empty();
        match (busy, state.job.schedule.overlap) {
            (false, _) => {}
            (true, Overlap::Skip) => {
                let why = match &state.running {
                    Some(r) => format!(
                        "overlapping: the run for {} is still going",
                        r.pending.scheduled.format("%Y-%m-%d %H:%M:%S")
                    ),
                    None => "overlapping: an earlier fire is still waiting to run".to_string(),
                };
                skip_said(journal, clock, &name, scheduled, now, &why).await;
                continue;
            }
            (true, Overlap::Queue) if state.waiting.iter().any(|p| p.trigger == "schedule") => {
                skip(
                    journal,
                    &name,
                    scheduled,
                    now,
                    "overlapping: a fire is already queued",
                )
                .await;
                continue;
            }
            (true, Overlap::Queue) => {}
        }
        state.waiting.push_back(Pending {
            scheduled,
            trigger,
            attempt: 1,
            not_before: now,
        });
    }
}

/// Starts the job's next waiting run when it is due, and records that it started; `true` when
/// one started.
async fn start_next(
    state: &mut JobState,
    now: DateTime<Utc>,
    options: &Options,
    clock: &Clock,
    journal: &Journal,
) -> bool {
    if state.running.is_some() || state.waiting.front().is_none_or(|p| p.not_before > now) {
        return false;
    }
    let pending = state.waiting.pop_front().expect("checked");
    let job = &state.job;
    let logs = Journal::new(&options.folder)
        .root()
        .join("logs")
        .join(&job.name);
    let log = logs.join(format!(
        "{}-{}.log",
        pending.scheduled.format("%Y%m%dT%H%M%S"),
        pending.attempt
    ));
    // Recorded before the run starts: a scheduler that dies from here on finds the run on restart.
    let started = Fire {
        job: job.name.clone(),
        trigger: pending.trigger.into(),
        scheduled: pending.scheduled,
        started: Some(now),
        ended: now,
        status: super::journal::RUNNING.into(),
        reason: None,
        attempt: pending.attempt,
        exit_code: None,
        log: Some(log.display().to_string()),
        figures: None,
    };
    if let Err(e) = journal.record(&started).await {
        eprintln!("error: recording the start of {}'s run: {e}", job.name);
    }
    let child = std::fs::create_dir_all(&logs)
        .and_then(|()| std::fs::File::create(&log))
        .and_then(|out| {
            let err = out.try_clone()?;
            let mut command = tokio::process::Command::new(&options.ferry);
            for variable in crate::cli::scheduler_only_variables() {
                command.env_remove(variable);
            }
            match &job.dropbox {
                Some(args) => command.args(args),
                None => command.arg("run").arg(&job.pipeline_file).arg("--quiet"),
            };
            command
                .env("FERRY_SCHEDULED_TIME", pending.scheduled.to_rfc3339())
                .stdin(std::process::Stdio::null())
                .stdout(out)
                .stderr(err)
                .spawn()
        });
    let child = match child {
        Ok(c) => c,
        Err(e) => {
            let why = format!("cannot start {}: {e}", options.ferry.display());
            eprintln!("error: job {}: {why}", job.name);
            let failed = Fire {
                status: "Failed".into(),
                reason: Some(why),
                ..started
            };
            if let Err(e) = journal.record(&failed).await {
                eprintln!("error: recording the run of {}: {e}", job.name);
            }
            return false;
        }
    };
    say(
        clock,
        &format!(
            "{}: started ({}, fire of {}, attempt {})",
            job.name,
            pending.trigger,
            pending.scheduled.format("%Y-%m-%d %H:%M:%S"),
            pending.attempt
        ),
    );
    let timeout =
        chrono::TimeDelta::from_std(job.schedule.timeout).unwrap_or(chrono::TimeDelta::days(1));
    state.last_started = Some(now);
    state.running = Some(Running {
        child,
        pending,
        started: now,
        deadline: now + timeout,
        log,
        stopping: None,
    });
    true
}

/// Asks a run to stop at its next batch boundary (SIGTERM).
fn terminate(running: &mut Running, why: &'static str) {
    if running.stopping.is_some() {
        return;
    }
    if let Some(pid) = running.child.id() {
        // `kill` rather than a signal call: the crate forbids unsafe code.
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status();
    }
    running.stopping = Some((why, Instant::now()));
}

/// Checks the job's run: past its timeout it is told to stop; ended, it is recorded (and retried
/// when it failed and retries are left). `true` when a run ended.
async fn reap(
    state: &mut JobState,
    now: DateTime<Utc>,
    journal: &Journal,
    clock: &Clock,
    alerts: &mut Vec<tokio::task::JoinHandle<()>>,
) -> bool {
    let Some(running) = state.running.as_mut() else {
        return false;
    };
    let exited: Option<std::process::ExitStatus> = running.child.try_wait().unwrap_or_default();
    let Some(exit) = exited else {
        if now >= running.deadline {
            terminate(running, "Timed Out");
        }
        if running
            .stopping
            .is_some_and(|(_, at)| at.elapsed() > STOP_GRACE)
        {
            let _ = running.child.start_kill();
        }
        return false;
    };
    let running = state.running.take().expect("checked");
    let code = exit.code();
    let (status, retryable) = match (running.stopping.map(|(why, _)| why), code) {
        (Some("Timed Out"), _) => ("Timed Out", true),
        (Some(_), _) | (None, Some(130)) => ("Stopped", false),
        (None, Some(0)) => ("Completed", false),
        (None, Some(3)) => ("Partial Success", false),
        // The pipeline file, its SQL or the target is wrong (the checks before writing): running
        // it again cannot help.
        (None, Some(2)) if state.job.schedule.validate => ("Skipped", false),
        (None, Some(2)) => ("Failed", false),
        (None, _) => ("Failed", true),
    };
    let reason = match status {
        "Completed" => None,
        "Skipped" => Some(format!(
            "validation failed: {}",
            last_error(&running.log).unwrap_or_else(|| "see the run's log".into())
        )),
        "Timed Out" => Some(format!(
            "stopped after its timeout of {}; the next run resumes it",
            human_duration(state.job.schedule.timeout)
        )),
        _ => last_error(&running.log),
    };
    let took = (now - running.started).to_std().unwrap_or_default();
    say(
        clock,
        &format!(
            "{}: {status} in {} (fire of {}, attempt {}){}",
            state.job.name,
            human_duration(took),
            running.pending.scheduled.format("%Y-%m-%d %H:%M:%S"),
            running.pending.attempt,
            reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ),
    );
    let fire = Fire {
        job: state.job.name.clone(),
        trigger: running.pending.trigger.into(),
        scheduled: running.pending.scheduled,
        started: Some(running.started),
        ended: now,
        status: status.into(),
        reason,
        attempt: running.pending.attempt,
        exit_code: code,
        log: Some(running.log.display().to_string()),
        figures: figures(&state.job, running.started).await,
    };
    if let Err(e) = journal.record(&fire).await {
        eprintln!("error: recording the run of {}: {e}", state.job.name);
    }
    if completed(status) {
        state.last_completed = Some(now);
    }
    state.last_outcome = Some(format!("{status} in {}", human_duration(took)));
    let alert = match status {
        "Failed" | "Timed Out" => state.job.schedule.on_failure.clone(),
        "Partial Success" => state.job.schedule.on_partial.clone(),
        _ => None,
    };
    if let Some(alert) = alert {
        alerts.push(tokio::spawn(super::alert::send(alert, fire.clone())));
    }
    let attempt = running.pending.attempt;
    if retryable && (attempt as u32) <= state.job.schedule.max_retries {
        let wait = backoff(state.job.schedule.retry_backoff, attempt as u32);
        say(
            clock,
            &format!(
                "{}: retry {} of {} in {}",
                state.job.name,
                attempt,
                state.job.schedule.max_retries,
                human_duration(wait)
            ),
        );
        state.waiting.push_front(Pending {
            scheduled: running.pending.scheduled,
            trigger: "retry",
            attempt: attempt + 1,
            not_before: now + chrono::TimeDelta::from_std(wait).unwrap_or_default(),
        });
    }
    true
}

/// What the run the job just ended did, from its pipeline's history: its row, when it ended after
/// `started` (a run stopped before it was recorded has none).
async fn figures(job: &Job, started: DateTime<Utc>) -> Option<super::journal::Figures> {
    let book = crate::book::Book::reader_for(&job.state_dir, &job.pipeline);
    let run = book.latest_run().await.ok()??;
    run.end.filter(|end| *end >= started)?;
    Some(super::journal::Figures {
        run_id: run.run_id,
        rows_read: run.rows_read,
        rows_written: run.rows_written,
        rows_rejected: run.rows_rejected,
        rows_per_second: run.rows_per_second,
    })
}

/// `base` doubled for each retry already made, at most an hour, with up to a fifth of jitter
/// (so that jobs failing together do not retry together).
fn backoff(base: Duration, retry: u32) -> Duration {
    let doubled = base.saturating_mul(1 << (retry.saturating_sub(1)).min(16));
    let capped = doubled.min(Duration::from_secs(3600));
    let nanos = Instant::now().elapsed().subsec_nanos() ^ std::process::id().rotate_left(7);
    let jitter = capped.mul_f64(f64::from(nanos % 1000) / 1000.0 * 0.2);
    capped.saturating_sub(capped.mul_f64(0.1)) + jitter
}

/// The last error line a run printed.
fn last_error(log: &Path) -> Option<String> {
    let text = std::fs::read_to_string(log).ok()?;
    let line = text
        .lines()
        .rev()
        .find(|l| l.starts_with("error") || l.contains("error:"))?;
    Some(line.chars().take(300).collect())
}

/// Re-reads pipeline files that changed, were added or removed. A file that no longer parses keeps
/// its job as it was, with the error shown once per change.
fn reload(folder: &Path, states: &mut Vec<JobState>, now: DateTime<Utc>, clock: &Clock) {
    let Ok(files) = jobs::pipeline_files(folder) else {
        return;
    };
    for file in &files {
        let known = states.iter().position(|s| &s.job.file == file);
        let modified = jobs::modified(file);
        if known.is_some_and(|i| states[i].job.modified == modified) {
            continue;
        }
        match (jobs::read_job(file), known) {
            (Ok(Some(job)), Some(i)) => {
                say(
                    clock,
                    &format!("{}: {} changed, re-read", job.name, file.display()),
                );
                let state = &mut states[i];
                let when = |s: &crate::spec::Schedule| {
                    s.cron
                        .as_ref()
                        .map(|c| (c.expression().to_string(), c.zone()))
                };
                if when(&state.job.schedule) != when(&job.schedule) {
                    state.next = job.schedule.next_after(now);
                }
                state.job = job;
            }
            (Ok(Some(job)), None) => {
                say(
                    clock,
                    &format!("{}: new job from {}", job.name, file.display()),
                );
                states.push(JobState::new(job, now));
            }
            (Ok(None), Some(i)) if states[i].running.is_none() => {
                say(
                    clock,
                    &format!(
                        "{}: no longer has a [schedule]; not scheduled",
                        states[i].job.name
                    ),
                );
                states.remove(i);
            }
            (Ok(None), _) => {}
            (Err(e), Some(i)) => {
                eprintln!(
                    "{}: changed but no longer reads; its last good version stays scheduled:\n{e}",
                    file.display()
                );
                states[i].job.modified = modified;
            }
            (Err(e), None) => {
                eprintln!("{}: not scheduled: {e}", file.display());
            }
        }
    }
    // Deleted files: their jobs stop (their fires stay in the journal).
    states.retain(|s| {
        let keep = files.contains(&s.job.file) || s.running.is_some();
        if !keep {
            say(
                clock,
                &format!(
                    "{}: {} was removed; not scheduled",
                    s.job.name,
                    s.job.file.display()
                ),
            );
        }
        keep
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_within_a_fifth_and_stops_at_an_hour() {
        let base = Duration::from_secs(60);
        for (retry, expected) in [(1, 60.0), (2, 120.0), (3, 240.0), (10, 3600.0)] {
            let b = backoff(base, retry).as_secs_f64();
            assert!(
                b >= expected * 0.9 - 1e-6 && b <= expected * 1.1 + 1e-6,
                "retry {retry}: {b}"
            );
        }
    }
}
