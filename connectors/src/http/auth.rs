//! Tokens for the OAuth2 client-credentials flow, one per application user, cached and renewed
//! before they expire. No secret or token ever reaches an error message.

use std::fmt;
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::error::{ConnectorError, Result};
use crate::secret::Secret;

/// One application user: its client id and secret (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub client_id: String,
    pub client_secret: Secret,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credentials({}, ***)", self.client_id)
    }
}

/// How requests are authorised.
#[derive(Clone, PartialEq, Eq)]
pub enum Auth {
    None,
    /// A fixed bearer token (never printed).
    Bearer(Secret),
    /// OAuth2 client credentials against `token_url`, one token per user.
    ClientCredentials {
        token_url: String,
        scope: Option<String>,
        users: Vec<Credentials>,
    },
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::None => f.write_str("None"),
            Auth::Bearer(_) => f.write_str("Bearer(***)"),
            Auth::ClientCredentials {
                token_url, users, ..
            } => {
                write!(f, "ClientCredentials({token_url}, {users:?})")
            }
        }
    }
}

/// The tokens of every application user of a connection.
pub struct Tokens {
    client: reqwest::Client,
    auth: Auth,
    cache: Vec<Mutex<Option<(String, Instant)>>>,
}

impl Tokens {
    pub fn new(client: reqwest::Client, auth: Auth) -> Self {
        let users = match &auth {
            Auth::ClientCredentials { users, .. } => users.len().max(1),
            _ => 1,
        };
        Self {
            client,
            auth,
            cache: (0..users).map(|_| Mutex::new(None)).collect(),
        }
    }

    /// How many application users share the load.
    pub fn users(&self) -> usize {
        self.cache.len()
    }

    /// The Authorization header value for `user`, fetching or renewing its token when needed.
    pub async fn header(&self, user: usize) -> Result<Option<String>> {
        match &self.auth {
            Auth::None => Ok(None),
            Auth::Bearer(token) => Ok(Some(format!("Bearer {}", token.expose()))),
            Auth::ClientCredentials {
                token_url,
                scope,
                users,
            } => {
                let mut cached = self.cache[user].lock().await;
                if let Some((token, renew_at)) = cached.as_ref()
                    && Instant::now() < *renew_at
                {
                    return Ok(Some(format!("Bearer {token}")));
                }
                let (token, lifetime) = self
                    .fetch(token_url, scope.as_deref(), &users[user])
                    .await?;
                // Renew a minute early, or at four fifths of a short lifetime.
                let early = Duration::from_secs(60).min(lifetime / 5);
                *cached = Some((token.clone(), Instant::now() + lifetime - early));
                Ok(Some(format!("Bearer {token}")))
            }
        }
    }

    /// Forgets `user`'s token (the service said 401), so the next request gets a new one.
    pub async fn forget(&self, user: usize) {
        *self.cache[user].lock().await = None;
    }

    async fn fetch(
        &self,
        url: &str,
        scope: Option<&str>,
        user: &Credentials,
    ) -> Result<(String, Duration)> {
        let mut form = vec![
            ("grant_type", "client_credentials"),
            ("client_id", user.client_id.as_str()),
            ("client_secret", user.client_secret.expose()),
        ];
        if let Some(scope) = scope {
            form.push(("scope", scope));
        }
        let response = self
            .client
            .post(url)
            .form(&form)
            .send()
            .await
            .map_err(|e| {
                ConnectorError::retryable(format!(
                    "the token endpoint {url} did not answer: {}",
                    e.without_url()
                ))
            })?;
        let status = response.status();
        if status.is_redirection() {
            let to = super::location(response.headers());
            return Err(super::redirected(url, to));
        }
        let body: serde_json::Value = response.json().await.unwrap_or_default();
        if !status.is_success() {
            let why = body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("no reason given");
            let e = ConnectorError::fatal(format!(
                "the token endpoint refused client {} ({status}): {why}",
                user.client_id
            ))
            .with_hint("check client_id, client_secret, token_url and scope of the connection");
            return Err(if status.is_server_error() {
                ConnectorError::retryable(e.message)
            } else {
                e
            });
        }
        let token = body["access_token"].as_str().ok_or_else(|| {
            ConnectorError::fatal(format!(
                "the token endpoint {url} answered without an access_token"
            ))
        })?;
        // A day at most: a hostile or broken answer must not overflow the clock.
        let lifetime = body["expires_in"].as_u64().unwrap_or(3600).clamp(1, 86_400);
        Ok((token.to_string(), Duration::from_secs(lifetime)))
    }
}
