//! Dataverse's bulk messages, bound to an entity set: `POST accounts/Microsoft.Dynamics.CRM.CreateMultiple`
//! (and `UpdateMultiple`, `UpsertMultiple`) with `{"Targets": [...]}`, each target a record with its
//! `@odata.type` and, to update or upsert, its `@odata.id` (`accounts(accountnumber='A-1')`) or its
//! primary key.
//!
//! ```text
//! standard table: every target in one transaction; the first refused target refuses the request
//!                 (its error, nothing written)
//! elastic table:  with Prefer: odata.continue-on-error, each target on its own; refused targets are
//!                 listed by index in the error's BulkApiErrorDetails, the others are written
//! ```
//!
//! The request counts once against the request limit; its execution time (the cost model in
//! `Latency`) counts in full. A set with `bulk_messages = false` answers 404, as a table that does not
//! support the messages does.

use serde_json::{Map, Value, json};

use super::api::{Effect, Request, Response};
use super::store::{BAD_REQUEST, KeyRef, ODataError, Store, Undo};

/// The annotation that lists an elastic table's refused targets.
pub const ERROR_DETAILS: &str = "@Microsoft.PowerApps.CDS.ErrorDetails.BulkApiErrorDetails";

/// The three messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    Create,
    Update,
    Upsert,
}

impl Message {
    pub fn parse(action: &str) -> Option<Self> {
        match action.strip_prefix("Microsoft.Dynamics.CRM.")? {
            "CreateMultiple" => Some(Self::Create),
            "UpdateMultiple" => Some(Self::Update),
            "UpsertMultiple" => Some(Self::Upsert),
            _ => None,
        }
    }
}

fn bad(message: impl Into<String>) -> ODataError {
    ODataError::new(400, BAD_REQUEST, message)
}

/// Runs a bulk message against the store. `undo` receives the journal of what was written (for a
/// changeset around it); a refused standard request leaves nothing behind.
pub fn run(
    store: &mut Store,
    set: &str,
    action: &str,
    request: &Request,
    undo: &mut Vec<Undo>,
) -> (Response, Effect) {
    let refused = |e: ODataError| (Response::error(&e), Effect::default());
    let def = match store.set(set) {
        Ok(def) => def.clone(),
        Err(e) => return refused(e),
    };
    let Some(message) = Message::parse(action).filter(|_| def.bulk_messages) else {
        return refused(ODataError::new(
            404,
            BAD_REQUEST,
            format!("Resource not found for the segment '{action}'."),
        ));
    };
    let body: Map<String, Value> = match serde_json::from_slice(&request.body) {
        Ok(body) => body,
        Err(e) => return refused(bad(format!("The request body is not a JSON object: {e}"))),
    };
    let Some(targets) = body.get("Targets").and_then(Value::as_array) else {
        return refused(bad(
            "The parameter 'Targets' is required: an array of records.",
        ));
    };
    let continue_on_error = request
        .header("prefer")
        .is_some_and(|p| p.contains("odata.continue-on-error"));
    let entity_type = format!("Microsoft.Dynamics.CRM.{}", def.entity);
    let mut effect = Effect {
        bulk: targets.len(),
        ..Effect::default()
    };
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    let mut journal = Vec::new();
    for (index, target) in targets.iter().enumerate() {
        let mut mine = Vec::new();
        let outcome = write_one(store, set, &def, &entity_type, message, target, &mut mine);
        match outcome {
            Ok((id, created)) => {
                ids.push(id);
                effect.written += 1;
                if created {
                    effect.bulk_created += 1;
                }
                journal.extend(mine);
            }
            Err(e) if def.elastic && continue_on_error => {
                store.rollback(mine);
                failures.push((index, e));
            }
            Err(e) => {
                // A standard table's message is one transaction: nothing of it stays.
                store.rollback(mine);
                store.rollback(journal);
                effect.written = 0;
                effect.bulk_created = 0;
                return (Response::error(&e), effect);
            }
        }
    }
    undo.extend(journal);
    if let Some((_, first)) = failures.first() {
        let details: Vec<Value> = failures
            .iter()
            .map(|(index, e)| {
                json!({"RequestIndex": index, "StatusCode": e.status, "ErrorCode": e.code, "Message": e.message})
            })
            .collect();
        let body = json!({"error": {
            "code": first.code,
            "message": format!("{} of {} records were refused; the others were written. {}", failures.len(), targets.len(), first.message),
            ERROR_DETAILS: serde_json::to_string(&details).expect("JSON"),
        }});
        return (Response::json(400, &body), effect);
    }
    let response = match message {
        Message::Create => Response::json(
            200,
            &json!({
                "@odata.context": "$metadata#Microsoft.Dynamics.CRM.CreateMultipleResponse",
                "Ids": ids.iter().map(|id| id.to_string()).collect::<Vec<_>>(),
            }),
        ),
        Message::Update | Message::Upsert => Response::empty(204),
    };
    (response, effect)
}

/// Writes one target; returns its id and whether it was created.
fn write_one(
    store: &mut Store,
    set: &str,
    def: &super::model::EntitySet,
    entity_type: &str,
    message: Message,
    target: &Value,
    undo: &mut Vec<Undo>,
) -> Result<(uuid::Uuid, bool), ODataError> {
    let record = target
        .as_object()
        .ok_or_else(|| bad("Each of 'Targets' must be a record (a JSON object)."))?;
    match record.get("@odata.type").and_then(Value::as_str) {
        Some(t) if t == entity_type || t == format!("#{entity_type}") => {}
        Some(t) => {
            return Err(bad(format!(
                "The @odata.type '{t}' is not {entity_type}: every target must be of the entity set's type."
            )));
        }
        None => {
            return Err(bad(format!(
                "The @odata.type annotation is required with every item in Targets ({entity_type})."
            )));
        }
    }
    let key = match record.get("@odata.id").and_then(Value::as_str) {
        Some(reference) => {
            let (named, key) = super::url::parse_reference(reference)?;
            if named != set {
                return Err(bad(format!(
                    "The @odata.id '{reference}' names another entity set than '{set}'."
                )));
            }
            Some(key)
        }
        None => match record.get(&def.key).and_then(Value::as_str) {
            Some(id) => Some(KeyRef::Id(super::store::parse_guid(id)?)),
            None => None,
        },
    };
    let existing = match &key {
        Some(key) => store.resolve(set, key)?,
        None => None,
    };
    match (message, existing) {
        (Message::Create, _) => Ok((store.create(set, record, key.as_ref(), undo)?, true)),
        (Message::Update | Message::Upsert, Some(id)) => {
            store.update(set, id, record, undo)?;
            Ok((id, false))
        }
        (Message::Upsert, None) if key.is_some() => {
            Ok((store.create(set, record, key.as_ref(), undo)?, true))
        }
        (Message::Update | Message::Upsert, None) => Err(match key {
            Some(key) => super::api::missing(def, &key),
            None => bad(format!(
                "Each target of {message:?}Multiple needs its @odata.id or its {}.",
                def.key
            )),
        }),
    }
}
