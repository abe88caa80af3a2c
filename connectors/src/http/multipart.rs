//! multipart/mixed, as OData `$batch` requests and responses use it: boundaries, parts, and the
//! header block of each part. Shared by the emulator (parsing requests) and the OData target (parsing
//! responses).

/// The boundary of a `multipart/mixed; boundary=...` content type.
pub fn boundary(content_type: &str) -> Option<String> {
    content_type
        .split(';')
        .find_map(|p| p.trim().strip_prefix("boundary="))
        .map(|b| b.trim_matches('"').to_string())
}

pub fn split_parts<'a>(text: &'a str, boundary: &str) -> Vec<&'a str> {
    let delimiter = format!("--{boundary}");
    let mut parts = Vec::new();
    for (i, chunk) in text.split(delimiter.as_str()).enumerate() {
        if i == 0 || chunk.starts_with("--") {
            continue;
        }
        parts.push(chunk.trim_start_matches(['\r', '\n']));
    }
    parts
}

/// Header lines (lower-case names) and what follows the blank line.
pub fn split_headers(text: &str) -> (Vec<(String, String)>, &str) {
    let (head, rest) = match (text.find("\r\n\r\n"), text.find("\n\n")) {
        (Some(a), Some(b)) if b < a => (&text[..b], &text[b + 2..]),
        (Some(a), _) => (&text[..a], &text[a + 4..]),
        (None, Some(b)) => (&text[..b], &text[b + 2..]),
        (None, None) => (text, ""),
    };
    let headers = head
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    (headers, rest)
}

pub fn header(headers: &[(String, String)], name: &str) -> Option<String> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.clone())
}

/// Appends one request to a `$batch` body as a `Content-Type: application/http` part. `headers` are
/// complete lines ("If-None-Match: *\r\n"); an empty `body` sends none.
pub fn write_request(
    out: &mut String,
    boundary: &str,
    content_id: Option<usize>,
    request_line: &str,
    headers: &str,
    body: &str,
) {
    out.push_str(&format!(
        "--{boundary}\r\nContent-Type: application/http\r\nContent-Transfer-Encoding: binary\r\n"
    ));
    if let Some(id) = content_id {
        out.push_str(&format!("Content-ID: {id}\r\n"));
    }
    out.push_str(&format!(
        "\r\n{request_line} HTTP/1.1\r\n{headers}\r\n{body}\r\n"
    ));
}

/// One part of a `$batch` response: its status, Content-ID and body, in order; a changeset's parts
/// are flattened in place.
#[derive(Debug, Clone)]
pub struct ResponsePart {
    pub status: u16,
    pub content_id: Option<String>,
    pub body: String,
    /// The part's own `Retry-After`, in seconds (a 429 inside a `$batch`).
    pub retry_after: Option<f64>,
}

/// Parses a `$batch` response body.
pub fn parse_responses(body: &str, content_type: &str) -> Vec<ResponsePart> {
    parse_nested(body, content_type, 0)
}

/// A `$batch` nests once (a changeset inside the batch); deeper nesting is no OData answer, and
/// following it would let a hostile service exhaust the stack. Such a part reads as status 0.
fn parse_nested(body: &str, content_type: &str, depth: usize) -> Vec<ResponsePart> {
    let Some(b) = boundary(content_type) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for part in split_parts(body, &b) {
        let (mime, rest) = split_headers(part);
        let kind = header(&mime, "content-type").unwrap_or_default();
        if kind.starts_with("multipart/mixed") {
            if depth == 0 {
                out.extend(parse_nested(rest, &kind, depth + 1));
            } else {
                out.push(ResponsePart {
                    status: 0,
                    content_id: None,
                    body: "a $batch answer nested deeper than a changeset".to_string(),
                    retry_after: None,
                });
            }
            continue;
        }
        let content_id = header(&mime, "content-id");
        let rest = rest.trim_start_matches(['\r', '\n']);
        let (line, after) = rest.split_once('\n').unwrap_or((rest, ""));
        let status = line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let (headers, body) = if after.trim().is_empty() {
            (Vec::new(), "")
        } else {
            split_headers(after)
        };
        out.push(ResponsePart {
            status,
            content_id,
            body: body.trim().to_string(),
            retry_after: header(&headers, "retry-after")
                .as_deref()
                .and_then(super::retry_after_secs),
        });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_nested_beyond_a_changeset_are_not_followed() {
        let mut body = String::from("HTTP/1.1 204 No Content\r\n\r\n");
        for level in (0..20_000).rev() {
            body = format!(
                "--b{level}x\r\nContent-Type: multipart/mixed; boundary=b{}x\r\n\r\n{body}\r\n--b{level}x--\r\n",
                level + 1
            );
        }
        let parts = parse_responses(&body, "multipart/mixed; boundary=b0x");
        assert_eq!(parts.len(), 1);
        assert_eq!(parts[0].status, 0);
    }

    #[test]
    fn a_parts_retry_after_is_kept() {
        let body = "--b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n\r\n\
                    --b\r\nContent-Type: application/http\r\n\r\nHTTP/1.1 429 Too Many Requests\r\n\
                    Retry-After: 7\r\nContent-Type: application/json\r\n\r\n{\"error\":{\"code\":\"0x80072322\"}}\r\n\
                    --b--\r\n";
        let parts = parse_responses(body, "multipart/mixed; boundary=b");
        assert_eq!(parts.len(), 2);
        assert_eq!((parts[0].status, parts[0].retry_after), (204, None));
        assert_eq!((parts[1].status, parts[1].retry_after), (429, Some(7.0)));
        assert!(parts[1].body.contains("0x80072322"), "{}", parts[1].body);
    }
}
