//! HTTP as layers, for any REST target: one [`client::Service`] per connection holds a lane per
//! application user (`lane.rs`: rate ceiling, adaptive concurrency, `Retry-After` pauses, and the
//! pace it learns in `pace.rs`), their tokens (`auth.rs`), and sends requests through them: the
//! token renewed once on 401, redirects reported instead of followed, a refusal turned into the
//! right error class. `multipart.rs` writes and reads `$batch`-style bodies, each part with its own
//! status and `Retry-After`, and [`part_pause`] is how long a lane waits when parts were throttled.
//! A REST target (`crate::odata`) adds its request bodies and response meanings on top.

pub mod auth;
pub mod client;
pub mod lane;
pub mod multipart;
mod pace;

use std::time::Duration;

use crate::error::ConnectorError;
use multipart::ResponsePart;

/// Statuses a request or part is sent again for: timed out, throttled, the service's own failures.
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 408 | 429 | 500..=599)
}

/// Where a redirect points, for the message (never followed).
pub fn location(headers: &reqwest::header::HeaderMap) -> String {
    headers
        .get("location")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("somewhere it did not say")
        .to_string()
}

/// A redirect, reported instead of followed.
pub fn redirected(from: &str, to: String) -> ConnectorError {
    ConnectorError::fatal(format!(
        "{from} redirected to {to}; Ferry does not follow redirects, so that credentials only ever go to the URLs in the pipeline"
    ))
    .with_hint("write the final URL in the connection (url or token_url)")
}

/// How long a lane waits after parts of a multipart answer were throttled: the longest
/// `Retry-After` the parts gave, or, when none did, a pause that doubles with each attempt (1 s,
/// 2 s, ... 32 s).
pub fn part_pause(parts: &[ResponsePart], attempt: usize) -> Duration {
    parts
        .iter()
        .filter(|p| p.status == 429)
        .filter_map(|p| p.retry_after)
        .reduce(f64::max)
        .map(Duration::from_secs_f64)
        .unwrap_or(Duration::from_secs(1 << attempt.min(5)))
}

/// A `Retry-After` in seconds as a service sends it (HTTP's delta-seconds; fractions too), or `None`
/// when it is no usable number (negative, NaN, infinite): never more than an hour, so that a broken
/// or hostile answer cannot panic the client or overflow its clock.
pub fn retry_after_secs(text: &str) -> Option<f64> {
    let secs: f64 = text.trim().parse().ok()?;
    (secs.is_finite() && secs >= 0.0).then(|| secs.min(3600.0))
}

#[cfg(test)]
mod retry_after_tests {
    #[test]
    fn hostile_retry_after_values_are_refused_or_capped() {
        assert_eq!(super::retry_after_secs("10"), Some(10.0));
        assert_eq!(super::retry_after_secs("9.956"), Some(9.956));
        for bad in ["-1", "NaN", "inf", "-inf", "soon", ""] {
            assert_eq!(super::retry_after_secs(bad), None, "{bad}");
        }
        assert_eq!(super::retry_after_secs("1e20"), Some(3600.0));
        assert_eq!(super::retry_after_secs("1e19"), Some(3600.0));
    }
}
