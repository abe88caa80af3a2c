//! Environments: a project folder's `environments.toml` names dev, test and prod (any names), and
//! each has a catalogue under `environments/<name>/`: its connections, pipelines, jobs and dropbox
//! configurations, one TOML file an asset (git-friendly, one diff a change). A pipeline file in a
//! catalogue is that environment's: it names connections by name, and `${vars.NAME}` and
//! `${secret.NAME}` resolve there; its bookkeeping goes to the environment's own state dir, so runs
//! of two environments never mix.
//!
//! ```text
//! project/
//!   environments.toml                [environments.dev] state_dir, secrets_file | secrets_command,
//!                                    runners, promoters, [environments.dev.vars]
//!   environments/dev/connections/crm.toml   url = "${vars.crm_url}", password = "${secret.crm}"
//!   environments/dev/pipelines/accounts.toml  [target] connection = "crm"
//!   environments/dev/jobs/nightly.toml        pipeline = "accounts", [schedule] cron = ...
//!   environments/dev/dropbox/intake.toml      a dropbox.toml whose connection is named
//! ```

mod identity;
mod secrets;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use self::identity::Identity;
pub use self::secrets::{Secrets, literal_secrets};

/// The project file.
pub const FILE: &str = "environments.toml";
/// The folder of the catalogues, beside it.
pub const CATALOGUES: &str = "environments";

/// What an environment's catalogue holds, in the order a promotion creates them (what comes later
/// may need what comes before).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum AssetKind {
    Connections,
    Pipelines,
    Jobs,
    Dropbox,
}

impl AssetKind {
    pub const ALL: [AssetKind; 4] = [
        AssetKind::Connections,
        AssetKind::Pipelines,
        AssetKind::Jobs,
        AssetKind::Dropbox,
    ];

    /// Its folder in a catalogue, and how the command line names the type.
    pub fn folder(self) -> &'static str {
        match self {
            AssetKind::Connections => "connections",
            AssetKind::Pipelines => "pipelines",
            AssetKind::Jobs => "jobs",
            AssetKind::Dropbox => "dropbox",
        }
    }

    /// One of them, in a sentence.
    pub fn one(self) -> &'static str {
        match self {
            AssetKind::Connections => "connection",
            AssetKind::Pipelines => "pipeline",
            AssetKind::Jobs => "job",
            AssetKind::Dropbox => "dropbox",
        }
    }

    pub fn parse(text: &str) -> Result<AssetKind, String> {
        let text = text.trim().to_ascii_lowercase();
        AssetKind::ALL
            .into_iter()
            .find(|k| k.folder() == text || k.one() == text)
            .ok_or_else(|| {
                format!("\"{text}\" is not an asset type: connections, pipelines, jobs or dropbox")
            })
    }
}

/// `environments.toml` and where it is.
#[derive(Debug, Clone)]
pub struct Project {
    pub root: PathBuf,
    pub environments: BTreeMap<String, Environment>,
}

/// One environment: where its catalogue and bookkeeping are, its values, its secrets and its roles.
#[derive(Debug, Clone)]
pub struct Environment {
    pub name: String,
    pub description: Option<String>,
    pub project: PathBuf,
    /// Its runs' bookkeeping (default `<project>/.ferry/<name>`).
    pub state_dir: PathBuf,
    /// `${vars.NAME}`: settings that differ between environments and are not secret (a host, a
    /// database's name, a folder).
    pub vars: BTreeMap<String, String>,
    /// Where `${secret.NAME}` is read.
    pub secrets: Secrets,
    /// Who may run pipelines here (`None`: anyone).
    pub runners: Option<Vec<String>>,
    /// Who may promote into this environment (`None`: anyone).
    pub promoters: Option<Vec<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProject {
    #[serde(default)]
    environments: BTreeMap<String, RawEnvironment>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEnvironment {
    description: Option<String>,
    state_dir: Option<String>,
    secrets_file: Option<String>,
    secrets_command: Option<Vec<String>>,
    runners: Option<Vec<String>>,
    promoters: Option<Vec<String>>,
    #[serde(default)]
    vars: BTreeMap<String, String>,
}

impl Project {
    /// The project folder at or above `start` (the folder with `environments.toml`).
    pub fn find(start: &Path) -> Option<PathBuf> {
        let start = std::path::absolute(start).ok()?;
        start
            .ancestors()
            .find(|dir| dir.join(FILE).is_file())
            .map(Path::to_path_buf)
    }

    /// The project `--project` names, or the one the current folder is in.
    pub fn locate(given: Option<&Path>) -> Result<Project, String> {
        let root = match given {
            Some(dir) => std::path::absolute(dir).map_err(|e| format!("{}: {e}", dir.display()))?,
            None => {
                let here = std::env::current_dir().map_err(|e| e.to_string())?;
                Project::find(&here).ok_or_else(|| {
                    format!(
                        "no {FILE} in {} or any folder above it: run from a project folder, or \
                         name one with --project DIR (`ferry env init DIR` starts one)",
                        here.display()
                    )
                })?
            }
        };
        Project::load(&root)
    }

    pub fn load(root: &Path) -> Result<Project, String> {
        let file = root.join(FILE);
        let text = std::fs::read_to_string(&file)
            .map_err(|e| format!("cannot read {}: {e}", file.display()))?;
        let raw: RawProject =
            toml::from_str(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let mut environments = BTreeMap::new();
        for (name, env) in raw.environments {
            if !is_asset_name(&name) {
                return Err(format!(
                    "{}: [environments.{name}]: an environment's name is letters, digits, - and _",
                    file.display()
                ));
            }
            let secrets =
                Secrets::from_settings(root, &name, env.secrets_file, env.secrets_command)
                    .map_err(|e| format!("{}: [environments.{name}] {e}", file.display()))?;
            let state_dir = match env.state_dir {
                Some(dir) => root.join(dir),
                None => root.join(".ferry").join(&name),
            };
            environments.insert(
                name.clone(),
                Environment {
                    name,
                    description: env.description,
                    project: root.to_path_buf(),
                    state_dir,
                    vars: env.vars,
                    secrets,
                    runners: env.runners,
                    promoters: env.promoters,
                },
            );
        }
        if environments.is_empty() {
            return Err(format!(
                "{} names no environment: add [environments.dev] (and test, prod...)",
                file.display()
            ));
        }
        Ok(Project {
            root: root.to_path_buf(),
            environments,
        })
    }

    /// The environment called `name`, or an error with the nearest name.
    pub fn environment(&self, name: &str) -> Result<&Environment, String> {
        self.environments.get(name).ok_or_else(|| {
            let names = self.environments.keys().map(String::as_str);
            match crate::spec::did_you_mean(name, names.clone()) {
                Some(m) => format!("there is no environment \"{name}\": did you mean \"{m}\"?"),
                None => format!(
                    "there is no environment \"{name}\" in {}: {}",
                    self.root.join(FILE).display(),
                    names.collect::<Vec<_>>().join(", ")
                ),
            }
        })
    }

    /// The environment a catalogue file belongs to (`<project>/environments/<env>/<kind>/<file>`),
    /// `None` for a file outside every catalogue.
    pub fn of_file(file: &Path) -> Option<Result<Environment, String>> {
        let file = std::path::absolute(file).ok()?;
        let kind_dir = file.parent()?;
        let env_dir = kind_dir.parent()?;
        let catalogues = env_dir.parent()?;
        if catalogues.file_name()? != CATALOGUES || !catalogues.parent()?.join(FILE).is_file() {
            return None;
        }
        AssetKind::parse(&kind_dir.file_name()?.to_string_lossy()).ok()?;
        let name = env_dir.file_name()?.to_string_lossy().to_string();
        Some(Project::load(catalogues.parent()?).and_then(|p| {
            p.environments.get(&name).cloned().ok_or_else(|| {
                format!(
                    "{} is in the catalogue of \"{name}\", which {FILE} does not name",
                    file.display()
                )
            })
        }))
    }
}

impl Environment {
    /// Its catalogue folder.
    pub fn dir(&self) -> PathBuf {
        self.project.join(CATALOGUES).join(&self.name)
    }

    pub fn asset_file(&self, kind: AssetKind, name: &str) -> PathBuf {
        self.dir().join(kind.folder()).join(format!("{name}.toml"))
    }

    /// The names of its assets of one kind, sorted.
    pub fn assets(&self, kind: AssetKind) -> Vec<String> {
        let Ok(entries) = std::fs::read_dir(self.dir().join(kind.folder())) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_file() && p.extension().is_some_and(|e| e == "toml"))
            .filter_map(|p| Some(p.file_stem()?.to_string_lossy().to_string()))
            .collect();
        names.sort();
        names
    }

    /// The text of an asset's file, `None` when the catalogue does not have it.
    pub fn asset_text(&self, kind: AssetKind, name: &str) -> Result<Option<String>, String> {
        let file = self.asset_file(kind, name);
        match std::fs::read_to_string(&file) {
            Ok(text) => Ok(Some(text)),
            // A file where the kind's folder should be: the catalogue has no such asset.
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                Ok(None)
            }
            Err(e) => Err(format!("cannot read {}: {e}", file.display())),
        }
    }

    /// Resolves `${vars.NAME}` (anywhere) and `${secret.NAME}` (where `secret_allowed`); `None`
    /// for any other reference, which the caller resolves as outside an environment.
    pub fn reference(
        &self,
        name: &str,
        secret_allowed: bool,
    ) -> Option<Result<String, ferry_connectors::secret::Unresolved>> {
        use ferry_connectors::secret::Unresolved;
        if let Some(var) = name.strip_prefix("vars.") {
            return Some(
                self.vars
                    .get(var)
                    .cloned()
                    .ok_or_else(|| Unresolved::Failed {
                        why: format!("environment \"{}\" has no var {var}", self.name),
                        hint: format!(
                            "add {var} = \"...\" under [environments.{}.vars] in {FILE}",
                            self.name
                        ),
                    }),
            );
        }
        let secret = name.strip_prefix("secret.")?;
        if !secret_allowed {
            return Some(Err(Unresolved::Failed {
                why: format!("${{secret.{secret}}} is read only in user, password, token, client_id and client_secret"),
                hint: "put the secret in its own key (password = \"${secret.NAME}\"), not in a url or a path".into(),
            }));
        }
        Some(self.secrets.resolve(&self.name, secret))
    }

    /// Refuses `who` unless the environment lets them run pipelines.
    pub fn check_runner(&self, who: &Identity) -> Result<(), String> {
        self.check_role(who, self.runners.as_deref(), "run pipelines in", "runners")
    }

    /// Refuses `who` unless the environment lets them promote into it.
    pub fn check_promoter(&self, who: &Identity) -> Result<(), String> {
        self.check_role(who, self.promoters.as_deref(), "promote into", "promoters")
    }

    fn check_role(
        &self,
        who: &Identity,
        list: Option<&[String]>,
        what: &str,
        role: &str,
    ) -> Result<(), String> {
        if who.is_in(list) {
            return Ok(());
        }
        Err(format!(
            "{} may not {what} \"{}\" ({role}: {})",
            who.user,
            self.name,
            list.unwrap_or_default().join(", ")
        ))
    }
}

/// Asset and environment names become file names: letters, digits, `-` and `_`.
pub fn is_asset_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_catalogue_file_knows_its_environment() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(FILE),
            "[environments.dev]\n[environments.dev.vars]\nhost = \"h\"\n",
        )
        .unwrap();
        let file = dir.path().join("environments/dev/pipelines/a.toml");
        let env = Project::of_file(&file).unwrap().unwrap();
        assert_eq!(env.name, "dev");
        assert_eq!(env.state_dir, dir.path().join(".ferry/dev"));
        assert!(matches!(env.reference("vars.host", false), Some(Ok(h)) if h == "h"));
        assert!(env.reference("HOME", true).is_none());
        let other = dir.path().join("environments/qa/pipelines/a.toml");
        assert!(Project::of_file(&other).unwrap().is_err());
        assert!(Project::of_file(&dir.path().join("pipelines/a.toml")).is_none());
    }

    #[test]
    fn asset_types_read_both_ways() {
        assert_eq!(AssetKind::parse("pipeline").unwrap(), AssetKind::Pipelines);
        assert_eq!(AssetKind::parse("Jobs").unwrap(), AssetKind::Jobs);
        assert!(
            AssetKind::parse("models")
                .unwrap_err()
                .contains("connections")
        );
    }
}
