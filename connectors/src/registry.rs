//! Every connector Ferry has, in one list. Adding one is a folder with its `Connector` and one line
//! here (docs/ARCHITECTURE.md, "Adding a connector").

use crate::connector::Connector;
use crate::error::ConnectorError;
use crate::files::connector::{Delta, SingleFile};
use crate::odata::connector::OData;
use crate::sql::mysql::connector::MYSQL;
use crate::sql::postgres::connector::POSTGRES;
use crate::sql::sqlite::connector::SqliteConnector;

/// Every connector, those with connections first.
static CONNECTORS: [&dyn Connector; 6] = [
    &POSTGRES,
    &MYSQL,
    &SqliteConnector,
    &OData,
    &Delta,
    &SingleFile,
];

pub fn connectors() -> &'static [&'static dyn Connector] {
    &CONNECTORS
}

/// The connector of a connection URL, by its scheme; the error's hint lists the schemes there are.
pub fn for_url(url: &str) -> Result<&'static dyn Connector, ConnectorError> {
    let schemes = || {
        connectors()
            .iter()
            .flat_map(|c| c.schemes().iter().map(|s| format!("{s}://")))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let Some((scheme, _)) = url.split_once("://") else {
        return Err(ConnectorError::fatal(format!(
            "\"{}\" is not a connection URL",
            crate::redact::url(url)
        ))
        .with_hint(format!("start it with one of: {}", schemes())));
    };
    let scheme = scheme.to_ascii_lowercase();
    connectors()
        .iter()
        .copied()
        .find(|c| c.schemes().contains(&scheme.as_str()))
        .ok_or_else(|| {
            ConnectorError::fatal(format!("Ferry has no connector for \"{scheme}://\""))
                .with_hint(format!("use one of: {}", schemes()))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_find_their_connector_by_scheme() {
        let name = |url: &str| for_url(url).map(|c| c.name()).ok();
        assert_eq!(name("postgresql://h/db"), Some("PostgreSQL"));
        assert_eq!(name("mariadb://h/db"), Some("MySQL"));
        assert_eq!(name("sqlite://out/w.db"), Some("SQLite"));
        assert_eq!(
            name("HTTPS://org.crm.dynamics.com/api/data/v9.2"),
            Some("OData")
        );
        let err = for_url("oracle://x").unwrap_err().to_string();
        assert!(err.contains("no connector for \"oracle://\""), "{err}");
        assert!(err.contains("postgres://"), "{err}");
        let err = for_url("warehouse.db").unwrap_err().to_string();
        assert!(err.contains("not a connection URL"), "{err}");
    }

    #[test]
    fn every_scheme_belongs_to_one_connector() {
        let mut seen = std::collections::HashSet::new();
        for c in connectors() {
            for s in c.schemes() {
                assert!(seen.insert(*s), "scheme {s} twice");
            }
        }
    }
}
