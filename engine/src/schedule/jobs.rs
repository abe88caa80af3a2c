//! The jobs of a folder: every pipeline file in it (`*.toml`, not in subfolders) with a
//! `[schedule]` section; in an environment's catalogue (`environments/<env>/jobs/`), every job
//! file (`pipeline = "NAME"` and its `[schedule]`). A file that no longer parses keeps its last
//! good version in a running scheduler, with the error shown.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::spec::{Pipeline, Schedule};

/// A pipeline file and its schedule.
#[derive(Debug, Clone)]
pub struct Job {
    /// The pipeline's name (an environment's job: its file's name).
    pub name: String,
    /// The file that defines the job (its `[schedule]`).
    pub file: PathBuf,
    /// The pipeline file a fire runs: `file` itself, or the environment's pipeline it names.
    pub pipeline_file: PathBuf,
    /// That pipeline's name, under which its runs are kept.
    pub pipeline: String,
    /// A dropbox job: the `ferry` arguments that run it (instead of the pipeline).
    pub dropbox: Option<Vec<String>>,
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

/// The job a pipeline file (or a job file: an environment's, or a dropbox's) defines, `None` when
/// it has no `[schedule]`.
pub fn read_job(file: &Path) -> Result<Option<Job>, String> {
    let modified = modified(file);
    let in_jobs_folder = file
        .parent()
        .and_then(Path::file_name)
        .is_some_and(|f| f == "jobs");
    let env = match crate::environment::Project::of_file(file).filter(|_| in_jobs_folder) {
        Some(env) => Some(env?),
        None => None,
    };
    let text = std::fs::read_to_string(file).map_err(|e| format!("{}: {e}", file.display()))?;
    let is_job_file = env.is_some()
        || text
            .parse::<toml::Table>()
            .is_ok_and(|t| t.contains_key("dropbox") && !t.contains_key("name"));
    if is_job_file {
        let job =
            crate::spec::JobFile::parse(file, &text, env.as_ref()).map_err(|e| e.to_string())?;
        let name = file
            .file_stem()
            .unwrap_or_default()
            .to_string_lossy()
            .to_string();
        let state_dir = match &env {
            Some(env) => env.state_dir.display().to_string(),
            None => file
                .parent()
                .unwrap_or(Path::new("."))
                .join(".ferry")
                .display()
                .to_string(),
        };
        let (pipeline_file, pipeline, dropbox) = match job.runs {
            crate::spec::JobRuns::Pipeline { name, file } => {
                // Its name only: the pipeline is loaded (and its secrets read) by the run.
                let pipeline = std::fs::read_to_string(&file)
                    .ok()
                    .and_then(|t| t.parse::<toml::Table>().ok())
                    .and_then(|t| t.get("name")?.as_str().map(str::to_string))
                    .unwrap_or(name);
                (file, pipeline, None)
            }
            crate::spec::JobRuns::Dropbox { name, args } => {
                (file.to_path_buf(), format!("dropbox {name}"), Some(args))
            }
        };
        return Ok(Some(Job {
            name,
            file: file.to_path_buf(),
            pipeline_file,
            pipeline,
            dropbox,
            state_dir,
            schedule: job.schedule,
            modified,
        }));
    }
    let pipeline = Pipeline::load(file).map_err(|e| e.to_string())?;
    Ok(pipeline.schedule.map(|schedule| Job {
        name: pipeline.name.clone(),
        file: file.to_path_buf(),
        pipeline_file: file.to_path_buf(),
        pipeline: pipeline.name,
        dropbox: None,
        state_dir: pipeline.state_dir,
        schedule,
        modified,
    }))
}

/// `text` with `enabled = <enabled>` in its `[schedule]` table.
pub fn with_enabled(text: &str, enabled: bool) -> String {
    let mut out = Vec::new();
    let mut in_schedule = false;
    let mut done = false;
    let setting = format!("enabled = {enabled}");
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_schedule = trimmed.starts_with("[schedule]");
            out.push(line.to_string());
            if in_schedule && !done && !text_has_enabled_in_schedule(text) {
                out.push(setting.clone());
                done = true;
            }
            continue;
        }
        if in_schedule
            && !done
            && trimmed.starts_with("enabled")
            && trimmed[7..].trim_start().starts_with('=')
        {
            out.push(setting.clone());
            done = true;
            continue;
        }
        out.push(line.to_string());
    }
    out.join("\n") + "\n"
}

fn text_has_enabled_in_schedule(text: &str) -> bool {
    let mut in_schedule = false;
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('[') {
            in_schedule = trimmed.starts_with("[schedule]");
        } else if in_schedule
            && trimmed.starts_with("enabled")
            && trimmed[7..].trim_start().starts_with('=')
        {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::with_enabled;

    #[test]
    fn enabled_is_set_in_the_schedule_table_only() {
        let text = "name = \"x\"\n[target]\nenabled = 1\n[schedule]\ncron = \"* * * * *\"\n";
        let off = with_enabled(text, false);
        assert_eq!(
            off,
            "name = \"x\"\n[target]\nenabled = 1\n[schedule]\nenabled = false\ncron = \"* * * * *\"\n"
        );
        let on = with_enabled(&off, true);
        assert_eq!(
            on,
            "name = \"x\"\n[target]\nenabled = 1\n[schedule]\nenabled = true\ncron = \"* * * * *\"\n"
        );
    }
}
