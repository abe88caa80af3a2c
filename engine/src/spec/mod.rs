//! Pipeline files, in two stages: `raw` is what the user wrote (serde, unknown keys refused, spans
//! kept); this module turns it into a [`Pipeline`] that means something: paths resolved against the
//! pipeline file's folder, names checked, `@resultN` replaced, modes and keys verified. Every problem
//! becomes a [`SpecError`] naming the file, the line and the fix, and all of them are reported at once.

mod error;
mod raw;
mod secret;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use ferry_connectors::files::FileFormat;
use ferry_connectors::files::source::FileSource;
use ferry_connectors::odata::config::{
    Auth, Credentials, ODataEndpoint, ODataOptions, ServiceKind, parse_rate,
};
use ferry_connectors::registry::{Endpoint, TargetLocation};
use ferry_connectors::sql::source::{DbRead, DbSource};
use ferry_connectors::{TargetOptions, WriteMode};
use toml::Spanned;

pub use self::error::{Locator, SpecError, SpecErrors, did_you_mean};
use self::raw::{RawConnection, RawPipeline, RawRun, RawSource, RawStep, RawTarget};
pub use self::secret::Secret;

/// A pipeline, validated: everything here has been checked against everything else.
#[derive(Debug, Clone)]
pub struct Pipeline {
    pub name: String,
    pub description: Option<String>,
    /// The pipeline file.
    pub file: PathBuf,
    /// Where bookkeeping goes (default: `.ferry` beside the pipeline file).
    pub state_dir: String,
    pub connections: BTreeMap<String, Connection>,
    pub sources: Vec<Source>,
    pub steps: Vec<Step>,
    pub target: Target,
    pub run: RunOptions,
    /// Maps byte offsets to lines for errors found later (SQL planning).
    pub locator: Locator,
}

#[derive(Debug, Clone)]
pub struct Connection {
    pub name: String,
    pub endpoint: Endpoint,
    pub user: Option<String>,
    pub password: Option<Secret>,
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
    Database(DbSource),
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
    pub connection: Option<Endpoint>,
}

#[derive(Debug, Clone)]
pub struct Target {
    pub location: TargetLocation,
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
}

impl Pipeline {
    /// Reads and validates a pipeline file.
    pub fn load(file: &Path) -> Result<Pipeline, SpecErrors> {
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
        Self::parse(file, &text)
    }

    /// Validates a pipeline file's text; `file` locates relative paths and names the file in errors.
    pub fn parse(file: &Path, text: &str) -> Result<Pipeline, SpecErrors> {
        let locator = Locator::new(file, text);
        let raw: RawPipeline =
            toml::from_str(text).map_err(|e| SpecErrors(vec![toml_error(&locator, &e)]))?;
        let dir = std::path::absolute(file)
            .ok()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .unwrap_or_else(|| PathBuf::from("."));
        let mut cx = Checker {
            loc: &locator,
            dir: &dir,
            errors: Vec::new(),
        };
        let pipeline = cx.pipeline(raw, file);
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

/// Collects errors while building the pipeline, so that all of them are reported together.
struct Checker<'a> {
    loc: &'a Locator,
    dir: &'a Path,
    errors: Vec<SpecError>,
}

impl Checker<'_> {
    fn pipeline(&mut self, raw: RawPipeline, file: &Path) -> Option<Pipeline> {
        let name_span = raw.name.span();
        let name = raw.name.into_inner();
        if name.trim().is_empty() {
            self.errors.push(
                self.loc
                    .error(name_span, "the pipeline's name is empty")
                    .hint("name = \"orders-summary\""),
            );
        }
        let state_dir = match raw.state_dir {
            Some(s) => self.resolve_location(s.get_ref()),
            None => self.dir.join(".ferry").display().to_string(),
        };
        let connections: BTreeMap<String, Connection> = raw
            .connections
            .into_iter()
            .filter_map(|(name, conn)| {
                let span = conn.span();
                let mut conn = conn.into_inner();
                let url_span = conn.url.span();
                let url = self.interpolate(conn.url.clone())?;
                let odata = url.starts_with("http://") || url.starts_with("https://");
                self.foreign_connection_keys(&conn, odata);
                if odata {
                    self.plain_http(&url, url_span.clone(), &conn);
                }
                let mut endpoint = if odata {
                    Endpoint::OData(self.odata_endpoint(url, &mut conn, span)?)
                } else {
                    match Endpoint::parse(&url, self.dir) {
                        Ok(endpoint) => endpoint,
                        // Reported at the connection's url line; never silently dropped.
                        Err(e) => {
                            let e = self.connector_error(url_span, e);
                            self.errors.push(e);
                            return None;
                        }
                    }
                };
                let user = conn.user.and_then(|u| self.interpolate(u));
                let password = conn
                    .password
                    .and_then(|p| self.interpolate(p))
                    .map(Secret::new);
                if let Endpoint::Postgres(db) | Endpoint::Mysql(db) = &mut endpoint {
                    db.user = user.clone();
                    db.password = password.as_ref().map(|p| p.expose().to_string());
                }
                Some((
                    name.get_ref().clone(),
                    Connection {
                        name: name.into_inner(),
                        endpoint,
                        user,
                        password,
                    },
                ))
            })
            .collect();
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
        let target_span = raw.target.span();
        let target = self.target(raw.target.into_inner(), target_span, &connections);
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
            locator: self.loc.clone(),
        })
    }

    /// An http(s):// connection: an OData service, its kind and how it authorises.
    /// Keys of the other kind of connection (OData's on a database, a database's on OData) are
    /// errors at their lines: silently ignored, they would hide a mistaken URL or a lost setting.
    fn foreign_connection_keys(&mut self, conn: &RawConnection, odata: bool) {
        let (found, applies, hint) = if odata {
            (
                vec![
                    ("user", conn.user.as_ref().map(|v| v.span())),
                    ("password", conn.password.as_ref().map(|v| v.span())),
                ],
                "database connections",
                "an OData connection signs in with auth = \"client_credentials\" (client_id, client_secret, token_url) or auth = \"bearer\" (token)",
            )
        } else {
            let odata_key = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.span());
            (
                vec![
                    ("kind", odata_key(&conn.kind)),
                    ("auth", odata_key(&conn.auth)),
                    ("token_url", odata_key(&conn.token_url)),
                    ("client_id", odata_key(&conn.client_id)),
                    ("client_secret", odata_key(&conn.client_secret)),
                    ("scope", odata_key(&conn.scope)),
                    ("token", odata_key(&conn.token)),
                    ("allow_http", conn.allow_http.as_ref().map(|v| v.span())),
                    ("users", conn.users.first().map(|u| u.span())),
                ],
                "OData (http/https) connections",
                "remove it, or check the url: an OData service's root starts with https://",
            )
        };
        for (key, span) in found {
            if let Some(span) = span {
                self.errors.push(
                    self.loc
                        .error(span, format!("{key} applies to {applies} only"))
                        .hint(hint),
                );
            }
        }
    }

    /// Plain http:// carries tokens and client secrets in clear text: to this machine only (the
    /// emulator), or where the connection says `allow_http = true`.
    fn plain_http(&mut self, url: &str, url_span: std::ops::Range<usize>, conn: &RawConnection) {
        if conn.allow_http.as_ref().is_some_and(|a| *a.get_ref()) {
            return;
        }
        let token_url = conn
            .token_url
            .as_ref()
            .map(|t| (t.get_ref().as_str(), t.span()));
        for (address, span) in std::iter::once((url, url_span)).chain(token_url) {
            let remote_http = url::Url::parse(address).is_ok_and(|u| {
                u.scheme() == "http"
                    && !matches!(
                        u.host_str(),
                        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
                    )
            });
            if remote_http {
                self.errors.push(
                    self.loc
                        .error(
                            span,
                            "plain http to another host would send tokens and secrets in clear text",
                        )
                        .hint("use https://, or write allow_http = true under the connection for a network you trust"),
                );
            }
        }
    }

    fn odata_endpoint(
        &mut self,
        url: String,
        conn: &mut RawConnection,
        span: std::ops::Range<usize>,
    ) -> Option<ODataEndpoint> {
        let kind = match conn.kind.take() {
            None if url.contains("/api/data/") => ServiceKind::Dataverse,
            None => ServiceKind::Generic,
            Some(k) => match ServiceKind::parse(k.get_ref()) {
                Some(kind) => kind,
                None => {
                    self.errors.push(
                        self.loc
                            .error(
                                k.span(),
                                format!("unknown service kind \"{}\"", k.get_ref()),
                            )
                            .hint(format!("kind = one of: {}", ServiceKind::ALL.join(", "))),
                    );
                    return None;
                }
            },
        };
        let auth_kind = match conn.auth.take() {
            Some(a) => Some((a.get_ref().clone(), a.span())),
            None if conn.client_id.is_some() => {
                Some(("client_credentials".to_string(), span.clone()))
            }
            None if conn.token.is_some() => Some(("bearer".to_string(), span.clone())),
            None => None,
        };
        let auth = match auth_kind {
            None => Auth::None,
            Some((a, _)) if a == "none" => Auth::None,
            Some((a, at)) if a == "bearer" => match conn.token.take() {
                Some(t) => Auth::Bearer(self.interpolate(t)?),
                None => {
                    self.errors.push(
                        self.loc
                            .error(at, "auth = \"bearer\" needs a token")
                            .hint("token = \"${TOKEN}\""),
                    );
                    return None;
                }
            },
            Some((a, at)) if a == "client_credentials" => {
                let (Some(token_url), Some(id), Some(secret)) = (
                    conn.token_url.take(),
                    conn.client_id.take(),
                    conn.client_secret.take(),
                ) else {
                    self.errors.push(
                        self.loc
                            .error(at, "client credentials need token_url, client_id and client_secret")
                            .hint("client_secret = \"${CRM_CLIENT_SECRET}\" (read from the environment, never stored)"),
                    );
                    return None;
                };
                let mut users = vec![Credentials {
                    client_id: self.interpolate(id)?,
                    client_secret: self.interpolate(secret)?,
                }];
                for u in std::mem::take(&mut conn.users) {
                    let u = u.into_inner();
                    users.push(Credentials {
                        client_id: self.interpolate(u.client_id)?,
                        client_secret: self.interpolate(u.client_secret)?,
                    });
                }
                Auth::ClientCredentials {
                    token_url: self.interpolate(token_url)?,
                    scope: match conn.scope.take() {
                        Some(s) => Some(self.interpolate(s)?),
                        None => None,
                    },
                    users,
                }
            }
            Some((a, at)) => {
                self.errors.push(
                    self.loc
                        .error(at, format!("unknown auth \"{a}\""))
                        .hint("auth = \"client_credentials\", \"bearer\" or \"none\""),
                );
                return None;
            }
        };
        Some(ODataEndpoint { url, kind, auth })
    }

    /// Checks a source or step name: a plain SQL identifier, not used before.
    fn table_name(&mut self, name: Spanned<String>, known: &[String]) -> Option<String> {
        let span = name.span();
        let raw = name.into_inner();
        let lower = raw.to_lowercase();
        let valid = lower
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && lower.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            self.errors.push(
                self.loc
                    .error(span, format!("\"{raw}\" cannot be used as a table name in SQL"))
                    .hint("use letters, digits and _ only, starting with a letter, e.g. \"orders_2024\""),
            );
            return None;
        }
        if known.contains(&lower) {
            self.errors.push(
                self.loc
                    .error(span, format!("the name \"{raw}\" is used twice"))
                    .hint("give every source and step its own name"),
            );
            return None;
        }
        Some(lower)
    }

    fn source(
        &mut self,
        name: String,
        source: Spanned<RawSource>,
        connections: &BTreeMap<String, Connection>,
    ) -> Option<Source> {
        let span = source.span();
        let mut raw = source.into_inner();
        if let Some(c) = raw.connection.take() {
            let db = self.database_source(&name, c, &mut raw, span.clone(), connections)?;
            return Some(Source {
                name,
                origin: Origin::Database(db),
                incremental: None,
                span,
            });
        }
        for (key, present) in [
            ("table", raw.table.as_ref().map(|t| t.span())),
            ("query", raw.query.as_ref().map(|t| t.span())),
            ("partitions", raw.partitions.as_ref().map(|t| t.span())),
        ] {
            if let Some(at) = present {
                self.errors.push(
                    self.loc
                        .error(at, format!("{key} applies to database sources only"))
                        .hint("add connection = \"<name of a postgres:// or mysql:// connection>\", or remove it"),
                );
                return None;
            }
        }
        let Some(path) = raw.path else {
            self.errors.push(
                self.loc
                    .error(span.clone(), format!("source \"{name}\" has no path"))
                    .hint("path = \"data/orders/*.parquet\" (a file, a folder, a glob or an s3://, az://, gs:// URL)"),
            );
            return None;
        };
        let path_span = path.span();
        let path = self.interpolate(path)?;
        let format = self.format(raw.format, &path, path_span)?;
        let delimiter = match raw.delimiter {
            None => b',',
            Some(d) => match d.get_ref().as_bytes() {
                [b] => *b,
                b"\\t" => b'\t',
                _ => {
                    self.errors.push(
                        self.loc
                            .error(d.span(), "the delimiter must be a single character")
                            .hint("delimiter = \";\" or delimiter = \"\\t\""),
                    );
                    return None;
                }
            },
        };
        let incremental = match (raw.incremental.unwrap_or(false), raw.on_changed_file) {
            (false, None) => None,
            (false, Some(o)) => {
                self.errors.push(
                    self.loc
                        .error(
                            o.span(),
                            "on_changed_file applies to incremental sources only",
                        )
                        .hint("add incremental = true, or remove on_changed_file"),
                );
                return None;
            }
            (true, None) => Some(OnChangedFile::Stop),
            (true, Some(o)) => match o.get_ref().as_str() {
                "stop" => Some(OnChangedFile::Stop),
                "reprocess" => Some(OnChangedFile::Reprocess),
                other => {
                    self.errors.push(
                        self.loc
                            .error(o.span(), format!("on_changed_file cannot be \"{other}\""))
                            .hint("on_changed_file = \"stop\" (the default) or \"reprocess\""),
                    );
                    return None;
                }
            },
        };
        Some(Source {
            name,
            incremental,
            origin: Origin::File(FileSource {
                location: self.resolve_location(&path),
                format,
                header: raw.header.unwrap_or(true),
                delimiter,
                sheet: raw.sheet,
            }),
            span,
        })
    }

    /// A database connection by name: must exist and be PostgreSQL or MySQL.
    fn database(
        &mut self,
        c: Spanned<String>,
        connections: &BTreeMap<String, Connection>,
    ) -> Option<Endpoint> {
        match connections.get(c.get_ref()).map(|conn| &conn.endpoint) {
            Some(e @ (Endpoint::Postgres(_) | Endpoint::Mysql(_))) => Some(e.clone()),
            Some(_) => {
                self.errors.push(
                    self.loc
                        .error(
                            c.span(),
                            format!(
                                "connection \"{}\" is not a PostgreSQL or MySQL database",
                                c.get_ref()
                            ),
                        )
                        .hint(
                            "database sources and steps read postgres:// and mysql:// connections",
                        ),
                );
                None
            }
            None => {
                let names: Vec<&str> = connections.keys().map(String::as_str).collect();
                let hint = match did_you_mean(c.get_ref(), names.iter().copied()) {
                    Some(m) => format!("did you mean connection = \"{m}\"?"),
                    None => "declare it: [connections.NAME] with url = \"postgres://user@host/db\""
                        .to_string(),
                };
                self.errors.push(
                    self.loc
                        .error(
                            c.span(),
                            format!("there is no connection named \"{}\"", c.get_ref()),
                        )
                        .hint(hint),
                );
                None
            }
        }
    }

    fn database_source(
        &mut self,
        name: &str,
        c: Spanned<String>,
        raw: &mut RawSource,
        span: std::ops::Range<usize>,
        connections: &BTreeMap<String, Connection>,
    ) -> Option<DbSource> {
        let endpoint = self.database(c, connections)?;
        for (key, at) in [
            ("path", raw.path.as_ref().map(|p| p.span())),
            ("format", raw.format.as_ref().map(|p| p.span())),
            ("delimiter", raw.delimiter.as_ref().map(|p| p.span())),
        ] {
            if let Some(at) = at {
                self.errors.push(
                    self.loc
                        .error(at, format!("a database source has no {key}"))
                        .hint("read a table = \"schema.name\" or a query = \"SELECT ...\""),
                );
                return None;
            }
        }
        if raw.incremental == Some(true) || raw.on_changed_file.is_some() {
            self.errors.push(
                self.loc
                    .error(span, format!("source \"{name}\" reads a database: incremental applies to files only"))
                    .hint("remove incremental; to read only new rows, filter in a query = \"SELECT ... WHERE ...\""),
            );
            return None;
        }
        let read = match (raw.table.take(), raw.query.take()) {
            (Some(t), None) => DbRead::Table(self.interpolate(t)?),
            (None, Some(q)) => DbRead::Query(q.into_inner()),
            (Some(t), Some(_)) => {
                self.errors.push(
                    self.loc
                        .error(
                            t.span(),
                            format!("source \"{name}\" has both a table and a query"),
                        )
                        .hint("keep one: table = \"sales.orders\" or query = \"SELECT ...\""),
                );
                return None;
            }
            (None, None) => {
                self.errors.push(
                    self.loc
                        .error(
                            span,
                            format!("source \"{name}\" says neither a table nor a query"),
                        )
                        .hint("table = \"sales.orders\" or query = \"SELECT ...\""),
                );
                return None;
            }
        };
        let partitions = match (raw.partitions.take(), raw.partition_column.take()) {
            (None, None) => None,
            (Some(n), Some(c)) => {
                if !(1..=64).contains(n.get_ref()) {
                    self.errors.push(
                        self.loc
                            .error(n.span(), "partitions must be between 1 and 64")
                            .hint("partitions = 2 reads the table on two connections at once"),
                    );
                    return None;
                }
                if matches!(read, DbRead::Query(_)) {
                    self.errors.push(
                        self.loc
                            .error(n.span(), "partitions apply to a table, not a query")
                            .hint("read a table = \"...\", or remove partitions"),
                    );
                    return None;
                }
                Some((*n.get_ref() as usize, c.into_inner()))
            }
            (Some(n), None) => {
                self.errors.push(
                    self.loc
                        .error(n.span(), "partitions needs a partition_column")
                        .hint(
                            "partition_column = \"order_id\" (an integer column, ideally indexed)",
                        ),
                );
                return None;
            }
            (None, Some(c)) => {
                self.errors.push(
                    self.loc
                        .error(c.span(), "partition_column needs partitions")
                        .hint("partitions = 2"),
                );
                return None;
            }
        };
        Some(DbSource {
            endpoint,
            read,
            partitions,
        })
    }

    fn format(
        &mut self,
        format: Option<Spanned<String>>,
        path: &str,
        path_span: std::ops::Range<usize>,
    ) -> Option<FileFormat> {
        match format {
            Some(f) => match f.get_ref().parse::<FileFormat>() {
                Ok(format) => Some(format),
                Err(e) => {
                    let mut err = self.connector_error(f.span(), e);
                    if let Some(m) = did_you_mean(f.get_ref(), FileFormat::ALL) {
                        err = err.hint(format!("did you mean format = \"{m}\"?"));
                    }
                    self.errors.push(err);
                    None
                }
            },
            None => {
                let found = FileFormat::from_extension(path);
                if found.is_none() {
                    self.errors.push(
                        self.loc
                            .error(
                                path_span,
                                format!("cannot tell the format of \"{path}\" from its name"),
                            )
                            .hint(format!(
                                "add format = \"...\", one of: {}",
                                FileFormat::ALL.join(", ")
                            )),
                    );
                }
                found
            }
        }
    }

    fn step(
        &mut self,
        step: Spanned<RawStep>,
        known: &[String],
        before: &[Step],
        connections: &BTreeMap<String, Connection>,
    ) -> Option<Step> {
        let raw = step.into_inner();
        let connection = match raw.connection {
            Some(c) => Some(self.database(c, connections)?),
            None => None,
        };
        let name = self.table_name(raw.name, known)?;
        let sql_span = raw.sql.span();
        let sql = raw.sql.into_inner();
        let sql = self.replace_result_refs(&sql, sql_span.clone(), before)?;
        if sql.trim().is_empty() {
            self.errors.push(
                self.loc
                    .error(sql_span, format!("step \"{name}\" has no SQL"))
                    .hint("sql = \"SELECT ... FROM <source or earlier step>\""),
            );
            return None;
        }
        Some(Step {
            name,
            description: raw.description,
            sql,
            sql_span,
            connection,
        })
    }

    /// `@result1` means the first step's table, `@result2` the second's, and so on.
    fn replace_result_refs(
        &mut self,
        sql: &str,
        span: std::ops::Range<usize>,
        before: &[Step],
    ) -> Option<String> {
        let mut out = String::with_capacity(sql.len());
        let mut rest = sql;
        while let Some(at) = rest.find("@result") {
            out.push_str(&rest[..at]);
            let after = &rest[at + "@result".len()..];
            let digits: String = after.chars().take_while(|c| c.is_ascii_digit()).collect();
            let n: usize = digits.parse().unwrap_or(0);
            match n.checked_sub(1).and_then(|i| before.get(i)) {
                Some(step) => out.push_str(&step.name),
                None => {
                    let line = sql[..sql.len() - rest.len() + at].matches('\n').count();
                    let available = if before.is_empty() {
                        "none: this is the first step".to_string()
                    } else {
                        format!("@result1 to @result{}", before.len())
                    };
                    self.errors.push(
                        self.loc
                            .error_in(
                                span,
                                line,
                                format!("@result{digits} does not name an earlier step"),
                            )
                            .hint(format!(
                                "@resultN is the N-th step's result; available here: {available}"
                            )),
                    );
                    return None;
                }
            }
            rest = &after[digits.len()..];
        }
        out.push_str(rest);
        Some(out)
    }

    fn target(
        &mut self,
        raw: RawTarget,
        span: std::ops::Range<usize>,
        connections: &BTreeMap<String, Connection>,
    ) -> Option<Target> {
        let errors_before = self.errors.len();
        let mode = match &raw.mode {
            None => WriteMode::Insert,
            Some(m) => match m.get_ref().parse::<WriteMode>() {
                Ok(mode) => mode,
                Err(e) => {
                    let mut err = self.connector_error(m.span(), e);
                    if let Some(s) = did_you_mean(m.get_ref(), WriteMode::ALL) {
                        err = err.hint(format!("did you mean mode = \"{s}\"?"));
                    }
                    self.errors.push(err);
                    WriteMode::Insert
                }
            },
        };
        let key_span = raw.key.as_ref().map(|k| k.span());
        let key: Vec<String> = raw
            .key
            .map(|k| k.into_inner().into_vec())
            .unwrap_or_default();
        if mode.needs_key() && key.is_empty() {
            let at = raw.mode.as_ref().map(|m| m.span()).unwrap_or(span.clone());
            self.errors.push(
                self.loc
                    .error(
                        at,
                        format!("mode \"{mode}\" needs a key: the columns that identify a row"),
                    )
                    .hint("add key = [\"customer_id\"] under [target]"),
            );
        }
        if let Some(dup) = key.iter().enumerate().find(|(i, k)| key[..*i].contains(k)) {
            self.errors.push(self.loc.error(
                key_span.clone().unwrap_or(span.clone()),
                format!("key column \"{}\" is listed twice", dup.1),
            ));
        }
        let location = match (raw.connection, raw.path) {
            (Some(c), None) => match connections.get(c.get_ref()) {
                Some(conn) => Some(TargetLocation::Endpoint(conn.endpoint.clone())),
                None => {
                    let names: Vec<&str> = connections.keys().map(String::as_str).collect();
                    let hint = match did_you_mean(c.get_ref(), names.iter().copied()) {
                        Some(m) => format!("did you mean connection = \"{m}\"?"),
                        None if names.is_empty() => {
                            "declare it: [connections.NAME] with url = \"sqlite://out/warehouse.db\"".to_string()
                        }
                        None => format!("declared connections: {}", names.join(", ")),
                    };
                    self.errors.push(
                        self.loc
                            .error(
                                c.span(),
                                format!("there is no connection named \"{}\"", c.get_ref()),
                            )
                            .hint(hint),
                    );
                    None
                }
            },
            (None, Some(p)) => {
                let path_span = p.span();
                let path = self.interpolate(p)?;
                let format = match &raw.format {
                    Some(_) => self.format(raw.format, &path, path_span),
                    None if path.ends_with('/') => Some(FileFormat::Delta),
                    None => self.format(None, &path, path_span),
                };
                format.map(|format| TargetLocation::File {
                    location: self.resolve_location(&path),
                    format,
                })
            }
            (Some(c), Some(_)) => {
                self.errors.push(
                    self.loc
                        .error(c.span(), "the target has both a connection and a path")
                        .hint("keep connection = \"...\" with table = \"...\" for a database, or path = \"...\" for a file"),
                );
                None
            }
            (None, None) => {
                self.errors.push(
                    self.loc
                        .error(span.clone(), "the target says neither where to write nor how")
                        .hint("connection = \"warehouse\" with table = \"order_summary\", or path = \"out/summary.parquet\""),
                );
                None
            }
        };
        let table = match (&location, raw.table) {
            (Some(TargetLocation::Endpoint(_)), None) => {
                self.errors.push(
                    self.loc
                        .error(span.clone(), "a database target needs a table")
                        .hint("table = \"order_summary\""),
                );
                String::new()
            }
            (_, Some(t)) => t.into_inner(),
            (_, None) => String::new(),
        };
        let batch_size = self.positive(raw.batch_size, "batch_size", 1000, 1_000_000)?;
        let workers = self.positive(raw.workers, "workers", 4, 256)?;
        let rate_limit = match raw.rate_limit {
            None => None,
            Some(ref r) => match parse_rate(r.get_ref()) {
                Some(rate) => Some(rate),
                None => {
                    self.errors.push(
                        self.loc
                            .error(r.span(), format!("\"{}\" is not a rate", r.get_ref()))
                            .hint("rate_limit = \"6000/300s\" (requests per period, per application user)"),
                    );
                    return None;
                }
            },
        };
        let location = location?;
        let odata_kind = match &location {
            TargetLocation::Endpoint(Endpoint::OData(e)) => Some(e.kind),
            _ => None,
        };
        // OData's own keys on any other target would be silently ignored: say so at their line.
        let odata_only = [
            ("atomic", raw.atomic.as_ref().map(|a| a.span())),
            ("rate_limit", raw.rate_limit.as_ref().map(|r| r.span())),
            (
                "sync_max_missing",
                raw.sync_max_missing.as_ref().map(|r| r.span()),
            ),
        ];
        for (key, at) in odata_only {
            if let (Some(at), None) = (at, odata_kind) {
                self.errors.push(
                    self.loc
                        .error(at, format!("{key} applies to OData targets only"))
                        .hint(format!(
                            "remove {key}, or write to an http(s):// connection"
                        )),
                );
            }
        }
        if let Some(le) = &raw.legal_entity
            && odata_kind != Some(ServiceKind::Fno)
        {
            // Sync and truncate would read and delete across every company.
            self.errors.push(
                self.loc
                    .error(
                        le.span(),
                        "legal_entity applies to Finance & Operations connections only",
                    )
                    .hint("set kind = \"fno\" on the connection, or remove legal_entity"),
            );
        }
        let sync_max_missing = match raw.sync_max_missing {
            None => 0.0,
            Some(m) if (0.0..=1.0).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                self.errors.push(
                    self.loc
                        .error(
                            m.span(),
                            format!(
                                "sync_max_missing must be between 0 and 1, not {}",
                                m.get_ref()
                            ),
                        )
                        .hint("sync_max_missing = 0.01 lets 1% of the written records be missing"),
                );
                0.0
            }
        };
        let odata = ODataOptions {
            atomic: raw.atomic.is_some_and(|a| *a.get_ref()),
            legal_entity: raw.legal_entity.map(Spanned::into_inner),
            rate_limit,
            sync_max_missing,
        };
        if self.errors.len() > errors_before {
            return None;
        }
        Some(Target {
            location,
            options: TargetOptions {
                table,
                mode,
                key,
                create: raw.create.unwrap_or(false),
                odata,
            },
            batch_size,
            workers,
            span,
        })
    }

    fn positive(
        &mut self,
        value: Option<Spanned<i64>>,
        key: &str,
        default: usize,
        max: usize,
    ) -> Option<usize> {
        let Some(v) = value else {
            return Some(default);
        };
        match usize::try_from(*v.get_ref()) {
            Ok(n) if (1..=max).contains(&n) => Some(n),
            _ => {
                self.errors.push(
                    self.loc
                        .error(
                            v.span(),
                            format!("{key} must be between 1 and {max}, not {}", v.get_ref()),
                        )
                        .hint(format!("{key} = {default}")),
                );
                None
            }
        }
    }

    fn run(&mut self, raw: Option<Spanned<RawRun>>) -> Option<RunOptions> {
        let raw = raw.map(Spanned::into_inner).unwrap_or(RawRun {
            max_retries: None,
            max_consecutive_failures: None,
            timeout: None,
            validate: None,
        });
        let max_consecutive_failures = self.positive(
            raw.max_consecutive_failures,
            "max_consecutive_failures",
            100,
            1_000_000_000,
        )? as u64;
        let max_retries = match raw.max_retries {
            None => 3,
            Some(r) => match u32::try_from(*r.get_ref()) {
                Ok(n) if n <= 100 => n,
                _ => {
                    self.errors.push(
                        self.loc
                            .error(
                                r.span(),
                                format!(
                                    "max_retries must be between 0 and 100, not {}",
                                    r.get_ref()
                                ),
                            )
                            .hint("max_retries = 3"),
                    );
                    return None;
                }
            },
        };
        let timeout = match raw.timeout {
            None => Duration::from_secs(30 * 60),
            Some(t) => match parse_duration(t.get_ref()) {
                Some(d) if !d.is_zero() => d,
                _ => {
                    self.errors.push(
                        self.loc
                            .error(t.span(), format!("\"{}\" is not a duration", t.get_ref()))
                            .hint("timeout = \"30m\" (units: s, m, h; e.g. \"90s\", \"1h30m\")"),
                    );
                    return None;
                }
            },
        };
        Some(RunOptions {
            max_retries,
            max_consecutive_failures,
            timeout,
            validate: raw.validate.unwrap_or(true),
        })
    }

    /// Replaces `${VAR}` with the environment's value; a missing variable is an error at its line.
    fn interpolate(&mut self, value: Spanned<String>) -> Option<String> {
        match secret::interpolate(value.get_ref()) {
            Ok(s) => Some(s),
            Err(var) => {
                self.errors.push(
                    self.loc
                        .error(value.span(), format!("the environment variable {var} is not set"))
                        .hint(format!("export {var}=... before running; its value is read at run time and never stored")),
                );
                None
            }
        }
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

/// "250ms", "90s", "30m", "2h", "1h30m", "1h 30m".
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut chars = text.chars().filter(|c| !c.is_whitespace()).peekable();
    let mut seen = false;
    while chars.peek().is_some() {
        let number: String = std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_digit())).collect();
        let unit: String =
            std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphabetic())).collect();
        let n: u64 = number.parse().ok()?;
        let part = match unit.as_str() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        seen = true;
    }
    // Longer than a year is a typo, and would overflow the clock's arithmetic.
    seen.then_some(total)
        .filter(|t| *t <= Duration::from_secs(366 * 86400))
}

/// A TOML syntax or shape error, at its line, with the keys that are allowed where one was not.
fn toml_error(loc: &Locator, e: &toml::de::Error) -> SpecError {
    let message = e.message().trim().to_string();
    let err = match e.span() {
        Some(span) => loc.error(span, message.clone()),
        None => loc.whole_file(message.clone()),
    };
    // serde says: unknown field `pth`, expected one of `path`, `format`, ...
    if let Some(rest) = message.strip_prefix("unknown field `") {
        let word = rest.split('`').next().unwrap_or_default();
        let expected: Vec<&str> = rest.split('`').skip(2).step_by(2).collect();
        return match did_you_mean(word, expected.iter().copied()) {
            Some(m) => err.hint(format!("did you mean `{m}`?")),
            None => err.hint(format!("allowed here: {}", expected.join(", "))),
        };
    }
    if message.starts_with("missing field") {
        return err.hint("add it; `ferry run --help` shows a complete pipeline file");
    }
    err
}

#[cfg(test)]
mod tests;
