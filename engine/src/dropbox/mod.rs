//! Dropbox ingestion: business users drop workbooks (and a JSON of options) into `DIR/inbox/`;
//! `ferry dropbox run DIR` stages each file into a Delta table, archives it, migrates the staged
//! entities in order into the dropbox's target, and hands the refused rows back as workbooks in
//! `DIR/outbox/`. Every step is a row of the manifest, so a killed run is simply run again.
//!
//! ```text
//! config.rs    dropbox.toml (target connection, options); a delivery's JSON (file -> options)
//! inbox.rs     files ready to take (not temporary, not changing), hashes, moves to archive/rejected
//! stage.rs     a file -> <state>/dropbox/staging/<entity> (Delta, a version per file)
//! manifest.rs  <state>/dropbox/manifest (Delta): each file's statuses, figures, errors
//! migrate.rs   a generated pipeline per entity, run in order (order, after)
//! mod.rs       one pass: configs -> stage + archive -> migrate -> quarantine outbox -> retries
//! ```

pub mod config;
pub mod inbox;
pub mod manifest;
pub mod migrate;
pub mod stage;
pub mod watch;

use std::path::Path;

use chrono::Utc;

use self::config::{Delivery, Dropbox, FileOptions};
use self::manifest::{Entry, Manifest, latest};
use crate::book::lock::RunLock;

/// The suffix of a quarantine workbook handed back: `<entity>.quarantine.xlsx`.
pub const QUARANTINE_SUFFIX: &str = ".quarantine.xlsx";

/// What one `dropbox run` did, for its summary and exit code.
#[derive(Debug, Default)]
pub struct Outcome {
    pub staged: Vec<String>,
    pub migrated: Vec<(String, String)>,
    pub rejected: Vec<(String, String)>,
    pub duplicates: Vec<String>,
    pub waiting: Vec<(String, String)>,
    /// Some rows were refused (Partial Success somewhere).
    pub partial: bool,
    /// An entity's migration failed.
    pub failed: bool,
}

fn say(line: &str) {
    println!("{line}");
}

/// Processes what the inbox holds now, then exits (available-now). Holds the dropbox's lock.
pub async fn run_once(dropbox: &Dropbox) -> Result<Outcome, String> {
    let _lock = RunLock::acquire_file(
        &dropbox.state_dir.display().to_string(),
        &format!("dropbox-{}", dropbox.name),
    )
    .map_err(|e| e.to_string())?;
    for folder in [dropbox.inbox(), dropbox.work()] {
        std::fs::create_dir_all(&folder)
            .map_err(|e| format!("cannot create {}: {e}", folder.display()))?;
    }
    let manifest = Manifest::new(&dropbox.work());
    let mut outcome = Outcome::default();
    // A later file of an entity waits for the earlier one: passes go on while they stage or
    // migrate something. Each file is migrated at most once a run (a failure waits for the next).
    let mut attempted: Vec<String> = Vec::new();
    loop {
        let staged = take_files(dropbox, &manifest, &mut outcome).await?;
        let migrated = migrate_staged(dropbox, &manifest, &mut outcome, &mut attempted).await?;
        if staged == 0 && migrated == 0 {
            break;
        }
    }
    Ok(outcome)
}

/// Stages (and archives) what is ready in the inbox; returns how many files were staged.
async fn take_files(
    dropbox: &Dropbox,
    manifest: &Manifest,
    outcome: &mut Outcome,
) -> Result<usize, String> {
    let found = inbox::scan(&dropbox.inbox(), dropbox.stable_for())
        .map_err(|e| format!("cannot read {}: {e}", dropbox.inbox().display()))?;
    outcome.waiting = found.waiting.clone();
    // The delivery's options: every JSON of the inbox. One that does not read rejects the whole
    // delivery (the JSONs and the files beside them): nothing of it is half-ingested.
    let mut delivery = Delivery::new();
    let mut broken = Vec::new();
    // Each JSON with the file names it gives options for (to archive it once they are taken).
    let mut named: Vec<(&inbox::Dropped, Vec<String>)> = Vec::new();
    for json in &found.configs {
        match config::read_delivery(&json.path) {
            Ok(d) => {
                named.push((json, d.keys().cloned().collect()));
                delivery.extend(d);
            }
            Err(why) => broken.push(why),
        }
    }
    if !broken.is_empty() {
        let why = format!(
            "the delivery's options could not be read; nothing of it was taken:\n{}",
            broken.join("\n")
        );
        for file in found.configs.iter().chain(&found.data) {
            reject(dropbox, manifest, file, "", &why, outcome).await?;
        }
        return Ok(0);
    }
    let entries = manifest.entries().await.map_err(|e| e.to_string())?;
    let current = latest(&entries);
    let mut staged = 0;
    let mut taken_entities: Vec<String> = Vec::new();
    for file in &found.data {
        let hash = inbox::content_hash(&file.path)
            .map_err(|e| format!("cannot read {}: {e}", file.path.display()))?;
        if let Some(entity) = file.name.strip_suffix(QUARANTINE_SUFFIX) {
            retry_quarantine(dropbox, manifest, file, &hash, entity, outcome).await?;
            continue;
        }
        let options = delivery.get(&file.name).cloned().unwrap_or_default();
        let entity = options
            .target_entity
            .clone()
            .unwrap_or_else(|| stem(&file.name));
        let entry = |status: &str| Entry {
            file: file.name.clone(),
            hash: hash.clone(),
            size: file.size as i64,
            entity: entity.clone(),
            status: status.into(),
            at: Utc::now(),
            options: serde_json::to_string(&options).ok(),
            ..Default::default()
        };
        // The same content again (under any name): recognised, not migrated twice. A rejected
        // file may come again (with corrected options).
        if let Some(seen) = current
            .iter()
            .find(|e| e.hash == hash && !matches!(e.status.as_str(), "rejected" | "superseded"))
        {
            let to = inbox::move_into(&file.path, &dropbox.archive()).map_err(|e| e.to_string())?;
            let mut dup = entry("duplicate");
            dup.error = Some(format!(
                "the same content as {} (seen {}): not migrated again",
                seen.file,
                seen.at.format("%Y-%m-%d %H:%M:%S")
            ));
            dup.archived_to = Some(to.display().to_string());
            record(manifest, &dup).await?;
            say(&format!(
                "{}: the same content as {}; archived, not migrated again",
                file.name, seen.file
            ));
            outcome.duplicates.push(file.name.clone());
            continue;
        }
        // An entity with a file still on its way waits for it, unless this one overwrites it.
        let pending: Vec<&Entry> = current
            .iter()
            .filter(|e| {
                e.entity == entity && matches!(e.status.as_str(), "staged" | "migrating" | "failed")
            })
            .collect();
        if taken_entities.contains(&entity) || (!pending.is_empty() && !options.overwrite) {
            let why = match pending.first() {
                Some(p) => format!(
                    "waits until {} (the same entity, {}) is done",
                    p.file, p.status
                ),
                None => format!("waits until the file of {entity} taken with it is done"),
            };
            say(&format!("{}: {why}", file.name));
            outcome.waiting.push((file.name.clone(), why));
            continue;
        }
        for p in pending {
            let mut superseded = p.clone();
            superseded.status = "superseded".into();
            superseded.at = Utc::now();
            superseded.error = Some(format!("overwritten by {} (overwrite = true)", file.name));
            record(manifest, &superseded).await?;
        }
        match stage::stage(&file.path, &options, &dropbox.work(), &entity).await {
            Ok(rows) => {
                let to =
                    inbox::move_into(&file.path, &dropbox.archive()).map_err(|e| e.to_string())?;
                let mut done = entry("staged");
                done.rows_staged = Some(rows as i64);
                done.archived_to = Some(to.display().to_string());
                record(manifest, &done).await?;
                say(&format!(
                    "{}: {rows} rows staged for {entity}; archived",
                    file.name
                ));
                outcome.staged.push(file.name.clone());
                taken_entities.push(entity.clone());
                staged += 1;
            }
            Err(why) => reject(dropbox, manifest, file, &hash, &why, outcome).await?,
        }
    }
    // A JSON is archived once none of the files it names waits in the inbox.
    for (json, names) in named {
        let waiting = names.iter().any(|n| dropbox.inbox().join(n).exists());
        if !waiting {
            inbox::move_into(&json.path, &dropbox.archive()).map_err(|e| e.to_string())?;
        }
    }
    Ok(staged)
}

/// Migrates every staged entity not done yet and not `attempted` in this run, in order; returns
/// how many it ran.
async fn migrate_staged(
    dropbox: &Dropbox,
    manifest: &Manifest,
    outcome: &mut Outcome,
    attempted: &mut Vec<String>,
) -> Result<usize, String> {
    let entries = manifest.entries().await.map_err(|e| e.to_string())?;
    let waiting: Vec<Entry> = latest(&entries)
        .into_iter()
        .filter(|e| matches!(e.status.as_str(), "staged" | "migrating" | "failed"))
        .filter(|e| !attempted.contains(&e.hash))
        .collect();
    if waiting.is_empty() {
        return Ok(0);
    }
    attempted.extend(waiting.iter().map(|e| e.hash.clone()));
    let mut ran = 0;
    let options = |e: &Entry| -> FileOptions {
        e.options
            .as_deref()
            .and_then(|o| serde_json::from_str(o).ok())
            .unwrap_or_default()
    };
    let mut entities: Vec<(String, FileOptions)> = waiting
        .iter()
        .map(|e| (e.entity.clone(), options(e)))
        .collect();
    migrate::order_by_lookups(dropbox, &mut entities, &waiting).await;
    let ordered = migrate::in_order(entities)?;
    // Entities whose parents did not land wait for the next run (their rows point to them).
    let mut blocked: Vec<String> = Vec::new();
    for (entity, opts) in ordered {
        if let Some(parent) = opts.after.iter().find(|a| blocked.contains(a)) {
            say(&format!("{entity}: waits, {parent} did not land"));
            blocked.push(entity.clone());
            continue;
        }
        let entry = waiting
            .iter()
            .find(|e| e.entity == entity)
            .expect("ordered from these")
            .clone();
        let rows = entry.rows_staged.unwrap_or(0) as u64;
        let text =
            match migrate::pipeline_text(dropbox, &entity, &entry.file, &entry.hash, &opts, rows) {
                Ok(t) => t,
                Err(why) => {
                    let mut failed = entry.clone();
                    failed.status = "rejected".into();
                    failed.at = Utc::now();
                    failed.error = Some(why.clone());
                    record(manifest, &failed).await?;
                    say(&format!("{}: not migrated: {why}", entry.file));
                    outcome.rejected.push((entry.file.clone(), why));
                    continue;
                }
            };
        let path = migrate::pipeline_path(dropbox, &entity);
        let pipeline = migrate::write_pipeline(dropbox, &path, &text)?;
        let mut migrating = entry.clone();
        migrating.status = "migrating".into();
        migrating.at = Utc::now();
        if entry.status != "migrating" {
            record(manifest, &migrating).await?;
        }
        // `overwrite` starts over only the first time; a resumed migration goes on.
        let fresh = opts.overwrite && entry.status == "staged";
        let mut ended = migrating.clone();
        ended.at = Utc::now();
        match migrate::run_entity(&pipeline, fresh).await {
            Ok(report) => {
                say(&format!("{entity}: {report}"));
                ended.status = match report.status {
                    crate::run::Status::Completed => "done",
                    crate::run::Status::PartialSuccess => "partial",
                    _ => "failed",
                }
                .into();
                ended.rows_written = Some(report.rows_written as i64);
                ended.rows_quarantined = Some(report.rows_rejected as i64);
                ended.run_id = Some(report.run_id.clone());
                ended.error = report.error.clone();
                if report.rows_rejected > 0 {
                    outcome.partial = true;
                    let first = refused(dropbox, &pipeline, &entity).await;
                    ended.error = ended.error.or(first);
                }
                if ended.status == "failed" {
                    outcome.failed = true;
                }
            }
            // The entity or its rows are wrong (no such table, a column the target lacks):
            // rejected; drop the file again, corrected. Anything else is tried again next run.
            Err((2, why)) => {
                say(&format!("{entity}: rejected: {why}"));
                ended.status = "rejected".into();
                ended.error = Some(why.clone());
                outcome.rejected.push((entry.file.clone(), why));
            }
            Err((_, why)) => {
                say(&format!("{entity}: {why}"));
                ended.status = "failed".into();
                ended.error = Some(why);
                outcome.failed = true;
            }
        }
        ended.at = Utc::now();
        record(manifest, &ended).await?;
        outcome
            .migrated
            .push((entity.clone(), ended.status.clone()));
        ran += 1;
        if matches!(ended.status.as_str(), "failed" | "rejected") {
            blocked.push(entity.clone());
        }
    }
    Ok(ran)
}

/// The entity's unresolved refused rows, read once: written to `outbox/<entity>.quarantine.xlsx`
/// (with `download_quarantine`), and the first refusal returned for the manifest ("name is
/// required (and 2 more refused rows)").
async fn refused(
    dropbox: &Dropbox,
    pipeline: &crate::spec::Pipeline,
    entity: &str,
) -> Option<String> {
    let book = crate::book::Book::reader_for(&pipeline.state_dir, &pipeline.name);
    let rejected = match book.rejected(&crate::run::target_name(pipeline)).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {entity}: its refused rows cannot be read: {e}");
            return None;
        }
    };
    if dropbox.options.download_quarantine {
        let out = dropbox
            .outbox()
            .join(format!("{entity}{QUARANTINE_SUFFIX}"));
        let written = std::fs::create_dir_all(dropbox.outbox())
            .map_err(ferry_connectors::ConnectorError::from)
            .and_then(|()| crate::book::quarantine::export_xlsx(&rejected, &out));
        match written {
            Ok(()) => say(&format!(
                "{entity}: {} refused rows in {}; correct them and drop the file back into inbox/",
                rejected.rows.num_rows(),
                out.display()
            )),
            Err(e) => eprintln!(
                "error: {entity}: the refused rows could not be written to {}: {e}",
                out.display()
            ),
        }
    }
    let error = rejected.errors.first()?;
    Some(match rejected.errors.len() - 1 {
        0 => error.clone(),
        n => format!("{error} (and {n} more refused rows)"),
    })
}

/// A corrected quarantine workbook dropped back: its rows retried into the entity, as
/// `ferry quarantine retry --from` does.
async fn retry_quarantine(
    dropbox: &Dropbox,
    manifest: &Manifest,
    file: &inbox::Dropped,
    hash: &str,
    entity: &str,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let path = migrate::pipeline_path(dropbox, entity);
    let pipeline = match migrate::load_pipeline(dropbox, &path) {
        Ok(p) => p,
        Err(_) => {
            let why = format!(
                "{entity} has not been migrated by this dropbox: there is no quarantine to retry"
            );
            return reject(dropbox, manifest, file, hash, &why, outcome).await;
        }
    };
    let table = crate::run::target_name(&pipeline);
    let retried = crate::run::retry::retry(&pipeline, &table, Some(&file.path)).await;
    let to = inbox::move_into(&file.path, &dropbox.archive()).map_err(|e| e.to_string())?;
    let mut entry = Entry {
        file: file.name.clone(),
        hash: hash.to_string(),
        size: file.size as i64,
        entity: entity.to_string(),
        at: Utc::now(),
        archived_to: Some(to.display().to_string()),
        ..Default::default()
    };
    match retried {
        Ok(r) => {
            entry.status = if r.failed.is_empty() {
                "done"
            } else {
                "partial"
            }
            .into();
            entry.rows_written = Some(r.landed.len() as i64);
            entry.rows_quarantined = Some(r.failed.len() as i64);
            entry.error = r.failed.first().map(|(row, e)| format!("row {row}: {e}"));
            say(&format!(
                "{}: {} corrected rows landed in {entity}; {} refused again",
                file.name,
                r.landed.len(),
                r.failed.len()
            ));
            if !r.failed.is_empty() {
                outcome.partial = true;
                refused(dropbox, &pipeline, entity).await;
            } else {
                let _ = std::fs::remove_file(dropbox.outbox().join(&file.name));
            }
        }
        Err(e) => {
            entry.status = "failed".into();
            entry.error = Some(e.to_string());
            outcome.failed = true;
            say(&format!("{}: the retry failed: {e}", file.name));
        }
    }
    outcome
        .migrated
        .push((entity.to_string(), entry.status.clone()));
    record(manifest, &entry).await
}

/// Moves a file that cannot be taken to `rejected/` with its reason beside it, and records it.
async fn reject(
    dropbox: &Dropbox,
    manifest: &Manifest,
    file: &inbox::Dropped,
    hash: &str,
    why: &str,
    outcome: &mut Outcome,
) -> Result<(), String> {
    let to = inbox::reject(&file.path, &dropbox.rejected(), why).map_err(|e| e.to_string())?;
    say(&format!(
        "{}: rejected: {}",
        file.name,
        why.lines().next().unwrap_or(why)
    ));
    outcome.rejected.push((file.name.clone(), why.to_string()));
    record(
        manifest,
        &Entry {
            file: file.name.clone(),
            hash: hash.to_string(),
            size: file.size as i64,
            entity: stem(&file.name),
            status: "rejected".into(),
            at: Utc::now(),
            error: Some(why.to_string()),
            archived_to: Some(to.display().to_string()),
            ..Default::default()
        },
    )
    .await
}

async fn record(manifest: &Manifest, entry: &Entry) -> Result<(), String> {
    manifest
        .record(entry)
        .await
        .map_err(|e| format!("cannot record {} in the manifest: {e}", entry.file))
}

/// `accounts.xlsx` -> `accounts`.
pub fn stem(name: &str) -> String {
    Path::new(name)
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_else(|| name.to_string())
}
