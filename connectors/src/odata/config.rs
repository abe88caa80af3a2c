//! What an OData connection and target say: the service root, the flavour of service, how to get a
//! token, the application users to spread the load over, and the target's options.

pub use super::multiple::BatchMode;
pub use crate::http::auth::{Auth, Credentials};
#[cfg(test)]
use crate::secret::Secret;

/// Which OData service this is; each has its own habits within the standard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceKind {
    /// Dynamics 365 / Dataverse Web API: alternate keys, service protection limits.
    Dataverse,
    /// Dynamics 365 Finance & Operations: data entities, `dataAreaId` per legal entity.
    Fno,
    /// Any OData v4 service.
    Generic,
}

impl ServiceKind {
    pub const ALL: [&'static str; 3] = ["dataverse", "fno", "odata"];

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "dataverse" => Some(Self::Dataverse),
            "fno" => Some(Self::Fno),
            "odata" => Some(Self::Generic),
            _ => None,
        }
    }
}

/// An OData service a connection points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ODataEndpoint {
    /// The service root: `https://contoso.crm.dynamics.com/api/data/v9.2`.
    pub url: String,
    pub kind: ServiceKind,
    pub auth: Auth,
    /// Records asked for per page of a read (`Prefer: odata.maxpagesize`).
    pub page_size: usize,
}

/// Dataverse's largest page, and what reads ask for unless the connection says `page_size`.
pub const MAX_PAGE: usize = 5000;

/// The OData-only options of a target.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ODataOptions {
    /// Each $batch is one changeset: all of it lands or none.
    pub atomic: bool,
    /// F&O: written as `dataAreaId`.
    pub legal_entity: Option<String>,
    /// A fixed ceiling per user, requests per second.
    pub rate_limit: Option<f64>,
    /// Sync: the share (0 to 1) of the records written that may be missing when their keys are read
    /// back before the delete; more stops the sync before it deletes anything. Default 0.
    pub sync_max_missing: f64,
    /// How records travel: bulk messages (CreateMultiple, UpsertMultiple) or `$batch`.
    pub batch_mode: BatchMode,
    /// `MSCRM.BypassBusinessLogicExecution`: "CustomSync", "CustomAsync" or both, comma-separated.
    pub bypass_business_logic: Option<String>,
    /// The legacy `MSCRM.BypassCustomPluginExecution: true`.
    pub bypass_plugins: bool,
}

impl ODataOptions {
    /// Whether this target starts out writing by bulk messages.
    pub fn bulk_messages(&self, kind: ServiceKind) -> bool {
        match self.batch_mode {
            BatchMode::Auto => kind == ServiceKind::Dataverse && !self.atomic,
            BatchMode::Batch => false,
            BatchMode::Multiple => true,
        }
    }

    /// The headers that ask Dataverse to skip custom business logic, only when set, with the
    /// privilege each needs.
    pub fn bypass_headers(&self) -> Vec<(&'static str, String, &'static str)> {
        let mut out = Vec::new();
        if let Some(what) = &self.bypass_business_logic {
            out.push((
                "MSCRM.BypassBusinessLogicExecution",
                what.clone(),
                "prvBypassCustomBusinessLogic",
            ));
        }
        if self.bypass_plugins {
            out.push((
                "MSCRM.BypassCustomPluginExecution",
                "true".to_string(),
                "prvBypassCustomPlugins",
            ));
        }
        out
    }
}

/// "6000/300s" or "20/s" as requests per second.
pub fn parse_rate(text: &str) -> Option<f64> {
    let (count, per) = text.split_once('/')?;
    let count: f64 = count.trim().parse().ok()?;
    let per = per.trim();
    let digits: String = per
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect();
    let unit = &per[digits.len()..];
    let n: f64 = if digits.is_empty() {
        1.0
    } else {
        digits.parse().ok()?
    };
    let seconds = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        "h" => n * 3600.0,
        _ => return None,
    };
    let rate = count / seconds;
    // A million requests a second is no limit at all; infinities and NaN are no numbers.
    (count > 0.0 && seconds > 0.0 && rate.is_finite() && rate <= 1e6).then_some(rate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_secrets() {
        assert_eq!(parse_rate("6000/300s"), Some(20.0));
        assert_eq!(parse_rate("20/s"), Some(20.0));
        assert_eq!(parse_rate("60/m"), Some(1.0));
        assert_eq!(parse_rate("fast"), None);
        assert_eq!(parse_rate("inf/s"), None);
        assert_eq!(parse_rate("NaN/s"), None);
        assert_eq!(parse_rate("1000000000000/s"), None);
        assert_eq!(parse_rate("1/0.0000000000001s"), None);
        let auth = Auth::ClientCredentials {
            token_url: "http://t".into(),
            scope: None,
            users: vec![Credentials {
                client_id: "app".into(),
                client_secret: Secret::new("canary-secret".into()),
            }],
        };
        assert!(!format!("{auth:?}").contains("canary"));
        assert!(!format!("{:?}", Auth::Bearer(Secret::new("canary".into()))).contains("canary"));
    }
}
