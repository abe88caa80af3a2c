//! Every connector Ferry has, in one place: which connection URLs and file formats lead to which sink.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::error::{ConnectorError, Result};
use crate::files::FileFormat;
use crate::files::delta::DeltaSink;
use crate::files::sink::FileSink;
use crate::sink::{Sink, TargetOptions};
use crate::sql::db::DbConfig;
use crate::sql::mysql::MysqlSink;
use crate::sql::postgres::PostgresSink;
use crate::sql::sqlite::SqliteSink;

/// A database or service a connection URL points at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `sqlite://relative/path.db`, `sqlite:///absolute/path.db`
    Sqlite { path: PathBuf },
    /// `postgres://` or `postgresql://`
    Postgres(DbConfig),
    /// `mysql://` or `mariadb://`
    Mysql(DbConfig),
    /// `http://` or `https://`: an OData v4 service root.
    OData(crate::odata::config::ODataEndpoint),
}

impl Endpoint {
    pub const SCHEMES: [&'static str; 6] = [
        "sqlite://",
        "postgres://",
        "postgresql://",
        "mysql://",
        "mariadb://",
        "https:// (an OData service)",
    ];

    /// Reads a connection URL; relative SQLite paths are taken from `base_dir`.
    pub fn parse(url: &str, base_dir: &Path) -> Result<Self> {
        let (scheme, rest) = url.split_once("://").ok_or_else(|| {
            ConnectorError::fatal(format!(
                "\"{}\" is not a connection URL",
                crate::redact::url(url)
            ))
            .with_hint(format!(
                "start it with one of: {}",
                Self::SCHEMES.join(", ")
            ))
        })?;
        match scheme {
            "sqlite" => {
                let path = rest.split('?').next().unwrap_or(rest);
                if path.is_empty() {
                    return Err(ConnectorError::fatal("the sqlite:// URL names no file")
                        .with_hint("write sqlite://path/to/file.db"));
                }
                Ok(Self::Sqlite {
                    path: base_dir.join(path),
                })
            }
            "postgres" | "postgresql" => Ok(Self::Postgres(DbConfig::parse(url, base_dir)?)),
            "mysql" | "mariadb" => Ok(Self::Mysql(DbConfig::parse(
                &url.replacen("mariadb://", "mysql://", 1),
                base_dir,
            )?)),
            "http" | "https" => Err(ConnectorError::fatal(
                "an http(s):// connection is an OData service: its kind and auth come from the connection's other keys",
            )),
            other => Err(ConnectorError::fatal(format!(
                "Ferry has no connector for \"{other}://\""
            ))
            .with_hint(format!("use one of: {}", Self::SCHEMES.join(", ")))),
        }
    }
}

/// Where the final step's rows go.
#[derive(Debug, Clone)]
pub enum TargetLocation {
    Endpoint(Endpoint),
    File {
        location: String,
        format: FileFormat,
    },
}

/// The sink for a target.
pub fn sink(location: &TargetLocation, options: TargetOptions) -> Result<Arc<dyn Sink>> {
    Ok(match location {
        TargetLocation::Endpoint(Endpoint::Sqlite { path }) => {
            Arc::new(SqliteSink::new(path.clone(), options))
        }
        TargetLocation::Endpoint(Endpoint::OData(endpoint)) => {
            let odata = options.odata.clone();
            Arc::new(crate::odata::sink::ODataSink::new(
                endpoint.clone(),
                options,
                odata,
            )?)
        }
        TargetLocation::Endpoint(Endpoint::Postgres(db)) => {
            Arc::new(PostgresSink::new(db.clone(), options))
        }
        TargetLocation::Endpoint(Endpoint::Mysql(db)) => {
            Arc::new(MysqlSink::new(db.clone(), options))
        }
        TargetLocation::File {
            location,
            format: FileFormat::Delta,
        } => Arc::new(DeltaSink::new(location.clone(), options.mode, options.key)),
        TargetLocation::File { location, format } => Arc::new(FileSink::new(
            PathBuf::from(location),
            *format,
            options.mode,
        )),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_are_relative_to_the_pipeline() {
        let base = Path::new("/work/p");
        assert_eq!(
            Endpoint::parse("sqlite://out/w.db", base).unwrap(),
            Endpoint::Sqlite {
                path: "/work/p/out/w.db".into()
            }
        );
        assert_eq!(
            Endpoint::parse("sqlite:///tmp/w.db", base).unwrap(),
            Endpoint::Sqlite {
                path: "/tmp/w.db".into()
            }
        );
        let err = Endpoint::parse("oracle://x", base).unwrap_err();
        assert!(err.to_string().contains("no connector for \"oracle://\""));
    }
}
