//! `$batch` in multipart/mixed: parts of `Content-Type: application/http`, changesets that are atomic
//! (one failing request rolls the changeset back and answers for all of it), Content-ID references,
//! at most 1000 requests, stopping at the first error unless `Prefer: odata.continue-on-error`
//! (then the batch answers 400).

use std::collections::HashMap;

use std::sync::PoisonError;

use super::api::{Effect, Request, Response, execute};
use super::store::{BAD_REQUEST, ODataError, Store};
use ferry_connectors::http::multipart::{boundary, header, split_headers, split_parts};

pub const MAX_REQUESTS: usize = 1000;

#[derive(Debug)]
pub enum Item {
    Single(Part),
    Changeset(Vec<Part>),
}

#[derive(Debug)]
pub struct Part {
    pub content_id: Option<String>,
    pub request: Request,
}

impl Item {
    /// How many requests the item holds.
    pub fn requests(&self) -> usize {
        match self {
            Item::Single(_) => 1,
            Item::Changeset(parts) => parts.len(),
        }
    }
}

fn bad(message: impl Into<String>) -> ODataError {
    ODataError::new(400, BAD_REQUEST, message)
}

/// Parses a batch body into its items. `root` is the service root path (`/api/data/v9.2`).
pub fn parse(body: &[u8], content_type: &str, root: &str) -> Result<Vec<Item>, ODataError> {
    let outer = boundary(content_type)
        .ok_or_else(|| bad("A $batch request needs Content-Type: multipart/mixed; boundary=..."))?;
    let text = String::from_utf8_lossy(body);
    let mut items = Vec::new();
    for part in split_parts(&text, &outer) {
        let (headers, rest) = split_headers(part);
        let part_type = header(&headers, "content-type").unwrap_or_default();
        if part_type.starts_with("multipart/mixed") {
            let inner = boundary(&part_type).ok_or_else(|| bad("A changeset needs a boundary."))?;
            let mut parts = Vec::new();
            for p in split_parts(rest, &inner) {
                parts.push(parse_http_part(p, root)?);
            }
            items.push(Item::Changeset(parts));
        } else {
            items.push(Item::Single(parse_http_part(part, root)?));
        }
    }
    Ok(items)
}

fn parse_http_part(part: &str, root: &str) -> Result<Part, ODataError> {
    let (mime, http) = split_headers(part);
    let content_id = header(&mime, "content-id");
    let http = http.trim_start_matches(['\r', '\n']);
    let (line, after) = http.split_once('\n').unwrap_or((http, ""));
    let mut words = line.split_whitespace();
    let (Some(method), Some(url)) = (words.next(), words.next()) else {
        return Err(bad(format!(
            "A batch part does not start with a request line: '{}'.",
            line.trim()
        )));
    };
    let (headers, body) = if after.trim().is_empty() {
        (Vec::new(), "")
    } else {
        split_headers(after)
    };
    let path = match url.find(root) {
        Some(i) => &url[i + root.len()..],
        None => url,
    };
    let (path, query) = path.split_once('?').unwrap_or((path, ""));
    Ok(Part {
        content_id,
        request: Request {
            method: method.to_ascii_uppercase(),
            path: path.trim_start_matches('/').to_string(),
            query: query.to_string(),
            headers,
            body: body.trim_end_matches(['\r', '\n']).as_bytes().to_vec(),
        },
    })
}

/// Runs the items against the store; returns the top-level status, the multipart body, its content
/// type, and what the committed requests did.
pub fn run(
    store: &std::sync::Mutex<Store>,
    items: Vec<Item>,
    base: &str,
    continue_on_error: bool,
    page_size: usize,
) -> (u16, String, Vec<u8>, Effect) {
    let total: usize = items.iter().map(Item::requests).sum();
    let boundary = format!("batchresponse_{}", uuid::Uuid::new_v4());
    let content_type = format!("multipart/mixed; boundary={boundary}");
    if total > MAX_REQUESTS {
        let e = bad(format!(
            "The number of requests in the batch ({total}) exceeds the limit of {MAX_REQUESTS}."
        ));
        return (400, "application/json".into(), e.body(), Effect::default());
    }
    let mut out = String::new();
    let mut effect = Effect::default();
    let mut status = 200;
    for item in items {
        let failed = match item {
            Item::Single(part) => {
                let mut undo = Vec::new();
                let (response, e) = {
                    let mut s = store.lock().unwrap_or_else(PoisonError::into_inner);
                    execute(
                        &mut s,
                        &part.request,
                        base,
                        &HashMap::new(),
                        &mut undo,
                        page_size,
                    )
                };
                write_part(&mut out, &boundary, part.content_id.as_deref(), &response);
                if response.is_success() {
                    effect.written += e.written;
                }
                !response.is_success()
            }
            Item::Changeset(parts) => {
                let inner = format!("changesetresponse_{}", uuid::Uuid::new_v4());
                let mut s = store.lock().unwrap_or_else(PoisonError::into_inner);
                let mut undo = Vec::new();
                let mut ids = HashMap::new();
                let mut responses = Vec::new();
                let mut written = 0;
                let mut failure = None;
                for part in &parts {
                    let (response, e) =
                        execute(&mut s, &part.request, base, &ids, &mut undo, page_size);
                    if !response.is_success() {
                        failure = Some((part.content_id.clone(), response));
                        break;
                    }
                    written += e.written;
                    if let (Some(id), Some(url)) = (
                        &part.content_id,
                        response
                            .headers
                            .iter()
                            .find(|(k, _)| k == "odata-entityid")
                            .map(|(_, v)| v.clone()),
                    ) {
                        ids.insert(id.clone(), url);
                    }
                    responses.push((part.content_id.clone(), response));
                }
                match failure {
                    Some((id, response)) => {
                        s.rollback(undo);
                        drop(s);
                        write_part(&mut out, &boundary, id.as_deref(), &response);
                        true
                    }
                    None => {
                        drop(s);
                        effect.written += written;
                        out.push_str(&format!("--{boundary}\r\nContent-Type: multipart/mixed; boundary={inner}\r\n\r\n"));
                        for (id, response) in &responses {
                            write_part(&mut out, &inner, id.as_deref(), response);
                        }
                        out.push_str(&format!("--{inner}--\r\n"));
                        false
                    }
                }
            }
        };
        if failed && !continue_on_error {
            status = 400;
            break;
        }
    }
    out.push_str(&format!("--{boundary}--\r\n"));
    (status, content_type, out.into_bytes(), effect)
}

fn write_part(out: &mut String, boundary: &str, content_id: Option<&str>, response: &Response) {
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    ));
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!(
        "\r\nHTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    ));
    for (k, v) in &response.headers {
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.push_str(&String::from_utf8_lossy(&response.body));
    out.push_str("\r\n");
}

pub fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        412 => "Precondition Failed",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}
