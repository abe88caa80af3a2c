//! One run of a pipeline at a time: an exclusive lock (flock) on a file under the state folder, which
//! the kernel releases when the process ends however it ends, so a killed run's lock is never stale
//! and two runs can never both take it over. The file also says who holds it, for the message.
//! On object storage, where there is no flock, the lock is a lease (see [`super::lease`]).

use std::fs::{File, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::Path;

use ferry_connectors::ConnectorError;

use super::lease::Lease;

/// Held for the length of a run; released when dropped (or when the process dies).
#[derive(Debug)]
pub enum RunLock {
    File(File),
    Lease(Lease),
}

impl RunLock {
    /// Takes the lock for `pipeline` under `state_dir`, or says who holds it.
    pub async fn acquire(state_dir: &str, pipeline: &str) -> Result<RunLock, ConnectorError> {
        if !ferry_connectors::files::is_url(state_dir) {
            return RunLock::acquire_file(state_dir, pipeline);
        }
        let (store, root) = ferry_connectors::files::stores::store_at(state_dir)?;
        let path =
            object_store::path::Path::from(format!("{root}/locks/{}.lease", file_name(pipeline)));
        let what = format!("pipeline \"{pipeline}\"");
        Ok(RunLock::Lease(Lease::take(store, path, &what).await?))
    }

    /// Takes the lock file for `pipeline` under the folder `state_dir`, or says who holds it.
    pub fn acquire_file(state_dir: &str, pipeline: &str) -> Result<RunLock, ConnectorError> {
        let safe = file_name(pipeline);
        let dir = Path::new(state_dir).join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| ConnectorError::fatal(format!("cannot create {}: {e}", dir.display())))?;
        let path = dir.join(format!("{safe}.lock"));
        let cannot = |e: std::io::Error| {
            ConnectorError::fatal(format!("cannot use the lock {}: {e}", path.display()))
        };
        // Never removed: a lock on a file that someone deleted and re-created would lock nothing.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(cannot)?;
        // A holder with this process's own id is an earlier run of this process whose lock file a
        // child forked meanwhile (by a test harness or a scheduler starting a program) still holds
        // between its fork and its exec: that ends in moments, so wait for it briefly.
        let mut waited = 0;
        let locked = loop {
            match file.try_lock() {
                Err(TryLockError::WouldBlock)
                    if waited < 40 && holder_is_this_process(&mut file) =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(25));
                    waited += 1;
                }
                other => break other,
            }
        };
        match locked {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.rewind();
                let _ = file.read_to_string(&mut holder);
                let mut parts = holder.split_whitespace();
                let pid = parts.next().unwrap_or("?").to_string();
                let host = parts.next().unwrap_or("?").to_string();
                let since = parts.next().unwrap_or("?").to_string();
                return Err(ConnectorError::retryable(format!(
                    "pipeline \"{pipeline}\" is already running (process {pid} on {host}, since {since})"
                ))
                .with_hint("wait for it to finish, or stop that process; its lock ends with it"));
            }
            Err(TryLockError::Error(e)) => return Err(cannot(e)),
        }
        let holder = format!(
            "{} {} {}",
            std::process::id(),
            hostname(),
            chrono::Utc::now().to_rfc3339()
        );
        file.set_len(0).map_err(cannot)?;
        file.rewind().map_err(cannot)?;
        file.write_all(holder.as_bytes()).map_err(cannot)?;
        file.flush().map_err(cannot)?;
        Ok(RunLock::File(file))
    }

    /// Resolves (with why) if the lock is lost while held: a lease taken by another process or not
    /// renewed in time. A file lock is never lost.
    pub async fn lost(&self) -> String {
        match self {
            RunLock::File(_) => std::future::pending().await,
            RunLock::Lease(lease) => lease.lost().await,
        }
    }

    /// Lets the lock go now (a lease is released on the store, not left to expire).
    pub async fn release(self) {
        if let RunLock::Lease(lease) = self {
            lease.release().await;
        }
    }
}

/// A pipeline's name as a file name: letters, digits, - and _ kept, anything else _.
pub(crate) fn file_name(pipeline: &str) -> String {
    pipeline
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// Whether the lock file names this process as its holder.
fn holder_is_this_process(file: &mut File) -> bool {
    let mut holder = String::new();
    let read = file
        .rewind()
        .and_then(|()| file.read_to_string(&mut holder));
    read.is_ok()
        && holder.split_whitespace().next() == Some(std::process::id().to_string().as_str())
}

pub(super) fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many takers at once, over a lock file a dead run left: exactly one gets it; and once it is
    /// released the next one does.
    #[test]
    fn exactly_one_run_takes_the_lock() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap().to_string();
        std::fs::create_dir_all(dir.path().join("locks")).unwrap();
        std::fs::write(dir.path().join("locks/p.lock"), "999999 gone 2026-01-01").unwrap();
        let barrier = std::sync::Arc::new(std::sync::Barrier::new(8));
        let takers: Vec<_> = (0..8)
            .map(|_| {
                let (state, barrier) = (state.clone(), barrier.clone());
                std::thread::spawn(move || {
                    barrier.wait();
                    let lock = RunLock::acquire_file(&state, "p");
                    // Longer than a taker waits for a holder of this same process (1 s).
                    std::thread::sleep(std::time::Duration::from_millis(1500));
                    lock.is_ok()
                })
            })
            .collect();
        let held = takers
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(held, 1);
        let again = RunLock::acquire_file(&state, "p").unwrap();
        let refused = RunLock::acquire_file(&state, "p").unwrap_err();
        assert!(
            refused.message.contains("is already running (process"),
            "{refused}"
        );
        drop(again);
        assert!(RunLock::acquire_file(&state, "p").is_ok());
    }

    /// A lock this process released, while a forked child still holds a copy of its descriptor
    /// for a moment (here: another descriptor of this process, let go 200 ms later), is taken once
    /// it is free, not refused as "already running".
    #[test]
    fn a_lock_held_a_moment_longer_by_this_process_is_waited_for() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().to_str().unwrap().to_string();
        let first = RunLock::acquire_file(&state, "p").unwrap();
        let copy = std::fs::File::open(dir.path().join("locks/p.lock")).unwrap();
        // The first run ends; the copy (the child's) keeps the lock for a moment.
        drop(first);
        copy.try_lock().unwrap();
        let child = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(200));
            drop(copy);
        });
        assert!(RunLock::acquire_file(&state, "p").is_ok());
        child.join().unwrap();
    }
}
