//! OData URLs: resource paths with keys (`accounts(<guid>)`, `accounts(accountnumber='A-1')`),
//! references in `@odata.bind`, and the query options the emulator serves ($select, $filter with
//! eq/ne/gt/lt/ge/le/and/or, $top, $count, $orderby, $skiptoken).

use std::cmp::Ordering;

use serde_json::{Map, Value};

use super::store::{BAD_REQUEST, KeyRef, ODataError, parse_guid};

/// A resource path below the service root.
#[derive(Debug, Clone, PartialEq)]
pub enum Resource {
    Metadata,
    Batch,
    Collection(String),
    Entity(String, KeyRef),
    /// An action bound to an entity set: `accounts/Microsoft.Dynamics.CRM.CreateMultiple`.
    Action(String, String),
}

fn bad(message: impl Into<String>) -> ODataError {
    ODataError::new(400, BAD_REQUEST, message)
}

pub fn parse_resource(path: &str) -> Result<Resource, ODataError> {
    let path = percent_decode(path.trim_matches('/'));
    match path.as_str() {
        "$metadata" => return Ok(Resource::Metadata),
        "$batch" => return Ok(Resource::Batch),
        _ => {}
    }
    if let Some((set, action)) = path.split_once('/')
        && !set.contains('(')
        && action.starts_with("Microsoft.Dynamics.CRM.")
    {
        return Ok(Resource::Action(set.to_string(), action.to_string()));
    }
    match path.split_once('(') {
        None => Ok(Resource::Collection(path)),
        Some((set, rest)) => {
            let inner = rest
                .strip_suffix(')')
                .ok_or_else(|| bad(format!("Bad Request - Error in query syntax: '{path}'.")))?;
            Ok(Resource::Entity(set.to_string(), parse_key(inner)?))
        }
    }
}

/// `/accounts(<guid>)`, `accounts(accountnumber='A-1')` or a full URL ending so.
pub fn parse_reference(reference: &str) -> Result<(String, KeyRef), ODataError> {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    match parse_resource(last)? {
        Resource::Entity(set, key) => Ok((set, key)),
        _ => Err(bad(format!(
            "'{reference}' is not a reference to a record, like '/accounts(<id>)'."
        ))),
    }
}

fn parse_key(inner: &str) -> Result<KeyRef, ODataError> {
    if !inner.contains('=') {
        return Ok(KeyRef::Id(parse_guid(inner.trim_matches('\''))?));
    }
    let mut parts = Vec::new();
    for part in split_top(inner, ',') {
        let (name, literal) = part
            .split_once('=')
            .ok_or_else(|| bad(format!("Bad key segment '{part}'.")))?;
        parts.push((name.trim().to_string(), parse_literal(literal.trim())?));
    }
    Ok(KeyRef::Alternate(parts))
}

/// Splits on `sep` outside single-quoted strings.
fn split_top(text: &str, sep: char) -> Vec<String> {
    let mut out = vec![String::new()];
    let mut quoted = false;
    for c in text.chars() {
        if c == '\'' {
            quoted = !quoted;
        }
        if c == sep && !quoted {
            out.push(String::new());
        } else {
            out.last_mut().expect("one").push(c);
        }
    }
    out
}

fn parse_literal(text: &str) -> Result<Value, ODataError> {
    if let Some(s) = text.strip_prefix('\'').and_then(|t| t.strip_suffix('\'')) {
        return Ok(Value::String(s.replace("''", "'")));
    }
    match text {
        "true" => return Ok(Value::Bool(true)),
        "false" => return Ok(Value::Bool(false)),
        "null" => return Ok(Value::Null),
        _ => {}
    }
    if let Ok(i) = text.parse::<i64>() {
        return Ok(Value::from(i));
    }
    if let Ok(f) = text.parse::<f64>() {
        return Ok(Value::from(f));
    }
    // GUIDs and date-times are written without quotes, as Dataverse takes them.
    if uuid::Uuid::parse_str(text).is_ok() || chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(Value::String(text.to_string()));
    }
    Err(bad(format!("Syntax error: '{text}' is not a literal.")))
}

pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = bytes
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (bytes[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (b'+', _) => {
                out.push(b' ');
                i += 1;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The query options of a GET on a collection.
#[derive(Debug, Default)]
pub struct Query {
    pub select: Option<Vec<String>>,
    pub filter: Option<Filter>,
    pub top: Option<usize>,
    pub count: bool,
    pub orderby: Vec<(String, bool)>,
    pub skip: usize,
    /// Keyset paging: the records after this key (the last one of the page before).
    pub after: Option<uuid::Uuid>,
}

pub fn parse_query(query: &str) -> Result<Query, ODataError> {
    let mut q = Query::default();
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        let value = percent_decode(value);
        match percent_decode(name).as_str() {
            "$select" => q.select = Some(value.split(',').map(|s| s.trim().to_string()).collect()),
            "$filter" => q.filter = Some(Filter::parse(&value)?),
            "$top" => {
                q.top = Some(
                    value
                        .parse()
                        .map_err(|_| bad(format!("$top must be a number, not '{value}'.")))?,
                )
            }
            "$count" => q.count = value == "true",
            "$orderby" => {
                for part in value.split(',') {
                    let mut words = part.split_whitespace();
                    let name = words.next().unwrap_or_default().to_string();
                    let desc = words.next() == Some("desc");
                    q.orderby.push((name, desc));
                }
            }
            "$skiptoken" => match (value.parse(), uuid::Uuid::parse_str(&value)) {
                (Ok(skip), _) => q.skip = skip,
                (_, Ok(after)) => q.after = Some(after),
                _ => return Err(bad("Bad $skiptoken.")),
            },
            other if other.starts_with('$') => {
                return Err(bad(format!(
                    "The query parameter '{other}' is not supported by the emulator."
                )));
            }
            _ => {}
        }
    }
    Ok(q)
}

/// A $filter expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Filter {
    Compare(String, Op, Value),
    And(Box<Filter>, Box<Filter>),
    Or(Box<Filter>, Box<Filter>),
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Op {
    Eq,
    Ne,
    Gt,
    Lt,
    Ge,
    Le,
}

impl Filter {
    pub fn parse(text: &str) -> Result<Filter, ODataError> {
        let tokens = tokenize(text);
        let mut depth = 0usize;
        let mut deepest = 0usize;
        for t in &tokens {
            match t.as_str() {
                "(" => {
                    depth += 1;
                    deepest = deepest.max(depth);
                }
                ")" => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        let comparisons = tokens
            .iter()
            .filter(|t| matches!(t.as_str(), "eq" | "ne" | "gt" | "lt" | "ge" | "le"))
            .count();
        if deepest > DEEPEST_PARENTHESES || comparisons > MOST_COMPARISONS {
            return Err(bad(format!(
                "The $filter is too complex: at most {MOST_COMPARISONS} comparisons and \
                 {DEEPEST_PARENTHESES} levels of parentheses."
            )));
        }
        let mut pos = 0;
        let f = parse_or(&tokens, &mut pos)?;
        if pos != tokens.len() {
            return Err(bad(format!("Syntax error at position {pos} in '{text}'.")));
        }
        Ok(f)
    }

    pub fn matches(&self, record: &Map<String, Value>) -> bool {
        match self {
            Filter::And(a, b) => a.matches(record) && b.matches(record),
            Filter::Or(a, b) => a.matches(record) || b.matches(record),
            Filter::Compare(name, op, literal) => {
                let value = record.get(name).unwrap_or(&Value::Null);
                let ord = compare(value, literal);
                match op {
                    Op::Eq => ord == Some(Ordering::Equal),
                    Op::Ne => ord != Some(Ordering::Equal),
                    Op::Gt => ord == Some(Ordering::Greater),
                    Op::Lt => ord == Some(Ordering::Less),
                    Op::Ge => matches!(ord, Some(Ordering::Greater | Ordering::Equal)),
                    Op::Le => matches!(ord, Some(Ordering::Less | Ordering::Equal)),
                }
            }
        }
    }
}

/// Orders two JSON values the way OData compares them (numbers as numbers, text as text).
pub fn compare(a: &Value, b: &Value) -> Option<Ordering> {
    match (a, b) {
        (Value::Null, Value::Null) => Some(Ordering::Equal),
        (Value::Number(x), Value::Number(y)) => x.as_f64()?.partial_cmp(&y.as_f64()?),
        (Value::String(x), Value::String(y)) => {
            // Two date-times compare as instants, whatever their fractions and offsets.
            let instant = |t: &str| chrono::DateTime::parse_from_rfc3339(t).ok();
            match (instant(x), instant(y)) {
                (Some(a), Some(b)) => Some(a.cmp(&b)),
                _ => Some(x.to_lowercase().cmp(&y.to_lowercase())),
            }
        }
        (Value::Bool(x), Value::Bool(y)) => Some(x.cmp(y)),
        _ => None,
    }
}

/// A total order for `$orderby`, whatever the values' types: empty (null) first, then false/true,
/// numbers, text (case-insensitive), and anything else as equal. (`compare` is for `$filter`, where
/// values of different types do not compare at all.)
pub fn order(a: &Value, b: &Value) -> Ordering {
    let rank = |v: &Value| match v {
        Value::Null => 0,
        Value::Bool(_) => 1,
        Value::Number(_) => 2,
        Value::String(_) => 3,
        _ => 4,
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x
            .as_f64()
            .unwrap_or(0.0)
            .total_cmp(&y.as_f64().unwrap_or(0.0)),
        _ if rank(a) != rank(b) => rank(a).cmp(&rank(b)),
        _ => compare(a, b).unwrap_or(Ordering::Equal),
    }
}

/// The most comparisons one `$filter` may hold, and how deep its parentheses may nest: a filter
/// beyond either is refused before it is parsed (a hostile one would overflow the stack).
const MOST_COMPARISONS: usize = 500;
const DEEPEST_PARENTHESES: usize = 64;

fn tokenize(text: &str) -> Vec<String> {
    let mut tokens = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => {
                current.push(c);
                quoted = !quoted;
            }
            '(' | ')' if !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
                tokens.push(c.to_string());
            }
            c if c.is_whitespace() && !quoted => {
                if !current.is_empty() {
                    tokens.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if !current.is_empty() {
        tokens.push(current);
    }
    tokens
}

fn parse_or(t: &[String], pos: &mut usize) -> Result<Filter, ODataError> {
    let mut left = parse_and(t, pos)?;
    while t.get(*pos).map(String::as_str) == Some("or") {
        *pos += 1;
        left = Filter::Or(Box::new(left), Box::new(parse_and(t, pos)?));
    }
    Ok(left)
}

fn parse_and(t: &[String], pos: &mut usize) -> Result<Filter, ODataError> {
    let mut left = parse_factor(t, pos)?;
    while t.get(*pos).map(String::as_str) == Some("and") {
        *pos += 1;
        left = Filter::And(Box::new(left), Box::new(parse_factor(t, pos)?));
    }
    Ok(left)
}

fn parse_factor(t: &[String], pos: &mut usize) -> Result<Filter, ODataError> {
    if t.get(*pos).map(String::as_str) == Some("(") {
        *pos += 1;
        let inner = parse_or(t, pos)?;
        if t.get(*pos).map(String::as_str) != Some(")") {
            return Err(bad("Syntax error: ')' expected."));
        }
        *pos += 1;
        return Ok(inner);
    }
    let (Some(name), Some(op), Some(literal)) = (t.get(*pos), t.get(*pos + 1), t.get(*pos + 2))
    else {
        return Err(bad("Syntax error: expected 'property op value'."));
    };
    let op = match op.as_str() {
        "eq" => Op::Eq,
        "ne" => Op::Ne,
        "gt" => Op::Gt,
        "lt" => Op::Lt,
        "ge" => Op::Ge,
        "le" => Op::Le,
        other => {
            return Err(bad(format!(
                "The operator '{other}' is not supported (eq, ne, gt, lt, ge, le)."
            )));
        }
    };
    *pos += 3;
    Ok(Filter::Compare(name.clone(), op, parse_literal(literal)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_filters_parse() {
        let id = uuid::Uuid::new_v4();
        assert_eq!(
            parse_resource(&format!("accounts({id})")).unwrap(),
            Resource::Entity("accounts".into(), KeyRef::Id(id))
        );
        assert_eq!(
            parse_resource("accounts(accountnumber='A-1',x=2)").unwrap(),
            Resource::Entity(
                "accounts".into(),
                KeyRef::Alternate(vec![
                    ("accountnumber".into(), Value::from("A-1")),
                    ("x".into(), Value::from(2))
                ])
            )
        );
        let f = Filter::parse("name eq 'O''Brien' and (revenue gt 10 or creditonhold eq true)")
            .unwrap();
        let rec: Map<String, Value> =
            serde_json::from_str(r#"{"name":"O'Brien","revenue":5,"creditonhold":true}"#).unwrap();
        assert!(f.matches(&rec));
        let rec: Map<String, Value> =
            serde_json::from_str(r#"{"name":"O'Brien","revenue":5,"creditonhold":false}"#).unwrap();
        assert!(!f.matches(&rec));
    }
}
