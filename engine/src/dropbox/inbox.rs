//! What is in the inbox and ready: data files (xlsx, csv, parquet) and delivery JSONs, without the
//! files still being written (a temporary name such as `~$x.xlsx`, `x.part`, `x.tmp`, or a size or
//! time that changed within `stable_for`), and the moves out of it (to archive/ or rejected/,
//! under names that never collide).

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use sha2::{Digest, Sha256};

/// A file of the inbox that is ready to be taken.
#[derive(Debug, Clone)]
pub struct Dropped {
    pub path: PathBuf,
    /// The file's name, as the delivery's JSON names it.
    pub name: String,
    pub size: u64,
}

/// What the inbox holds now.
#[derive(Debug, Default)]
pub struct Inbox {
    pub data: Vec<Dropped>,
    pub configs: Vec<Dropped>,
    /// Names not taken yet: still being written, or of a kind Ferry does not read (with why).
    pub waiting: Vec<(String, String)>,
}

/// The formats a dropped file may have, by extension.
pub const DATA_EXTENSIONS: &[&str] = &["xlsx", "csv", "parquet"];

/// A name an editor or a copy gives a file while it is being written.
fn temporary(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    name.starts_with("~$")
        || name.starts_with('.')
        || [".part", ".tmp", ".crdownload", ".partial", ".download", "~"]
            .iter()
            .any(|end| lower.ends_with(end))
}

/// Reads the inbox; files changed within `stable_for` of now are waiting.
pub fn scan(inbox: &Path, stable_for: Duration) -> std::io::Result<Inbox> {
    let mut found = Inbox::default();
    let mut entries: Vec<PathBuf> = std::fs::read_dir(inbox)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    entries.sort();
    let now = SystemTime::now();
    for path in entries {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        if temporary(&name) {
            found
                .waiting
                .push((name, "a temporary name: still being written".into()));
            continue;
        }
        let Ok(meta) = std::fs::metadata(&path) else {
            continue;
        };
        let changed = meta
            .modified()
            .ok()
            .and_then(|m| now.duration_since(m).ok())
            .unwrap_or_default();
        if changed < stable_for {
            found.waiting.push((
                name,
                format!(
                    "changed {}s ago: waiting until it is stable",
                    changed.as_secs()
                ),
            ));
            continue;
        }
        let extension = path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default();
        let dropped = Dropped {
            path,
            name,
            size: meta.len(),
        };
        if extension == "json" {
            found.configs.push(dropped);
        } else if DATA_EXTENSIONS.contains(&extension.as_str()) {
            found.data.push(dropped);
        } else {
            found.waiting.push((
                dropped.name,
                format!(
                    "not a file Ferry reads (it takes {} and .json)",
                    DATA_EXTENSIONS.join(", ")
                ),
            ));
        }
    }
    Ok(found)
}

/// The SHA-256 of a file's content, in hex: the same content dropped twice is recognised.
pub fn content_hash(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(format!("{:x}", hasher.finalize()))
}

/// Moves `file` into `folder` as `<UTC time>-<name>` (a number added if that exists too);
/// returns where it went.
pub fn move_into(file: &Path, folder: &Path) -> std::io::Result<PathBuf> {
    std::fs::create_dir_all(folder)?;
    let name = file
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let stamp = chrono::Utc::now().format("%Y%m%dT%H%M%S%.3fZ");
    let mut to = folder.join(format!("{stamp}-{name}"));
    let mut n = 1;
    while to.exists() {
        n += 1;
        to = folder.join(format!("{stamp}-{n}-{name}"));
    }
    std::fs::rename(file, &to)?;
    Ok(to)
}

/// Moves a file that cannot be taken into `rejected/`, with `<name>.error.txt` beside it.
pub fn reject(file: &Path, rejected: &Path, why: &str) -> std::io::Result<PathBuf> {
    let to = move_into(file, rejected)?;
    let mut note = to.clone().into_os_string();
    note.push(".error.txt");
    std::fs::write(
        &note,
        format!("{why}\n\nCorrect the file and drop it into inbox/ again.\n"),
    )?;
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_of_files_being_written_are_temporary() {
        for name in [
            "~$accounts.xlsx",
            "accounts.xlsx.part",
            "a.tmp",
            ".hidden.csv",
            "x.crdownload",
        ] {
            assert!(temporary(name), "{name}");
        }
        for name in ["accounts.xlsx", "2026 contacts.csv", "config.json"] {
            assert!(!temporary(name), "{name}");
        }
    }
}
