//! A Dataverse-like OData v4 service for rehearsing and testing loads: the Web API protocol, its
//! validation errors, OAuth2 client credentials and, above all, the service protection limits.
//!
//! ```text
//! HTTP ──▶ /oauth2/v2.0/token            tokens per client id (expiry configurable)
//!      ──▶ /_emulator/stats | reset       counters per client; clear records and windows
//!      ──▶ /api/data/v9.2/...  auth (bearer → client) ─▶ limits (429 + Retry-After) ─▶ faults
//!                              ─▶ api::execute / batch::run on the store ─▶ simulated execution time
//! ```
//!
//! Records live in memory (`store.rs`); the model comes from a TOML file or is built in (`model.rs`).
//! A request that panics must not take the service down for everyone: locks are taken whatever an
//! earlier panic left (`PoisonError::into_inner`), and hostile inputs are refused before they can
//! panic (page sizes saturate, `$filter` has bounds, the limiter takes a limit of zero).

pub mod api;
pub mod batch;
pub mod bulk;
pub mod limits;
pub mod model;
pub mod privileges;
pub mod store;
pub mod url;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use self::api::Request;
use self::limits::{Limiter, Limits};
use self::model::Model;
use self::store::{ODataError, Store};

/// The service root path, as Dataverse has it.
pub const ROOT: &str = "/api/data/v9.2";

/// How long a request takes inside the service: a base, a cost per record, and jitter (a share of
/// the total, plus or minus). This is what makes big batches meet the execution-time limit.
#[derive(Debug, Clone)]
pub struct Latency {
    pub base: Duration,
    pub per_record: Duration,
    pub jitter: f64,
    /// What a record costs in a bulk message (CreateMultiple, UpsertMultiple, UpdateMultiple),
    /// as a share of `per_record`: created, and updated. From Microsoft's PowerApps-Samples
    /// BulkOperations sample output: 100 records created in 1 s with CreateMultiple against 4 s with
    /// ExecuteMultiple (0.25), updated in 3 s against 4 s (0.75).
    pub bulk_create: f64,
    pub bulk_update: f64,
    /// What a record a GET returns costs, as a share of `per_record` (a page of 5,000 at the
    /// default 2 ms: 0.5 s). Microsoft publishes no such figure; this is the emulator's assumption,
    /// chosen so that a page's execution time, not the request count, bounds a user's reads, as
    /// it does on a real Dataverse for large pages.
    pub read: f64,
}

/// The bulk messages' cost per record created and updated, as shares of a `$batch` part's.
pub const BULK_CREATE: f64 = 0.25;
pub const BULK_UPDATE: f64 = 0.75;
/// A record read, as a share of a record written.
pub const READ: f64 = 0.05;

impl Latency {
    /// What a request that touched `records` records costs (a bulk message's targets are costed
    /// by the model above).
    pub fn cost(&self, records: usize, effect: &api::Effect) -> Duration {
        let read = self.per_record.mul_f64(effect.read as f64 * self.read);
        if effect.bulk == 0 {
            return self.base + self.per_record * records as u32 + read;
        }
        let created = effect.bulk_created as f64;
        let others = (effect.bulk - effect.bulk_created) as f64;
        self.base
            + self
                .per_record
                .mul_f64(created * self.bulk_create + others * self.bulk_update)
            + read
    }

    pub fn none() -> Self {
        Self {
            base: Duration::ZERO,
            per_record: Duration::ZERO,
            jitter: 0.0,
            bulk_create: BULK_CREATE,
            bulk_update: BULK_UPDATE,
            read: READ,
        }
    }
}

/// Faults injected at random, each a share of requests (0.0 to 1.0).
#[derive(Debug, Clone, Default)]
pub struct Faults {
    /// Answer 503 or 500 without doing anything.
    pub errors: f64,
    /// Answer after `slow` more.
    pub slow: f64,
    pub slow_by: Duration,
    /// Drop the connection without doing anything.
    pub dropped: f64,
    /// Do the work, then drop the connection: the write happened, the client cannot know.
    pub lost: f64,
    /// Spare GET requests (metadata, queries): only writes meet the faults.
    pub writes_only: bool,
    /// A storm that passes: the first `storm` requests that are not GETs are throttled (429 with
    /// `Retry-After: 1`) whatever the limits say, and then the service is well again.
    pub storm: u64,
}

#[derive(Debug, Clone)]
pub struct Config {
    pub model: Model,
    pub limits: Limits,
    pub latency: Latency,
    pub faults: Faults,
    /// Require `Authorization: Bearer` tokens from the token endpoint.
    pub auth: bool,
    pub token_lifetime: Duration,
    /// Records per page of a GET (`Prefer: odata.maxpagesize` overrides).
    pub page_size: usize,
    /// Keep the records in this SQLite file too (loaded at start, written through).
    pub data_file: Option<std::path::PathBuf>,
    /// Client ids that lack the bypass privileges (`privileges.rs`); every other client holds them.
    pub without_bypass: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            model: Model::builtin(),
            limits: Limits::default(),
            latency: Latency {
                base: Duration::from_millis(5),
                per_record: Duration::from_millis(2),
                jitter: 0.2,
                ..Latency::none()
            },
            faults: Faults::default(),
            auth: true,
            token_lifetime: Duration::from_secs(3600),
            page_size: 5000,
            data_file: None,
            without_bypass: Vec::new(),
        }
    }
}

#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ClientStats {
    pub tokens_issued: u64,
    pub requests: u64,
    /// Execution time the limits counted, in milliseconds.
    pub execution_ms: u64,
    pub records_written: u64,
    /// Records returned by GETs of collections.
    pub records_read: u64,
    /// CreateMultiple, UpdateMultiple and UpsertMultiple requests, and the targets they carried.
    pub bulk_requests: u64,
    pub bulk_targets: u64,
    /// Requests that asked to bypass custom business logic or plug-ins.
    pub bypass_requests: u64,
    pub throttled: u64,
    /// When the last 429 was sent, in milliseconds after the client's first request: a client that
    /// learned the ceiling is throttled only at the start.
    pub last_throttled_ms: u64,
    pub faults: u64,
    #[serde(skip)]
    first_seen: Option<Instant>,
}

struct State {
    config: Mutex<Config>,
    store: Mutex<Store>,
    limiter: Mutex<Limiter>,
    tokens: Mutex<HashMap<String, (String, Instant)>>,
    stats: Mutex<HashMap<String, ClientStats>>,
    seed: AtomicU64,
    /// What is left of the configured storm.
    storm: AtomicU64,
}

/// A running emulator.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Running {
    /// The service root URL: `http://127.0.0.1:PORT/api/data/v9.2`.
    pub fn url(&self) -> String {
        format!("http://{}{ROOT}", self.addr)
    }

    /// The token endpoint URL.
    pub fn token_url(&self) -> String {
        format!("http://{}/oauth2/v2.0/token", self.addr)
    }

    pub async fn stop(mut self) {
        if let Some(s) = self.shutdown.take() {
            let _ = s.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Serves until the process is stopped.
    pub async fn wait(self) {
        let _ = self.task.await;
    }
}

/// Starts the emulator on `addr` (port 0: any free port).
pub async fn start(config: Config, addr: SocketAddr) -> std::io::Result<Running> {
    let store = match &config.data_file {
        None => Store::new(config.model.clone()),
        Some(path) => Store::open(config.model.clone(), path).map_err(std::io::Error::other)?,
    };
    let state = Arc::new(State {
        storm: AtomicU64::new(config.faults.storm),
        store: Mutex::new(store),
        config: Mutex::new(config),
        limiter: Mutex::new(Limiter::default()),
        tokens: Mutex::new(HashMap::new()),
        stats: Mutex::new(HashMap::new()),
        seed: AtomicU64::new(0x9E37_79B9_7F4A_7C15),
    });
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().fallback(handle).with_state(state);
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = rx.await;
            })
            .await;
    });
    Ok(Running {
        addr,
        shutdown: Some(tx),
        task,
    })
}

type AxumResponse = axum::response::Response;

/// The largest request body the Web API reads (a `$batch` of 1,000 records of 30 KiB fits).
const MAX_BODY: usize = 32 << 20;

/// The largest token request body (a form with a client id and secret).
const TOKEN_BODY: usize = 64 << 10;

/// The body, read only up to `limit`: a larger `Content-Length` is refused before reading anything
/// (413, Dataverse's error shape), and so is a body that grows past it while read.
async fn read_body(
    body: Body,
    headers: &axum::http::HeaderMap,
    limit: usize,
) -> Result<Bytes, AxumResponse> {
    let too_large = || {
        error_response(&ODataError::new(
            413,
            store::BAD_REQUEST,
            format!("The request body is larger than the {limit} bytes this service accepts."),
        ))
    };
    let announced = headers
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if announced.is_some_and(|n| n > limit as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        // Only the limit makes a 413 (a body without Content-Length that grew past it); a client
        // that went away mid-body is a 400. The limit's error says "length limit exceeded".
        if e.to_string().contains("length limit") {
            too_large()
        } else {
            error_response(&ODataError::new(
                400,
                store::BAD_REQUEST,
                format!("cannot read the body: {e}"),
            ))
        }
    })
}

async fn handle(
    axum::extract::State(state): axum::extract::State<Arc<State>>,
    request: axum::extract::Request,
) -> AxumResponse {
    let (parts, body) = request.into_parts();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or_default().to_string();
    let method = parts.method.as_str().to_string();
    match (method.as_str(), path.as_str()) {
        ("GET", "/_emulator/stats") => return stats(&state),
        ("POST", "/_emulator/reset") => {
            state
                .store
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            state
                .limiter
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            state
                .stats
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            return plain(StatusCode::NO_CONTENT, Vec::new(), "");
        }
        ("POST", p) if p.ends_with("/oauth2/v2.0/token") => {
            return match read_body(body, &parts.headers, TOKEN_BODY).await {
                Ok(body) => token(&state, &body),
                Err(refused) => refused,
            };
        }
        _ => {}
    }
    let Some(rest) = path.strip_prefix(ROOT) else {
        return error_response(&ODataError::new(
            404,
            store::BAD_REQUEST,
            format!("No service at {path}; the Web API is under {ROOT}/"),
        ));
    };
    let config = state
        .config
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let client = match client_of(&state, &config, &parts.headers) {
        Ok(c) => c,
        Err(e) => {
            let mut r = error_response(&e);
            r.headers_mut()
                .insert("www-authenticate", HeaderValue::from_static("Bearer"));
            return r;
        }
    };
    let admitted = state
        .limiter
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .admit(&config.limits, &client, Instant::now());
    if let Err(throttled) = admitted {
        bump(&state, &client, |s| {
            s.throttled += 1;
            s.last_throttled_ms = s.first_seen.map_or(0, |f| f.elapsed().as_millis() as u64);
        });
        let mut r = error_response(&throttled.error);
        // Whole seconds, as Dataverse sends (HTTP's delta-seconds, which standard clients expect);
        // a time-compressed test may ask for fractions, since rounding up a window scaled to a
        // second or two would cost it far more than it costs a real client.
        let secs = throttled.retry_after.as_secs_f64();
        let value = if config.limits.retry_after_fractions {
            format!("{:.3}", secs.max(0.001))
        } else {
            format!("{}", secs.ceil().max(1.0) as u64)
        };
        r.headers_mut().insert(
            "retry-after",
            HeaderValue::from_str(&value).expect("digits"),
        );
        return r;
    }
    // Held until the request ends however it ends (answered, refused by a fault, or dropped when
    // the client goes away): the limiter gets its concurrency slot back and counts the time.
    let _slot = Slot {
        state: state.clone(),
        limits: config.limits.clone(),
        client: client.clone(),
        started: Instant::now(),
    };
    // Read only now, authenticated and admitted, and never more than a request may hold.
    let body = match read_body(body, &parts.headers, MAX_BODY).await {
        Ok(body) => body,
        Err(refused) => return refused,
    };
    if method != "GET" && in_storm(&state) {
        bump(&state, &client, |s| s.throttled += 1);
        let mut r = error_response(&ODataError::new(
            429,
            limits::REQUESTS_EXCEEDED,
            "Number of requests exceeded the limit (a storm injected by the emulator).",
        ));
        r.headers_mut()
            .insert("retry-after", HeaderValue::from_static("1"));
        return r;
    }
    let started = Instant::now();
    let roll = |state: &State| random(&state.seed);
    let faults = &config.faults;
    let mut lose_response = false;
    let spared = faults.writes_only && method == "GET";
    let fault = if spared { 1.0 } else { roll(&state) };
    let mut outcome = None;
    if fault < faults.errors {
        bump(&state, &client, |s| s.faults += 1);
        let status = if roll(&state) < 0.5 { 503 } else { 500 };
        outcome = Some(error_response(&ODataError::new(
            status,
            "0x80040216",
            "An unexpected error occurred (injected by the emulator).",
        )));
    } else if fault < faults.errors + faults.dropped {
        bump(&state, &client, |s| s.faults += 1);
        outcome = Some(dropped());
    } else if fault < faults.errors + faults.dropped + faults.lost {
        bump(&state, &client, |s| s.faults += 1);
        lose_response = true;
    }
    let response = match outcome {
        Some(r) => r,
        None => {
            let headers: Vec<(String, String)> = parts
                .headers
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_ascii_lowercase(),
                        v.to_str().unwrap_or_default().to_string(),
                    )
                })
                .collect();
            let host = parts
                .headers
                .get("host")
                .and_then(|h| h.to_str().ok())
                .unwrap_or("localhost")
                .to_string();
            let base = format!("http://{host}{ROOT}");
            let api_request = Request {
                method,
                path: rest.trim_start_matches('/').to_string(),
                query,
                headers,
                body: body.to_vec(),
            };
            let (response, records, effect) =
                match privileges::check_bypass(&client, &api_request, &config.without_bypass) {
                    Err(e) => (error_response(&e), 1, api::Effect::default()),
                    Ok(asked) => {
                        if asked {
                            bump(&state, &client, |s| s.bypass_requests += 1);
                        }
                        match privileges::answer(&client, &api_request, &config.without_bypass) {
                            Some(r) => (to_axum(r), 1, api::Effect::default()),
                            None => serve_api(&state, &config, api_request, &base),
                        }
                    }
                };
            bump(&state, &client, |s| {
                s.records_written += effect.written as u64;
                s.records_read += effect.read as u64;
                if effect.bulk > 0 {
                    s.bulk_requests += 1;
                    s.bulk_targets += effect.bulk as u64;
                }
            });
            let cost = config.latency.cost(records, &effect);
            let jitter = 1.0 + config.latency.jitter * (2.0 * roll(&state) - 1.0);
            let mut wait = cost.mul_f64(jitter.max(0.0));
            if roll(&state) < faults.slow {
                bump(&state, &client, |s| s.faults += 1);
                wait += faults.slow_by;
            }
            let elapsed = started.elapsed();
            if wait > elapsed {
                tokio::time::sleep(wait - elapsed).await;
            }
            if lose_response { dropped() } else { response }
        }
    };
    let ran = started.elapsed();
    bump(&state, &client, |s| {
        s.requests += 1;
        s.execution_ms += ran.as_millis() as u64;
    });
    let mut response = response;
    response.headers_mut().insert(
        "x-ms-dop-hint",
        HeaderValue::from(config.limits.dop_hint as u64),
    );
    response
        .headers_mut()
        .insert("odata-version", HeaderValue::from_static("4.0"));
    response
}

/// Runs a Web API request (or a batch); returns the response, the requests it made (for the
/// simulated execution time) and what it did to the records.
fn serve_api(
    state: &State,
    config: &Config,
    request: Request,
    base: &str,
) -> (AxumResponse, usize, api::Effect) {
    if request.path == "$batch" && request.method == "POST" {
        let content_type = request
            .header("content-type")
            .unwrap_or_default()
            .to_string();
        let items = match batch::parse(&request.body, &content_type, ROOT) {
            Ok(items) => items,
            Err(e) => return (error_response(&e), 1, api::Effect::default()),
        };
        let records: usize = items.iter().map(batch::Item::requests).sum();
        let continue_on_error = request
            .header("prefer")
            .is_some_and(|p| p.contains("odata.continue-on-error"));
        let (status, content_type, body, effect) = batch::run(
            &state.store,
            items,
            base,
            continue_on_error,
            config.page_size,
        );
        let response = plain(
            StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            body,
            &content_type,
        );
        return (response, records, effect);
    }
    let mut undo = Vec::new();
    let (response, effect) = {
        let mut store = state.store.lock().unwrap_or_else(PoisonError::into_inner);
        api::execute(
            &mut store,
            &request,
            base,
            &HashMap::new(),
            &mut undo,
            config.page_size,
        )
    };
    let status = response.status;
    let out = to_axum(response);
    // An elastic table's bulk message writes some of its records and still answers 400.
    let landed = (200..300).contains(&status) || effect.bulk > 0;
    (
        out,
        1,
        api::Effect {
            written: if landed { effect.written } else { 0 },
            ..effect
        },
    )
}

/// An API response as HTTP.
fn to_axum(response: api::Response) -> AxumResponse {
    let mut out = plain(
        StatusCode::from_u16(response.status).unwrap_or(StatusCode::OK),
        response.body,
        "",
    );
    for (k, v) in response.headers {
        if let (Ok(name), Ok(value)) = (
            axum::http::HeaderName::try_from(k),
            HeaderValue::try_from(v),
        ) {
            out.headers_mut().insert(name, value);
        }
    }
    out
}

fn client_of(state: &State, config: &Config, headers: &HeaderMap) -> Result<String, ODataError> {
    if !config.auth {
        return Ok(headers
            .get("x-client-id")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("anonymous")
            .to_string());
    }
    let token = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or_else(|| {
            ODataError::new(
                401,
                "0x80072560",
                "The user is not authenticated: send Authorization: Bearer <token>.",
            )
        })?;
    let tokens = state.tokens.lock().unwrap_or_else(PoisonError::into_inner);
    match tokens.get(token) {
        Some((client, expires)) if *expires > Instant::now() => Ok(client.clone()),
        Some(_) => Err(ODataError::new(
            401,
            "0x80072560",
            "The access token has expired.",
        )),
        None => Err(ODataError::new(
            401,
            "0x80072560",
            "The access token is not valid.",
        )),
    }
}

/// OAuth2 client credentials: any client id with any secret gets a token for `token_lifetime`.
fn token(state: &State, body: &Bytes) -> AxumResponse {
    let form: HashMap<String, String> = String::from_utf8_lossy(body)
        .split('&')
        .filter_map(|p| p.split_once('='))
        .map(|(k, v)| (url::percent_decode(k), url::percent_decode(v)))
        .collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        let body = json!({"error": "unsupported_grant_type", "error_description": "Only grant_type=client_credentials is supported."});
        return plain(
            StatusCode::BAD_REQUEST,
            body.to_string().into_bytes(),
            "application/json",
        );
    }
    let (Some(client), Some(_secret)) = (form.get("client_id"), form.get("client_secret")) else {
        let body = json!({"error": "invalid_client", "error_description": "client_id and client_secret are required."});
        return plain(
            StatusCode::UNAUTHORIZED,
            body.to_string().into_bytes(),
            "application/json",
        );
    };
    let lifetime = state
        .config
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .token_lifetime;
    bump(state, client, |s| s.tokens_issued += 1);
    let access = format!("emu.{}", uuid::Uuid::new_v4().simple());
    let now = Instant::now();
    let mut tokens = state.tokens.lock().unwrap_or_else(PoisonError::into_inner);
    // Bounded, however many tokens are asked for: expired ones go, and a client keeps its newest
    // TOKENS_PER_CLIENT (the oldest is revoked, as an identity provider may).
    tokens.retain(|_, (_, expires)| *expires > now);
    let mine: Vec<(String, Instant)> = tokens
        .iter()
        .filter(|(_, (c, _))| c == client)
        .map(|(t, (_, e))| (t.clone(), *e))
        .collect();
    if mine.len() >= TOKENS_PER_CLIENT
        && let Some((oldest, _)) = mine.iter().min_by_key(|(_, e)| *e)
    {
        tokens.remove(oldest);
    }
    if tokens.len() >= MAX_TOKENS
        && let Some(oldest) = tokens
            .iter()
            .min_by_key(|(_, (_, e))| *e)
            .map(|(t, _)| t.clone())
    {
        tokens.remove(&oldest);
    }
    tokens.insert(access.clone(), (client.clone(), now + lifetime));
    drop(tokens);
    let body = json!({"token_type": "Bearer", "expires_in": lifetime.as_secs(), "ext_expires_in": lifetime.as_secs(), "access_token": access});
    plain(
        StatusCode::OK,
        body.to_string().into_bytes(),
        "application/json",
    )
}

/// Live tokens a client may hold at once.
const TOKENS_PER_CLIENT: usize = 100;

fn stats(state: &State) -> AxumResponse {
    let stats = state
        .stats
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let mut total = ClientStats::default();
    for s in stats.values() {
        total.requests += s.requests;
        total.execution_ms += s.execution_ms;
        total.records_written += s.records_written;
        total.records_read += s.records_read;
        total.bulk_requests += s.bulk_requests;
        total.bulk_targets += s.bulk_targets;
        total.bypass_requests += s.bypass_requests;
        total.throttled += s.throttled;
        total.last_throttled_ms = total.last_throttled_ms.max(s.last_throttled_ms);
        total.faults += s.faults;
        total.tokens_issued += s.tokens_issued;
    }
    let records: HashMap<String, usize> = {
        let store = state.store.lock().unwrap_or_else(PoisonError::into_inner);
        store
            .model()
            .sets
            .keys()
            .map(|k| (k.clone(), store.count(k)))
            .collect()
    };
    let tokens = state
        .tokens
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .len();
    let body: Value =
        json!({"clients": stats, "total": total, "records": records, "tokens": tokens});
    plain(
        StatusCode::OK,
        body.to_string().into_bytes(),
        "application/json",
    )
}

/// A request admitted by the limiter, until it ends.
struct Slot {
    state: Arc<State>,
    limits: Limits,
    client: String,
    started: Instant,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.state
            .limiter
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .finish(&self.limits, &self.client, self.started.elapsed());
    }
}

/// Whether this request is one of the storm's (and counts it).
fn in_storm(state: &State) -> bool {
    state
        .storm
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |left| {
            left.checked_sub(1)
        })
        .is_ok()
}

/// Clients the stats name; later ones are counted together under [`OTHER_CLIENTS`], so that ever new
/// client ids cannot grow the emulator's memory.
const NAMED_CLIENTS: usize = 1_000;

const OTHER_CLIENTS: &str = "(other clients)";

/// Live tokens of every client together (each client also keeps at most `TOKENS_PER_CLIENT`).
const MAX_TOKENS: usize = 10_000;

fn bump(state: &State, client: &str, f: impl FnOnce(&mut ClientStats)) {
    let mut stats = state.stats.lock().unwrap_or_else(PoisonError::into_inner);
    let name = if stats.contains_key(client) || stats.len() < NAMED_CLIENTS {
        client
    } else {
        OTHER_CLIENTS
    };
    let client = stats.entry(name.to_string()).or_default();
    client.first_seen.get_or_insert_with(Instant::now);
    f(client);
}

fn plain(status: StatusCode, body: Vec<u8>, content_type: &str) -> AxumResponse {
    let mut r = axum::response::Response::new(Body::from(body));
    *r.status_mut() = status;
    if !content_type.is_empty()
        && let Ok(v) = HeaderValue::try_from(content_type)
    {
        r.headers_mut().insert("content-type", v);
    }
    r
}

fn error_response(e: &ODataError) -> AxumResponse {
    plain(
        StatusCode::from_u16(e.status).unwrap_or(StatusCode::BAD_REQUEST),
        e.body(),
        "application/json; odata.metadata=minimal",
    )
}

/// A response whose body fails: the server closes the connection mid-response.
fn dropped() -> AxumResponse {
    let stream = futures::stream::once(async {
        Err::<Bytes, std::io::Error>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "dropped by the emulator",
        ))
    });
    let mut r = axum::response::Response::new(Body::from_stream(stream));
    r.headers_mut()
        .insert("content-type", HeaderValue::from_static("application/json"));
    r
}

/// A fast, shared pseudo-random number in [0, 1) (xorshift; good enough for fault injection).
fn random(seed: &AtomicU64) -> f64 {
    let mut x = seed.load(Ordering::Relaxed);
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    seed.store(x, Ordering::Relaxed);
    (x >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_cost_by_what_they_carry() {
        let model = Latency {
            base: Duration::from_millis(5),
            per_record: Duration::from_millis(2),
            ..Latency::none()
        };
        let ms = |records, effect: api::Effect| model.cost(records, &effect).as_secs_f64() * 1e3;
        // A $batch of 100 parts: 5 + 100 x 2 ms.
        assert_eq!(ms(100, api::Effect::default()).round(), 205.0);
        // CreateMultiple of 100 new records: a quarter of the parts' cost; updated: three quarters.
        let bulk = |created| api::Effect {
            bulk: 100,
            bulk_created: created,
            ..api::Effect::default()
        };
        assert_eq!(ms(1, bulk(100)).round(), 55.0);
        assert_eq!(ms(1, bulk(0)).round(), 155.0);
        // A page of 5,000 records read: a twentieth of a written record each.
        let page = api::Effect {
            read: 5000,
            ..api::Effect::default()
        };
        assert_eq!(ms(1, page).round(), 507.0);
    }
}
