//! Secrets: `${VAR}` references are resolved from the environment when a pipeline is read, and the
//! values are held in a type that never prints them down to the driver that uses them, so they cannot
//! reach a log, an error, a table or the history.

use std::fmt;

/// A resolved secret. `Debug` and `Display` print a mask; only `expose` gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(value)
    }

    /// The value, for the one place that hands it to a driver.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Why a `${VAR}` could not be replaced.
#[derive(Debug, PartialEq, Eq)]
pub enum Unresolved {
    /// The variable is not set.
    Unset(String),
    /// The key may not read this variable (outside credentials, only `FERRY_*` ones).
    NotAllowed(String),
    /// The reference could not be resolved, for the reason given, with what to do.
    Failed { why: String, hint: String },
}

/// Replaces every `${VAR}` that `allowed` accepts with the variable's value; the error names the
/// first one that is unset or not allowed. `$${` writes a literal `${`.
pub fn interpolate_where(text: &str, allowed: impl Fn(&str) -> bool) -> Result<String, Unresolved> {
    interpolate_with(text, |name| {
        if !allowed(name) {
            return Err(Unresolved::NotAllowed(name.to_string()));
        }
        std::env::var(name).map_err(|_| Unresolved::Unset(name.to_string()))
    })
}

/// Replaces every `${NAME}` with what `resolve` gives for `NAME`, in one pass (a value is never
/// read again for references); the first error stops it. `$${` writes a literal `${`.
pub fn interpolate_with(
    text: &str,
    mut resolve: impl FnMut(&str) -> Result<String, Unresolved>,
) -> Result<String, Unresolved> {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        if let Some(literal) = after.strip_prefix("${") {
            out.push_str("${");
            rest = literal;
        } else if let Some((name, tail)) = after.strip_prefix('{').and_then(|a| a.split_once('}')) {
            out.push_str(&resolve(name)?);
            rest = tail;
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// The names of the `${NAME}` references in `text` (not `$${` literals), in order.
pub fn references(text: &str) -> Vec<String> {
    let mut names = Vec::new();
    let _ = interpolate_with(text, |name| {
        names.push(name.to_string());
        Ok(String::new())
    });
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variables_are_replaced_and_secrets_are_masked() {
        let any = |text: &str| interpolate_where(text, |_| true);
        let path = std::env::var("PATH").unwrap();
        assert_eq!(any("p=${PATH};").unwrap(), format!("p={path};"));
        assert_eq!(any("cost $5 and $${X}").unwrap(), "cost $5 and ${X}");
        assert_eq!(
            any("${FERRY_TEST_SURELY_UNSET}").unwrap_err(),
            Unresolved::Unset("FERRY_TEST_SURELY_UNSET".into())
        );
        let ferry_only = |text: &str| interpolate_where(text, |v| v.starts_with("FERRY_"));
        assert_eq!(
            ferry_only("x${PATH}").unwrap_err(),
            Unresolved::NotAllowed("PATH".into())
        );
        let s = Secret::new("hunter2".into());
        assert_eq!(format!("{s} {s:?}"), "*** Secret(***)");
    }
}
