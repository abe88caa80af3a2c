//! OData in the registry: an `http(s)://` connection is an OData v4 service root. It reads the
//! connection's kind and sign-in (checked so that no secret travels in clear text or in the URL) and
//! the target's own keys (`atomic`, `legal_entity`, `rate_limit`, `sync_max_missing`, `batch_mode`,
//! `bypass_business_logic`, `bypass_plugins`).

use std::ops::Range;
use std::sync::Arc;

use serde::Deserialize;
use toml::Spanned;

use super::config::{
    Auth, BatchMode, Credentials, MAX_PAGE, ODataEndpoint, ODataOptions, ServiceKind, parse_rate,
};
use crate::connector::{
    About, Capabilities, Connection, Connector, Destination, Keys, Reader, Settings, Tuning,
    read_keys,
};
use crate::error::Result;
use crate::sink::{Sink, TargetOptions, WriteMode};

pub struct OData;

static ABOUT: About = About {
    name: "OData",
    schemes: &["https", "http"],
    example: "https://contoso.crm.dynamics.com/api/data/v9.2",
    capabilities: Capabilities {
        modes: &[
            WriteMode::Insert,
            WriteMode::Upsert,
            WriteMode::Truncate,
            WriteMode::Sync,
        ],
        keyed: true,
        // Each record of a $batch is answered on its own, unless the target says atomic = true.
        atomic_writes: false,
        // Truncate deletes every record before the load: a service has no table to swap.
        atomic_truncate: false,
        reads: true,
        retries_rows: true,
    },
    // 100 records to a $batch (the sweep's best against Dataverse-like limits) and four in flight;
    // the lanes then find each application user's ceiling.
    tuning: Tuning {
        batch_size: 100,
        workers: 4,
    },
};

/// A bulk message carries a whole batch in one request that counts once against the request limit:
/// 500 records (in Microsoft's advised 100 to 1,000), eight in flight per process. Against the
/// emulator's limits and cost model 500 and 1,000 load new records alike (95.7% of the ceiling), and
/// 500 updates at 94.9% where 1,000 reached 88%: an update message of 1,000 is 4% of a window's
/// execution budget, and the count in the window wanders by one (BENCHMARKS.md).
const BULK_TUNING: Tuning = Tuning {
    batch_size: 500,
    workers: 8,
};

impl Connector for OData {
    fn about(&self) -> &About {
        &ABOUT
    }

    fn connection(
        &'static self,
        url: Spanned<String>,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Connection>> {
        let whole = keys.span();
        let keys: ConnectionKeys = read_keys(keys, "an OData connection", cx)?;
        let url_span = url.span();
        let url = url.into_inner();
        plain_http(&url, url_span.clone(), &keys, cx);
        secrets_in_url(&url, url_span, cx);
        let endpoint = endpoint(url, keys, whole, cx)?;
        Some(Arc::new(ODataConnection { endpoint }))
    }
}

/// The keys of an OData connection beside `url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConnectionKeys {
    /// dataverse | fno | odata.
    kind: Option<Spanned<String>>,
    /// client_credentials | bearer | none.
    auth: Option<Spanned<String>>,
    token_url: Option<Spanned<String>>,
    client_id: Option<Spanned<String>>,
    client_secret: Option<Spanned<String>>,
    scope: Option<Spanned<String>>,
    token: Option<Spanned<String>>,
    /// Plain http:// to a host other than this machine (tokens and secrets in clear text).
    allow_http: Option<Spanned<bool>>,
    /// Records per page of a read, 1 to 5,000 (smaller pages for wide records).
    page_size: Option<Spanned<i64>>,
    /// More application users: their limits add up.
    #[serde(default)]
    users: Vec<Spanned<User>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct User {
    client_id: Spanned<String>,
    client_secret: Spanned<String>,
}

/// An OData service root says where the service is, nothing more: credentials in it (user-info)
/// or a query (`?code=`) would be printed in errors and stored in the history; they belong in
/// `auth`, `token` or `client_secret`. Neither is repeated in the error.
fn secrets_in_url(url: &str, url_span: Range<usize>, cx: &mut dyn Settings) {
    let Ok(parsed) = url::Url::parse(url) else {
        return;
    };
    let problem = if !parsed.username().is_empty() || parsed.password().is_some() {
        Some("the service URL holds credentials, which would end up in errors and history")
    } else if parsed.query().is_some() {
        Some(
            "the service URL has a query (?...), which would end up in errors and history; a service root has none",
        )
    } else {
        None
    };
    if let Some(problem) = problem {
        cx.error(url_span, problem.to_string(), Some(
            "write the service root only (https://host/api/data/v9.2) and sign in with auth = \"client_credentials\" or auth = \"bearer\" and token = \"${TOKEN}\"".to_string(),
        ));
    }
}

/// Plain http:// carries tokens and client secrets in clear text: to this machine only (the
/// emulator), or where the connection says `allow_http = true`.
fn plain_http(url: &str, url_span: Range<usize>, keys: &ConnectionKeys, cx: &mut dyn Settings) {
    if keys.allow_http.as_ref().is_some_and(|a| *a.get_ref()) {
        return;
    }
    let token_url = keys
        .token_url
        .as_ref()
        .map(|t| (t.get_ref().as_str(), t.span()));
    for (address, span) in std::iter::once((url, url_span)).chain(token_url) {
        let remote_http = url::Url::parse(address).is_ok_and(|u| {
            u.scheme() == "http"
                && !matches!(
                    u.host_str(),
                    Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
                )
        });
        if remote_http {
            cx.error(
                span,
                "plain http to another host would send tokens and secrets in clear text"
                    .to_string(),
                Some("use https://, or write allow_http = true under the connection for a network you trust".to_string()),
            );
        }
    }
}

/// The service's kind and how it authorises.
fn endpoint(
    url: String,
    mut keys: ConnectionKeys,
    whole: Range<usize>,
    cx: &mut dyn Settings,
) -> Option<ODataEndpoint> {
    let kind = match keys.kind.take() {
        None if url.contains("/api/data/") => ServiceKind::Dataverse,
        None => ServiceKind::Generic,
        Some(k) => match ServiceKind::parse(k.get_ref()) {
            Some(kind) => kind,
            None => {
                cx.error(
                    k.span(),
                    format!("unknown service kind \"{}\"", k.get_ref()),
                    Some(format!("kind = one of: {}", ServiceKind::ALL.join(", "))),
                );
                return None;
            }
        },
    };
    let auth_kind = match keys.auth.take() {
        Some(a) => Some((a.get_ref().clone(), a.span())),
        None if keys.client_id.is_some() => Some(("client_credentials".to_string(), whole)),
        None if keys.token.is_some() => Some(("bearer".to_string(), whole)),
        None => None,
    };
    let auth = match auth_kind {
        None => Auth::None,
        Some((a, _)) if a == "none" => Auth::None,
        Some((a, at)) if a == "bearer" => match keys.token.take() {
            Some(t) => Auth::Bearer(cx.secret(t)?),
            None => {
                cx.error(
                    at,
                    "auth = \"bearer\" needs a token".to_string(),
                    Some("token = \"${TOKEN}\"".to_string()),
                );
                return None;
            }
        },
        Some((a, at)) if a == "client_credentials" => {
            let (Some(token_url), Some(id), Some(secret)) = (
                keys.token_url.take(),
                keys.client_id.take(),
                keys.client_secret.take(),
            ) else {
                cx.error(
                    at,
                    "client credentials need token_url, client_id and client_secret".to_string(),
                    Some("client_secret = \"${CRM_CLIENT_SECRET}\" (read from the environment, never stored)".to_string()),
                );
                return None;
            };
            let mut users = vec![Credentials {
                client_id: cx.credential(id)?,
                client_secret: cx.secret(secret)?,
            }];
            for u in std::mem::take(&mut keys.users) {
                let u = u.into_inner();
                users.push(Credentials {
                    client_id: cx.credential(u.client_id)?,
                    client_secret: cx.secret(u.client_secret)?,
                });
            }
            Auth::ClientCredentials {
                token_url: cx.setting(token_url)?,
                scope: match keys.scope.take() {
                    Some(s) => Some(cx.setting(s)?),
                    None => None,
                },
                users,
            }
        }
        Some((a, at)) => {
            cx.error(
                at,
                format!("unknown auth \"{a}\""),
                Some("auth = \"client_credentials\", \"bearer\" or \"none\"".to_string()),
            );
            return None;
        }
    };
    let page_size = match keys.page_size.take() {
        None => MAX_PAGE,
        Some(p) if (1..=MAX_PAGE as i64).contains(p.get_ref()) => *p.get_ref() as usize,
        Some(p) => {
            cx.error(
                p.span(),
                format!("page_size = {} is not a page Dataverse serves", p.get_ref()),
                Some(format!(
                    "page_size = 1 to {MAX_PAGE} records (default {MAX_PAGE})"
                )),
            );
            return None;
        }
    };
    Some(ODataEndpoint {
        url,
        kind,
        auth,
        page_size,
    })
}

/// A configured OData service.
#[derive(Debug)]
pub struct ODataConnection {
    pub endpoint: ODataEndpoint,
}

/// The keys of an OData target beside the generic ones.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TargetKeys {
    /// Each $batch one changeset.
    atomic: Option<bool>,
    /// F&O: the dataAreaId written with every record.
    legal_entity: Option<Spanned<String>>,
    /// A fixed ceiling per user, "6000/300s".
    rate_limit: Option<Spanned<String>>,
    /// Sync: the share of written records that may be missing when read back before the delete.
    sync_max_missing: Option<Spanned<f64>>,
    /// auto | batch | multiple.
    batch_mode: Option<Spanned<String>>,
    /// Dataverse: "CustomSync", "CustomAsync" or "CustomSync,CustomAsync".
    bypass_business_logic: Option<Spanned<String>>,
    /// Dataverse: the legacy plug-in bypass.
    bypass_plugins: Option<Spanned<bool>>,
}

impl Connection for ODataConnection {
    fn connector(&self) -> &'static dyn Connector {
        &OData
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        Some(Arc::new(super::read::ODataReader {
            endpoint: self.endpoint.clone(),
        }))
    }

    fn target(
        &self,
        table: &str,
        keys: Keys<'_>,
        cx: &mut dyn Settings,
    ) -> Option<Arc<dyn Destination>> {
        let keys: TargetKeys = read_keys(keys, "an OData target", cx)?;
        let mut ok = true;
        if let Some(le) = &keys.legal_entity
            && self.endpoint.kind != ServiceKind::Fno
        {
            // Sync and truncate would read and delete across every company.
            cx.error(
                le.span(),
                "legal_entity applies to Finance & Operations connections only".to_string(),
                Some("set kind = \"fno\" on the connection, or remove legal_entity".to_string()),
            );
            ok = false;
        }
        let rate_limit = match &keys.rate_limit {
            None => None,
            Some(r) => match parse_rate(r.get_ref()) {
                Some(rate) => Some(rate),
                None => {
                    cx.error(
                        r.span(),
                        format!("\"{}\" is not a rate", r.get_ref()),
                        Some("rate_limit = \"6000/300s\" (requests per period, per application user)".to_string()),
                    );
                    ok = false;
                    None
                }
            },
        };
        let sync_max_missing = match &keys.sync_max_missing {
            None => 0.0,
            Some(m) if (0.0..=1.0).contains(m.get_ref()) => *m.get_ref(),
            Some(m) => {
                cx.error(
                    m.span(),
                    format!(
                        "sync_max_missing must be between 0 and 1, not {}",
                        m.get_ref()
                    ),
                    Some(
                        "sync_max_missing = 0.01 lets 1% of the written records be missing"
                            .to_string(),
                    ),
                );
                ok = false;
                0.0
            }
        };
        let atomic = keys.atomic.unwrap_or(false);
        let batch_mode = match &keys.batch_mode {
            None => BatchMode::Auto,
            Some(m) => match BatchMode::parse(m.get_ref()) {
                Some(BatchMode::Multiple) if self.endpoint.kind != ServiceKind::Dataverse => {
                    cx.error(
                        m.span(),
                        "batch_mode = \"multiple\" sends Dataverse's bulk messages (CreateMultiple, UpsertMultiple)".to_string(),
                        Some("set kind = \"dataverse\" on the connection, or batch_mode = \"batch\"".to_string()),
                    );
                    ok = false;
                    BatchMode::Batch
                }
                Some(BatchMode::Multiple) if atomic => {
                    cx.error(
                        m.span(),
                        "atomic = true writes each batch as one $batch changeset; bulk messages are not atomic on elastic tables".to_string(),
                        Some("remove batch_mode, or atomic".to_string()),
                    );
                    ok = false;
                    BatchMode::Batch
                }
                Some(mode) => mode,
                None => {
                    cx.error(
                        m.span(),
                        format!("\"{}\" is not a batch mode", m.get_ref()),
                        Some(format!("one of {}", BatchMode::ALL.join(", "))),
                    );
                    ok = false;
                    BatchMode::Auto
                }
            },
        };
        let dataverse_only = |cx: &mut dyn Settings, span: Range<usize>, key: &str| {
            cx.error(
                span,
                format!("{key} is a Dataverse header; this connection is not kind = \"dataverse\""),
                Some(format!(
                    "set kind = \"dataverse\" on the connection, or remove {key}"
                )),
            );
        };
        let bypass_business_logic = match &keys.bypass_business_logic {
            None => None,
            Some(b) if self.endpoint.kind != ServiceKind::Dataverse => {
                dataverse_only(cx, b.span(), "bypass_business_logic");
                ok = false;
                None
            }
            Some(b) => {
                let parts: Vec<&str> = b.get_ref().split(',').map(str::trim).collect();
                if parts.is_empty()
                    || parts
                        .iter()
                        .any(|p| !matches!(*p, "CustomSync" | "CustomAsync"))
                {
                    cx.error(
                        b.span(),
                        format!("\"{}\" is not what Dataverse can bypass", b.get_ref()),
                        Some("bypass_business_logic = \"CustomSync\", \"CustomAsync\" or \"CustomSync,CustomAsync\" (synchronous plug-ins and real-time workflows; asynchronous ones)".to_string()),
                    );
                    ok = false;
                    None
                } else {
                    Some(parts.join(","))
                }
            }
        };
        let bypass_plugins = match &keys.bypass_plugins {
            Some(b) if *b.get_ref() && self.endpoint.kind != ServiceKind::Dataverse => {
                dataverse_only(cx, b.span(), "bypass_plugins");
                ok = false;
                false
            }
            Some(b) => *b.get_ref(),
            None => false,
        };
        ok.then(|| {
            Arc::new(EntitySet {
                endpoint: self.endpoint.clone(),
                table: table.to_string(),
                options: ODataOptions {
                    atomic,
                    legal_entity: keys.legal_entity.map(Spanned::into_inner),
                    rate_limit,
                    sync_max_missing,
                    batch_mode,
                    bypass_business_logic,
                    bypass_plugins,
                },
            }) as Arc<dyn Destination>
        })
    }
}

/// An entity set of a service, as a pipeline's target.
#[derive(Debug)]
pub struct EntitySet {
    pub endpoint: ODataEndpoint,
    pub table: String,
    pub options: ODataOptions,
}

impl Destination for EntitySet {
    fn connector(&self) -> &'static dyn Connector {
        &OData
    }

    fn name(&self) -> String {
        self.table.clone()
    }

    fn reader(&self) -> Option<Arc<dyn Reader>> {
        Some(Arc::new(super::read::ODataReader {
            endpoint: self.endpoint.clone(),
        }))
    }

    fn tuning(&self) -> Tuning {
        if self.options.bulk_messages(self.endpoint.kind) {
            BULK_TUNING
        } else {
            ABOUT.tuning
        }
    }

    fn sink(&self, options: TargetOptions) -> Result<Arc<dyn Sink>> {
        Ok(Arc::new(super::sink::ODataSink::new(
            self.endpoint.clone(),
            options,
            self.options.clone(),
        )?))
    }
}
