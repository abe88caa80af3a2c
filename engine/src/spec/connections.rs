//! The `[connections]` of a pipeline file: keys of the other kind of connection refused at their
//! lines, plain http only where it is safe, and an OData service's kind and sign-in.

use ferry_connectors::odata::config::{Auth, Credentials, ODataEndpoint, ServiceKind};
use toml::Spanned;

use super::raw::RawConnection;
use super::*;

impl Checker<'_> {
    /// An http(s):// connection: an OData service, its kind and how it authorises.
    /// Keys of the other kind of connection (OData's on a database, a database's on OData) are
    /// errors at their lines: silently ignored, they would hide a mistaken URL or a lost setting.
    pub(super) fn foreign_connection_keys(&mut self, conn: &RawConnection, odata: bool) {
        let (found, applies, hint) = if odata {
            (
                vec![
                    ("user", conn.user.as_ref().map(|v| v.span())),
                    ("password", conn.password.as_ref().map(|v| v.span())),
                ],
                "database connections",
                "an OData connection signs in with auth = \"client_credentials\" (client_id, client_secret, token_url) or auth = \"bearer\" (token)",
            )
        } else {
            let odata_key = |v: &Option<Spanned<String>>| v.as_ref().map(|v| v.span());
            (
                vec![
                    ("kind", odata_key(&conn.kind)),
                    ("auth", odata_key(&conn.auth)),
                    ("token_url", odata_key(&conn.token_url)),
                    ("client_id", odata_key(&conn.client_id)),
                    ("client_secret", odata_key(&conn.client_secret)),
                    ("scope", odata_key(&conn.scope)),
                    ("token", odata_key(&conn.token)),
                    ("allow_http", conn.allow_http.as_ref().map(|v| v.span())),
                    ("users", conn.users.first().map(|u| u.span())),
                ],
                "OData (http/https) connections",
                "remove it, or check the url: an OData service's root starts with https://",
            )
        };
        for (key, span) in found {
            if let Some(span) = span {
                self.errors.push(
                    self.loc
                        .error(span, format!("{key} applies to {applies} only"))
                        .hint(hint),
                );
            }
        }
    }

    /// An OData service root says where the service is, nothing more: credentials in it (user-info)
    /// or a query (`?code=`) would be printed in errors and stored in the history; they belong in
    /// `auth`, `token` or `client_secret`. Neither is repeated in the error.
    pub(super) fn secrets_in_url(&mut self, url: &str, url_span: std::ops::Range<usize>) {
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
            self.errors.push(self.loc.error(url_span, problem).hint(
                "write the service root only (https://host/api/data/v9.2) and sign in with auth = \"client_credentials\" or auth = \"bearer\" and token = \"${TOKEN}\"",
            ));
        }
    }

    /// Plain http:// carries tokens and client secrets in clear text: to this machine only (the
    /// emulator), or where the connection says `allow_http = true`.
    pub(super) fn plain_http(
        &mut self,
        url: &str,
        url_span: std::ops::Range<usize>,
        conn: &RawConnection,
    ) {
        if conn.allow_http.as_ref().is_some_and(|a| *a.get_ref()) {
            return;
        }
        let token_url = conn
            .token_url
            .as_ref()
            .map(|t| (t.get_ref().as_str(), t.span()));
        for (address, span) in std::iter::once((url, url_span.clone())).chain(token_url) {
            let remote_http = url::Url::parse(address).is_ok_and(|u| {
                u.scheme() == "http"
                    && !matches!(
                        u.host_str(),
                        Some("localhost" | "127.0.0.1" | "[::1]" | "::1")
                    )
            });
            if remote_http {
                self.errors.push(
                    self.loc
                        .error(
                            span,
                            "plain http to another host would send tokens and secrets in clear text",
                        )
                        .hint("use https://, or write allow_http = true under the connection for a network you trust"),
                );
            }
        }
    }

    pub(super) fn odata_endpoint(
        &mut self,
        url: String,
        conn: &mut RawConnection,
        span: std::ops::Range<usize>,
    ) -> Option<ODataEndpoint> {
        let kind = match conn.kind.take() {
            None if url.contains("/api/data/") => ServiceKind::Dataverse,
            None => ServiceKind::Generic,
            Some(k) => match ServiceKind::parse(k.get_ref()) {
                Some(kind) => kind,
                None => {
                    self.errors.push(
                        self.loc
                            .error(
                                k.span(),
                                format!("unknown service kind \"{}\"", k.get_ref()),
                            )
                            .hint(format!("kind = one of: {}", ServiceKind::ALL.join(", "))),
                    );
                    return None;
                }
            },
        };
        let auth_kind = match conn.auth.take() {
            Some(a) => Some((a.get_ref().clone(), a.span())),
            None if conn.client_id.is_some() => {
                Some(("client_credentials".to_string(), span.clone()))
            }
            None if conn.token.is_some() => Some(("bearer".to_string(), span.clone())),
            None => None,
        };
        let auth = match auth_kind {
            None => Auth::None,
            Some((a, _)) if a == "none" => Auth::None,
            Some((a, at)) if a == "bearer" => match conn.token.take() {
                Some(t) => Auth::Bearer(self.interpolate(t)?),
                None => {
                    self.errors.push(
                        self.loc
                            .error(at, "auth = \"bearer\" needs a token")
                            .hint("token = \"${TOKEN}\""),
                    );
                    return None;
                }
            },
            Some((a, at)) if a == "client_credentials" => {
                let (Some(token_url), Some(id), Some(secret)) = (
                    conn.token_url.take(),
                    conn.client_id.take(),
                    conn.client_secret.take(),
                ) else {
                    self.errors.push(
                        self.loc
                            .error(at, "client credentials need token_url, client_id and client_secret")
                            .hint("client_secret = \"${CRM_CLIENT_SECRET}\" (read from the environment, never stored)"),
                    );
                    return None;
                };
                let mut users = vec![Credentials {
                    client_id: self.interpolate(id)?,
                    client_secret: self.interpolate(secret)?,
                }];
                for u in std::mem::take(&mut conn.users) {
                    let u = u.into_inner();
                    users.push(Credentials {
                        client_id: self.interpolate(u.client_id)?,
                        client_secret: self.interpolate(u.client_secret)?,
                    });
                }
                Auth::ClientCredentials {
                    token_url: self.interpolate_setting(token_url)?,
                    scope: match conn.scope.take() {
                        Some(s) => Some(self.interpolate_setting(s)?),
                        None => None,
                    },
                    users,
                }
            }
            Some((a, at)) => {
                self.errors.push(
                    self.loc
                        .error(at, format!("unknown auth \"{a}\""))
                        .hint("auth = \"client_credentials\", \"bearer\" or \"none\""),
                );
                return None;
            }
        };
        Some(ODataEndpoint { url, kind, auth })
    }
}
