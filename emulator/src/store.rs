//! The records, in memory: one table per entity set, keyed by GUID, with an index per alternate key,
//! and the validation Dataverse applies to a record's attributes, with its error codes and messages.
//!
//! A changeset's writes keep an undo journal, so a failing request rolls the whole changeset back.

use std::collections::{BTreeMap, HashMap};

use serde_json::{Map, Value};
use uuid::Uuid;

use super::model::{AttrType, EntitySet, Model};

/// An error as Dataverse reports it: `{"error":{"code":"0x...","message":"..."}}` with a status.
#[derive(Debug, Clone, PartialEq)]
pub struct ODataError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl ODataError {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    pub fn body(&self) -> Vec<u8> {
        serde_json::to_vec(
            &serde_json::json!({"error": {"code": self.code, "message": self.message}}),
        )
        .expect("JSON")
    }
}

pub const NOT_FOUND: &str = "0x80040217";
pub const DUPLICATE: &str = "0x80040237";
pub const REQUIRED: &str = "0x80040200";
pub const TOO_LONG: &str = "0x80044331";
pub const BAD_REQUEST: &str = "0x80060888";

/// How a URL names a record: `accounts(00000000-...)` or `accounts(accountnumber='A-1')`.
#[derive(Debug, Clone, PartialEq)]
pub enum KeyRef {
    Id(Uuid),
    Alternate(Vec<(String, Value)>),
}

#[derive(Default)]
struct Table {
    rows: BTreeMap<Uuid, Map<String, Value>>,
    /// One index per alternate key: the key's values (as text) to the record.
    alternate: Vec<HashMap<Vec<String>, Uuid>>,
}

/// Every entity set's records, optionally written through to a SQLite file.
pub struct Store {
    model: Model,
    tables: HashMap<String, Table>,
    file: Option<rusqlite::Connection>,
}

/// A write to undo if its changeset fails: the record as it was (None: it did not exist).
pub type Undo = (String, Uuid, Option<Map<String, Value>>);

impl Store {
    pub fn new(model: Model) -> Self {
        let tables = model
            .sets
            .iter()
            .map(|(name, set)| {
                let table = Table {
                    rows: BTreeMap::new(),
                    alternate: vec![HashMap::new(); set.alternate_keys.len()],
                };
                (name.clone(), table)
            })
            .collect();
        Self {
            model,
            tables,
            file: None,
        }
    }

    /// A store kept in a SQLite file as well: loaded from it now, every change written to it.
    pub fn open(model: Model, path: &std::path::Path) -> Result<Self, String> {
        let conn =
            rusqlite::Connection::open(path).map_err(|e| format!("{}: {e}", path.display()))?;
        conn.execute_batch(
            "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL;
             CREATE TABLE IF NOT EXISTS records (entity_set TEXT NOT NULL, id TEXT NOT NULL, record TEXT NOT NULL, PRIMARY KEY (entity_set, id));",
        )
        .map_err(|e| format!("{}: {e}", path.display()))?;
        let mut store = Store::new(model);
        let rows: Vec<(String, String, String)> = {
            let mut stmt = conn
                .prepare("SELECT entity_set, id, record FROM records")
                .map_err(|e| e.to_string())?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                .map_err(|e| e.to_string())?
                .collect::<Result<_, _>>()
                .map_err(|e| e.to_string())?
        };
        for (set, id, record) in rows {
            let Some(def) = store.model.sets.get(&set).cloned() else {
                continue;
            };
            let id = Uuid::parse_str(&id).map_err(|e| e.to_string())?;
            let record: Map<String, Value> =
                serde_json::from_str(&record).map_err(|e| e.to_string())?;
            store.put(&def, &set, id, record);
        }
        store.file = Some(conn);
        Ok(store)
    }

    pub fn model(&self) -> &Model {
        &self.model
    }

    pub fn clear(&mut self) {
        let file = self.file.take();
        if let Some(conn) = &file
            && let Err(e) = conn.execute("DELETE FROM records", [])
        {
            tracing::warn!(error = %e, "could not clear the emulator's SQLite file");
        }
        *self = Store::new(self.model.clone());
        self.file = file;
    }

    pub fn set(&self, name: &str) -> Result<&EntitySet, ODataError> {
        self.model.set(name).ok_or_else(|| {
            ODataError::new(
                404,
                BAD_REQUEST,
                format!("Resource not found for the segment '{name}'."),
            )
        })
    }

    pub fn count(&self, set: &str) -> usize {
        self.tables.get(set).map_or(0, |t| t.rows.len())
    }

    pub fn get(&self, set: &str, id: Uuid) -> Option<&Map<String, Value>> {
        self.tables.get(set)?.rows.get(&id)
    }

    pub fn rows(&self, set: &str) -> impl Iterator<Item = (&Uuid, &Map<String, Value>)> {
        self.tables.get(set).into_iter().flat_map(|t| t.rows.iter())
    }

    /// The records after `after` in key order (all of them for `None`).
    pub fn rows_after(
        &self,
        set: &str,
        after: Option<Uuid>,
    ) -> impl Iterator<Item = (&Uuid, &Map<String, Value>)> {
        use std::ops::Bound::{Excluded, Unbounded};
        let from = after.map_or(Unbounded, Excluded);
        self.tables
            .get(set)
            .into_iter()
            .flat_map(move |t| t.rows.range((from, Unbounded)))
    }

    /// The record a key names, if it exists.
    pub fn resolve(&self, set: &str, key: &KeyRef) -> Result<Option<Uuid>, ODataError> {
        let def = self.set(set)?;
        let table = &self.tables[set];
        match key {
            KeyRef::Id(id) => Ok(table.rows.contains_key(id).then_some(*id)),
            KeyRef::Alternate(parts) => {
                let names: Vec<&str> = parts.iter().map(|(n, _)| n.as_str()).collect();
                let index = def
                    .alternate_keys
                    .iter()
                    .position(|k| {
                        let mut k: Vec<&str> = k.iter().map(String::as_str).collect();
                        let mut n = names.clone();
                        k.sort();
                        n.sort();
                        k == n
                    })
                    .ok_or_else(|| {
                        ODataError::new(
                            400,
                            BAD_REQUEST,
                            format!(
                                "The key ({}) is not an alternate key of entity '{}'.",
                                names.join(","),
                                def.entity
                            ),
                        )
                    })?;
                let values = def.alternate_keys[index]
                    .iter()
                    .map(|k| key_text(&parts.iter().find(|(n, _)| n == k).expect("same names").1))
                    .collect::<Vec<_>>();
                Ok(table.alternate[index].get(&values).copied())
            }
        }
    }

    /// Creates a record; `key` gives its id or alternate key (from the URL of an upsert).
    pub fn create(
        &mut self,
        set: &str,
        body: &Map<String, Value>,
        key: Option<&KeyRef>,
        undo: &mut Vec<Undo>,
    ) -> Result<Uuid, ODataError> {
        let def = self.set(set)?.clone();
        let mut record = self.validate(&def, body, true)?;
        let id = match (key, record.get(&def.key)) {
            (Some(KeyRef::Id(id)), _) => *id,
            (_, Some(Value::String(s))) => parse_guid(s)?,
            _ => Uuid::new_v4(),
        };
        if let Some(KeyRef::Alternate(parts)) = key {
            for (name, value) in parts {
                record.insert(name.clone(), value.clone());
            }
        }
        if self.tables[set].rows.contains_key(&id) {
            return Err(ODataError::new(
                412,
                DUPLICATE,
                "A record with matching key values already exists.",
            ));
        }
        record.insert(def.key.clone(), Value::String(id.to_string()));
        self.check_alternate_keys(&def, set, id, &record)?;
        self.put(&def, set, id, record);
        undo.push((set.to_string(), id, None));
        Ok(id)
    }

    /// Updates the named attributes of an existing record.
    pub fn update(
        &mut self,
        set: &str,
        id: Uuid,
        body: &Map<String, Value>,
        undo: &mut Vec<Undo>,
    ) -> Result<(), ODataError> {
        let def = self.set(set)?.clone();
        let changes = self.validate(&def, body, false)?;
        let old = self.tables[set]
            .rows
            .get(&id)
            .cloned()
            .ok_or_else(|| not_found(&def, id))?;
        let mut record = old.clone();
        for (k, v) in changes {
            if k != def.key {
                record.insert(k, v);
            }
        }
        self.check_alternate_keys(&def, set, id, &record)?;
        self.remove(&def, set, id);
        self.put(&def, set, id, record);
        undo.push((set.to_string(), id, Some(old)));
        Ok(())
    }

    pub fn delete(&mut self, set: &str, id: Uuid, undo: &mut Vec<Undo>) -> Result<(), ODataError> {
        let def = self.set(set)?.clone();
        let old = self
            .remove(&def, set, id)
            .ok_or_else(|| not_found(&def, id))?;
        undo.push((set.to_string(), id, Some(old)));
        Ok(())
    }

    /// Puts records back as they were before a failed changeset, newest first.
    pub fn rollback(&mut self, undo: Vec<Undo>) {
        for (set, id, before) in undo.into_iter().rev() {
            let def = self.model.sets[&set].clone();
            self.remove(&def, &set, id);
            if let Some(record) = before {
                self.put(&def, &set, id, record);
            }
        }
    }

    fn put(&mut self, def: &EntitySet, set: &str, id: Uuid, record: Map<String, Value>) {
        let table = self.tables.get_mut(set).expect("known set");
        for (i, key) in def.alternate_keys.iter().enumerate() {
            if let Some(values) = alternate_values(key, &record) {
                table.alternate[i].insert(values, id);
            }
        }
        if let Some(conn) = &self.file {
            let json = serde_json::to_string(&record).expect("JSON");
            if let Err(e) = conn.execute(
                "INSERT INTO records (entity_set, id, record) VALUES (?1, ?2, ?3)
                 ON CONFLICT (entity_set, id) DO UPDATE SET record = excluded.record",
                (set, id.to_string(), json),
            ) {
                tracing::warn!(error = %e, "could not write the emulator's SQLite file");
            }
        }
        table.rows.insert(id, record);
    }

    fn remove(&mut self, def: &EntitySet, set: &str, id: Uuid) -> Option<Map<String, Value>> {
        let table = self.tables.get_mut(set).expect("known set");
        let record = table.rows.remove(&id)?;
        if let Some(conn) = &self.file
            && let Err(e) = conn.execute(
                "DELETE FROM records WHERE entity_set = ?1 AND id = ?2",
                (set, id.to_string()),
            )
        {
            tracing::warn!(error = %e, "could not write the emulator's SQLite file");
        }
        for (i, key) in def.alternate_keys.iter().enumerate() {
            if let Some(values) = alternate_values(key, &record) {
                table.alternate[i].remove(&values);
            }
        }
        Some(record)
    }

    fn check_alternate_keys(
        &self,
        def: &EntitySet,
        set: &str,
        id: Uuid,
        record: &Map<String, Value>,
    ) -> Result<(), ODataError> {
        for (i, key) in def.alternate_keys.iter().enumerate() {
            if let Some(values) = alternate_values(key, record)
                && self.tables[set].alternate[i]
                    .get(&values)
                    .is_some_and(|other| *other != id)
            {
                return Err(ODataError::new(
                    412,
                    DUPLICATE,
                    "A record with matching key values already exists.",
                ));
            }
        }
        Ok(())
    }

    /// Checks a request body against the entity: known attributes, types, lengths, required
    /// attributes (on create) and lookups (`nav@odata.bind`, resolved to `_nav_value`).
    fn validate(
        &self,
        def: &EntitySet,
        body: &Map<String, Value>,
        creating: bool,
    ) -> Result<Map<String, Value>, ODataError> {
        let mut out = Map::new();
        for (name, value) in body {
            if name.starts_with("@odata") {
                continue;
            }
            if let Some(nav) = name.strip_suffix("@odata.bind") {
                let target = def.lookups.get(nav).ok_or_else(|| {
                    ODataError::new(
                        400,
                        BAD_REQUEST,
                        format!("An undeclared property '{nav}' which only has property annotations in the payload but no property value was found in the payload."),
                    )
                })?;
                let reference = value.as_str().ok_or_else(|| {
                    ODataError::new(
                        400,
                        BAD_REQUEST,
                        format!("The value of '{name}' must be a URL like '/{target}(<id>)'."),
                    )
                })?;
                let (set, key) = super::url::parse_reference(reference)?;
                if &set != target {
                    return Err(ODataError::new(
                        400,
                        BAD_REQUEST,
                        format!("The lookup '{nav}' points at '{target}', not '{set}'."),
                    ));
                }
                let target_def = self.set(target)?;
                let id = self.resolve(target, &key)?.ok_or_else(|| match &key {
                    KeyRef::Id(id) => ODataError {
                        status: 400,
                        ..not_found(target_def, *id)
                    },
                    KeyRef::Alternate(parts) => ODataError::new(
                        400,
                        NOT_FOUND,
                        format!(
                            "{} with key values ({}) does not exist.",
                            target_def.entity,
                            parts
                                .iter()
                                .map(|(k, v)| format!("{k}={}", key_text(v)))
                                .collect::<Vec<_>>()
                                .join(",")
                        ),
                    ),
                })?;
                out.insert(format!("_{nav}_value"), Value::String(id.to_string()));
                continue;
            }
            if name == &def.key {
                if let Some(s) = value.as_str() {
                    parse_guid(s)?;
                }
                out.insert(name.clone(), value.clone());
                continue;
            }
            let attribute = def.attributes.get(name).ok_or_else(|| {
                ODataError::new(
                    400,
                    BAD_REQUEST,
                    format!(
                        "The property '{name}' does not exist on type 'Microsoft.Dynamics.CRM.{}'. Make sure to only use property names that are defined by the type.",
                        def.entity
                    ),
                )
            })?;
            if value.is_null() {
                if attribute.required {
                    return Err(required(def, name));
                }
                out.insert(name.clone(), Value::Null);
                continue;
            }
            check_type(def, name, attribute.kind, attribute.max_length, value)?;
            out.insert(name.clone(), value.clone());
        }
        if creating {
            for (name, attribute) in &def.attributes {
                if attribute.required && !out.contains_key(name) {
                    return Err(required(def, name));
                }
            }
        }
        Ok(out)
    }
}

fn check_type(
    def: &EntitySet,
    name: &str,
    kind: AttrType,
    max_length: Option<usize>,
    value: &Value,
) -> Result<(), ODataError> {
    let wrong = || {
        ODataError::new(
            400,
            BAD_REQUEST,
            format!(
                "Cannot convert the literal '{value}' to the expected type '{}'.",
                kind.edm()
            ),
        )
    };
    match kind {
        AttrType::String => {
            let s = value.as_str().ok_or_else(wrong)?;
            if let Some(max) = max_length
                && s.chars().count() > max
            {
                return Err(ODataError::new(
                    400,
                    TOO_LONG,
                    format!(
                        "A validation error occurred. The length of the '{name}' attribute of the '{}' entity exceeded the maximum allowed length of '{max}'.",
                        def.entity
                    ),
                ));
            }
        }
        AttrType::Int => {
            let n = value.as_i64().ok_or_else(wrong)?;
            i32::try_from(n).map_err(|_| wrong())?;
        }
        AttrType::Bigint => {
            value.as_i64().ok_or_else(wrong)?;
        }
        AttrType::Decimal | AttrType::Money | AttrType::Double => {
            value.as_f64().ok_or_else(wrong)?;
        }
        AttrType::Boolean => {
            value.as_bool().ok_or_else(wrong)?;
        }
        AttrType::Datetime => {
            let s = value.as_str().ok_or_else(wrong)?;
            chrono::DateTime::parse_from_rfc3339(s).map_err(|_| wrong())?;
        }
        AttrType::Date => {
            let s = value.as_str().ok_or_else(wrong)?;
            chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").map_err(|_| wrong())?;
        }
        AttrType::Guid => {
            parse_guid(value.as_str().ok_or_else(wrong)?)?;
        }
    }
    Ok(())
}

fn required(def: &EntitySet, name: &str) -> ODataError {
    ODataError::new(
        400,
        REQUIRED,
        format!(
            "A value for the required attribute '{name}' of entity '{}' is missing.",
            def.entity
        ),
    )
}

pub fn not_found(def: &EntitySet, id: Uuid) -> ODataError {
    ODataError::new(
        404,
        NOT_FOUND,
        format!("{} With Id = {id} Does Not Exist", def.entity),
    )
}

pub fn parse_guid(s: &str) -> Result<Uuid, ODataError> {
    Uuid::parse_str(s).map_err(|_| {
        ODataError::new(
            400,
            BAD_REQUEST,
            format!("Cannot convert the literal '{s}' to the expected type 'Edm.Guid'."),
        )
    })
}

/// An alternate key value as index text: strings as they are, other values as JSON.
pub fn key_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn alternate_values(key: &[String], record: &Map<String, Value>) -> Option<Vec<String>> {
    key.iter()
        .map(|k| record.get(k).filter(|v| !v.is_null()).map(key_text))
        .collect()
}
