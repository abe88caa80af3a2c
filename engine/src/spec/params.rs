//! Parameters: `${params.NAME}` and `${run.*}` in source queries and step SQL, so that one pipeline
//! serves many date ranges or tenants. A value is filled in as a typed SQL literal made by the
//! dialect that runs the SQL (a text's quotes doubled, a number bare, a timestamp as
//! `TIMESTAMP '...'`), never pasted as text: `'; DROP TABLE x; --` arrives as the text it is.
//!
//! ```toml
//! [params]
//! region = "EMEA"                       # text, integer, float, boolean, date or date-time
//! since = 2026-01-01                    # overridden per run: ferry run p.toml --param since=2026-06-01
//!
//! [sources.orders]
//! connection = "shop"
//! query = "SELECT * FROM orders WHERE region = ${params.region} AND updated_at >= ${run.last_success_time}"
//! ```
//!
//! Built-ins (UTC): `run.scheduled_time` (the fire a scheduled run is for; a manual run's start, kept
//! by a resumed run), `run.last_success_time` (when the pipeline's last Completed or Partial
//! Success run started; 1970-01-01 before the first).

use std::collections::BTreeMap;
use std::ops::Range;

use chrono::{NaiveDate, NaiveDateTime};

use super::*;

/// The built-in values every run has.
pub const BUILT_INS: &[&str] = &["run.scheduled_time", "run.last_success_time"];

/// A parameter's value.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Text(String),
    Integer(i64),
    Float(f64),
    Boolean(bool),
    Date(NaiveDate),
    /// A UTC wall-clock time.
    Timestamp(NaiveDateTime),
}

impl Value {
    /// The value from a pipeline file's TOML value; `None` with why for what is not a parameter.
    fn from_toml(value: &toml::Value) -> Result<Value, String> {
        Ok(match value {
            toml::Value::String(s) => Value::Text(s.clone()),
            toml::Value::Integer(i) => Value::Integer(*i),
            toml::Value::Float(f) if f.is_finite() => Value::Float(*f),
            toml::Value::Float(_) => return Err("a parameter cannot be inf or nan".into()),
            toml::Value::Boolean(b) => Value::Boolean(*b),
            toml::Value::Datetime(d) => Value::parse_time(&d.to_string())?,
            toml::Value::Array(_) | toml::Value::Table(_) => {
                return Err(
                    "a parameter is one value: text, a number, a boolean, a date or a date-time"
                        .into(),
                );
            }
        })
    }

    /// A date (`2026-06-01`) or a date-time (`2026-06-01 02:00:00`, `...T...`, with an offset or
    /// `Z`: taken to UTC; without one: already UTC).
    fn parse_time(text: &str) -> Result<Value, String> {
        let text = text.trim();
        if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
            return Ok(Value::Date(d));
        }
        if let Ok(t) = chrono::DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)) {
            return Ok(Value::Timestamp(t.naive_utc()));
        }
        for format in [
            "%Y-%m-%dT%H:%M:%S%.f",
            "%Y-%m-%d %H:%M:%S%.f",
            "%Y-%m-%dT%H:%M",
            "%Y-%m-%d %H:%M",
        ] {
            if let Ok(t) = NaiveDateTime::parse_from_str(text, format) {
                return Ok(Value::Timestamp(t));
            }
        }
        Err(format!(
            "\"{text}\" is not a date (2026-06-01) or a date-time (2026-06-01 02:00:00, UTC)"
        ))
    }

    /// A value given on the command line, read as the declared value's type.
    pub fn parse_like(&self, text: &str) -> Result<Value, String> {
        let wrong = |what: &str| format!("\"{text}\" is not {what}");
        Ok(match self {
            Value::Text(_) => Value::Text(text.to_string()),
            Value::Integer(_) => {
                Value::Integer(text.trim().parse().map_err(|_| wrong("an integer"))?)
            }
            Value::Float(_) => match text.trim().parse::<f64>() {
                Ok(f) if f.is_finite() => Value::Float(f),
                _ => return Err(wrong("a number")),
            },
            Value::Boolean(_) => match text.trim().to_ascii_lowercase().as_str() {
                "true" => Value::Boolean(true),
                "false" => Value::Boolean(false),
                _ => return Err(wrong("true or false")),
            },
            Value::Date(_) | Value::Timestamp(_) => Value::parse_time(text)?,
        })
    }

    /// The value as a SQL literal; `text` makes a string literal in the SQL's dialect.
    pub fn literal(&self, text: &dyn Fn(&str) -> String) -> String {
        match self {
            Value::Text(s) => text(s),
            // A negative number in parentheses: `x -${params.n}` must not become a `--` comment.
            Value::Integer(i) if *i < 0 => format!("({i})"),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) if *f < 0.0 => format!("({f:?})"),
            Value::Float(f) => format!("{f:?}"),
            Value::Boolean(b) => if *b { "TRUE" } else { "FALSE" }.to_string(),
            Value::Date(d) => format!("DATE '{}'", d.format("%Y-%m-%d")),
            Value::Timestamp(t) => format!("TIMESTAMP '{}'", t.format("%Y-%m-%d %H:%M:%S%.f")),
        }
    }

    /// The value as a person reads it (and as the run's identity records it).
    pub fn display(&self) -> String {
        match self {
            Value::Text(s) => format!("{s:?}"),
            Value::Timestamp(t) => t.format("%Y-%m-%d %H:%M:%S%.f").to_string(),
            other => other.literal(&|s| s.to_string()),
        }
    }
}

pub use ferry_connectors::sql::ident::string_literal_ansi as ansi_string;

/// A `${...}` in SQL: where it stands and the name inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placeholder {
    pub at: Range<usize>,
    pub name: String,
}

/// The placeholders of `sql`, outside comments. One inside a quoted string or identifier is an
/// error (its value brings its own quotes): `Err((offset, message, hint))`.
pub fn placeholders(sql: &str) -> Result<Vec<Placeholder>, (usize, String, String)> {
    let bytes = sql.as_bytes();
    let mut found = Vec::new();
    let mut i = 0;
    // The quote character of the string or identifier `i` is in.
    let mut quoted: Option<u8> = None;
    while i < bytes.len() {
        let b = bytes[i];
        match quoted {
            Some(q) if b == q => {
                // A doubled quote stays inside.
                if bytes.get(i + 1) == Some(&q) {
                    i += 2;
                    continue;
                }
                quoted = None;
            }
            Some(q) if b == b'$' && bytes.get(i + 1) == Some(&b'{') => {
                let name = sql[i + 2..].split('}').next().unwrap_or_default();
                let what = if q == b'\'' {
                    "a quoted string"
                } else {
                    "a quoted name"
                };
                return Err((
                    i,
                    format!("${{{name}}} stands inside {what}"),
                    format!(
                        "write it without quotes: Ferry fills ${{{name}}} in as a literal with its own quotes (a text arrives as 'text')"
                    ),
                ));
            }
            Some(_) => {}
            None => match b {
                b'\'' | b'"' | b'`' => quoted = Some(b),
                b'-' if bytes.get(i + 1) == Some(&b'-') => {
                    i = sql[i..].find('\n').map_or(bytes.len(), |n| i + n);
                    continue;
                }
                b'/' if bytes.get(i + 1) == Some(&b'*') => {
                    i = sql[i + 2..]
                        .find("*/")
                        .map_or(bytes.len(), |n| i + 2 + n + 2);
                    continue;
                }
                b'$' if bytes.get(i + 1) == Some(&b'{') => {
                    let Some(close) = sql[i..].find('}') else {
                        return Err((
                            i,
                            "a ${ without its closing }".into(),
                            "write ${params.NAME} or ${run.scheduled_time}".into(),
                        ));
                    };
                    found.push(Placeholder {
                        at: i..i + close + 1,
                        name: sql[i + 2..i + close].trim().to_string(),
                    });
                    i += close + 1;
                    continue;
                }
                _ => {}
            },
        }
        i += 1;
    }
    Ok(found)
}

/// `sql` with every placeholder replaced by its value's literal.
pub fn fill(
    sql: &str,
    values: &BTreeMap<String, Value>,
    text: &dyn Fn(&str) -> String,
) -> Result<String, String> {
    let found = placeholders(sql).map_err(|(_, message, _)| message)?;
    let mut out = String::with_capacity(sql.len());
    let mut last = 0;
    for p in found {
        let value = values
            .get(&p.name)
            .ok_or_else(|| format!("${{{}}} has no value", p.name))?;
        out.push_str(&sql[last..p.at.start]);
        out.push_str(&value.literal(text));
        last = p.at.end;
    }
    out.push_str(&sql[last..]);
    Ok(out)
}

impl Pipeline {
    /// The names of every `${...}` in the pipeline's SQL.
    pub fn placeholder_names(&self) -> Vec<String> {
        let queries = self.sources.iter().filter_map(|s| match &s.origin {
            Origin::Database {
                read: Read::Query(q),
                ..
            } => Some(q.as_str()),
            _ => None,
        });
        let mut names: Vec<String> = queries
            .chain(self.steps.iter().map(|s| s.sql.as_str()))
            .flat_map(|sql| placeholders(sql).unwrap_or_default())
            .map(|p| p.name)
            .collect();
        names.sort();
        names.dedup();
        names
    }

    /// The values of a run: the declared defaults, `overrides` (`NAME=VALUE` from the command
    /// line, read as the declared type) and the built-ins.
    pub fn values(
        &self,
        overrides: &[String],
        scheduled_time: NaiveDateTime,
        last_success_time: Option<NaiveDateTime>,
    ) -> Result<BTreeMap<String, Value>, String> {
        let mut values: BTreeMap<String, Value> = self
            .params
            .iter()
            .map(|(k, v)| (format!("params.{k}"), v.clone()))
            .collect();
        for given in overrides {
            let Some((name, text)) = given.split_once('=') else {
                return Err(format!("--param {given}: write NAME=VALUE"));
            };
            let name = name.trim();
            let Some(declared) = self.params.get(name) else {
                let hint = match did_you_mean(name, self.params.keys().map(String::as_str)) {
                    Some(m) => format!("did you mean {m}?"),
                    None if self.params.is_empty() => {
                        "the pipeline file declares no [params]".into()
                    }
                    None => format!(
                        "the pipeline file declares: {}",
                        self.params.keys().cloned().collect::<Vec<_>>().join(", ")
                    ),
                };
                return Err(format!(
                    "--param {name}: not a parameter of this pipeline ({hint})"
                ));
            };
            let value = declared
                .parse_like(text)
                .map_err(|e| format!("--param {name}: {e}"))?;
            values.insert(format!("params.{name}"), value);
        }
        values.insert(
            "run.scheduled_time".into(),
            Value::Timestamp(scheduled_time),
        );
        let epoch = NaiveDateTime::default();
        values.insert(
            "run.last_success_time".into(),
            Value::Timestamp(last_success_time.unwrap_or(epoch)),
        );
        Ok(values)
    }

    /// The pipeline with every `${...}` of its SQL filled from `values`: in a source query as its
    /// database writes literals, in a step as the step's engine does.
    pub fn fill(&self, values: &BTreeMap<String, Value>) -> Result<Pipeline, String> {
        let mut filled = self.clone();
        for source in &mut filled.sources {
            if let Origin::Database {
                reader,
                read: Read::Query(q),
            } = &mut source.origin
            {
                let reader = reader.clone();
                *q = fill(q, values, &|t| reader.string_literal(t))?;
            }
        }
        for step in &mut filled.steps {
            step.sql = match &step.connection {
                Some(reader) => fill(&step.sql, values, &|t| reader.string_literal(t))?,
                None => fill(&step.sql, values, &ansi_string)?,
            };
        }
        filled.filled = self
            .placeholder_names()
            .into_iter()
            .filter_map(|n| values.get(&n).map(|v| (n, v.display())))
            .collect();
        Ok(filled)
    }
}

impl Checker<'_> {
    /// `[params]`: each a name and its default value.
    pub(super) fn params(
        &mut self,
        raw: BTreeMap<Spanned<String>, Spanned<toml::Value>>,
    ) -> BTreeMap<String, Value> {
        let mut params = BTreeMap::new();
        for (name, value) in raw {
            let ok_name = !name.get_ref().is_empty()
                && name
                    .get_ref()
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !ok_name {
                self.errors.push(
                    self.loc
                        .error(
                            name.span(),
                            format!("\"{}\" is not a parameter name", name.get_ref()),
                        )
                        .hint("a parameter's name is letters, digits and _: region = \"EMEA\""),
                );
                continue;
            }
            match Value::from_toml(value.get_ref()) {
                Ok(v) => {
                    params.insert(name.into_inner(), v);
                }
                Err(why) => {
                    self.errors.push(
                        self.loc
                            .error(value.span(), why)
                            .hint("region = \"EMEA\", limit = 100, since = 2026-01-01"),
                    );
                    // Declared all the same: the SQL that names it is not wrong too.
                    params.insert(name.into_inner(), Value::Text(String::new()));
                }
            }
        }
        params
    }

    /// Checks the placeholders of SQL at `span`: each names a declared parameter or a built-in, and
    /// none stands inside quotes. `false` when one is wrong (reported).
    pub(super) fn check_placeholders(&mut self, sql: &str, span: Range<usize>) -> bool {
        let line_of = |offset: usize| sql[..offset.min(sql.len())].matches('\n').count();
        let found = match placeholders(sql) {
            Ok(found) => found,
            Err((at, message, hint)) => {
                self.errors
                    .push(self.loc.error_in(span, line_of(at), message).hint(hint));
                return false;
            }
        };
        let mut ok = true;
        for p in found {
            let known = match p.name.strip_prefix("params.") {
                Some(name) => self.params.contains_key(name),
                None => BUILT_INS.contains(&p.name.as_str()),
            };
            if known {
                continue;
            }
            ok = false;
            let names: Vec<String> = self
                .params
                .keys()
                .map(|k| format!("params.{k}"))
                .chain(BUILT_INS.iter().map(|b| b.to_string()))
                .collect();
            let hint = match did_you_mean(&p.name, names.iter().map(String::as_str)) {
                Some(m) => format!("did you mean ${{{m}}}?"),
                None if p.name.starts_with("params.") => format!(
                    "declare it: [params] {} = ... (a default; --param {}=... sets it for a run)",
                    &p.name["params.".len()..],
                    &p.name["params.".len()..]
                ),
                None => format!(
                    "SQL takes ${{params.NAME}} (declared in [params]) and {}",
                    BUILT_INS
                        .iter()
                        .map(|b| format!("${{{b}}}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            self.errors.push(
                self.loc
                    .error_in(
                        span.clone(),
                        line_of(p.at.start),
                        format!("${{{}}} is not a parameter", p.name),
                    )
                    .hint(hint),
            );
        }
        ok
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_in_comments_are_left_and_in_quotes_refused() {
        let sql = "SELECT 1 -- ${params.a}\n/* ${params.b} */ WHERE x = ${params.c} AND y='${z}'";
        let err = placeholders(sql).unwrap_err();
        assert!(err.1.contains("inside a quoted string"), "{err:?}");
        let ok = placeholders("SELECT 'it''s' -- ${x}\nWHERE a = ${ params.a }").unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].name, "params.a");
        assert!(placeholders("SELECT \"${params.a}\"").is_err());
    }

    #[test]
    fn values_fill_as_literals_that_cannot_escape() {
        let mut values = BTreeMap::new();
        values.insert("params.t".into(), Value::Text("'; DROP TABLE x; --".into()));
        values.insert("params.n".into(), Value::Integer(-5));
        values.insert(
            "run.scheduled_time".into(),
            Value::parse_time("2026-03-29T01:30:00+02:00").unwrap(),
        );
        let sql = "SELECT * FROM t WHERE a = ${params.t} AND b = 1 -${params.n} AND c < ${run.scheduled_time}";
        let filled = fill(sql, &values, &ansi_string).unwrap();
        assert_eq!(
            filled,
            "SELECT * FROM t WHERE a = '''; DROP TABLE x; --' AND b = 1 -(-5) AND c < TIMESTAMP '2026-03-28 23:30:00'"
        );
    }

    #[test]
    fn command_line_values_take_the_declared_type() {
        assert_eq!(Value::Integer(1).parse_like("42"), Ok(Value::Integer(42)));
        assert!(Value::Integer(1).parse_like("4x").is_err());
        assert_eq!(
            Value::Date(NaiveDate::default()).parse_like("2026-06-01"),
            Ok(Value::Date(NaiveDate::from_ymd_opt(2026, 6, 1).unwrap()))
        );
        assert_eq!(
            Value::Text(String::new()).parse_like("a'b"),
            Ok(Value::Text("a'b".into()))
        );
    }
}
