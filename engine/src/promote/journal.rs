//! The log file of a promotion's completion or revert, `ferry_promote_YYYYMMDD_HHMMSS.log` under
//! the project's `.ferry/promotions/logs/`: Ferry's version, the environments, every operation
//! with its result, warnings for manual follow-up, errors. Written line by line, so a promotion
//! that dies leaves what it did.

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::Utc;

use super::record::Promotion;

pub struct LogFile {
    path: PathBuf,
    file: std::fs::File,
}

impl LogFile {
    pub fn create(dir: &Path, p: &Promotion, what: &str) -> std::io::Result<LogFile> {
        let dir = dir.join("logs");
        std::fs::create_dir_all(&dir)?;
        let stamp = Utc::now().format("%Y%m%d_%H%M%S");
        // Two in one second (a complete then a revert) get a suffix rather than share a file.
        let mut path = dir.join(format!("ferry_promote_{stamp}.log"));
        let mut n = 1;
        while path.exists() {
            n += 1;
            path = dir.join(format!("ferry_promote_{stamp}_{n}.log"));
        }
        let file = std::fs::File::create(&path)?;
        let mut log = LogFile { path, file };
        log.info(&format!(
            "Ferry {} - {what} promotion {} \"{}\": {} -> {} ({}), by {} (OS user {})",
            env!("CARGO_PKG_VERSION"),
            p.id,
            p.title,
            p.from,
            p.to,
            p.kinds.join(", "),
            p.who,
            p.os_user
        ));
        Ok(log)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn info(&mut self, text: &str) {
        self.line("INFO ", text);
    }

    pub fn warn(&mut self, text: &str) {
        self.line("WARN ", text);
    }

    pub fn error(&mut self, text: &str) {
        self.line("ERROR", text);
    }

    fn line(&mut self, level: &str, text: &str) {
        let at = Utc::now().format("%Y-%m-%dT%H:%M:%SZ");
        // A log line that cannot be written must not stop the promotion it describes.
        let _ = writeln!(self.file, "{at} {level} {text}");
    }
}
