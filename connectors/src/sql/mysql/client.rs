//! Connections to MySQL/MariaDB: a pool whose sessions run in strict mode, UTC and utf8mb4, and every
//! server error sorted by its code into what the run does about it.

use mysql_async::prelude::Queryable;
use mysql_async::{Conn, Opts, OptsBuilder, Pool, PoolOpts, SslOpts};

use crate::error::{Cause, ConnectorError, Result};
use crate::sql::db::{DbConfig, TlsMode};

/// Strict: a value that does not fit is an error, never a warning and a truncated value.
const SESSION: &[&str] = &[
    "SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_BACKSLASH_ESCAPES,NO_ENGINE_SUBSTITUTION,ERROR_FOR_DIVISION_BY_ZERO,NO_ZERO_DATE,NO_ZERO_IN_DATE'",
    "SET NAMES utf8mb4",
    "SET SESSION time_zone = '+00:00'",
];

/// A pool of sessions set up for writing.
pub fn pool(db: &DbConfig) -> Result<Pool> {
    let opts = Opts::from_url(db.url.as_str())
        .map_err(|e| ConnectorError::fatal(format!("the MySQL URL for {db} is not valid: {e}")))?;
    let mut builder = OptsBuilder::from_opts(opts)
        .init(SESSION.to_vec())
        .pool_opts(PoolOpts::default().with_reset_connection(false))
        .prefer_socket(false);
    if db.url.username().is_empty() {
        builder = builder.user(db.user());
    }
    if let Some(password) = &db.password {
        builder = builder.pass(Some(password.expose()));
    }
    if db.tls != TlsMode::Disable {
        let mut ssl = SslOpts::default();
        if let Some(root) = &db.root_cert {
            ssl = ssl.with_root_certs(vec![root.clone().into()]);
        }
        if db.tls == TlsMode::VerifyCa {
            ssl = ssl.with_danger_skip_domain_validation(true);
        }
        builder = builder.ssl_opts(ssl);
    }
    Ok(Pool::new(builder))
}

/// A session from the pool, with connection failures explained.
pub async fn conn(pool: &Pool, db: &DbConfig) -> Result<Conn> {
    pool.get_conn().await.map_err(|e| {
        let tls = matches!(&e, mysql_async::Error::Io(mysql_async::IoError::Tls(_)));
        let err = classify(e).context(format!("cannot connect to MySQL at {db}"));
        let err = db.explain_refused(err, 3306);
        if tls {
            ConnectorError::fatal(err.message).with_hint(db.tls_hint())
        } else {
            err
        }
    })
}

/// Sorts a MySQL/MariaDB error by code: passing faults are retried, bad values isolated, the rest stop.
pub fn classify(err: mysql_async::Error) -> ConnectorError {
    let mysql_async::Error::Server(server) = &err else {
        return match err {
            mysql_async::Error::Url(e) => ConnectorError::fatal(e.to_string()),
            other => ConnectorError::retryable(other.to_string()),
        };
    };
    let message = server.message.clone();
    let cause = match server.code {
        1062 | 1586 => Some(Cause::DuplicateKey),
        1048 | 1364 => Some(Cause::RequiredMissing),
        1406 => Some(Cause::TooLong),
        1264 | 1690 => Some(Cause::OutOfRange),
        1292 | 1367 | 1265 | 1366 | 4078 => Some(Cause::WrongType),
        1300 => Some(Cause::BadText),
        1451 | 1452 => Some(Cause::MissingReference),
        3819 | 4025 => Some(Cause::CheckFailed),
        _ => None,
    };
    match server.code {
        // Deadlock, lock wait timeout, too many connections, shutdown, killed, read-only failover.
        1213 | 1205 | 1040 | 1053 | 1927 | 1290 | 2006 | 2013 | 1317 => {
            ConnectorError::retryable(message)
        }
        _ if let Some(cause) = cause => {
            ConnectorError::data(message.clone(), at_row(&message)).with_cause(cause)
        }
        1044 | 1045 | 1142 | 1143 | 1227 => ConnectorError::fatal(message).with_hint(
            "grant the privilege, or run `ferry validate` to see every one the mode needs",
        ),
        1049 => ConnectorError::fatal(message)
            .with_hint("check the database name in the connection URL"),
        _ => ConnectorError::fatal(message),
    }
}

/// "... at row 3" → 2 (the server counts the rows of a statement from 1).
fn at_row(message: &str) -> Option<usize> {
    let at = message.rfind(" at row ")?;
    message[at + 8..]
        .trim()
        .parse::<usize>()
        .ok()
        .and_then(|n| n.checked_sub(1))
}

/// A column of an existing table.
pub struct Column {
    pub name: String,
    pub data_type: String,
    pub not_null: bool,
    pub has_default: bool,
}

/// The table's columns, or `None` when it does not exist.
pub async fn table_columns(
    conn: &mut Conn,
    schema: Option<&str>,
    table: &str,
) -> Result<Option<Vec<Column>>> {
    let rows: Vec<(String, String, String, Option<String>, String)> = conn
        .exec(
            "SELECT COLUMN_NAME, DATA_TYPE, IS_NULLABLE, COLUMN_DEFAULT, EXTRA
               FROM information_schema.COLUMNS
              WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?
              ORDER BY ORDINAL_POSITION",
            (schema, table),
        )
        .await
        .map_err(classify)?;
    if rows.is_empty() {
        return Ok(None);
    }
    Ok(Some(
        rows.into_iter()
            .map(|(name, data_type, nullable, default, extra)| Column {
                name,
                data_type,
                not_null: nullable == "NO",
                has_default: default.is_some() || !extra.is_empty(),
            })
            .collect(),
    ))
}

/// The unique indexes of a table: name and columns.
pub async fn unique_indexes(
    conn: &mut Conn,
    schema: Option<&str>,
    table: &str,
) -> Result<Vec<(String, Vec<String>)>> {
    let rows: Vec<(String, String)> = conn
        .exec(
            "SELECT INDEX_NAME, COLUMN_NAME FROM information_schema.STATISTICS
              WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? AND NON_UNIQUE = 0
              ORDER BY INDEX_NAME, SEQ_IN_INDEX",
            (schema, table),
        )
        .await
        .map_err(classify)?;
    let mut indexes: Vec<(String, Vec<String>)> = Vec::new();
    for (index, column) in rows {
        match indexes.last_mut() {
            Some((name, cols)) if *name == index => cols.push(column),
            _ => indexes.push((index, vec![column])),
        }
    }
    Ok(indexes)
}

/// The privileges the connected user holds on a table, from global, schema and table grants.
pub async fn privileges(conn: &mut Conn, schema: Option<&str>, table: &str) -> Result<Vec<String>> {
    let rows: Vec<String> = conn
        .exec(
            "SELECT PRIVILEGE_TYPE FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = @ferry_grantee
             UNION SELECT PRIVILEGE_TYPE FROM information_schema.SCHEMA_PRIVILEGES
                    WHERE GRANTEE = @ferry_grantee AND TABLE_SCHEMA = COALESCE(?, DATABASE())
             UNION SELECT PRIVILEGE_TYPE FROM information_schema.TABLE_PRIVILEGES
                    WHERE GRANTEE = @ferry_grantee AND TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            (schema, schema, table),
        )
        .await
        .map_err(classify)?;
    Ok(rows)
}

/// Sets `@ferry_grantee` to the current user as information_schema spells grantees: 'user'@'host'.
pub async fn set_grantee(conn: &mut Conn) -> Result<String> {
    conn.query_drop(
        "SET @ferry_grantee = CONCAT('''', SUBSTRING_INDEX(CURRENT_USER(), '@', 1), '''@''', SUBSTRING_INDEX(CURRENT_USER(), '@', -1), '''')",
    )
    .await
    .map_err(classify)?;
    let user: Option<String> = conn
        .query_first("SELECT CURRENT_USER()")
        .await
        .map_err(classify)?;
    Ok(user.unwrap_or_default())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_row_is_read_from_the_message() {
        assert_eq!(
            super::at_row("Data too long for column 'name' at row 3"),
            Some(2)
        );
        assert_eq!(super::at_row("Duplicate entry '5' for key 'PRIMARY'"), None);
    }
}
