//! Connections to PostgreSQL: opened with the right TLS, kept in a small pool, and every server error
//! sorted by SQLSTATE into what the run does about it.

use std::str::FromStr;
use std::sync::Mutex;

use tokio_postgres::error::SqlState;
use tokio_postgres::{Client, Config, NoTls};

use crate::error::{Cause, ConnectorError, Result};
use crate::sql::db::{DbConfig, TlsMode};

/// A connection, with what Ferry set up on it.
pub struct Conn {
    pub client: Client,
    /// The session's temporary staging table exists.
    pub has_stage: bool,
}

/// Idle connections, handed out one per concurrent write.
pub struct Pool {
    config: DbConfig,
    idle: Mutex<Vec<Conn>>,
}

impl Pool {
    pub fn new(config: DbConfig) -> Self {
        Self {
            config,
            idle: Mutex::new(Vec::new()),
        }
    }

    pub fn config(&self) -> &DbConfig {
        &self.config
    }

    /// An idle connection, or a new one.
    pub async fn get(&self) -> Result<Conn> {
        loop {
            let idle = self.idle.lock().expect("pool lock").pop();
            match idle {
                Some(conn) if !conn.client.is_closed() => return Ok(conn),
                Some(_) => continue,
                None => break,
            }
        }
        Ok(Conn {
            client: connect(&self.config).await?,
            has_stage: false,
        })
    }

    /// Gives a connection back after a successful use; failed ones are dropped instead.
    pub fn put(&self, conn: Conn) {
        if !conn.client.is_closed() {
            self.idle.lock().expect("pool lock").push(conn);
        }
    }

    pub fn clear(&self) {
        self.idle.lock().expect("pool lock").clear();
    }
}

/// Opens one connection; the password comes from the connection's `password` key, never the URL.
pub async fn connect(db: &DbConfig) -> Result<Client> {
    let mut config = Config::from_str(db.url.as_str()).map_err(|e| {
        ConnectorError::fatal(format!("the PostgreSQL URL for {db} is not valid: {e}"))
    })?;
    if config.get_user().is_none()
        && let Some(user) = db.user()
    {
        config.user(&user);
    }
    if let Some(password) = &db.password {
        config.password(password.expose());
    }
    if config.get_application_name().is_none() {
        config.application_name("ferry");
    }
    // Sessions run in UTC, as MySQL's do: a naive timestamp (a parameter, a staged value) means
    // the same instant whatever the server's own TimeZone is.
    if config.get_options().is_none() {
        config.options("-c TimeZone=UTC");
    }
    config.connect_timeout(std::time::Duration::from_secs(15));
    let connected = match db.tls {
        TlsMode::Disable => {
            config.ssl_mode(tokio_postgres::config::SslMode::Disable);
            config.connect(NoTls).await.map(|(client, connection)| {
                tokio::spawn(connection);
                client
            })
        }
        mode => {
            config.ssl_mode(if mode == TlsMode::Prefer {
                tokio_postgres::config::SslMode::Prefer
            } else {
                tokio_postgres::config::SslMode::Require
            });
            let tls = postgres_native_tls::MakeTlsConnector::new(db.tls_connector()?);
            config.connect(tls).await.map(|(client, connection)| {
                tokio::spawn(connection);
                client
            })
        }
    };
    connected.map_err(|e| {
        let tls_failed = format!("{e:?}").contains("Tls") || e.to_string().contains("tls");
        let err = classify(e).context(format!("cannot connect to PostgreSQL at {db}"));
        let err = db.explain_refused(err, 5432);
        if tls_failed && db.tls != TlsMode::Disable {
            ConnectorError::fatal(err.message).with_hint(db.tls_hint())
        } else {
            err
        }
    })
}

/// Sorts a PostgreSQL error by SQLSTATE: passing faults are retried, bad values isolated, the rest stop.
pub fn classify(err: tokio_postgres::Error) -> ConnectorError {
    let Some(db) = err.as_db_error() else {
        // No SQLSTATE: the connection broke (server restart, network) or could not be made.
        let message = err.to_string();
        let source = std::error::Error::source(&err)
            .map(|s| format!(": {s}"))
            .unwrap_or_default();
        return if err.is_closed() || message.contains("error connecting") || !source.is_empty() {
            ConnectorError::retryable(format!("{message}{source}"))
        } else {
            ConnectorError::fatal(message)
        };
    };
    let mut message = db.message().to_string();
    if let Some(detail) = db.detail() {
        message.push_str(&format!(" ({detail})"));
    }
    let code = db.code();
    let class = &code.code()[..2];
    let row = db
        .where_()
        .and_then(copy_line)
        .and_then(|line| line.checked_sub(1));
    let cause = match code {
        c if *c == SqlState::UNIQUE_VIOLATION => Cause::DuplicateKey,
        c if *c == SqlState::NOT_NULL_VIOLATION => Cause::RequiredMissing,
        c if *c == SqlState::FOREIGN_KEY_VIOLATION => Cause::MissingReference,
        c if *c == SqlState::CHECK_VIOLATION => Cause::CheckFailed,
        c if *c == SqlState::STRING_DATA_RIGHT_TRUNCATION => Cause::TooLong,
        c if *c == SqlState::NUMERIC_VALUE_OUT_OF_RANGE => Cause::OutOfRange,
        c if *c == SqlState::CHARACTER_NOT_IN_REPERTOIRE
            || *c == SqlState::UNTRANSLATABLE_CHARACTER =>
        {
            Cause::BadText
        }
        c if *c == SqlState::CARDINALITY_VIOLATION => Cause::KeyTwiceInBatch,
        _ if class == "22" => Cause::WrongType,
        _ => Cause::Rejected,
    };
    let retryable = matches!(class, "08" | "40" | "53" | "57")
        || *code == SqlState::LOCK_NOT_AVAILABLE
        || *code == SqlState::T_R_SERIALIZATION_FAILURE;
    if retryable && *code != SqlState::QUERY_CANCELED {
        ConnectorError::retryable(message)
    } else if matches!(class, "22" | "23") || *code == SqlState::CARDINALITY_VIOLATION {
        ConnectorError::data(message, row).with_cause(cause)
    } else {
        let hint = match class {
            "28" => Some("check the user and the password variable of the connection"),
            "42" if *code == SqlState::INSUFFICIENT_PRIVILEGE => {
                Some("grant the privilege, or run `ferry validate` to see every one the mode needs")
            }
            "3D" => Some("check the database name in the connection URL"),
            _ => None,
        };
        let err = ConnectorError::fatal(message);
        match hint {
            Some(h) => err.with_hint(h),
            None => err,
        }
    }
}

/// "COPY t, line 3, column x: ..." → 3 (rows of a binary COPY are counted from 1).
fn copy_line(context: &str) -> Option<usize> {
    let at = context.find(", line ")?;
    let digits: String = context[at + 7..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    #[test]
    fn copy_context_names_the_line() {
        assert_eq!(
            super::copy_line("COPY orders, line 17, column name: \"x\""),
            Some(17)
        );
        assert_eq!(super::copy_line("SQL statement"), None);
    }
}
