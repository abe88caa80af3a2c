//! The `[schedule]` section of a pipeline file: when `ferry schedule` runs it, and what it does when
//! a run fails, takes too long, overlaps the next fire or was missed.
//!
//! ```toml
//! [schedule]
//! cron = "0 2 * * *"            # 5 fields, or 6 with seconds first
//! timezone = "Europe/Paris"     # IANA name; UTC by default
//! enabled = true
//! max_retries = 2               # 0-10 whole-run retries of a failed run
//! retry_backoff = "1m"          # doubled each retry, with jitter, at most 1 hour
//! timeout = "2h"                # 1 minute to 24 hours; the run is stopped cleanly and resumable
//! overlap = "skip"              # skip | queue: a fire while the last run still goes
//! catch_up = "last"             # none | last | all: fires missed while the scheduler was down
//! validate = true               # a run that fails its checks before writing is Skipped
//! after = ["accounts"]          # runs when these jobs have completed (without cron: each time
//!                               # they all have; with cron: its fires wait for them)
//! on_failure = "https://hooks.example.com/ferry"   # POST a JSON summary, or run a command
//! ```

use std::time::Duration;

use toml::Spanned;

use super::raw::RawSchedule;
use super::*;
use crate::schedule::cron::CronSchedule;

/// When and how a pipeline runs under `ferry schedule`.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// `None` for a job that runs only after others (`after`).
    pub cron: Option<CronSchedule>,
    /// Jobs that must have completed first.
    pub after: Vec<String>,
    /// What to do when a run fails (or ends Partial Success with `on_partial`).
    pub on_failure: Option<Alert>,
    pub on_partial: Option<Alert>,
    pub enabled: bool,
    pub max_retries: u32,
    pub retry_backoff: Duration,
    pub timeout: Duration,
    pub overlap: Overlap,
    pub catch_up: CatchUp,
    /// A run whose checks fail before it writes (the file, the SQL, the target: what `ferry
    /// validate` checks) is recorded Skipped (validation failed) rather than Failed.
    pub validate: bool,
}

/// Where an alert goes: a webhook (an http(s) URL, POSTed a JSON summary) or a command (run by
/// `sh -c`, the summary in FERRY_* variables). Neither ever carries a secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Alert {
    Webhook(String),
    Command(String),
}

impl Alert {
    fn parse(text: &str) -> Self {
        if text.starts_with("http://") || text.starts_with("https://") {
            Self::Webhook(text.to_string())
        } else {
            Self::Command(text.to_string())
        }
    }
}

impl Schedule {
    /// The first fire after `t`; `None` for a job without cron.
    pub fn next_after(
        &self,
        t: chrono::DateTime<chrono::Utc>,
    ) -> Option<chrono::DateTime<chrono::Utc>> {
        self.cron.as_ref()?.next_after(t)
    }

    /// "At 02:00 (Europe/Paris)", "after accounts, contacts", or both.
    pub fn describe(&self) -> String {
        let after = (!self.after.is_empty()).then(|| format!("after {}", self.after.join(", ")));
        match (&self.cron, after) {
            (Some(c), Some(a)) => format!("{}, {a}", c.describe()),
            (Some(c), None) => c.describe(),
            (None, Some(a)) => a,
            (None, None) => "never".into(),
        }
    }
}

/// What a fire does while the job's last run still goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlap {
    /// Recorded as Skipped.
    Skip,
    /// Runs when the last run ends (one waiting fire at most).
    Queue,
}

/// What happens to fires missed while the scheduler was not running (or the clock jumped).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CatchUp {
    /// Recorded as Skipped.
    None,
    /// One run, for the latest missed fire.
    Last,
    /// One run per missed fire, in order.
    All,
}

impl Checker<'_> {
    pub(super) fn schedule(
        &mut self,
        raw: Option<Spanned<RawSchedule>>,
    ) -> Option<Option<Schedule>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let raw_span = raw.span();
        let raw = raw.into_inner();
        let zone = raw
            .timezone
            .as_ref()
            .map(|z| z.get_ref().as_str())
            .unwrap_or("UTC");
        let cron = match &raw.cron {
            None if raw.after.as_ref().is_some_and(|a| !a.get_ref().is_empty()) => Some(None),
            None => {
                self.errors.push(
                    self.loc
                        .error(
                            raw_span.clone(),
                            "[schedule] needs a cron expression, or after = [jobs]",
                        )
                        .hint("cron = \"0 2 * * *\"  # every day at 02:00"),
                );
                None
            }
            Some(expression) => match CronSchedule::parse(expression.get_ref(), zone) {
                Ok(c) => Some(Some(c)),
                Err(e) => {
                    let span = match (&raw.timezone, e.contains("time zone")) {
                        (Some(z), true) => z.span(),
                        _ => expression.span(),
                    };
                    self.errors.push(
                        self.loc
                            .error(span, e)
                            .hint("cron = \"0 2 * * *\"  # every day at 02:00"),
                    );
                    None
                }
            },
        };
        let max_retries = self
            .whole_between(raw.max_retries, "max_retries", 0, 0, 10)
            .map(|n| n as u32);
        let retry_backoff = self.duration_between(
            raw.retry_backoff,
            "retry_backoff",
            "1m",
            Duration::from_secs(1),
            Duration::from_secs(3600),
        );
        let timeout = self.duration_between(
            raw.timeout,
            "timeout",
            "24h",
            Duration::from_secs(60),
            Duration::from_secs(24 * 3600),
        );
        let overlap = self.word(
            raw.overlap,
            "overlap",
            &[("skip", Overlap::Skip), ("queue", Overlap::Queue)],
            Overlap::Skip,
        );
        let catch_up = self.word(
            raw.catch_up,
            "catch_up",
            &[
                ("none", CatchUp::None),
                ("last", CatchUp::Last),
                ("all", CatchUp::All),
            ],
            CatchUp::Last,
        );
        Some(Some(Schedule {
            cron: cron?,
            after: raw.after.map(Spanned::into_inner).unwrap_or_default(),
            on_failure: raw.on_failure.as_deref().map(Alert::parse),
            on_partial: raw.on_partial.as_deref().map(Alert::parse),
            enabled: raw.enabled.unwrap_or(true),
            max_retries: max_retries?,
            retry_backoff: retry_backoff?,
            timeout: timeout?,
            overlap: overlap?,
            catch_up: catch_up?,
            validate: raw.validate.unwrap_or(true),
        }))
    }

    fn duration_between(
        &mut self,
        value: Option<Spanned<String>>,
        key: &str,
        default: &str,
        min: Duration,
        max: Duration,
    ) -> Option<Duration> {
        let Some(v) = value else {
            return parse_duration(default);
        };
        match parse_duration(v.get_ref()) {
            Some(d) if d >= min && d <= max => Some(d),
            parsed => {
                let what = match parsed {
                    Some(_) => format!(
                        "{key} must be between {} and {}, not {}",
                        crate::run::report::human_duration(min),
                        crate::run::report::human_duration(max),
                        v.get_ref()
                    ),
                    None => format!("\"{}\" is not a duration", v.get_ref()),
                };
                self.errors.push(
                    self.loc
                        .error(v.span(), what)
                        .hint(format!("{key} = \"{default}\" (units: s, m, h)")),
                );
                None
            }
        }
    }

    fn word<T: Copy>(
        &mut self,
        value: Option<Spanned<String>>,
        key: &str,
        words: &[(&str, T)],
        default: T,
    ) -> Option<T> {
        let Some(v) = value else {
            return Some(default);
        };
        match words.iter().find(|(w, _)| *w == v.get_ref().as_str()) {
            Some((_, t)) => Some(*t),
            None => {
                let known: Vec<&str> = words.iter().map(|(w, _)| *w).collect();
                self.errors.push(
                    self.loc
                        .error(
                            v.span(),
                            format!(
                                "{key} is one of {}, not \"{}\"",
                                known.join(", "),
                                v.get_ref()
                            ),
                        )
                        .hint(format!("{key} = \"{}\"", known[0])),
                );
                None
            }
        }
    }
}

/// A job file: an environment's (`environments/<env>/jobs/<name>.toml`: `pipeline = "NAME"` or
/// `dropbox = "NAME"`), or a dropbox's in a jobs folder (`dropbox = "path/to/folder"`), with its
/// `[schedule]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawJob {
    pipeline: Option<Spanned<String>>,
    dropbox: Option<Spanned<String>>,
    schedule: Spanned<RawSchedule>,
}

/// What a job runs.
#[derive(Debug, Clone, PartialEq)]
pub enum JobRuns {
    /// An environment's pipeline: its name and file.
    Pipeline { name: String, file: PathBuf },
    /// A dropbox: `ferry dropbox run` with these arguments.
    Dropbox { name: String, args: Vec<String> },
}

/// What a job file says: what it runs, and when.
#[derive(Debug, Clone)]
pub struct JobFile {
    pub runs: JobRuns,
    pub schedule: Schedule,
}

impl JobFile {
    /// Reads a job file (of `env`'s catalogue when given); a pipeline or dropbox that is not there
    /// is an error at its line.
    pub fn parse(
        file: &Path,
        text: &str,
        env: Option<&crate::environment::Environment>,
    ) -> Result<JobFile, SpecErrors> {
        use crate::environment::AssetKind;
        let loc = Locator::new(file, text);
        let raw: RawJob =
            toml::from_str(text).map_err(|e| SpecErrors(vec![toml_error(&loc, &e)]))?;
        let dir = file.parent().unwrap_or(Path::new(".")).to_path_buf();
        let mut cx = Checker::new(&loc, &dir, env);
        let mut missing =
            |what: &Spanned<String>, kind: AssetKind, env: &crate::environment::Environment| {
                let names = env.assets(kind);
                let hint = match did_you_mean(what.get_ref(), names.iter().map(String::as_str)) {
                    Some(m) => format!("did you mean {} = \"{m}\"?", kind.one()),
                    None => format!(
                        "promote it first: ferry promote --from ENV --to {} {} {}",
                        env.name,
                        kind.folder(),
                        what.get_ref()
                    ),
                };
                cx.errors.push(
                    loc.error(
                        what.span(),
                        format!(
                            "environment \"{}\" has no {} \"{}\"",
                            env.name,
                            kind.one(),
                            what.get_ref()
                        ),
                    )
                    .hint(hint),
                );
            };
        let runs = match (&raw.pipeline, &raw.dropbox, env) {
            (Some(p), None, Some(env)) => {
                let file = env.asset_file(AssetKind::Pipelines, p.get_ref());
                if !file.is_file() {
                    missing(p, AssetKind::Pipelines, env);
                }
                Some(JobRuns::Pipeline {
                    name: p.get_ref().clone(),
                    file,
                })
            }
            (None, Some(d), Some(env)) => {
                if !env.asset_file(AssetKind::Dropbox, d.get_ref()).is_file() {
                    missing(d, AssetKind::Dropbox, env);
                }
                let args = vec![
                    "--project".to_string(),
                    env.project.display().to_string(),
                    "dropbox".into(),
                    "run".into(),
                    "--env".into(),
                    env.name.clone(),
                    d.get_ref().clone(),
                ];
                Some(JobRuns::Dropbox {
                    name: d.get_ref().clone(),
                    args,
                })
            }
            (None, Some(d), None) => {
                let folder = dir.join(d.get_ref());
                if !folder.join("dropbox.toml").is_file() {
                    cx.errors.push(
                        loc.error(d.span(), format!("{} has no dropbox.toml", folder.display()))
                            .hint("dropbox = \"path/to/the/dropbox/folder\" (from this file's folder); `ferry dropbox init DIR` makes one"),
                    );
                }
                let name = folder
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                let args = vec!["dropbox".into(), "run".into(), folder.display().to_string()];
                Some(JobRuns::Dropbox { name, args })
            }
            (Some(p), None, None) => {
                cx.errors.push(
                    loc.error(
                        p.span(),
                        "pipeline = \"...\" names a pipeline of an environment's catalogue",
                    )
                    .hint(
                        "in a jobs folder, a pipeline file is a job itself: give it a [schedule]",
                    ),
                );
                None
            }
            _ => {
                cx.errors.push(
                    loc.whole_file("a job file names what it runs: pipeline = \"NAME\" or dropbox = \"NAME\" (one of them)")
                        .hint("pipeline = \"accounts\" and a [schedule] table"),
                );
                None
            }
        };
        let schedule = cx.schedule(Some(raw.schedule));
        if !cx.errors.is_empty() {
            return Err(SpecErrors(cx.errors));
        }
        let mut schedule = schedule.flatten().expect("a schedule without errors");
        if matches!(runs, Some(JobRuns::Dropbox { .. })) {
            // `validate` skips a fire whose pipeline is wrong (exit 2); a dropbox's exit 2 is a
            // delivery it refused, which is a run like any other.
            schedule.validate = false;
        }
        Ok(JobFile {
            runs: runs.expect("no errors means what it runs"),
            schedule,
        })
    }
}
