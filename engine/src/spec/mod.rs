//! Pipeline files, in two stages: `raw` is what the user wrote (serde, unknown keys refused, spans
//! kept); this module turns it into a [`Pipeline`] that means something: paths resolved against the
//! pipeline file's folder, names checked, `@resultN` replaced, modes and keys verified. Every problem
//! becomes a [`SpecError`] naming the file, the line and the fix, and all of them are reported at once.
//!
//! ```text
//! raw.rs          the file as written          connections.rs  [connections] (their connectors read
//! mod.rs          the model, the Checker                       their keys), Settings for them
//! error.rs        errors at their lines        sources.rs      [sources]
//!                                              steps.rs        [[steps]]
//!                                              target.rs       [target]
//!                                              run_options.rs  [run], durations
//!                                              schedule.rs     [schedule]
//! ```

mod connections;
mod error;
pub mod params;
mod raw;
mod run_options;
mod schedule;
mod sources;
mod steps;
mod target;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use ferry_connectors::connector::{Keys, UnknownKey};
use ferry_connectors::files::source::FileSource;
use ferry_connectors::secret;
use ferry_connectors::{Connection, Destination, Read, Reader, TargetOptions, WriteMode};
use serde::Deserialize;
use toml::Spanned;

use self::connections::referenced_connections;
pub use self::error::{Locator, SpecError, SpecErrors, did_you_mean};
use self::raw::RawPipeline;
pub use self::run_options::parse_duration;
pub use self::schedule::{Alert, CatchUp, JobFile, JobRuns, Overlap, Schedule};

/// A pipeline, validated: everything here has been checked against everything else.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    /// The pipeline file.
    pub file: PathBuf,
    /// Where bookkeeping goes (default: `.ferry` beside the pipeline file).
    pub state_dir: String,
    /// Each made by its connector from its keys.
    pub connections: BTreeMap<String, Arc<dyn Connection>>,
    pub sources: Vec<Source>,
    pub steps: Vec<Step>,
    pub target: Target,
    pub run: RunOptions,
    /// `[schedule]`: when `ferry schedule` runs it.
    pub schedule: Option<Schedule>,
    /// `[params]`: the declared parameters and their defaults.
    pub params: BTreeMap<String, params::Value>,
    /// The values `${...}` were filled with ([`Pipeline::fill`]), as a person reads them; empty
    /// before filling or without placeholders. Part of the run's identity.
    pub filled: Vec<(String, String)>,
    /// Maps byte offsets to lines for errors found later (SQL planning).
    pub locator: Locator,
    /// The environment whose catalogue holds the file, when one does.
    pub environment: Option<crate::environment::Environment>,
}

#[derive(Debug, Clone)]
pub struct Source {
    /// The table name the steps use (lower case, as SQL folds unquoted names).
    pub name: String,
    pub origin: Origin,
    /// `incremental = true`: each run reads only the files no earlier run consumed.
    pub incremental: Option<OnChangedFile>,
    /// Where `[sources.<name>]` stands.
    pub span: std::ops::Range<usize>,
}

/// Where a source's rows come from.
#[derive(Debug, Clone)]
pub enum Origin {
    File(FileSource),
    /// A table or query of a connection that can be read.
    Database {
        reader: Arc<dyn Reader>,
        read: Read,
    },
}

/// What an incremental run does with a consumed file that has changed since.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnChangedFile {
    /// Stop before writing anything, and say which file changed (the default).
    Stop,
    /// Read it again.
    Reprocess,
}

#[derive(Debug, Clone)]
pub struct Step {
    pub name: String,
    pub description: Option<String>,
    /// The SQL with `@resultN` replaced by the step names.
    pub sql: String,
    /// Where the `sql` value starts in the file.
    pub sql_span: std::ops::Range<usize>,
    /// The database the SQL runs on, whole, when it is not DataFusion.
    pub connection: Option<Arc<dyn Reader>>,
}

#[derive(Debug, Clone)]
pub struct Target {
    /// Where the rows go, made by the connector (or the file connectors for a path).
    pub destination: Arc<dyn Destination>,
    pub options: TargetOptions,
    pub batch_size: usize,
    pub workers: usize,
    pub span: std::ops::Range<usize>,
}

#[derive(Debug, Clone)]
pub struct RunOptions {
    pub max_retries: u32,
    /// Stop the run after this many rejected rows in a row.
    pub max_consecutive_failures: u64,
    pub timeout: Duration,
    /// Check the target before writing anything.
    pub validate: bool,
    /// Compare the target with the source's result after a completed run.
    pub reconcile: Option<crate::run::reconcile::Depth>,
    /// The `ferry worker`s that run the steps' plans with this process (empty: this process alone).
    pub cluster: Vec<url::Url>,
}

impl Pipeline {
    /// Reads and validates a pipeline file.
    pub fn load(file: &Path) -> Result<Pipeline, SpecErrors> {
        Self::load_in(file, None)
    }

    /// Reads and validates a pipeline file in `environment` (a generated pipeline outside the
    /// catalogue, such as a dropbox entity's); `None`: the environment its path says, if any.
    pub fn load_in(
        file: &Path,
        environment: Option<&crate::environment::Environment>,
    ) -> Result<Pipeline, SpecErrors> {
        let text = std::fs::read_to_string(file).map_err(|e| {
            let hint = match std::fs::read_dir(file.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."))) {
                Ok(entries) => {
                    let pipelines: Vec<String> = entries
                        .flatten()
                        .map(|e| e.file_name().to_string_lossy().to_string())
                        .filter(|n| n.ends_with(".toml"))
                        .take(5)
                        .collect();
                    if pipelines.is_empty() {
                        "check the path; `ferry run --help` shows an example pipeline".to_string()
                    } else {
                        format!("pipeline files in that folder: {}", pipelines.join(", "))
                    }
                }
                Err(_) => "check the path (the folder does not exist either); `ferry run --help` shows an example pipeline".to_string(),
            };
            SpecErrors(vec![
                Locator::new(file, "")
                    .whole_file(format!("cannot read the pipeline file: {e}"))
                    .hint(hint),
            ])
        })?;
        if file
            .extension()
            .is_some_and(|e| !e.eq_ignore_ascii_case("toml"))
            && toml::from_str::<toml::Table>(&text).is_err()
        {
            return Err(SpecErrors(vec![
                Locator::new(file, &text)
                    .whole_file("this is not a pipeline file (pipeline files are TOML)")
                    .hint("a data file is named in a pipeline's [sources]; run the pipeline file, e.g. `ferry run pipelines/quickstart.toml`"),
            ]));
        }
        match environment {
            Some(env) => Self::parse_in(file, &text, Some(env.clone())),
            None => Self::parse(file, &text),
        }
    }

    /// Validates a pipeline file's text; `file` locates relative paths and names the file in errors
    /// (and, when it is in an environment's catalogue, the environment).
    pub fn parse(file: &Path, text: &str) -> Result<Pipeline, SpecErrors> {
        let environment = match crate::environment::Project::of_file(file) {
            None => None,
            Some(Ok(env)) => Some(env),
            Some(Err(e)) => return Err(SpecErrors(vec![Locator::new(file, text).whole_file(e)])),
        };
        Self::parse_in(file, text, environment)
    }

    fn parse_in(
        file: &Path,
        text: &str,
        environment: Option<crate::environment::Environment>,
    ) -> Result<Pipeline, SpecErrors> {
        let locator = Locator::new(file, text);
        // Parsed once, every value with its place: the generic keys are read from it here, and
        // connectors read their own from the same tables.
        let toml_errors = |e: toml::de::Error| SpecErrors(vec![toml_error(&locator, &e)]);
        let mut tables = toml::de::DeTable::parse(text).map_err(toml_errors)?;
        let raw = RawPipeline::deserialize(toml::de::Deserializer::from(tables.clone()))
            .map_err(toml_errors)?;
        let keys = PlacedKeys {
            connections: take_table(&mut tables, "connections")
                .map(|c| {
                    c.into_inner()
                        .into_iter()
                        .filter_map(|(name, value)| {
                            let table = as_table(value)?;
                            Some((name.into_inner().into_owned(), table))
                        })
                        .collect()
                })
                .unwrap_or_default(),
            target: take_table(&mut tables, "target")
                .unwrap_or_else(|| Spanned::new(0..0, Default::default())),
        };
        // Relative paths are from the pipeline file's folder; in an environment, from the project's.
        let dir = match &environment {
            Some(env) => env.project.clone(),
            None => std::path::absolute(file)
                .ok()
                .and_then(|p| p.parent().map(Path::to_path_buf))
                .unwrap_or_else(|| PathBuf::from(".")),
        };
        let mut cx = Checker::new(&locator, &dir, environment.as_ref());
        let pipeline = cx.pipeline(raw, keys, file);
        if cx.errors.is_empty() {
            Ok(pipeline.expect("no errors means a pipeline"))
        } else {
            Err(SpecErrors(cx.errors))
        }
    }

    /// The file of the pipeline's folder a relative path means.
    pub fn dir(&self) -> PathBuf {
        std::path::absolute(&self.file)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."))
    }

    /// Every table name the steps can use, in the order they become available.
    pub fn table_names(&self) -> Vec<&str> {
        self.sources
            .iter()
            .map(|s| s.name.as_str())
            .chain(self.steps.iter().map(|s| s.name.as_str()))
            .collect()
    }
}

/// The tables of the file that connectors read, with every key's and value's place in the file.
struct PlacedKeys<'a> {
    connections: BTreeMap<String, Keys<'a>>,
    target: Keys<'a>,
}

/// Takes the table `name` out of `tables`, when it is one.
fn take_table<'a>(tables: &mut Keys<'a>, name: &str) -> Option<Keys<'a>> {
    let key = tables
        .get_ref()
        .keys()
        .find(|k| k.get_ref() == name)?
        .clone();
    as_table(tables.get_mut().remove(&key)?)
}

fn as_table(value: Spanned<toml::de::DeValue<'_>>) -> Option<Keys<'_>> {
    let span = value.span();
    match value.into_inner() {
        toml::de::DeValue::Table(t) => Some(Spanned::new(span, t)),
        _ => None,
    }
}

/// Collects errors while building the pipeline, so that all of them are reported together.
struct Checker<'a> {
    loc: &'a Locator,
    dir: &'a Path,
    errors: Vec<SpecError>,
    /// Every connection the file declares, valid or not: a reference to one whose own lines are
    /// wrong is not reported a second time.
    declared: Vec<String>,
    /// `[params]`, read before the SQL that names them.
    params: BTreeMap<String, params::Value>,
    /// The environment whose catalogue holds the file: its connections, vars and secrets.
    environment: Option<&'a crate::environment::Environment>,
}

impl<'a> Checker<'a> {
    fn new(
        loc: &'a Locator,
        dir: &'a Path,
        environment: Option<&'a crate::environment::Environment>,
    ) -> Self {
        Checker {
            loc,
            dir,
            errors: Vec::new(),
            declared: Vec::new(),
            params: BTreeMap::new(),
            environment,
        }
    }
}

impl Checker<'_> {
    fn pipeline(
        &mut self,
        mut raw: RawPipeline,
        mut keys: PlacedKeys<'_>,
        file: &Path,
    ) -> Option<Pipeline> {
        let referenced = referenced_connections(&raw, &keys.target);
        let name_span = raw.name.span();
        let name = raw.name.into_inner();
        if name.trim().is_empty() {
            self.errors.push(
                self.loc
                    .error(name_span, "the pipeline's name is empty")
                    .hint("name = \"orders-summary\""),
            );
        }
        self.params = self.params(raw.params);
        let state_dir = match (raw.state_dir.take(), self.environment) {
            (Some(s), Some(env)) => {
                self.errors.push(self.loc.error(s.span(), format!("in an environment, bookkeeping goes to the environment's state dir ({})", env.state_dir.display()))
                    .hint(format!("remove state_dir; set state_dir under [environments.{}] in environments.toml", env.name)));
                String::new()
            }
            (Some(s), None) => self.resolve_location(s.get_ref()),
            (None, Some(env)) => env.state_dir.display().to_string(),
            (None, None) => self.dir.join(".ferry").display().to_string(),
        };
        self.declared = raw
            .connections
            .keys()
            .map(|k| k.get_ref().clone())
            .collect();
        let mut connections = BTreeMap::new();
        if let Some(env) = self.environment {
            if let Some(first) = raw.connections.keys().next() {
                self.errors.push(
                    self.loc
                        .error(first.span(), "in an environment, a connection is an asset of its own, not part of a pipeline")
                        .hint(format!("move [connections.{0}] to {1} (its keys without the table header) and name it: connection = \"{0}\"", first.get_ref(), env.asset_file(crate::environment::AssetKind::Connections, first.get_ref()).display())),
                );
            }
            for name in referenced {
                if let Some(connection) = self.environment_connection(env, &name) {
                    connections.insert(name.clone(), connection);
                }
                self.declared.push(name);
            }
        }
        for name in raw.connections.into_keys() {
            let Some(keys) = keys.connections.remove(name.get_ref()) else {
                continue;
            };
            if let Some(connection) = self.connection(keys) {
                connections.insert(name.into_inner(), connection);
            }
        }
        let mut known: Vec<String> = Vec::new();
        let mut sources = Vec::new();
        let source_count = raw.sources.len();
        for (name, source) in raw.sources {
            let span = name.span();
            if let Some(name) = self.table_name(name, &known) {
                if let Some(s) = self.source(name.clone(), source, &connections) {
                    sources.push(Source { span, ..s });
                }
                known.push(name);
            }
        }
        let mut steps = Vec::new();
        let step_count = raw.steps.len();
        for step in raw.steps {
            if let Some(s) = self.step(step, &known, &steps, &connections) {
                known.push(s.name.clone());
                steps.push(s);
            }
        }
        if step_count == 0 {
            match sources.as_slice() {
                // The one source is wrong, and already reported.
                [] if source_count == 1 => {}
                [only] => steps.push(Step {
                    name: "result".to_string(),
                    description: Some(format!("all rows of {}", only.name)),
                    sql: format!("SELECT * FROM {}", only.name),
                    sql_span: only.span.clone(),
                    connection: None,
                }),
                _ => self.errors.push(
                    self.loc
                        .whole_file("the pipeline has no [[steps]]: Ferry cannot tell which rows to write")
                        .hint("add [[steps]] with name = \"result\" and sql = \"SELECT * FROM <source>\""),
                ),
            }
        }
        let target = self.target(keys.target, &connections);
        if let Some(target) = &target
            && matches!(target.options.mode, WriteMode::Sync | WriteMode::Truncate)
        {
            // The second run would read only the new files, and delete what earlier files loaded.
            for source in sources.iter().filter(|s| s.incremental.is_some()) {
                self.errors.push(
                    self.loc
                        .error(
                            source.span.clone(),
                            format!(
                                "source \"{}\" is incremental, and mode \"{}\" would delete every row that earlier files loaded",
                                source.name, target.options.mode
                            ),
                        )
                        .hint("use mode = \"upsert\" with incremental sources, or read every file (remove incremental)"),
                );
            }
        }
        let run = self.run(raw.run);
        if let (Some(env), Some(schedule)) = (self.environment, &raw.schedule) {
            self.errors.push(
                self.loc
                    .error(
                        schedule.span(),
                        "in an environment, a schedule is a job of its own",
                    )
                    .hint(format!(
                        "move [schedule] to {} with pipeline = \"{}\" above it",
                        env.asset_file(crate::environment::AssetKind::Jobs, &name)
                            .display(),
                        file.file_stem().unwrap_or_default().to_string_lossy()
                    )),
            );
        }
        let schedule = self.schedule(raw.schedule);
        Some(Pipeline {
            name,
            description: raw.description,
            file: file.to_path_buf(),
            state_dir,
            connections,
            sources,
            steps,
            target: target?,
            run: run?,
            schedule: schedule?,
            params: std::mem::take(&mut self.params),
            filled: Vec::new(),
            locator: self.loc.clone(),
            environment: self.environment.cloned(),
        })
    }

    /// Replaces `${VAR}` in a credential (user, password, token, client_id, client_secret) with the
    /// environment's value; a missing variable is an error at its line.
    fn interpolate(&mut self, value: Spanned<String>) -> Option<String> {
        self.expand(value, |_| true, true)
    }

    /// Replaces `${VAR}` in a setting that is not a credential (a URL, a path, a table): only
    /// variables named `FERRY_*`, so that a pipeline file from someone else cannot carry any other
    /// variable (a cloud key, a home folder) to a URL or a path it names.
    fn interpolate_setting(&mut self, value: Spanned<String>) -> Option<String> {
        self.expand(value, |name| name.starts_with("FERRY_"), false)
    }

    /// `${vars.NAME}` and `${secret.NAME}` (where `secret_allowed`) from the environment, any
    /// other `${VAR}` that `allowed` accepts from the process's environment variables.
    fn expand(
        &mut self,
        value: Spanned<String>,
        allowed: impl Fn(&str) -> bool,
        secret_allowed: bool,
    ) -> Option<String> {
        let env = self.environment;
        let resolved = secret::interpolate_with(value.get_ref(), |name| {
            if let Some(found) = env.and_then(|e| e.reference(name, secret_allowed)) {
                return found;
            }
            if name.starts_with("vars.") || name.starts_with("secret.") {
                return Err(secret::Unresolved::Failed {
                    why: format!("${{{name}}} is read from an environment, and this file is in none"),
                    hint: "put the file in a project's environments/<env>/<kind>/ folder, or use ${FERRY_...} variables".into(),
                });
            }
            if !allowed(name) {
                return Err(secret::Unresolved::NotAllowed(name.to_string()));
            }
            std::env::var(name).map_err(|_| secret::Unresolved::Unset(name.to_string()))
        });
        match resolved {
            Ok(s) => Some(s),
            Err(secret::Unresolved::Failed { why, hint }) => {
                self.errors
                    .push(self.loc.error(value.span(), why).hint(hint));
                None
            }
            Err(secret::Unresolved::Unset(var)) => {
                self.errors.push(
                    self.loc
                        .error(value.span(), format!("the environment variable {var} is not set"))
                        .hint(format!("export {var}=... before running; its value is read at run time and never stored")),
                );
                None
            }
            Err(secret::Unresolved::NotAllowed(var)) => {
                self.errors.push(
                    self.loc
                        .error(
                            value.span(),
                            format!("${{{var}}}: only variables named FERRY_* expand here (any variable only in user, password, token, client_id and client_secret)"),
                        )
                        .hint(format!("export FERRY_{var}=... and write ${{FERRY_{var}}}")),
                );
                None
            }
        }
    }

    /// A reference to a connection the file does not have: an error at the reference with the
    /// nearest name or the declared ones, unless the connection is declared and already has its own
    /// error at its lines.
    fn unknown_connection(
        &mut self,
        name: &Spanned<String>,
        connections: &BTreeMap<String, Arc<dyn Connection>>,
        example_url: &str,
    ) {
        if self.declared.contains(name.get_ref())
            && self.environment.is_none_or(|env| {
                env.asset_file(crate::environment::AssetKind::Connections, name.get_ref())
                    .is_file()
            })
        {
            return;
        }
        if let Some(env) = self.environment {
            let names = env.assets(crate::environment::AssetKind::Connections);
            let hint = match did_you_mean(name.get_ref(), names.iter().map(String::as_str)) {
                Some(m) => format!("did you mean connection = \"{m}\"?"),
                None => format!(
                    "create {}, or promote it: ferry promote --from ENV --to {} connections {}",
                    env.asset_file(crate::environment::AssetKind::Connections, name.get_ref())
                        .display(),
                    env.name,
                    name.get_ref()
                ),
            };
            self.errors.push(
                self.loc
                    .error(
                        name.span(),
                        format!(
                            "environment \"{}\" has no connection named \"{}\"",
                            env.name,
                            name.get_ref()
                        ),
                    )
                    .hint(hint),
            );
            return;
        }
        let names: Vec<&str> = connections.keys().map(String::as_str).collect();
        let hint = match did_you_mean(name.get_ref(), names.iter().copied()) {
            Some(m) => format!("did you mean connection = \"{m}\"?"),
            None if names.is_empty() => {
                format!("declare it: [connections.NAME] with url = \"{example_url}\"")
            }
            None => format!("declared connections: {}", names.join(", ")),
        };
        self.errors.push(
            self.loc
                .error(
                    name.span(),
                    format!("there is no connection named \"{}\"", name.get_ref()),
                )
                .hint(hint),
        );
    }

    /// Local paths are relative to the pipeline file's folder; URLs are left as they are.
    fn resolve_location(&self, location: &str) -> String {
        if ferry_connectors::files::is_url(location) {
            return location.to_string();
        }
        let path = location.strip_prefix("file://").unwrap_or(location);
        self.dir.join(path).display().to_string()
    }

    fn connector_error(
        &self,
        span: std::ops::Range<usize>,
        e: ferry_connectors::ConnectorError,
    ) -> SpecError {
        let err = self.loc.error(span, e.message);
        match e.hint {
            Some(h) => err.hint(h),
            None => err,
        }
    }
}

/// A TOML syntax or shape error, at its line, with the keys that are allowed where one was not.
fn toml_error(loc: &Locator, e: &toml::de::Error) -> SpecError {
    let message = e.message().trim().to_string();
    let err = match e.span() {
        Some(span) => loc.error(span, message.clone()),
        None => loc.whole_file(message.clone()),
    };
    if let Some(unknown) = UnknownKey::parse(&message) {
        return match did_you_mean(unknown.key, unknown.expected.iter().copied()) {
            Some(m) => err.hint(format!("did you mean `{m}`?")),
            None => err.hint(format!("allowed here: {}", unknown.expected.join(", "))),
        };
    }
    if message.starts_with("missing field") {
        return err.hint("add it; `ferry run --help` shows a complete pipeline file");
    }
    err
}

#[cfg(test)]
mod tests;
