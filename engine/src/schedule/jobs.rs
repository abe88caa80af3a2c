//! The jobs of a folder: every pipeline file in it (`*.toml`, not in subfolders) with a
//! `[schedule]` section. A file that no longer parses keeps its last good version in a running
//! scheduler, with the error shown.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::spec::{Pipeline, Schedule};

/// A pipeline file and its schedule.
#[derive(Debug, Clone)]
pub struct Job {
    /// The pipeline's name.
    pub name: String,
    pub file: PathBuf,
    /// Where its runs keep their bookkeeping.
    pub state_dir: String,
    pub schedule: Schedule,
    /// The file's modification time when it was read.
    pub modified: Option<SystemTime>,
}

/// What reading a folder found: the jobs, and the files that could not be read (with why).
#[derive(Debug, Default)]
pub struct Folder {
    pub jobs: Vec<Job>,
    pub broken: Vec<(PathBuf, String)>,
}

/// The pipeline files of `folder`, sorted by name.
pub fn pipeline_files(folder: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(folder)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    Ok(files)
}

/// The modification time of `file`, to tell when it changed.
pub fn modified(file: &Path) -> Option<SystemTime> {
    std::fs::metadata(file).and_then(|m| m.modified()).ok()
}

/// Reads every pipeline file of `folder`; files without `[schedule]` are not jobs.
pub fn read_folder(folder: &Path) -> Result<Folder, String> {
    let files = pipeline_files(folder)
        .map_err(|e| format!("cannot read the jobs folder {}: {e}", folder.display()))?;
    let mut found = Folder::default();
    for file in files {
        match read_job(&file) {
            Ok(Some(job)) => {
                if let Some(other) = found.jobs.iter().find(|j| j.name == job.name) {
                    let why = format!(
                        "the pipeline name \"{}\" is already {}'s: jobs need distinct names",
                        job.name,
                        other.file.display()
                    );
                    found.broken.push((file, why));
                } else {
                    found.jobs.push(job);
                }
            }
            Ok(None) => {}
            Err(e) => found.broken.push((file, e)),
        }
    }
    Ok(found)
}

/// The job a pipeline file defines, `None` when it has no `[schedule]`.
pub fn read_job(file: &Path) -> Result<Option<Job>, String> {
    let modified = modified(file);
    let pipeline = Pipeline::load(file).map_err(|e| e.to_string())?;
    Ok(pipeline.schedule.map(|schedule| Job {
        name: pipeline.name,
        file: file.to_path_buf(),
        state_dir: pipeline.state_dir,
        schedule,
        modified,
    }))
}
