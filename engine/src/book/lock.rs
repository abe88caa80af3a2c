//! One run of a pipeline at a time: a lock file under the state folder, created exclusively, holding
//! who took it. A lock left by a process that no longer exists (killed, machine rebooted) is taken over.

use std::io::Write;
use std::path::{Path, PathBuf};

use ferry_connectors::ConnectorError;

/// Held for the length of a run; released when dropped.
#[derive(Debug)]
pub struct RunLock {
    path: Option<PathBuf>,
}

impl RunLock {
    /// Takes the lock for `pipeline` under `state_dir`, or says who holds it.
    pub fn acquire(state_dir: &str, pipeline: &str) -> Result<RunLock, ConnectorError> {
        if ferry_connectors::files::is_url(state_dir) {
            tracing::warn!(
                state_dir,
                "no run lock on object stores yet: do not start two runs of one pipeline at once"
            );
            return Ok(RunLock { path: None });
        }
        let dir = Path::new(state_dir).join("locks");
        std::fs::create_dir_all(&dir)
            .map_err(|e| ConnectorError::fatal(format!("cannot create {}: {e}", dir.display())))?;
        let safe: String = pipeline
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        let path = dir.join(format!("{safe}.lock"));
        for _ in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)
            {
                Ok(mut file) => {
                    let holder = format!(
                        "{} {} {}",
                        std::process::id(),
                        hostname(),
                        chrono::Utc::now().to_rfc3339()
                    );
                    file.write_all(holder.as_bytes()).map_err(|e| {
                        ConnectorError::fatal(format!("cannot write {}: {e}", path.display()))
                    })?;
                    return Ok(RunLock { path: Some(path) });
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = std::fs::read_to_string(&path).unwrap_or_default();
                    let mut parts = holder.split_whitespace();
                    let pid: Option<u32> = parts.next().and_then(|p| p.parse().ok());
                    let host = parts.next().unwrap_or("?").to_string();
                    let since = parts.next().unwrap_or("?").to_string();
                    let alive = match pid {
                        Some(pid) if host == hostname() => {
                            Path::new(&format!("/proc/{pid}")).exists()
                        }
                        Some(_) => true,
                        None => false,
                    };
                    if alive {
                        return Err(ConnectorError::fatal(format!(
                            "pipeline \"{pipeline}\" is already running (process {} on {host}, since {since})",
                            pid.unwrap_or(0)
                        ))
                        .with_hint(format!(
                            "wait for it to finish; if that process is gone, delete {}",
                            path.display()
                        )));
                    }
                    tracing::info!(lock = %path.display(), "taking over the lock of a run that no longer exists");
                    let _ = std::fs::remove_file(&path);
                }
                Err(e) => {
                    return Err(ConnectorError::fatal(format!(
                        "cannot create {}: {e}",
                        path.display()
                    )));
                }
            }
        }
        Err(ConnectorError::fatal(format!(
            "cannot take the lock {}",
            path.display()
        )))
    }
}

impl Drop for RunLock {
    fn drop(&mut self) {
        if let Some(path) = &self.path {
            let _ = std::fs::remove_file(path);
        }
    }
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_string())
        .unwrap_or_else(|_| "localhost".to_string())
}
