//! The `[sources]` of a pipeline file: names, files (format, incremental reading) and database
//! tables or queries (partitions), each checked against the connections.

use ferry_connectors::files::FileFormat;
use ferry_connectors::files::source::FileSource;
use ferry_connectors::registry;
use toml::Spanned;

use super::raw::RawSource;
use super::*;

impl Checker<'_> {
    /// Checks a source or step name: a plain SQL identifier, not used before.
    pub(super) fn table_name(&mut self, name: Spanned<String>, known: &[String]) -> Option<String> {
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

    pub(super) fn source(
        &mut self,
        name: String,
        source: Spanned<RawSource>,
        connections: &BTreeMap<String, Arc<dyn Connection>>,
    ) -> Option<Source> {
        let span = source.span();
        let mut raw = source.into_inner();
        if let (Some(_), Some(schema)) = (&raw.connection, &raw.schema) {
            self.errors.push(
                self.loc
                    .error(schema.span(), "a database source carries its own types")
                    .hint("schema applies to csv and xlsx sources; cast a column in the query instead"),
            );
            return None;
        }
        if let Some(c) = raw.connection.take() {
            let origin = self.database_source(&name, c, &mut raw, span.clone(), connections)?;
            return Some(Source {
                name,
                origin,
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
        let path = self.interpolate_setting(path)?;
        let format = self.format(raw.format, &path, path_span)?;
        let declared = self.declared_types(raw.schema.take(), format)?;
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
                declared,
            }),
            span,
        })
    }

    /// `schema = { column = "type" }`: for CSV and Excel sources, each type one Ferry knows.
    fn declared_types(
        &mut self,
        schema: Option<Spanned<BTreeMap<String, Spanned<String>>>>,
        format: FileFormat,
    ) -> Option<Vec<(String, arrow::datatypes::DataType)>> {
        let Some(schema) = schema else {
            return Some(Vec::new());
        };
        if !matches!(format, FileFormat::Csv | FileFormat::Xlsx) {
            self.errors.push(
                self.loc
                    .error(
                        schema.span(),
                        format!("a {} source carries its own types", format.as_str()),
                    )
                    .hint(
                        "schema applies to csv and xlsx sources; cast a column in a step instead",
                    ),
            );
            return None;
        }
        let mut declared = Vec::new();
        let mut ok = true;
        for (column, type_name) in schema.into_inner() {
            match ferry_connectors::files::declared::parse_type(type_name.get_ref()) {
                Ok(t) => declared.push((column, t)),
                Err(e) => {
                    self.errors.push(
                        self.loc
                            .error(type_name.span(), format!("column \"{column}\": {e}"))
                            .hint("schema = { code = \"text\", amount = \"decimal(12,2)\", born = \"date\" }"),
                    );
                    ok = false;
                }
            }
        }
        ok.then_some(declared)
    }

    /// A connection by name that can be read (its connector's capabilities say so).
    pub(super) fn database(
        &mut self,
        c: Spanned<String>,
        connections: &BTreeMap<String, Arc<dyn Connection>>,
    ) -> Option<Arc<dyn Reader>> {
        let Some(connection) = connections.get(c.get_ref()) else {
            self.unknown_connection(&c, connections, "postgres://user@host/db");
            return None;
        };
        if let Some(reader) = connection.reader() {
            return Some(reader);
        }
        let readable: Vec<&str> = registry::connectors()
            .iter()
            .filter(|k| k.capabilities().reads)
            .map(|k| k.name())
            .collect();
        self.errors.push(
            self.loc
                .error(
                    c.span(),
                    format!(
                        "connection \"{}\" is {} connection, which Ferry does not read",
                        c.get_ref(),
                        ferry_connectors::connector::article(connection.connector().name())
                    ),
                )
                .hint(format!(
                    "database sources and steps read {} connections",
                    readable.join(" and ")
                )),
        );
        None
    }

    pub(super) fn database_source(
        &mut self,
        name: &str,
        c: Spanned<String>,
        raw: &mut RawSource,
        span: std::ops::Range<usize>,
        connections: &BTreeMap<String, Arc<dyn Connection>>,
    ) -> Option<Origin> {
        let reader = self.database(c, connections)?;
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
        let (table, query) = match (raw.table.take(), raw.query.take()) {
            (Some(t), None) => (Some(self.interpolate_setting(t)?), None),
            (None, Some(q)) => {
                if !self.check_placeholders(q.get_ref(), q.span()) {
                    return None;
                }
                (None, Some(q.into_inner()))
            }
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
                if query.is_some() {
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
                            "partition_column = \"order_id\" (an integer or date column, ideally indexed; on PostgreSQL 14+ \"ctid\" splits any table by its blocks)",
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
        let read = match (table, query) {
            (Some(name), _) => Read::Table { name, partitions },
            (None, query) => Read::Query(query.unwrap_or_default()),
        };
        Some(Origin::Database { reader, read })
    }

    pub(super) fn format(
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
}
