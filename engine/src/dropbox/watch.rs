//! `ferry dropbox watch DIR`: the dropbox processed each time its inbox settles. Woken by the
//! file system's events (inotify and its kin, through `notify`), not by polling: a drop is taken
//! `stable_for` after its last change, and a file still changing is looked at again then.

use std::time::Duration;

use notify::{RecursiveMode, Watcher};
use tokio::time::Instant;

use super::config::Dropbox;

/// Processes the inbox now and after every change, until Ctrl-C or SIGTERM.
pub async fn watch(dropbox: &Dropbox) -> Result<(), String> {
    std::fs::create_dir_all(dropbox.inbox())
        .map_err(|e| format!("cannot create {}: {e}", dropbox.inbox().display()))?;
    let (events, mut changed) = tokio::sync::mpsc::unbounded_channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if event.is_ok() {
            let _ = events.send(());
        }
    })
    .map_err(|e| format!("cannot watch {}: {e}", dropbox.inbox().display()))?;
    watcher
        .watch(&dropbox.inbox(), RecursiveMode::NonRecursive)
        .map_err(|e| format!("cannot watch {}: {e}", dropbox.inbox().display()))?;
    println!(
        "watching {} (a file is taken {} after its last change; Ctrl-C stops)",
        dropbox.inbox().display(),
        crate::run::report::human_duration(dropbox.stable_for())
    );
    let settle = dropbox.stable_for() + Duration::from_millis(100);
    // Process what is there already.
    let mut due = Some(Instant::now());
    let stop = crate::run::stop_requested();
    tokio::pin!(stop);
    loop {
        let wake = due.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        tokio::select! {
            _ = &mut stop => return Ok(()),
            event = changed.recv() => {
                if event.is_none() {
                    return Err("the file system watch ended".into());
                }
                due = Some(Instant::now() + settle);
            }
            _ = tokio::time::sleep_until(wake), if due.is_some() => {
                due = None;
                let outcome = super::run_once(dropbox).await?;
                // Files still changing are looked at again once they may have settled (a
                // temporary name's rename is an event of its own).
                if outcome.waiting.iter().any(|(_, why)| why.starts_with("changed")) {
                    due = Some(Instant::now() + settle);
                }
            }
        }
    }
}
