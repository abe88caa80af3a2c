//! `ferry promote`: moves a migration's definitions from one environment's catalogue to another's,
//! the way the seed products do it: dependencies surfaced, a preview that stays Pending until it
//! is completed or discarded (one per target at a time), ordered steps with statuses, a log file,
//! guidance for what cannot be moved (secrets, consent, files), a verification in the target, a
//! history with comments, and a revert of exactly what a promotion changed. It moves files that
//! hold references only, so no secret travels; roles are checked before anything happens.
//!
//! ```text
//! plan.rs     what would change, dependencies, field diffs
//! record.rs   the promotion record and its Delta history
//! report.rs   text, Markdown and JSON
//! journal.rs  the log file of a completion or revert
//! ```

mod journal;
pub mod plan;
pub mod record;
pub mod report;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use chrono::Utc;

use self::journal::LogFile;
use self::plan::{Action, Change, Selection};
use self::record::{Comment, Promotion, Revert, Status, Step, StepStatus, Store};
use crate::environment::{AssetKind, Environment, Identity, Project};

/// Why a promotion command did not do what it was asked, and the exit code that says so.
#[derive(Debug)]
pub struct Problem {
    pub message: String,
    /// 2 refused before anything changed; 1 failed; 130 stopped.
    pub code: u8,
}

impl Problem {
    fn refused(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            code: 2,
        }
    }

    fn failed(message: impl Into<String>) -> Problem {
        Problem {
            message: message.into(),
            code: 1,
        }
    }
}

impl From<ferry_connectors::ConnectorError> for Problem {
    fn from(e: ferry_connectors::ConnectorError) -> Problem {
        Problem::failed(e.to_string())
    }
}

/// Who promotes, in which project.
pub struct Promoter {
    pub project: Project,
    pub store: Store,
    pub identity: Identity,
    /// The name the history records (`--as`, or the OS user).
    pub who: String,
}

impl Promoter {
    pub fn new(project: Project, as_name: Option<String>) -> Promoter {
        let identity = Identity::current();
        Promoter {
            store: Store::new(&project.root),
            who: as_name.unwrap_or_else(|| identity.user.clone()),
            identity,
            project,
        }
    }

    fn environments(&self, from: &str, to: &str) -> Result<(&Environment, &Environment), Problem> {
        let source = self.project.environment(from).map_err(Problem::refused)?;
        let target = self.project.environment(to).map_err(Problem::refused)?;
        if from == to {
            return Err(Problem::refused(format!(
                "--from and --to are both \"{from}\": a promotion moves definitions between two environments"
            )));
        }
        // The seed's rule: executor in the source, writer in the target.
        source
            .check_runner(&self.identity)
            .and_then(|()| target.check_promoter(&self.identity))
            .map_err(|e| Problem::refused(format!("refused: {e}")))?;
        Ok((source, target))
    }

    /// Previews a promotion and records it Pending.
    pub async fn preview(
        &self,
        from: &str,
        to: &str,
        selection: &Selection,
        title: Option<String>,
        comment: Option<String>,
    ) -> Result<Promotion, Problem> {
        let (source, target) = self.environments(from, to)?;
        let _lock = self.store.lock()?;
        let all = self.store.all().await?;
        if let Some(pending) = all
            .iter()
            .find(|p| p.to == to && p.status == Status::Pending)
        {
            return Err(Problem::refused(format!(
                "promotion {} into \"{to}\" is Pending: complete or discard it first \
                 (ferry promote complete {0} | ferry promote discard {0})",
                pending.id
            )));
        }
        let changes = plan::plan(source, target, selection).map_err(Problem::refused)?;
        let mut kinds: Vec<AssetKind> = changes.iter().map(|c| c.kind).collect();
        kinds.dedup();
        let now = Utc::now();
        let id = all.iter().map(|p| p.id).max().unwrap_or(0) + 1;
        let comments = comment
            .map(|text| Comment {
                number: 1,
                who: self.who.clone(),
                at: now,
                text,
                deleted: false,
            })
            .into_iter()
            .collect();
        let promotion = Promotion {
            id,
            title: title.unwrap_or_else(|| {
                format!(
                    "{} {}",
                    selection.kind.folder(),
                    changes
                        .iter()
                        .filter(|c| c.kind == selection.kind)
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }),
            from: from.to_string(),
            to: to.to_string(),
            kinds: kinds.iter().map(|k| k.folder().to_string()).collect(),
            status: Status::Pending,
            who: self.who.clone(),
            os_user: self.identity.user.clone(),
            created: now,
            ended: None,
            enable_jobs: selection.enable,
            changes,
            steps: Vec::new(),
            warnings: Vec::new(),
            guidance: Vec::new(),
            log_file: None,
            comments,
            revert: None,
        };
        self.store.save(&promotion).await?;
        self.store
            .write_summary(&promotion)
            .map_err(|e| Problem::failed(format!("writing the change summary: {e}")))?;
        Ok(promotion)
    }

    /// A promotion by id, for `show` and the commands that change it.
    pub async fn get(&self, id: i64) -> Result<Promotion, Problem> {
        self.store
            .get(id)
            .await
            .map_err(|e| Problem::refused(e.to_string()))
    }

    pub async fn discard(&self, id: i64) -> Result<Promotion, Problem> {
        let _lock = self.store.lock()?;
        let mut p = self.get(id).await?;
        if p.status != Status::Pending {
            return Err(Problem::refused(format!(
                "promotion {id} is {}: only a Pending one can be discarded",
                p.status
            )));
        }
        self.environments(&p.from, &p.to)?;
        p.status = Status::Discarded;
        p.ended = Some(Utc::now());
        self.store.save(&p).await?;
        Ok(p)
    }

    /// Completes a Pending promotion: its steps in order (each reported to `on_step` as it
    /// changes), then the verification in the target. `stop` is read between steps.
    pub async fn complete(
        &self,
        id: i64,
        stop: &AtomicBool,
        mut on_step: impl FnMut(usize, &Step),
    ) -> Result<Promotion, Problem> {
        let _lock = self.store.lock()?;
        let mut p = self.get(id).await?;
        if p.status != Status::Pending {
            return Err(Problem::refused(format!(
                "promotion {id} is {}: only a Pending one can be completed",
                p.status
            )));
        }
        let (source, target) = self.environments(&p.from, &p.to)?;
        stale(&p, source, target).map_err(Problem::refused)?;
        let mut log = LogFile::create(self.store.dir(), &p, "complete")
            .map_err(|e| Problem::failed(format!("creating the promotion's log file: {e}")))?;
        log.info(&format!(
            "connections of \"{}\": {}; of \"{}\": {}",
            p.from,
            source.assets(AssetKind::Connections).join(", "),
            p.to,
            target.assets(AssetKind::Connections).join(", ")
        ));
        p.log_file = Some(log.path().to_path_buf());
        p.status = Status::InProgress;
        p.steps = p
            .changes
            .iter()
            .map(|c| Step {
                name: step_name(c),
                status: StepStatus::Pending,
                detail: None,
            })
            .chain(["verify", "validate"].map(|what| Step {
                name: format!("{} in \"{}\"", capitalised(what), p.to),
                status: StepStatus::Pending,
                detail: None,
            }))
            .collect();
        self.store.save(&p).await?;
        let mut outcome = Status::Complete;
        for i in 0..p.changes.len() {
            if stop.load(Ordering::SeqCst) {
                outcome = Status::Stopped;
                log.warn("stopped (Ctrl-C) before this step: the steps above stay done");
                break;
            }
            p.steps[i].status = StepStatus::Running;
            on_step(i, &p.steps[i]);
            // Recorded before the file is written: a completion that dies here is seen as such.
            self.store.save(&p).await?;
            ferry_connectors::failpoint::pause_point("promotion_step");
            let change = &p.changes[i];
            let result = if change.action == Action::Unchanged {
                p.steps[i].status = StepStatus::Skipped;
                p.steps[i].detail = Some("the target has it already".into());
                Ok(())
            } else {
                write_asset(&target.asset_file(change.kind, &change.name), &change.after)
            };
            match result {
                Ok(()) => {
                    if p.steps[i].status == StepStatus::Running {
                        p.steps[i].status = StepStatus::Success;
                    }
                    log.info(&format!("{}: {}", p.steps[i].name, p.steps[i].status));
                }
                Err(e) => {
                    p.steps[i].status = StepStatus::Error;
                    p.steps[i].detail = Some(e.clone());
                    log.error(&format!("{}: {e}", p.steps[i].name));
                    outcome = Status::Failed;
                }
            }
            on_step(i, &p.steps[i]);
            self.store.save(&p).await?;
            if outcome == Status::Failed {
                break;
            }
        }
        let n = p.changes.len();
        if outcome == Status::Complete {
            p.steps[n].status = StepStatus::Running;
            on_step(n, &p.steps[n]);
            match verify(&p, target) {
                Ok(()) => p.steps[n].status = StepStatus::Success,
                Err(e) => {
                    p.steps[n].status = StepStatus::Error;
                    p.steps[n].detail = Some(e.clone());
                    log.error(&format!("verification: {e}"));
                    outcome = Status::Failed;
                }
            }
            on_step(n, &p.steps[n]);
        }
        if outcome == Status::Complete {
            p.steps[n + 1].status = StepStatus::Running;
            on_step(n + 1, &p.steps[n + 1]);
            let (valid, warnings) = validate_in(&p, target).await;
            for w in &warnings {
                log.warn(w);
            }
            p.steps[n + 1].status = StepStatus::Success;
            p.steps[n + 1].detail = Some(match (valid, warnings.len()) {
                (0, 0) => "no pipeline to validate".into(),
                (v, 0) => format!("{v} valid"),
                (v, w) => format!("{v} valid, {w} with problems (see the warnings)"),
            });
            p.warnings.extend(warnings);
            on_step(n + 1, &p.steps[n + 1]);
        }
        if outcome != Status::Complete {
            for step in p
                .steps
                .iter_mut()
                .filter(|s| s.status == StepStatus::Pending)
            {
                step.detail = Some("not run".into());
            }
        }
        p.guidance = guidance(&p, target);
        for g in &p.guidance {
            log.warn(&format!("manual follow-up: {g}"));
        }
        p.status = outcome;
        p.ended = Some(Utc::now());
        log.info(&format!("promotion {}: {}", p.id, p.status));
        self.store.save(&p).await?;
        self.store
            .write_summary(&p)
            .map_err(|e| Problem::failed(format!("writing the change summary: {e}")))?;
        Ok(p)
    }

    /// What a revert of promotion `id` would do, and the assets the target changed since (named).
    pub async fn revert_plan(
        &self,
        id: i64,
    ) -> Result<(Promotion, Vec<String>, Vec<String>), Problem> {
        let p = self.get(id).await?;
        // In Progress: a completion that died (a live one holds the lock the revert needs).
        if !matches!(
            p.status,
            Status::Complete | Status::Failed | Status::Stopped | Status::InProgress
        ) {
            return Err(Problem::refused(format!(
                "promotion {id} is {}: only a Complete, Failed, Stopped or interrupted one changed anything to revert",
                p.status
            )));
        }
        let (_, target) = self.environments(&p.from, &p.to)?;
        let mut actions = Vec::new();
        let mut changed_since = Vec::new();
        for change in touched(&p, target) {
            let now = target
                .asset_text(change.kind, &change.name)
                .map_err(Problem::failed)?;
            if now.as_deref() != Some(change.after.as_str()) {
                changed_since.push(format!(
                    "{} was changed in \"{}\" after the promotion{}: the revert overwrites that change",
                    change.label(),
                    p.to,
                    if now.is_none() { " (it was deleted)" } else { "" }
                ));
            }
            actions.push(match &change.before {
                None => format!("remove {} (the promotion created it)", change.label()),
                Some(_) => format!("restore {} as it was before", change.label()),
            });
            if change.before.is_none() {
                changed_since.extend(
                    dependents(target, change.kind, &change.name, &p)
                        .into_iter()
                        .map(|d| {
                            format!(
                                "{d} in \"{}\" needs {}, which the revert removes",
                                p.to,
                                change.label()
                            )
                        }),
                );
            }
        }
        Ok((p, actions, changed_since))
    }

    /// Restores the target's definitions of what promotion `id` changed.
    pub async fn revert(
        &self,
        id: i64,
        mut on_step: impl FnMut(&Step),
    ) -> Result<Promotion, Problem> {
        let _lock = self.store.lock()?;
        let (mut p, _, changed_since) = self.revert_plan(id).await?;
        let (_, target) = self.environments(&p.from, &p.to)?;
        let mut log = LogFile::create(self.store.dir(), &p, "revert")
            .map_err(|e| Problem::failed(format!("creating the revert's log file: {e}")))?;
        for w in &changed_since {
            log.warn(w);
        }
        let mut steps = Vec::new();
        let mut failed = None;
        let done: Vec<Change> = touched(&p, target).into_iter().cloned().collect();
        for change in done.iter().rev() {
            let file = target.asset_file(change.kind, &change.name);
            let (name, result) = match &change.before {
                None => (
                    format!("Remove {} {}", change.kind.one(), change.name),
                    match std::fs::remove_file(&file) {
                        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                            Err(format!("{}: {e}", file.display()))
                        }
                        _ => Ok(()),
                    },
                ),
                Some(before) => (
                    format!("Restore {} {}", change.kind.one(), change.name),
                    write_asset(&file, before),
                ),
            };
            let step = match result {
                Ok(()) => Step {
                    name,
                    status: StepStatus::Success,
                    detail: None,
                },
                Err(e) => Step {
                    name,
                    status: StepStatus::Error,
                    detail: Some(e),
                },
            };
            log.info(&report::step_line(&step));
            on_step(&step);
            let error = step.status == StepStatus::Error;
            steps.push(step);
            if error {
                failed = Some(steps.last().expect("a step").name.clone());
                break;
            }
        }
        p.revert = Some(Revert {
            who: self.who.clone(),
            at: Utc::now(),
            steps,
            warnings: changed_since,
            log_file: Some(log.path().to_path_buf()),
        });
        if let Some(step) = failed {
            log.error(&format!("the revert stopped at \"{step}\""));
            self.store.save(&p).await?;
            return Err(Problem::failed(format!(
                "the revert of promotion {id} stopped at \"{step}\"; the steps before it are done (ferry promote show {id})"
            )));
        }
        p.status = Status::Reverted;
        log.info(&format!("promotion {}: Reverted", p.id));
        self.store.save(&p).await?;
        self.store
            .write_summary(&p)
            .map_err(|e| Problem::failed(format!("writing the change summary: {e}")))?;
        Ok(p)
    }

    /// Adds a comment to a promotion; returns its number.
    pub async fn comment(&self, id: i64, text: &str) -> Result<u32, Problem> {
        let _lock = self.store.lock()?;
        let mut p = self.get(id).await?;
        let number = p.comments.iter().map(|c| c.number).max().unwrap_or(0) + 1;
        p.comments.push(Comment {
            number,
            who: self.who.clone(),
            at: Utc::now(),
            text: text.to_string(),
            deleted: false,
        });
        self.store.save(&p).await?;
        Ok(number)
    }

    /// Deletes one of your own comments.
    pub async fn delete_comment(&self, id: i64, number: u32) -> Result<(), Problem> {
        let _lock = self.store.lock()?;
        let mut p = self.get(id).await?;
        let who = self.who.clone();
        let comment = p
            .comments
            .iter_mut()
            .find(|c| c.number == number && !c.deleted)
            .ok_or_else(|| Problem::refused(format!("promotion {id} has no comment {number}")))?;
        if comment.who != who {
            return Err(Problem::refused(format!(
                "comment {number} is {}'s: only your own comments can be deleted",
                comment.who
            )));
        }
        comment.deleted = true;
        self.store.save(&p).await?;
        Ok(())
    }
}

/// The assets of `env` (not part of promotion `p`) that need asset `name` of `kind`.
fn dependents(env: &Environment, kind: AssetKind, name: &str, p: &Promotion) -> Vec<String> {
    let mut out = Vec::new();
    for other_kind in AssetKind::ALL {
        for other in env.assets(other_kind) {
            let own = p
                .changes
                .iter()
                .any(|c| c.kind == other_kind && c.name == other);
            let text = env
                .asset_text(other_kind, &other)
                .ok()
                .flatten()
                .unwrap_or_default();
            if !own && plan::dependencies(other_kind, &text).contains(&(kind, name.to_string())) {
                out.push(format!("{}/{other}", other_kind.folder()));
            }
        }
    }
    out
}

/// What a completion changed in `target`: the steps that succeeded, and a step it died during
/// (Running) when the file holds what it was writing.
fn touched<'p>(p: &'p Promotion, target: &Environment) -> Vec<&'p Change> {
    p.changes
        .iter()
        .zip(&p.steps)
        .filter(|(c, s)| {
            c.action != Action::Unchanged
                && match s.status {
                    StepStatus::Success => true,
                    StepStatus::Running => {
                        target.asset_text(c.kind, &c.name).ok().flatten().as_deref()
                            == Some(c.after.as_str())
                    }
                    _ => false,
                }
        })
        .map(|(c, _)| c)
        .collect()
}

/// The changes a completion wrote (its step succeeded), with their step.
fn applied(p: &Promotion) -> impl Iterator<Item = (&Change, &Step)> {
    p.changes
        .iter()
        .zip(&p.steps)
        .filter(|(c, s)| c.action != Action::Unchanged && s.status == StepStatus::Success)
}

fn step_name(c: &Change) -> String {
    let verb = match c.action {
        Action::Create => "Create",
        Action::Update => "Update",
        Action::Unchanged => "Leave",
    };
    format!("{verb} {} {}", c.kind.one(), c.name)
}

fn capitalised(word: &str) -> String {
    let mut chars = word.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default()
}

/// Refuses a completion when the source or the target changed since the preview: what would be
/// written is no longer what was reviewed.
fn stale(p: &Promotion, source: &Environment, target: &Environment) -> Result<(), String> {
    let mut moved = Vec::new();
    for c in &p.changes {
        if source.asset_text(c.kind, &c.name)?.as_deref() != Some(c.source.as_str()) {
            moved.push(format!("{} changed in \"{}\"", c.label(), p.from));
        }
        if target.asset_text(c.kind, &c.name)? != c.before {
            moved.push(format!("{} changed in \"{}\"", c.label(), p.to));
        }
    }
    if moved.is_empty() {
        return Ok(());
    }
    Err(format!(
        "since promotion {} was previewed, {}: discard it (ferry promote discard {0}) and preview again",
        p.id,
        moved.join(", ")
    ))
}

/// Writes an asset whole or not at all (a temporary file renamed over it).
fn write_asset(file: &Path, text: &str) -> Result<(), String> {
    let dir = file.parent().expect("an asset's folder");
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    let temporary = dir.join(format!(
        ".{}.promoting",
        file.file_name().unwrap_or_default().to_string_lossy()
    ));
    std::fs::write(&temporary, text)
        .and_then(|()| std::fs::rename(&temporary, file))
        .map_err(|e| {
            let _ = std::fs::remove_file(&temporary);
            format!("cannot write {}: {e}", file.display())
        })
}

/// Reads back every asset the promotion wrote and compares it with what was previewed.
fn verify(p: &Promotion, target: &Environment) -> Result<(), String> {
    let mut wrong = Vec::new();
    for (c, _) in applied(p) {
        match target.asset_text(c.kind, &c.name)? {
            Some(text) if text == c.after => {}
            Some(_) => wrong.push(format!("{} differs from the preview", c.label())),
            None => wrong.push(format!("{} is missing", c.label())),
        }
    }
    if wrong.is_empty() {
        Ok(())
    } else {
        Err(wrong.join("; "))
    }
}

/// Validates each promoted pipeline (and each promoted job's pipeline) in the target, with the
/// target's connections: (how many are valid, a warning for each that is not).
async fn validate_in(p: &Promotion, target: &Environment) -> (usize, Vec<String>) {
    let mut names: Vec<String> = Vec::new();
    for c in &p.changes {
        match c.kind {
            AssetKind::Pipelines => names.push(c.name.clone()),
            AssetKind::Jobs => names.extend(
                plan::dependencies(AssetKind::Jobs, &c.after)
                    .into_iter()
                    .filter(|(k, _)| *k == AssetKind::Pipelines)
                    .map(|(_, n)| n),
            ),
            _ => {}
        }
    }
    names.sort();
    names.dedup();
    let mut valid = 0;
    let mut warnings = Vec::new();
    for name in names {
        let file = target.asset_file(AssetKind::Pipelines, &name);
        let problem = match crate::spec::Pipeline::load(&file) {
            Err(e) => Some(e.to_string()),
            Ok(pipeline) => match crate::run::params::fill_for_run(&pipeline, &[], false).await {
                Err(e) => Some(e.to_string()),
                Ok(filled) => match crate::run::validate::check(&filled).await {
                    Err(e) => Some(e),
                    Ok(checked) if !checked.problems.is_empty() => Some(format!(
                        "target {}: {}",
                        checked.target,
                        checked
                            .problems
                            .iter()
                            .map(|e| e.to_string())
                            .collect::<Vec<_>>()
                            .join("; ")
                    )),
                    Ok(_) => None,
                },
            },
        };
        match problem {
            None => valid += 1,
            Some(why) => warnings.push(format!(
                "pipeline {name} does not validate in \"{}\": {}",
                target.name,
                why.trim()
            )),
        }
    }
    (valid, warnings)
}

/// What a person must still do in the target, per asset type.
fn guidance(p: &Promotion, target: &Environment) -> Vec<String> {
    let mut out = Vec::new();
    for c in p.changes.iter().filter(|c| c.action != Action::Unchanged) {
        match c.kind {
            AssetKind::Connections => {
                let refs = ferry_connectors::secret::references(&c.after);
                let secrets: Vec<&str> = refs
                    .iter()
                    .filter_map(|r| r.strip_prefix("secret."))
                    .collect();
                let vars: Vec<&str> = refs
                    .iter()
                    .filter_map(|r| r.strip_prefix("vars."))
                    .collect();
                let env_vars: Vec<&str> = refs
                    .iter()
                    .filter(|r| !r.contains('.'))
                    .map(String::as_str)
                    .collect();
                if !secrets.is_empty() {
                    out.push(format!(
                        "connection {}: set its secrets in \"{}\" ({}): {}",
                        c.name,
                        target.name,
                        match &target.secrets {
                            crate::environment::Secrets::File(f) =>
                                format!("secrets_file {}", f.display()),
                            crate::environment::Secrets::Command(_) =>
                                "its secrets_command".to_string(),
                            crate::environment::Secrets::None =>
                                "it has no secrets_file yet".to_string(),
                        },
                        secrets.join(", ")
                    ));
                }
                let unset: Vec<&&str> = vars
                    .iter()
                    .filter(|v| !target.vars.contains_key(**v))
                    .collect();
                if !unset.is_empty() {
                    out.push(format!(
                        "connection {}: set [environments.{}.vars] {}",
                        c.name,
                        target.name,
                        unset
                            .iter()
                            .map(|v| v.to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ));
                }
                if !env_vars.is_empty() {
                    out.push(format!(
                        "connection {}: export {} where \"{}\" runs",
                        c.name,
                        env_vars.join(", "),
                        target.name
                    ));
                }
                if c.after.contains("client_id") {
                    out.push(format!(
                        "connection {}: an OData application user: consent it (and grant its role) in the service \"{}\" writes to",
                        c.name, target.name
                    ));
                }
            }
            AssetKind::Pipelines => {
                let paths = file_paths(&c.after);
                if !paths.is_empty() {
                    out.push(format!(
                        "pipeline {} reads or writes files ({}): make sure \"{}\" has them (paths are from the project folder; ${{vars.NAME}} sets one per environment)",
                        c.name,
                        paths.join(", "),
                        target.name
                    ));
                }
            }
            AssetKind::Jobs => {
                if !c.after.contains("enabled = true") {
                    out.push(format!(
                        "job {}: disabled in \"{}\"; enable it with `ferry jobs {} enable {}` when it should fire",
                        c.name,
                        target.name,
                        target.dir().join("jobs").display(),
                        c.name
                    ));
                }
            }
            AssetKind::Dropbox => out.push(format!(
                "dropbox {}: tell its users where \"{}\"'s drop folder is",
                c.name, target.name
            )),
        }
    }
    out
}

/// The `path` values of a pipeline's sources and target that are not set per environment.
fn file_paths(text: &str) -> Vec<String> {
    let Ok(table) = text.parse::<toml::Table>() else {
        return Vec::new();
    };
    let sources = table.get("sources").and_then(|s| s.as_table());
    sources
        .into_iter()
        .flat_map(|s| s.values())
        .chain(table.get("target"))
        .filter_map(|t| t.get("path")?.as_str())
        .filter(|p| !p.contains("${vars."))
        .map(str::to_string)
        .collect()
}
