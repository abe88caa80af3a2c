//! The Web API's meaning, independent of HTTP plumbing: one request in, one response out. The server
//! calls it for each request, and `$batch` calls it for each part (with the changeset's undo journal and
//! Content-ID references).

use std::collections::HashMap;

use serde_json::{Map, Value};
use uuid::Uuid;

use super::model::Model;
use super::store::{BAD_REQUEST, DUPLICATE, KeyRef, NOT_FOUND, ODataError, Store, Undo, not_found};
use super::url::{Resource, parse_query, parse_resource};

/// A request, as parsed from HTTP or from a `$batch` part. Header names are lower case.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Below the service root: `accounts(…)`, `$metadata`, `$batch`.
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn empty(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    pub fn json(status: u16, value: &Value) -> Self {
        Self {
            status,
            headers: vec![(
                "content-type".into(),
                "application/json; odata.metadata=minimal".into(),
            )],
            body: serde_json::to_vec(value).expect("JSON"),
        }
    }

    pub fn error(e: &ODataError) -> Self {
        Self {
            status: e.status,
            headers: vec![(
                "content-type".into(),
                "application/json; odata.metadata=minimal".into(),
            )],
            body: e.body(),
        }
    }

    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What one request did to the records.
#[derive(Debug, Default, Clone, Copy)]
pub struct Effect {
    pub written: usize,
    /// A bulk message: how many targets it carried, and how many of them it created (the rest it
    /// updated, or refused); the execution time is costed from these.
    pub bulk: usize,
    pub bulk_created: usize,
    /// Records a GET of a collection returned (costed by `Latency::read`).
    pub read: usize,
}

/// Runs one request against the store. `base` is the service root URL; `ids` maps Content-IDs of
/// earlier requests in the same changeset to their entity URLs.
pub fn execute(
    store: &mut Store,
    request: &Request,
    base: &str,
    ids: &HashMap<String, String>,
    undo: &mut Vec<Undo>,
    page_size: usize,
) -> (Response, Effect) {
    match run(store, request, base, ids, undo, page_size) {
        Ok(r) => r,
        Err(e) => (Response::error(&e), Effect::default()),
    }
}

fn run(
    store: &mut Store,
    request: &Request,
    base: &str,
    ids: &HashMap<String, String>,
    undo: &mut Vec<Undo>,
    page_size: usize,
) -> Result<(Response, Effect), ODataError> {
    let path = resolve_content_id(&request.path, ids, base)?;
    let method = request.method.as_str();
    let resource = parse_resource(&path)?;
    let written = |n| Effect {
        written: n,
        ..Effect::default()
    };
    match (method, resource) {
        ("GET", Resource::Metadata) => Ok((
            Response {
                status: 200,
                headers: vec![("content-type".into(), "application/xml".into())],
                body: metadata(store.model()).into_bytes(),
            },
            Effect::default(),
        )),
        ("POST", Resource::Collection(set)) => {
            let body = json_body(request, ids, base)?;
            let id = store.create(&set, &body, None, undo)?;
            Ok((created(store, request, base, &set, id), written(1)))
        }
        ("GET", Resource::Collection(set)) => {
            let (response, read) = list(store, request, base, &set, page_size)?;
            Ok((
                response,
                Effect {
                    read,
                    ..Effect::default()
                },
            ))
        }
        ("GET", Resource::Entity(set, key)) => {
            let def = store.set(&set)?;
            let id = store
                .resolve(&set, &key)?
                .ok_or_else(|| missing(def, &key))?;
            let record = store.get(&set, id).expect("resolved");
            let select = parse_query(&request.query)?.select;
            Ok((
                Response::json(
                    200,
                    &representation(store, base, &set, record, select.as_deref(), true),
                ),
                Effect::default(),
            ))
        }
        ("PATCH", Resource::Entity(set, key)) => {
            let body = json_body(request, ids, base)?;
            let def = store.set(&set)?.clone();
            let existing = store.resolve(&set, &key)?;
            let update_only = request.header("if-match") == Some("*");
            let create_only = request.header("if-none-match") == Some("*");
            match existing {
                Some(_) if create_only => Err(ODataError::new(
                    412,
                    DUPLICATE,
                    "A record with matching key values already exists.",
                )),
                Some(id) => {
                    store.update(&set, id, &body, undo)?;
                    Ok((updated(store, request, base, &set, id), written(1)))
                }
                None if update_only => Err(missing(&def, &key)),
                None => {
                    let id = store.create(&set, &body, Some(&key), undo)?;
                    Ok((created(store, request, base, &set, id), written(1)))
                }
            }
        }
        ("POST", Resource::Action(set, action)) => {
            Ok(super::bulk::run(store, &set, &action, request, undo))
        }
        ("DELETE", Resource::Entity(set, key)) => {
            let def = store.set(&set)?.clone();
            let id = store
                .resolve(&set, &key)?
                .ok_or_else(|| missing(&def, &key))?;
            store.delete(&set, id, undo)?;
            Ok((Response::empty(204), written(1)))
        }
        (method, resource) => Err(ODataError::new(
            405,
            BAD_REQUEST,
            format!("The HTTP method '{method}' is not allowed on {resource:?}."),
        )),
    }
}

pub(crate) fn missing(def: &super::model::EntitySet, key: &KeyRef) -> ODataError {
    match key {
        KeyRef::Id(id) => not_found(def, *id),
        KeyRef::Alternate(parts) => ODataError::new(
            404,
            NOT_FOUND,
            format!(
                "{} with key values ({}) does not exist.",
                def.entity,
                parts
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ),
    }
}

/// `$1/...` in a changeset means the entity the request with Content-ID 1 created.
fn resolve_content_id(
    path: &str,
    ids: &HashMap<String, String>,
    base: &str,
) -> Result<String, ODataError> {
    let Some(rest) = path.strip_prefix('$') else {
        return Ok(path.to_string());
    };
    let (id, tail) = rest.split_once('/').unwrap_or((rest, ""));
    if id.chars().all(|c| c.is_ascii_digit()) && !id.is_empty() {
        let url = ids.get(id).ok_or_else(|| {
            ODataError::new(
                400,
                BAD_REQUEST,
                format!("Content-ID reference '${id}' names no earlier request."),
            )
        })?;
        let entity = url
            .strip_prefix(base)
            .unwrap_or(url)
            .trim_start_matches('/');
        return Ok(if tail.is_empty() {
            entity.to_string()
        } else {
            format!("{entity}/{tail}")
        });
    }
    Ok(path.to_string())
}

fn json_body(
    request: &Request,
    ids: &HashMap<String, String>,
    base: &str,
) -> Result<Map<String, Value>, ODataError> {
    let mut body: Map<String, Value> = serde_json::from_slice(&request.body).map_err(|e| {
        ODataError::new(
            400,
            BAD_REQUEST,
            format!("The request body is not a JSON object: {e}"),
        )
    })?;
    for (k, v) in body.iter_mut() {
        if let (true, Value::String(s)) = (k.ends_with("@odata.bind"), &*v)
            && s.starts_with('$')
        {
            *v = Value::String(resolve_content_id(s, ids, base)?);
        }
    }
    Ok(body)
}

fn entity_url(base: &str, set: &str, id: Uuid) -> String {
    format!("{base}/{set}({id})")
}

fn wants_representation(request: &Request) -> bool {
    request
        .header("prefer")
        .is_some_and(|p| p.contains("return=representation"))
}

fn created(store: &Store, request: &Request, base: &str, set: &str, id: Uuid) -> Response {
    written_response(store, request, base, set, id, 201)
}

fn updated(store: &Store, request: &Request, base: &str, set: &str, id: Uuid) -> Response {
    written_response(store, request, base, set, id, 200)
}

fn written_response(
    store: &Store,
    request: &Request,
    base: &str,
    set: &str,
    id: Uuid,
    status: u16,
) -> Response {
    let url = entity_url(base, set, id);
    let mut response = if wants_representation(request) {
        let record = store.get(set, id).expect("just written");
        Response::json(
            status,
            &representation(store, base, set, record, None, true),
        )
    } else {
        Response::empty(204)
    };
    response
        .headers
        .push(("odata-entityid".into(), url.clone()));
    response.headers.push(("location".into(), url));
    response
}

/// A record as JSON: the selected attributes (all without $select) and always the primary key.
fn representation(
    store: &Store,
    base: &str,
    set: &str,
    record: &Map<String, Value>,
    select: Option<&[String]>,
    context: bool,
) -> Value {
    let key = store
        .model()
        .set(set)
        .map(|d| d.key.as_str())
        .unwrap_or_default();
    let mut out = Map::new();
    if context {
        out.insert(
            "@odata.context".into(),
            Value::String(format!("{base}/$metadata#{set}/$entity")),
        );
    }
    out.insert("@odata.etag".into(), Value::String("W/\"1\"".into()));
    for (k, v) in record {
        if select.is_none_or(|s| s.iter().any(|c| c == k)) || k == key {
            out.insert(k.clone(), v.clone());
        }
    }
    Value::Object(out)
}

fn list(
    store: &Store,
    request: &Request,
    base: &str,
    set: &str,
    default_page: usize,
) -> Result<(Response, usize), ODataError> {
    store.set(set)?;
    let q = parse_query(&request.query)?;
    let page = request
        .header("prefer")
        .and_then(|p| {
            p.split(',')
                .find_map(|x| x.trim().strip_prefix("odata.maxpagesize=")?.parse().ok())
        })
        .unwrap_or(default_page)
        .max(1);
    // The next page's link: this request's query with its skiptoken replaced.
    let next_link = |token: String| {
        let kept: Vec<&str> = request
            .query
            .split('&')
            .filter(|p| !p.starts_with("$skiptoken=") && !p.is_empty())
            .collect();
        let mut next = format!("{base}/{set}?");
        if !kept.is_empty() {
            next.push_str(&kept.join("&"));
            next.push('&');
        }
        next.push_str(&format!("$skiptoken={token}"));
        Value::String(next)
    };
    if q.orderby.is_empty() && q.top.is_none() && !q.count && q.skip == 0 {
        // In key order, each page resuming after the last key of the one before (as Dataverse's
        // paging cookie does): a page costs its own records, not a scan of those before it.
        let mut value = Vec::new();
        let mut last = None;
        let mut more = false;
        let matching = store
            .rows_after(set, q.after)
            .filter(|(_, r)| q.filter.as_ref().is_none_or(|f| f.matches(r)));
        for (id, r) in matching {
            if value.len() == page {
                more = true;
                break;
            }
            value.push(representation(
                store,
                base,
                set,
                r,
                q.select.as_deref(),
                false,
            ));
            last = Some(*id);
        }
        let read = value.len();
        let mut out = Map::new();
        out.insert(
            "@odata.context".into(),
            Value::String(format!("{base}/$metadata#{set}")),
        );
        out.insert("value".into(), Value::Array(value));
        if let (true, Some(last)) = (more, last) {
            out.insert("@odata.nextLink".into(), next_link(last.to_string()));
        }
        return Ok((Response::json(200, &Value::Object(out)), read));
    }
    if q.after.is_some() {
        // A key to resume after only means something in key order.
        return Err(ODataError::new(400, BAD_REQUEST, "Bad $skiptoken."));
    }
    let mut rows: Vec<&Map<String, Value>> = store
        .rows(set)
        .map(|(_, r)| r)
        .filter(|r| q.filter.as_ref().is_none_or(|f| f.matches(r)))
        .collect();
    for (name, desc) in q.orderby.iter().rev() {
        rows.sort_by(|a, b| {
            let o = super::url::order(
                a.get(name).unwrap_or(&Value::Null),
                b.get(name).unwrap_or(&Value::Null),
            );
            if *desc { o.reverse() } else { o }
        });
    }
    let total = rows.len();
    let limit = q.top.unwrap_or(usize::MAX);
    let end = total.min(limit);
    let start = q.skip.min(end);
    let stop = start.saturating_add(page).min(end);
    let value: Vec<Value> = rows[start..stop]
        .iter()
        .map(|r| representation(store, base, set, r, q.select.as_deref(), false))
        .collect();
    let mut out = Map::new();
    out.insert(
        "@odata.context".into(),
        Value::String(format!("{base}/$metadata#{set}")),
    );
    if q.count {
        out.insert("@odata.count".into(), Value::from(total.min(limit)));
    }
    out.insert("value".into(), Value::Array(value));
    if stop < end {
        out.insert("@odata.nextLink".into(), next_link(stop.to_string()));
    }
    Ok((Response::json(200, &Value::Object(out)), stop - start))
}

/// The model as CSDL: entity types with keys, alternate keys, properties and lookups; entity sets.
pub fn metadata(model: &Model) -> String {
    let mut x = String::from(
        "<?xml version=\"1.0\" encoding=\"utf-8\"?>\n<edmx:Edmx Version=\"4.0\" xmlns:edmx=\"http://docs.oasis-open.org/odata/ns/edmx\">\n<edmx:DataServices>\n<Schema Namespace=\"Microsoft.Dynamics.CRM\" Alias=\"mscrm\" xmlns=\"http://docs.oasis-open.org/odata/ns/edm\">\n",
    );
    for set in model.sets.values() {
        x.push_str(&format!(
            "<EntityType Name=\"{}\">\n<Key><PropertyRef Name=\"{}\"/></Key>\n",
            set.entity, set.key
        ));
        x.push_str(&format!(
            "<Property Name=\"{}\" Type=\"Edm.Guid\" Nullable=\"false\"/>\n",
            set.key
        ));
        for (name, a) in &set.attributes {
            x.push_str(&format!(
                "<Property Name=\"{name}\" Type=\"{}\"",
                a.kind.edm()
            ));
            if let Some(max) = a.max_length {
                x.push_str(&format!(" MaxLength=\"{max}\""));
            }
            if a.required {
                x.push_str(" Nullable=\"false\"");
            }
            x.push_str("/>\n");
        }
        for (nav, target) in &set.lookups {
            let entity = &model.sets[target].entity;
            x.push_str(&format!(
                "<Property Name=\"_{nav}_value\" Type=\"Edm.Guid\"/>\n"
            ));
            x.push_str(&format!(
                "<NavigationProperty Name=\"{nav}\" Type=\"mscrm.{entity}\"/>\n"
            ));
        }
        if !set.alternate_keys.is_empty() {
            x.push_str("<Annotation Term=\"OData.Community.Keys.V1.AlternateKeys\"><Collection>\n");
            for key in &set.alternate_keys {
                x.push_str("<Record Type=\"OData.Community.Keys.V1.AlternateKey\"><PropertyValue Property=\"Key\"><Collection>\n");
                for part in key {
                    x.push_str(&format!(
                        "<Record Type=\"OData.Community.Keys.V1.PropertyRef\"><PropertyValue Property=\"Alias\" String=\"{part}\"/><PropertyValue Property=\"Name\" PropertyPath=\"{part}\"/></Record>\n"
                    ));
                }
                x.push_str("</Collection></PropertyValue></Record>\n");
            }
            x.push_str("</Collection></Annotation>\n");
        }
        x.push_str("</EntityType>\n");
    }
    x.push_str("<EntityContainer Name=\"System\">\n");
    for (name, set) in &model.sets {
        x.push_str(&format!(
            "<EntitySet Name=\"{name}\" EntityType=\"Microsoft.Dynamics.CRM.{}\"/>\n",
            set.entity
        ));
    }
    x.push_str("</EntityContainer>\n</Schema>\n</edmx:DataServices>\n</edmx:Edmx>\n");
    x
}
