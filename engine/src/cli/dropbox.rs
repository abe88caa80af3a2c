//! `ferry dropbox init | run | watch | status`: the command line of `crate::dropbox`.

use std::path::Path;
use std::process::ExitCode;

use super::INVALID;
use crate::dropbox::config::{Dropbox, template};
use crate::dropbox::manifest::{Manifest, latest};
use crate::environment::Environment;
use crate::run::report::thousands;

/// A dropbox folder's configuration; with `--env`, DIR is the name of one in the environment's
/// catalogue.
fn load(dir: &Path, env: Option<&Environment>) -> Result<Dropbox, ExitCode> {
    let loaded = match env {
        Some(env) => Dropbox::load_in(env, &dir.to_string_lossy()),
        None => Dropbox::load(dir),
    };
    loaded.map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(INVALID)
    })
}

pub fn init(dir: &Path, url: &str) -> ExitCode {
    let file = dir.join("dropbox.toml");
    if file.exists() {
        eprintln!("error: {} exists already; edit it", file.display());
        return ExitCode::from(INVALID);
    }
    let made = std::fs::create_dir_all(dir.join("inbox"))
        .and_then(|()| std::fs::write(&file, template(url)));
    match made {
        Ok(()) => {
            say!(
                "wrote {}; drop workbooks into {}, then: ferry dropbox run {}",
                file.display(),
                dir.join("inbox").display(),
                dir.display()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: cannot write {}: {e}", file.display());
            ExitCode::FAILURE
        }
    }
}

pub async fn run(dir: &Path, env: Option<&Environment>) -> ExitCode {
    let dropbox = match load(dir, env) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match crate::dropbox::run_once(&dropbox).await {
        Ok(outcome) => {
            say!(
                "dropbox {}: {} staged, {} migrated, {} duplicates, {} rejected, {} waiting",
                dropbox.name,
                outcome.staged.len(),
                outcome.migrated.len(),
                outcome.duplicates.len(),
                outcome.rejected.len(),
                outcome.waiting.len()
            );
            for (file, why) in &outcome.waiting {
                say!("  waiting  {file}: {why}");
            }
            for (file, why) in &outcome.rejected {
                say!("  rejected {file}: {}", why.lines().next().unwrap_or(why));
            }
            if outcome.failed {
                ExitCode::FAILURE
            } else if !outcome.rejected.is_empty() {
                ExitCode::from(INVALID)
            } else if outcome.partial {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            }
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn watch(dir: &Path, env: Option<&Environment>) -> ExitCode {
    let dropbox = match load(dir, env) {
        Ok(d) => d,
        Err(code) => return code,
    };
    match crate::dropbox::watch::watch(&dropbox).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

pub async fn status(dir: &Path, env: Option<&Environment>, json: bool) -> ExitCode {
    let dropbox = match load(dir, env) {
        Ok(d) => d,
        Err(code) => return code,
    };
    let entries = match Manifest::new(&dropbox.work()).entries().await {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    let current = latest(&entries);
    // When each file was first seen, and when it reached its latest status.
    let first_seen = |file: &str, hash: &str| {
        entries
            .iter()
            .find(|e| e.file == file && e.hash == hash)
            .map(|e| e.at)
    };
    if json {
        for e in &current {
            say!(
                "{}",
                serde_json::json!({
                    "file": e.file, "hash": e.hash, "size": e.size, "entity": e.entity,
                    "status": e.status, "seen": first_seen(&e.file, &e.hash).map(|t| t.to_rfc3339()),
                    "at": e.at.to_rfc3339(), "rows_staged": e.rows_staged,
                    "rows_written": e.rows_written, "rows_quarantined": e.rows_quarantined,
                    "run_id": e.run_id, "error": e.error, "archived_to": e.archived_to,
                })
            );
        }
        return ExitCode::SUCCESS;
    }
    if current.is_empty() {
        say!("nothing dropped into {} yet", dropbox.inbox().display());
        return ExitCode::SUCCESS;
    }
    let count = |n: Option<i64>| n.map_or("-".to_string(), |n| thousands(n as u64));
    say!(
        "{:<28} {:<16} {:<10} {:<17} {:>8} {:>8} {:>8}",
        "file",
        "entity",
        "status",
        "since (UTC)",
        "staged",
        "written",
        "refused"
    );
    for e in &current {
        say!(
            "{:<28} {:<16} {:<10} {:<17} {:>8} {:>8} {:>8}",
            e.file,
            e.entity,
            e.status,
            e.at.format("%Y-%m-%d %H:%M"),
            count(e.rows_staged),
            count(e.rows_written),
            count(e.rows_quarantined)
        );
        if let Some(error) = &e.error {
            let first: String = error
                .lines()
                .next()
                .unwrap_or("")
                .chars()
                .take(110)
                .collect();
            say!("{:<28} {first}", "");
        }
    }
    ExitCode::SUCCESS
}
