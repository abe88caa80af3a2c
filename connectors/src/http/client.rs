//! A REST service as Ferry talks to it: one HTTP client that never follows redirects, a lane and a
//! token per application user, requests sent with the token (renewed once on 401), and a refused
//! answer turned into the error that says what to do (429 pauses the lane and is retried; 5xx is
//! retried; 401, 403, 404 and redirects stop the run with a hint).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use super::auth::{Auth, Tokens};
use super::lane::{Lane, Limit};
use crate::error::{ConnectorError, Result};

/// One configured service: its root, its client, and a lane and a token per application user.
pub struct Service {
    /// The service root, for messages: `https://contoso.crm.dynamics.com/api/data/v9.2`.
    pub root: String,
    pub client: reqwest::Client,
    tokens: Tokens,
    lanes: Vec<Lane>,
    next: AtomicUsize,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.root)
    }
}

impl Service {
    /// `rate_limit`: a fixed ceiling per user in requests per second, beside what the lanes learn.
    pub fn new(root: &str, auth: Auth, rate_limit: Option<f64>) -> Result<Self> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(150))
            // Tokens and secrets go to the configured origins only: a redirect is reported, not
            // followed (a 307 would re-send a client secret to wherever it points).
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .map_err(|e| ConnectorError::fatal(format!("HTTP client: {e}")))?;
        let tokens = Tokens::new(client.clone(), auth);
        let lanes = (0..tokens.users())
            .map(|_| Lane::new(rate_limit, 4, 52))
            .collect();
        Ok(Self {
            root: root.trim_end_matches('/').to_string(),
            client,
            tokens,
            lanes,
            next: AtomicUsize::new(0),
        })
    }

    /// `root/rest`.
    pub fn url(&self, rest: &str) -> String {
        format!("{}/{rest}", self.root)
    }

    /// The next application user in turn: writes spread over every user's limits.
    pub fn next_user(&self) -> usize {
        self.next.fetch_add(1, Ordering::Relaxed) % self.lanes.len()
    }

    pub fn lane(&self, user: usize) -> &Lane {
        &self.lanes[user]
    }

    /// How many application users the service is signed in as.
    pub fn users(&self) -> usize {
        self.lanes.len()
    }

    /// Sends one request as `user`, renewing the token once on 401.
    pub async fn send(
        &self,
        user: usize,
        build: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        for renewed in [false, true] {
            let mut request = build();
            if let Some(auth) = self.tokens.header(user).await? {
                request = request.header("authorization", auth);
            }
            let response = request.send().await.map_err(|e| {
                ConnectorError::retryable(format!("{}: {}", self.root, e.without_url()))
            })?;
            if response.status().as_u16() == 401 && !renewed {
                self.tokens.forget(user).await;
                continue;
            }
            return Ok(response);
        }
        unreachable!("the loop returns")
    }

    /// Turns a non-success answer to `user`'s request into the right error, pausing its lane on
    /// 429. `not_found` is the hint for a 404 (which entity set or path to check).
    pub async fn refused(
        &self,
        user: usize,
        response: reqwest::Response,
        not_found: String,
    ) -> ConnectorError {
        let status = response.status().as_u16();
        let redirected_to = (300..400)
            .contains(&status)
            .then(|| super::location(response.headers()));
        let retry_after = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .and_then(super::retry_after_secs);
        let body = response.text().await.unwrap_or_default();
        let message = error_message(&body).unwrap_or_else(|| body.chars().take(200).collect());
        match status {
            429 => {
                self.lanes[user].pause(
                    Duration::from_secs_f64(retry_after.unwrap_or(5.0)),
                    // A whole request refused with Retry-After and no code: a rate limit.
                    Limit::from_error(&body).unwrap_or(Limit::Requests),
                );
                ConnectorError::retryable(format!("throttled (429): {message}"))
                    .with_cause(crate::error::Cause::Throttled)
            }
            408 | 500..=599 => ConnectorError::retryable(format!("{status}: {message}")),
            300..=399 => super::redirected(&self.root, redirected_to.unwrap_or_default()),
            401 => ConnectorError::fatal(format!("the service refused the token (401): {message}"))
                .with_hint("check the application user's permissions and the connection's scope"),
            403 => ConnectorError::fatal(format!("forbidden (403): {message}"))
                .with_hint("the application user lacks a privilege on this entity set"),
            404 => {
                ConnectorError::fatal(format!("not found (404): {message}")).with_hint(not_found)
            }
            _ => ConnectorError::fatal(format!("{status}: {message}")),
        }
    }
}

/// The message of a JSON error answer, `{"error": {"code": ..., "message": ...}}` (OData's and most
/// Microsoft REST APIs' shape), with its code.
pub fn error_message(body: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(body).ok()?;
    let code = v["error"]["code"].as_str().unwrap_or_default();
    let message = v["error"]["message"].as_str()?;
    Some(if code.is_empty() {
        message.to_string()
    } else {
        format!("{message} ({code})")
    })
}
