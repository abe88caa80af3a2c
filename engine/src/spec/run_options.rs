//! The `[run]` section of a pipeline file (retries, failures in a row, timeout, validation) and the
//! durations it is written in.

use std::time::Duration;

use toml::Spanned;

use super::raw::RawRun;
use super::*;

impl Checker<'_> {
    pub(super) fn run(&mut self, raw: Option<Spanned<RawRun>>) -> Option<RunOptions> {
        let raw = raw.map(Spanned::into_inner).unwrap_or(RawRun {
            max_retries: None,
            max_consecutive_failures: None,
            timeout: None,
            validate: None,
            reconcile: None,
            cluster: None,
        });
        let max_consecutive_failures = self.positive(
            raw.max_consecutive_failures,
            "max_consecutive_failures",
            100,
            1_000_000_000,
        )? as u64;
        let max_retries = self.whole_between(raw.max_retries, "max_retries", 3, 0, 100)? as u32;
        let timeout = match raw.timeout {
            None => Duration::from_secs(30 * 60),
            Some(t) => match parse_duration(t.get_ref()) {
                Some(d) if !d.is_zero() => d,
                _ => {
                    self.errors.push(
                        self.loc
                            .error(t.span(), format!("\"{}\" is not a duration", t.get_ref()))
                            .hint("timeout = \"30m\" (units: s, m, h; e.g. \"90s\", \"1h30m\")"),
                    );
                    return None;
                }
            },
        };
        let reconcile = match raw.reconcile {
            None => None,
            Some(r) => match crate::run::reconcile::Depth::parse(r.get_ref()) {
                Some(depth) => Some(depth),
                None => {
                    self.errors.push(
                        self.loc
                            .error(r.span(), format!("reconcile cannot be \"{}\"", r.get_ref()))
                            .hint("reconcile = \"count\" (rows on both sides) or \"checksum\" (every column of every key)"),
                    );
                    return None;
                }
            },
        };
        let cluster = self.cluster(raw.cluster)?;
        Some(RunOptions {
            max_retries,
            max_consecutive_failures,
            timeout,
            validate: raw.validate.unwrap_or(true),
            reconcile,
            cluster,
        })
    }

    /// `cluster = ["http://10.0.0.5:7470", ...]`: the workers' addresses, checked as URLs, and only
    /// in a Ferry built with the distributed engine.
    fn cluster(&mut self, raw: Option<Spanned<Vec<String>>>) -> Option<Vec<url::Url>> {
        let Some(raw) = raw else {
            return Some(Vec::new());
        };
        let span = raw.span();
        if !cfg!(feature = "distributed") {
            self.errors.push(
                self.loc
                    .error(span, "this ferry was built without the distributed engine")
                    .hint("build it with `cargo build --release -p ferry --features distributed`, or remove cluster"),
            );
            return None;
        }
        let mut urls = Vec::new();
        for text in raw.into_inner() {
            match url::Url::parse(&text) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.port_or_known_default().is_some() =>
                {
                    urls.push(u)
                }
                _ => {
                    self.errors.push(
                        self.loc
                            .error(span.clone(), format!("\"{text}\" is not a worker's address"))
                            .hint("cluster = [\"http://10.0.0.5:7470\"]: each a `ferry worker --listen` address"),
                    );
                    return None;
                }
            }
        }
        if urls.is_empty() {
            self.errors.push(
                self.loc
                    .error(span, "cluster names no worker")
                    .hint("name at least one `ferry worker` address, or remove cluster"),
            );
            return None;
        }
        Some(urls)
    }
}

/// "250ms", "90s", "30m", "2h", "1h30m", "1h 30m".
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = Duration::ZERO;
    let mut chars = text.chars().filter(|c| !c.is_whitespace()).peekable();
    let mut seen = false;
    while chars.peek().is_some() {
        let number: String = std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_digit())).collect();
        let unit: String =
            std::iter::from_fn(|| chars.next_if(|c| c.is_ascii_alphabetic())).collect();
        let n: u64 = number.parse().ok()?;
        let part = match unit.as_str() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.checked_mul(60)?),
            "h" => Duration::from_secs(n.checked_mul(3600)?),
            "d" => Duration::from_secs(n.checked_mul(86400)?),
            _ => return None,
        };
        total = total.checked_add(part)?;
        seen = true;
    }
    // Longer than a year is a typo, and would overflow the clock's arithmetic.
    seen.then_some(total)
        .filter(|t| *t <= Duration::from_secs(366 * 86400))
}
