//! An OData v4 entity set as a target (Dataverse, Finance & Operations, any OData v4 service).
//!
//! ```text
//! write(batch) ─▶ lane of the next user (rate limit, adaptive concurrency, Retry-After pause)
//!              ─▶ one $batch: a PATCH per row to <set>(<key>) (upsert; insert adds If-None-Match: *),
//!                 or POST per row without a key; Prefer: odata.continue-on-error, or one changeset
//!                 when atomic
//!              ─▶ each part's outcome: landed | skipped (412 on insert) | rejected (the service's
//!                 error, to quarantine) | retried (429/5xx parts, sent again)
//! ```
//!
//! Upserts by key make a retry after a lost response harmless: exactly once. 401 renews the token once;
//! 403 and an unknown entity set stop the run.
//!
//! Finance & Operations with `legal_entity`: every row gets a `dataAreaId` column with it, and the
//! key becomes (dataAreaId, key...) as F&O's company-specific entities define it; sync and truncate
//! read and delete that legal entity's records only.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arrow::datatypes::SchemaRef;
use arrow::record_batch::RecordBatch;
use async_trait::async_trait;

use super::config::{ODataEndpoint, ODataOptions, ServiceKind};
use super::csdl;
use super::encode;
use super::multiple::{self, Refusal};
use crate::error::{Cause, ConnectorError, ErrorClass, Result};
use crate::http::client::Service;
use crate::http::lane::Limit;
use crate::http::multipart::{ResponsePart, parse_responses, write_request};
use crate::http::{is_retryable, part_pause};
use crate::sink::{Attempt, BatchWritten, Finished, Resume, Sink, TargetOptions, WriteMode};

/// Part-level retries inside one write before the whole batch is handed back as retryable.
const PART_RETRIES: usize = 4;

/// Finance & Operations' legal entity column.
const DATA_AREA: &str = "dataAreaId";

/// The legal entity the rows are written to: F&O only.
fn legal_entity<'a>(endpoint: &ODataEndpoint, odata: &'a ODataOptions) -> Option<&'a str> {
    match endpoint.kind {
        ServiceKind::Fno => odata.legal_entity.as_deref(),
        _ => None,
    }
}

pub struct ODataSink {
    endpoint: ODataEndpoint,
    options: TargetOptions,
    odata: ODataOptions,
    /// The service: its client, and a lane and a token per application user.
    http: Service,
    /// The key records are addressed by: the target's key, after `dataAreaId` for an F&O legal entity.
    key: Vec<String>,
    /// The entity set's primary key and its entity type's name, read from $metadata in `begin`.
    primary_key: Mutex<Option<String>>,
    entity_type: Mutex<Option<String>>,
    /// Whether records go by bulk messages (until the service says the set has none).
    bulk: AtomicBool,
    /// Sync: every key of the source this run, in the service's normal form, and whether its record
    /// landed (only the records that landed must be found again before anything is deleted).
    seen: Mutex<HashMap<String, bool>>,
}

impl ODataSink {
    pub fn new(
        endpoint: ODataEndpoint,
        options: TargetOptions,
        odata: ODataOptions,
    ) -> Result<Self> {
        let http = Service::new(&endpoint.url, endpoint.auth.clone(), odata.rate_limit)?;
        let mut key = options.key.clone();
        if legal_entity(&endpoint, &odata).is_some()
            && !key.is_empty()
            && !key.iter().any(|k| k == DATA_AREA)
        {
            key.insert(0, DATA_AREA.to_string());
        }
        Ok(Self {
            bulk: AtomicBool::new(odata.bulk_messages(endpoint.kind)),
            endpoint,
            options,
            odata,
            http,
            key,
            primary_key: Mutex::new(None),
            entity_type: Mutex::new(None),
            seen: Mutex::new(HashMap::new()),
        })
    }

    /// The rows as the service addresses them: with F&O's `dataAreaId` when a legal entity is set.
    fn addressed(&self, rows: RecordBatch) -> Result<RecordBatch> {
        match legal_entity(&self.endpoint, &self.odata) {
            Some(le) => with_legal_entity(&rows, le),
            None => Ok(rows),
        }
    }

    /// The entity set's path on the server, as requests inside a `$batch` name it.
    fn set_path(&self) -> String {
        let root = url::Url::parse(&self.endpoint.url)
            .map(|u| u.path().trim_end_matches('/').to_string())
            .unwrap_or_default();
        format!("{root}/{}", self.options.table)
    }

    fn url(&self, rest: &str) -> String {
        self.http.url(rest)
    }

    /// Turns a non-success answer into the right error (see [`Service::refused`]).
    async fn refused(&self, user: usize, response: reqwest::Response) -> ConnectorError {
        let hint = format!(
            "is \"{}\" an entity set of {}?",
            self.options.table, self.endpoint.url
        );
        self.http.refused(user, response, hint).await
    }

    fn batch_body(&self, rows: &[usize], bodies: &[String], keys: &[String]) -> (String, String) {
        let boundary = format!("batch_{}", uuid::Uuid::new_v4().simple());
        let changeset = format!("changeset_{}", uuid::Uuid::new_v4().simple());
        let mut out = String::with_capacity(rows.len() * 256);
        if self.odata.atomic {
            out.push_str(&format!(
                "--{boundary}\r\nContent-Type: multipart/mixed; boundary={changeset}\r\n\r\n"
            ));
        }
        let set_path = self.set_path();
        let part_boundary = if self.odata.atomic {
            &changeset
        } else {
            &boundary
        };
        for (n, &row) in rows.iter().enumerate() {
            let (line, extra) = if keys.is_empty() {
                (format!("POST {set_path}"), "")
            } else if self.options.mode == WriteMode::Insert {
                (
                    format!("PATCH {set_path}{}", keys[row]),
                    "If-None-Match: *\r\n",
                )
            } else {
                (format!("PATCH {set_path}{}", keys[row]), "")
            };
            let mut headers = format!("Content-Type: application/json\r\n{extra}");
            for (name, value, _) in self.odata.bypass_headers() {
                headers.push_str(&format!("{name}: {value}\r\n"));
            }
            write_request(
                &mut out,
                part_boundary,
                Some(n + 1),
                &line,
                &headers,
                &bodies[row],
            );
        }
        if self.odata.atomic {
            out.push_str(&format!("--{changeset}--\r\n"));
        }
        out.push_str(&format!("--{boundary}--\r\n"));
        (format!("multipart/mixed; boundary={boundary}"), out)
    }

    async fn metadata(&self) -> Result<Option<String>> {
        let response = self
            .http
            .send(0, || self.http.client.get(self.url("$metadata")))
            .await?;
        if !response.status().is_success() {
            return Ok(None);
        }
        Ok(Some(response.text().await.unwrap_or_default()))
    }

    /// The entity set's primary key and entity type name, from `$metadata`.
    async fn read_entity(&self) -> Result<Option<(String, String)>> {
        Ok(self
            .metadata()
            .await?
            .and_then(|xml| csdl::entity(&xml, &self.options.table).map(|e| (e.key, e.name))))
    }

    /// Whether Dataverse says `user` lacks `privilege` (WhoAmI, then
    /// RetrieveUserPrivilegeByPrivilegeName). A service that cannot say is not held against it: the
    /// writes then meet its answer.
    async fn lacks_privilege(&self, user: usize, privilege: &str) -> Result<bool> {
        let get = |url: String| async move {
            let response = self.http.send(user, || self.http.client.get(&url)).await?;
            if !response.status().is_success() {
                tracing::warn!(status = %response.status(), "could not check a bypass privilege");
                return Ok::<_, ConnectorError>(None);
            }
            Ok(response.json::<serde_json::Value>().await.ok())
        };
        let Some(me) = get(self.url("WhoAmI")).await? else {
            return Ok(false);
        };
        let Some(id) = me["UserId"].as_str() else {
            return Ok(false);
        };
        let url = self.url(&format!(
            "systemusers({id})/Microsoft.Dynamics.CRM.RetrieveUserPrivilegeByPrivilegeName(PrivilegeName='{privilege}')"
        ));
        let Some(answer) = get(url).await? else {
            return Ok(false);
        };
        Ok(answer["RolePrivileges"]
            .as_array()
            .is_some_and(|list| list.is_empty()))
    }

    /// A request with the bypass headers the target sets (and no others).
    fn with_bypass(&self, mut request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        for (name, value, _) in self.odata.bypass_headers() {
            request = request.header(name, value);
        }
        request
    }

    /// Sends `pending` as one bulk message. `None`: the records are still to be written by
    /// `$batch` (the group was refused whole, or the set has no bulk messages); otherwise how many
    /// were written and which were refused (an elastic table's partial success).
    async fn write_multiple(
        &self,
        user: usize,
        pending: &[usize],
        bodies: &[String],
        keys: &[String],
    ) -> Result<Option<(u64, Vec<(usize, ConnectorError)>)>> {
        let entity = self.entity_type.lock().expect("entity").clone();
        let Some(entity) = entity else {
            return Ok(None);
        };
        let message = multiple::message(self.options.mode, !keys.is_empty());
        let addressed = message == "UpsertMultiple";
        let body = multiple::body(
            &entity,
            &self.options.table,
            pending
                .iter()
                .map(|&row| (bodies[row].as_str(), addressed.then(|| keys[row].as_str()))),
        );
        let lane = self.http.lane(user);
        let slot = lane.acquire().await;
        let url = self.url(&format!(
            "{}/Microsoft.Dynamics.CRM.{message}",
            self.options.table
        ));
        let response = self
            .http
            .send(user, || {
                self.with_bypass(
                    self.http
                        .client
                        .post(&url)
                        .header("content-type", "application/json; charset=utf-8")
                        .header("odata-version", "4.0")
                        .header("odata-maxversion", "4.0")
                        // An elastic table then writes what it can and lists the rest.
                        .header("prefer", "odata.continue-on-error")
                        .body(body.clone()),
                )
            })
            .await?;
        lane.hint_from(response.headers());
        let status = response.status().as_u16();
        if (200..300).contains(&status) {
            slot.success();
            return Ok(Some((pending.len() as u64, Vec::new())));
        }
        if !(400..500).contains(&status) || matches!(status, 401 | 403 | 408 | 429) {
            drop(slot);
            return Err(self.refused(user, response).await);
        }
        let text = response.text().await.unwrap_or_default();
        slot.success();
        Ok(match multiple::refusal(status, &text) {
            Refusal::Unsupported => {
                self.bulk.store(false, Ordering::Relaxed);
                tracing::info!(entity_set = %self.options.table, "the set has no {message}: $batch from now on");
                None
            }
            Refusal::Group(why) => {
                tracing::debug!(entity_set = %self.options.table, %why, "{message} refused whole: $batch isolates the records");
                None
            }
            Refusal::Partly(refused) => {
                let rejected: Vec<(usize, ConnectorError)> = refused
                    .into_iter()
                    .filter_map(|(index, e)| Some((*pending.get(index)?, e)))
                    .collect();
                Some(((pending.len() - rejected.len()) as u64, rejected))
            }
        })
    }
}

#[async_trait]
impl Sink for ODataSink {
    async fn references(&self) -> Result<Vec<String>> {
        Ok(self
            .metadata()
            .await?
            .map(|xml| csdl::lookup_sets(&xml, &self.options.table))
            .unwrap_or_default())
    }

    fn describe(&self) -> String {
        format!(
            "OData {}, entity set {}",
            crate::redact::url(&self.endpoint.url),
            self.options.table
        )
    }

    async fn check(&self, schema: &SchemaRef) -> Result<Vec<ConnectorError>> {
        let mut problems = Vec::new();
        for field in schema.fields() {
            if !field.name().ends_with("@odata.bind")
                && let Err(e) = encode::check_type(field.name(), field.data_type())
            {
                problems.push(e);
            }
        }
        if let Some(le) = legal_entity(&self.endpoint, &self.odata)
            && schema.column_with_name(DATA_AREA).is_some()
        {
            problems.push(
                ConnectorError::fatal(format!(
                    "the rows have a column \"{DATA_AREA}\" and the target sets legal_entity = \"{le}\""
                ))
                .with_hint(format!(
                    "drop the column in a step to write every row to {le}, or remove legal_entity to write each row to its own"
                )),
            );
        }
        for key in &self.options.key {
            if schema.column_with_name(key).is_none() {
                problems.push(ConnectorError::fatal(format!(
                    "key column \"{key}\" is not in the result of the last step"
                )));
            }
        }
        if matches!(self.options.mode, WriteMode::Truncate | WriteMode::Sync)
            && self.options.key.is_empty()
        {
            problems.push(ConnectorError::fatal(format!(
                "mode \"{}\" on an OData target needs a key",
                self.options.mode
            )));
        }
        let response = self
            .http
            .send(0, || self.http.client.get(self.url("$metadata")))
            .await?;
        if !response.status().is_success() {
            problems.push(self.refused(0, response).await);
            return Ok(problems);
        }
        let xml = response.text().await.unwrap_or_default();
        let Some(entity) = csdl::entity(&xml, &self.options.table) else {
            problems.push(
                ConnectorError::fatal(format!(
                    "{} has no entity set \"{}\"",
                    self.endpoint.url, self.options.table
                ))
                .with_hint(
                    "entity sets are plural and lower case in Dataverse: accounts, contacts",
                ),
            );
            return Ok(problems);
        };
        for field in schema.fields() {
            let name = field.name();
            if let Some(nav) = name.strip_suffix("@odata.bind") {
                if !entity.navigations.iter().any(|n| n == nav) {
                    problems.push(
                        ConnectorError::fatal(format!(
                            "entity {} has no lookup \"{nav}\" for column \"{name}\"",
                            entity.name
                        ))
                        .with_hint(format!("its lookups: {}", entity.navigations.join(", "))),
                    );
                }
                continue;
            }
            match entity.property(name) {
                None if self.endpoint.kind == ServiceKind::Fno && name == DATA_AREA => {}
                None => problems.push(
                    ConnectorError::fatal(format!(
                        "entity {} has no attribute \"{name}\"",
                        entity.name
                    ))
                    .with_hint(format!(
                        "rename or drop the column in a step; its attributes: {}",
                        entity
                            .properties
                            .iter()
                            .map(|(n, _, _)| n.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    )),
                ),
                Some((_, edm, max)) if !csdl::fits(field.data_type(), edm) => problems.push(
                    ConnectorError::fatal(format!(
                        "column \"{name}\" is {} but attribute {name} of {} is {edm}{}",
                        field.data_type(),
                        entity.name,
                        max.map(|m| format!(" (max length {m})"))
                            .unwrap_or_default()
                    ))
                    .with_hint(format!("cast it in a step to a type that fits {edm}")),
                ),
                Some(_) => {}
            }
        }
        if !self.key.is_empty() && !entity.is_key(&self.key) {
            let alternates: Vec<String> = entity
                .alternate_keys
                .iter()
                .map(|k| format!("[{}]", k.join(", ")))
                .collect();
            problems.push(
                ConnectorError::fatal(format!(
                    "({}) is neither the primary key nor an alternate key of {}",
                    self.key.join(", "),
                    entity.name
                ))
                .with_hint(format!(
                    "use key = [\"{}\"] (the primary key){}",
                    entity.key,
                    if alternates.is_empty() {
                        String::new()
                    } else {
                        format!(" or an alternate key: {}", alternates.join(", "))
                    }
                )),
            );
        }
        for (header, _, privilege) in self.odata.bypass_headers() {
            for user in 0..self.http.users() {
                if self.lacks_privilege(user, privilege).await? {
                    problems.push(
                        ConnectorError::fatal(format!(
                            "application user {} lacks the privilege {privilege}, which {header} needs",
                            user + 1
                        ))
                        .with_hint(format!(
                            "give the application user a security role with {privilege} (System Administrator has it), or remove the bypass from the target"
                        )),
                    );
                }
            }
        }
        Ok(problems)
    }

    async fn begin(&self, schema: SchemaRef, _attempt: &Attempt) -> Result<Resume> {
        if let Some(first) = self.check(&schema).await?.into_iter().next() {
            return Err(first);
        }
        let entity = self.read_entity().await?;
        *self.primary_key.lock().expect("key") = entity.as_ref().map(|(key, _)| key.clone());
        *self.entity_type.lock().expect("entity") = entity.map(|(_, name)| name);
        if self.options.mode == WriteMode::Truncate {
            let mut ids = Vec::new();
            self.read_keys(|_, id| ids.push(id)).await?;
            let deleted = self.delete(ids).await?;
            tracing::warn!(entity_set = %self.options.table, deleted, "truncate: every record deleted before the load");
            crate::failpoint::pause_point("truncate_deleted");
        }
        // Sync remembers the source's keys in memory, and truncate has just deleted what an earlier
        // attempt loaded: either way a resumed run writes every batch again.
        Ok(match self.options.mode {
            WriteMode::Sync | WriteMode::Truncate => Resume::Lost,
            WriteMode::Insert | WriteMode::Upsert => Resume::Intact,
        })
    }

    fn exactly_once(&self) -> bool {
        !self.options.key.is_empty()
    }

    async fn write(&self, batch: RecordBatch) -> Result<BatchWritten> {
        let user = self.http.next_user();
        let lane = self.http.lane(user);
        let batch = self.addressed(batch)?;
        let primary = {
            let pk = self.primary_key.lock().expect("key");
            self.key.len() == 1 && pk.as_deref() == Some(self.key[0].as_str())
        };
        let keys = if self.key.is_empty() {
            Vec::new()
        } else {
            encode::key_segments(&batch, &self.key, primary)?
        };
        // A bulk message carries the primary key as an attribute; a `$batch` part names it in its URL.
        let bulk = self.bulk.load(Ordering::Relaxed);
        let skip: Vec<String> = if primary && !bulk {
            self.key.clone()
        } else {
            Vec::new()
        };
        let mut done = BatchWritten::default();
        let mut bodies = Vec::with_capacity(batch.num_rows());
        let mut pending: Vec<usize> = Vec::with_capacity(batch.num_rows());
        for (row, body) in encode::rows(&batch, &skip)?.into_iter().enumerate() {
            match body {
                Ok(body) => {
                    bodies.push(body);
                    pending.push(row);
                }
                // Never sent: refused here, for the row alone.
                Err(e) => {
                    bodies.push(String::new());
                    done.rejected.push((row, e));
                }
            }
        }
        if bulk && !pending.is_empty() {
            match self.write_multiple(user, &pending, &bodies, &keys).await? {
                Some((written, refused)) => {
                    done.written += written;
                    done.rejected.extend(refused);
                    pending.clear();
                }
                // `$batch` parts address a primary key in their URL, not in the body.
                None if primary => {
                    for (row, body) in encode::rows(&batch, &self.key)?.into_iter().enumerate() {
                        if let Ok(body) = body {
                            bodies[row] = body;
                        }
                    }
                }
                None => {}
            }
        }
        for attempt in 0..=PART_RETRIES {
            if pending.is_empty() {
                break;
            }
            let (content_type, body) = self.batch_body(&pending, &bodies, &keys);
            let slot = lane.acquire().await;
            let response = self
                .http
                .send(user, || {
                    let mut r = self
                        .with_bypass(self.http.client.post(self.url("$batch")))
                        .header("content-type", content_type.clone())
                        .header("odata-version", "4.0")
                        .header("odata-maxversion", "4.0")
                        .body(body.clone());
                    if !self.odata.atomic {
                        r = r.header("prefer", "odata.continue-on-error");
                    }
                    r
                })
                .await?;
            lane.hint_from(response.headers());
            let response_type = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            if !response_type.starts_with("multipart/mixed") {
                let e = self.refused(user, response).await;
                drop(slot);
                return Err(e);
            }
            let text = response.text().await.map_err(|e| {
                ConnectorError::retryable(format!(
                    "{}: the answer to a $batch was cut off: {}",
                    self.endpoint.url,
                    e.without_url()
                ))
            })?;
            let parts = parse_responses(&text, &response_type);
            done.throttled += parts.iter().filter(|p| p.status == 429).count() as u64;
            let mut retry = Vec::new();
            if self.odata.atomic {
                match atomic_outcome(&parts, pending.len()) {
                    Atomic::Written => done.written += pending.len() as u64,
                    Atomic::Retry => retry = pending.clone(),
                    Atomic::Refused(e) => {
                        for &row in &pending {
                            done.rejected.push((row, e.clone()));
                        }
                    }
                }
            } else {
                for (i, &row) in pending.iter().enumerate() {
                    match parts.get(i) {
                        Some(p) if (200..300).contains(&p.status) => done.written += 1,
                        Some(p) if p.status == 412 && self.options.mode == WriteMode::Insert => {
                            done.skipped += 1
                        }
                        Some(p) if is_retryable(p.status) => retry.push(row),
                        Some(p) => done.rejected.push((row, part_error(p))),
                        // The batch stopped before this part: send it again.
                        None => retry.push(row),
                    }
                }
            }
            if retry.is_empty() {
                slot.success();
            } else {
                drop(slot);
                if let Some(throttled) = parts.iter().find(|p| p.status == 429) {
                    lane.pause(
                        part_pause(&parts, attempt),
                        // The limit's code is in the part's body; a part refused without one:
                        // ask less at once.
                        Limit::from_error(&throttled.body).unwrap_or(Limit::ExecutionTime),
                    );
                } else {
                    tokio::time::sleep(Duration::from_millis(100 << attempt.min(6))).await;
                }
            }
            pending = retry;
        }
        if !pending.is_empty() {
            // Hand the whole batch back: writing it again is harmless with a key.
            return Err(ConnectorError::retryable(format!(
                "{} records of the batch were still refused after {PART_RETRIES} tries",
                pending.len()
            )));
        }
        done.rejected.sort_by_key(|(r, _)| *r);
        if self.options.mode == WriteMode::Sync {
            let refused: std::collections::HashSet<usize> =
                done.rejected.iter().map(|(r, _)| *r).collect();
            let identities = encode::key_identities(&batch, &self.key)?;
            let mut seen = self.seen.lock().expect("seen");
            for (row, id) in identities.into_iter().enumerate() {
                if let Some(id) = id {
                    let landed = !refused.contains(&row);
                    *seen.entry(id).or_insert(landed) |= landed;
                }
            }
        }
        Ok(done)
    }

    async fn keep_keys(&self, rows: RecordBatch) -> Result<()> {
        if self.options.mode != WriteMode::Sync {
            return Ok(());
        }
        let rows = self.addressed(rows)?;
        let identities = encode::key_identities(&rows, &self.key)?;
        let mut seen = self.seen.lock().expect("seen");
        for id in identities.into_iter().flatten() {
            seen.entry(id).or_insert(false);
        }
        Ok(())
    }

    async fn finish(&self) -> Result<Finished> {
        if self.options.mode != WriteMode::Sync {
            return Ok(Finished::default());
        }
        let seen = std::mem::take(&mut *self.seen.lock().expect("seen"));
        let mut found = std::collections::HashSet::new();
        let mut doomed = Vec::new();
        self.read_keys(|identity, id| {
            if seen.contains_key(&identity) {
                found.insert(identity);
            } else {
                doomed.push(id);
            }
        })
        .await?;
        // The sanity gate: the records just written must be there when read back, or the keys are
        // not compared as the service stores them and the delete would remove what was written.
        let landed = seen.values().filter(|l| **l).count();
        let missing: Vec<&String> = seen
            .iter()
            .filter(|(k, landed)| **landed && !found.contains(*k))
            .map(|(k, _)| k)
            .collect();
        if !missing.is_empty() && missing.len() as f64 > self.odata.sync_max_missing * landed as f64
        {
            let examples: Vec<String> = missing
                .iter()
                .take(3)
                .map(|k| k.replace('\u{1f}', ", "))
                .collect();
            return Err(ConnectorError::fatal(format!(
                "sync stopped before deleting anything: {} of the {landed} records written to {} were not found when their keys were read back (for example {})",
                missing.len(),
                self.options.table,
                examples.join("; ")
            ))
            .with_hint("the service stores these keys in another form; check the key columns, or set sync_max_missing under [target] to the share that may be missing"));
        }
        let deleted = self.delete(doomed).await?;
        Ok(Finished { deleted })
    }

    async fn abort(&self) {}
}

impl ODataSink {
    /// Reads every record's key through paged GETs, handing each record's key in sync's normal form
    /// and its primary key to `each`, page by page (the entity set is never held whole).
    async fn read_keys(&self, mut each: impl FnMut(String, String)) -> Result<()> {
        let pk = self
            .primary_key
            .lock()
            .expect("key")
            .clone()
            .ok_or_else(|| {
                ConnectorError::fatal("the entity set's primary key is unknown ($metadata)")
            })?;
        let mut select: Vec<String> = vec![pk.clone()];
        select.extend(self.key.iter().filter(|k| **k != pk).cloned());
        // F&O: this legal entity's records only (without cross-company, F&O answers for the
        // user's default company whatever the filter says).
        let only = legal_entity(&self.endpoint, &self.odata)
            .map(|le| {
                format!(
                    "&$filter={DATA_AREA}%20eq%20'{}'&cross-company=true",
                    encode::percent_encode(&le.replace('\'', "''"))
                )
            })
            .unwrap_or_default();
        let mut next = Some(self.url(&format!(
            "{}?$select={}{only}",
            self.options.table,
            select.join(",")
        )));
        let mut seen = std::collections::HashSet::new();
        while let Some(url) = next {
            let response = self
                .http
                .send(0, || {
                    self.http.client.get(&url).header(
                        "prefer",
                        format!("odata.maxpagesize={}", self.endpoint.page_size),
                    )
                })
                .await?;
            if !response.status().is_success() {
                return Err(self.refused(0, response).await);
            }
            let page: serde_json::Value = response
                .json()
                .await
                .map_err(|e| ConnectorError::retryable(format!("reading keys: {e}")))?;
            for record in page["value"].as_array().into_iter().flatten() {
                let Some(id) = record[&pk].as_str() else {
                    continue;
                };
                let key = if self.key.is_empty() {
                    Some(id.to_lowercase())
                } else {
                    encode::record_identity(record, &self.key)
                };
                // A record with an empty key part matches no source row's key.
                each(key.unwrap_or_default(), id.to_string());
            }
            next = next_page(
                &self.endpoint.url,
                page["@odata.nextLink"].as_str(),
                &mut seen,
            )?;
        }
        Ok(())
    }

    /// Deletes records by primary key, 100 to a `$batch`; a record already gone counts as deleted.
    async fn delete(&self, victims: Vec<String>) -> Result<u64> {
        for chunk in victims.chunks(100) {
            let boundary = format!("batch_{}", uuid::Uuid::new_v4().simple());
            let set_path = self.set_path();
            let mut body = String::new();
            for id in chunk {
                write_request(
                    &mut body,
                    &boundary,
                    None,
                    &format!("DELETE {set_path}({id})"),
                    "",
                    "",
                );
            }
            body.push_str(&format!("--{boundary}--\r\n"));
            let content_type = format!("multipart/mixed; boundary={boundary}");
            let response = self
                .http
                .send(0, || {
                    self.http
                        .client
                        .post(self.url("$batch"))
                        .header("content-type", content_type.clone())
                        .header("prefer", "odata.continue-on-error")
                        .body(body.clone())
                })
                .await?;
            if !response.status().is_success() {
                return Err(self.refused(0, response).await);
            }
            let ct = response
                .headers()
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_string();
            let text = response.text().await.unwrap_or_default();
            if let Some(bad) = parse_responses(&text, &ct)
                .iter()
                .find(|p| !(200..300).contains(&p.status) && p.status != 404)
            {
                return Err(ConnectorError::retryable(format!(
                    "deleting: {}",
                    part_error(bad).message
                )));
            }
        }
        Ok(victims.len() as u64)
    }
}

/// The batch with a `dataAreaId` column of `legal_entity` after its columns.
fn with_legal_entity(batch: &RecordBatch, legal_entity: &str) -> Result<RecordBatch> {
    use arrow::array::{ArrayRef, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    let mut fields: Vec<_> = batch.schema().fields().iter().cloned().collect();
    fields.push(std::sync::Arc::new(Field::new(
        DATA_AREA,
        DataType::Utf8,
        false,
    )));
    let mut columns = batch.columns().to_vec();
    let area: ArrayRef =
        std::sync::Arc::new(StringArray::from(vec![legal_entity; batch.num_rows()]));
    columns.push(area);
    RecordBatch::try_new(std::sync::Arc::new(Schema::new(fields)), columns)
        .map_err(|e| ConnectorError::fatal(format!("adding {DATA_AREA}: {e}")))
}

/// The next page of a listing: only on the service's own origin (the bearer token goes with it), and
/// never a page already read (a service that links in a circle would be read forever).
pub(super) fn next_page(
    service: &str,
    link: Option<&str>,
    seen: &mut std::collections::HashSet<String>,
) -> Result<Option<String>> {
    let Some(link) = link else {
        return Ok(None);
    };
    let origin = |u: &str| url::Url::parse(u).ok().map(|u| u.origin());
    if origin(link).is_none() || origin(link) != origin(service) {
        return Err(ConnectorError::fatal(format!(
            "{service} linked its next page to another origin ({}); Ferry sends its token to the service's own origin only",
            origin(link).map_or("an unreadable URL".to_string(), |o| o.ascii_serialization())
        )));
    }
    if !seen.insert(link.to_string()) {
        return Err(ConnectorError::fatal(format!(
            "{service} linked back to a page already read: the listing goes in a circle"
        ))
        .by(crate::error::Fault::External));
    }
    Ok(Some(link.to_string()))
}

/// Where a redirect pointed.
/// What an atomic changeset's answer says of its records.
#[derive(Debug)]
enum Atomic {
    /// One success for each record.
    Written,
    /// Refused for now, or an answer that cannot be read (empty, cut, a part short): the whole
    /// changeset again, which a key makes harmless.
    Retry,
    /// Refused for the records' data: all of them, with the service's reason.
    Refused(ConnectorError),
}

fn atomic_outcome(parts: &[ResponsePart], records: usize) -> Atomic {
    match parts.iter().find(|p| !(200..300).contains(&p.status)) {
        Some(p) if is_retryable(p.status) || p.status == 0 => Atomic::Retry,
        Some(p) => Atomic::Refused(part_error(p)),
        // Only an answer for every record says they were written.
        None if parts.len() == records => Atomic::Written,
        None => Atomic::Retry,
    }
}

/// A refused record's error: the service's message and code, and a cause in a few words.
pub(super) fn part_error(p: &ResponsePart) -> ConnectorError {
    let v: serde_json::Value = serde_json::from_str(&p.body).unwrap_or_default();
    let code = v["error"]["code"].as_str().unwrap_or_default().to_string();
    let message = v["error"]["message"]
        .as_str()
        .map(String::from)
        .unwrap_or_else(|| format!("HTTP {}", p.status));
    let cause = match code.as_str() {
        "0x80040200" => Cause::RequiredMissing,
        "0x80044331" => Cause::TooLong,
        "0x80040237" => Cause::DuplicateKey,
        "0x80040217" => Cause::MissingReference,
        _ if message.contains("does not exist on type") => Cause::NoSuchColumn,
        _ if message.contains("Cannot convert") => Cause::WrongType,
        _ => Cause::Rejected,
    };
    let mut e = ConnectorError::data(format!("{message} ({code}, HTTP {})", p.status), None)
        .with_cause(cause);
    if is_retryable(p.status) {
        e.class = ErrorClass::Retryable;
    }
    e
}

#[cfg(test)]
mod pause_tests {
    use super::*;

    fn part(status: u16, retry_after: Option<f64>) -> ResponsePart {
        ResponsePart {
            status,
            content_id: None,
            body: String::new(),
            retry_after,
        }
    }

    #[test]
    fn throttled_parts_pause_for_their_retry_after() {
        let parts = [part(204, None), part(429, Some(7.0)), part(429, Some(3.0))];
        assert_eq!(part_pause(&parts, 0), Duration::from_secs(7));
        // Without a Retry-After, the pause doubles with each attempt.
        let parts = [part(429, None)];
        assert_eq!(part_pause(&parts, 0), Duration::from_secs(1));
        assert_eq!(part_pause(&parts, 3), Duration::from_secs(8));
    }
}

#[cfg(test)]
mod atomic_tests {
    use super::*;

    fn part(status: u16) -> ResponsePart {
        ResponsePart {
            status,
            content_id: None,
            body: String::new(),
            retry_after: None,
        }
    }

    #[test]
    fn the_services_codes_read_as_every_targets_causes() {
        let refused = |code: &str| ResponsePart {
            status: 400,
            content_id: None,
            body: format!(r#"{{"error":{{"code":"{code}","message":"no"}}}}"#),
            retry_after: None,
        };
        assert_eq!(
            part_error(&refused("0x80040237")).cause,
            Some(Cause::DuplicateKey)
        );
        assert_eq!(
            part_error(&refused("0x80040200")).cause,
            Some(Cause::RequiredMissing)
        );
        assert_eq!(
            part_error(&refused("0x80044331")).cause_text(),
            "a value is too long for its column"
        );
    }

    #[test]
    fn only_an_answer_for_every_record_counts_them_written() {
        assert!(matches!(
            atomic_outcome(&[part(204), part(204)], 2),
            Atomic::Written
        ));
        // An empty or unreadable answer, or one part short, proves nothing: send again.
        assert!(matches!(atomic_outcome(&[], 2), Atomic::Retry));
        assert!(matches!(atomic_outcome(&[part(204)], 2), Atomic::Retry));
        assert!(matches!(atomic_outcome(&[part(0)], 2), Atomic::Retry));
        assert!(matches!(atomic_outcome(&[part(503)], 2), Atomic::Retry));
        assert!(matches!(
            atomic_outcome(&[part(400)], 2),
            Atomic::Refused(_)
        ));
    }
}

#[cfg(test)]
mod next_page_tests {
    use super::*;

    #[test]
    fn next_pages_stay_on_the_services_origin_and_never_circle() {
        let service = "https://crm.example.com/api/data/v9.2";
        let mut seen = std::collections::HashSet::new();
        let page2 = "https://crm.example.com/api/data/v9.2/accounts?$skiptoken=2";
        assert_eq!(
            next_page(service, Some(page2), &mut seen)
                .unwrap()
                .as_deref(),
            Some(page2)
        );
        assert!(next_page(service, None, &mut seen).unwrap().is_none());
        let e = next_page(service, Some(page2), &mut seen).unwrap_err();
        assert!(e.message.contains("in a circle"), "{e}");
        for elsewhere in [
            "https://evil.example.net/api/data/v9.2/accounts?$skiptoken=3",
            "http://crm.example.com/api/data/v9.2/accounts?$skiptoken=3",
            "https://crm.example.com:8443/api/data/v9.2/accounts?$skiptoken=3",
            "not a url",
        ] {
            let e = next_page(service, Some(elsewhere), &mut seen).unwrap_err();
            assert!(e.message.contains("another origin"), "{elsewhere}: {e}");
        }
    }
}
