//! Dataverse's bulk messages as a write path: one `CreateMultiple` or `UpsertMultiple` request
//! carries a whole batch and counts once against the request limit (its execution time counts in
//! full, and is a quarter of `$batch`'s per created record).
//!
//! ```text
//! insert, truncate ─▶ POST <set>/Microsoft.Dynamics.CRM.CreateMultiple {"Targets": [...]}
//! upsert, sync     ─▶ POST <set>/Microsoft.Dynamics.CRM.UpsertMultiple (each target's @odata.id)
//!   2xx                        every record written
//!   400 + BulkApiErrorDetails  an elastic table wrote all but the listed records (to quarantine)
//!   other 4xx                  a standard table refused the group whole: `$batch` isolates the bad
//!                              records (Microsoft's own advice)
//!   404 for the message        the set has no bulk messages: `$batch` for the rest of the run
//!   429, 5xx                   the batch is retried, as any write
//! ```

use serde_json::Value;

use crate::error::ConnectorError;
use crate::sink::WriteMode;

/// How the records of a batch travel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BatchMode {
    /// Bulk messages on Dataverse (falling back to `$batch` where a set has none), `$batch` elsewhere.
    #[default]
    Auto,
    /// `$batch` always.
    Batch,
    /// Bulk messages always (Dataverse only).
    Multiple,
}

impl BatchMode {
    pub const ALL: [&'static str; 3] = ["auto", "batch", "multiple"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "auto" => Some(Self::Auto),
            "batch" => Some(Self::Batch),
            "multiple" => Some(Self::Multiple),
            _ => None,
        }
    }
}

/// The message a write mode sends.
pub fn message(mode: WriteMode, keyed: bool) -> &'static str {
    match mode {
        WriteMode::Upsert | WriteMode::Sync if keyed => "UpsertMultiple",
        _ => "CreateMultiple",
    }
}

/// The request body: each record's JSON with its type and, to upsert, its address.
pub fn body<'a>(
    entity_type: &str,
    set: &str,
    records: impl Iterator<Item = (&'a str, Option<&'a str>)>,
) -> String {
    let type_field = format!(
        "\"@odata.type\":{}",
        serde_json::to_string(&format!("Microsoft.Dynamics.CRM.{entity_type}")).expect("JSON")
    );
    let mut out = String::from("{\"Targets\":[");
    for (n, (json, address)) in records.enumerate() {
        if n > 0 {
            out.push(',');
        }
        out.push('{');
        out.push_str(&type_field);
        if let Some(segment) = address {
            out.push_str(",\"@odata.id\":");
            out.push_str(&serde_json::to_string(&format!("{set}{segment}")).expect("JSON"));
        }
        let rest = json.trim_start().strip_prefix('{').unwrap_or("}");
        if !rest.trim_start().starts_with('}') {
            out.push(',');
        }
        out.push_str(rest);
    }
    out.push_str("]}");
    out
}

/// What the service said of a bulk message that was not a success, a throttle or a server error.
#[derive(Debug)]
pub enum Refusal {
    /// The set has no such message.
    Unsupported,
    /// An elastic table wrote every record but these (index in the request, the service's error).
    Partly(Vec<(usize, ConnectorError)>),
    /// The whole group, for the data of one of its records: nothing was written.
    Group(String),
}

/// Reads a refused bulk message's answer.
pub fn refusal(status: u16, body: &str) -> Refusal {
    let v: Value = serde_json::from_str(body).unwrap_or_default();
    let error = &v["error"];
    let message = error["message"].as_str().unwrap_or_default();
    if status == 404 && message.contains("Resource not found for the segment") {
        return Refusal::Unsupported;
    }
    let details = error.as_object().and_then(|e| {
        e.iter()
            .find(|(k, _)| k.ends_with("BulkApiErrorDetails"))
            .map(|(_, v)| v.clone())
    });
    if let Some(details) = details {
        // The annotation's value is the list as JSON text (or, from some services, the list).
        let list: Value = match &details {
            Value::String(text) => serde_json::from_str(text).unwrap_or_default(),
            other => other.clone(),
        };
        let refused: Vec<(usize, ConnectorError)> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|d| {
                let index = d["RequestIndex"].as_u64()? as usize;
                let part = crate::http::multipart::ResponsePart {
                    status: d["StatusCode"].as_u64().unwrap_or(400) as u16,
                    content_id: None,
                    body: serde_json::json!({"error": {
                        "code": d["ErrorCode"].as_str().unwrap_or_default(),
                        "message": d["Message"].as_str().unwrap_or(message),
                    }})
                    .to_string(),
                    retry_after: None,
                };
                Some((index, super::sink::part_error(&part)))
            })
            .collect();
        if !refused.is_empty() {
            return Refusal::Partly(refused);
        }
    }
    Refusal::Group(format!("{message} (HTTP {status})"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_carry_their_type_and_address() {
        let body = body(
            "account",
            "accounts",
            [
                (
                    r#"{"name":"A","accountnumber":"A-1"}"#,
                    Some("(accountnumber='A-1')"),
                ),
                ("{}", None),
            ]
            .into_iter(),
        );
        let v: Value = serde_json::from_str(&body).expect("JSON");
        let targets = v["Targets"].as_array().unwrap();
        assert_eq!(targets[0]["@odata.type"], "Microsoft.Dynamics.CRM.account");
        assert_eq!(targets[0]["@odata.id"], "accounts(accountnumber='A-1')");
        assert_eq!(targets[0]["name"], "A");
        assert_eq!(targets[1].as_object().unwrap().len(), 1);
    }

    #[test]
    fn refusals_read_as_unsupported_partial_or_whole() {
        let unsupported = r#"{"error":{"code":"0x80060888","message":"Resource not found for the segment 'Microsoft.Dynamics.CRM.CreateMultiple'."}}"#;
        assert!(matches!(refusal(404, unsupported), Refusal::Unsupported));
        let partly = r#"{"error":{"code":"0x80040200","message":"1 of 3","@Microsoft.PowerApps.CDS.ErrorDetails.BulkApiErrorDetails":"[{\"RequestIndex\":1,\"StatusCode\":400,\"ErrorCode\":\"0x80040200\",\"Message\":\"name is required\"}]"}}"#;
        match refusal(400, partly) {
            Refusal::Partly(list) => {
                assert_eq!(list.len(), 1);
                assert_eq!(list[0].0, 1);
                assert!(list[0].1.message.contains("name is required"));
                assert_eq!(list[0].1.cause, Some(crate::error::Cause::RequiredMissing));
            }
            other => panic!("{other:?}"),
        }
        let whole = r#"{"error":{"code":"0x80044331","message":"too long"}}"#;
        assert!(matches!(refusal(400, whole), Refusal::Group(m) if m.contains("too long")));
    }
}
