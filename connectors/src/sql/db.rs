//! How to reach a PostgreSQL or MySQL/MariaDB server: the URL, the password kept apart from it, and
//! what TLS means.
//!
//! `sslmode` follows PostgreSQL's words, with one difference that errs on the safe side: whenever TLS
//! is used the certificate is checked (`prefer` and `require` verify like `verify-full`). Without an
//! `sslmode`, loopback hosts connect in plain text and every other host requires TLS, verified
//! (`prefer`, which falls back to plain text, only when written).
//!
//! ```text
//! disable      never TLS
//! prefer       TLS when the server offers it; certificate and host name checked
//! require      TLS or no connection; certificate and host name checked
//! verify-ca    TLS; the certificate must chain to a trusted root (sslrootcert), any host name
//! verify-full  TLS; the certificate must chain to a trusted root and name the host
//! ```

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::Spanned;
use url::Url;

use crate::connector::{Keys, Settings, read_keys};
use crate::error::{ConnectorError, Result};
use crate::secret::Secret;

/// A database server and how to log in.
#[derive(Clone, PartialEq, Eq)]
pub struct DbConfig {
    /// The URL without `sslmode` / `sslrootcert`, which Ferry handles itself.
    pub url: Url,
    /// From the connection's `user` key when the URL has none.
    pub user: Option<String>,
    /// From the connection's `password` key (`${VAR}`); never printed.
    pub password: Option<Secret>,
    pub tls: TlsMode,
    /// A PEM file of the certificate authorities to trust (beside the system's).
    pub root_cert: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    Disable,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl TlsMode {
    pub const ALL: [&'static str; 5] = ["disable", "prefer", "require", "verify-ca", "verify-full"];

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "disable" => Self::Disable,
            "prefer" | "allow" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            _ => return None,
        })
    }
}

/// The keys of a database server's connection beside `url`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerKeys {
    user: Option<Spanned<String>>,
    /// `${VAR}`: read from the environment, never stored.
    password: Option<Spanned<String>>,
}

impl DbConfig {
    /// A `[connections.NAME]` of a database server: its url and its `user` and `password` keys.
    /// `whose` names it in errors: "a PostgreSQL connection".
    pub fn from_keys(
        url: Spanned<String>,
        keys: Keys<'_>,
        whose: &str,
        cx: &mut dyn Settings,
    ) -> Option<Self> {
        let server: ServerKeys = read_keys(keys, whose, cx)?;
        let mut db = match Self::parse(url.get_ref(), cx.base_dir()) {
            Ok(db) => db,
            Err(e) => {
                cx.error(url.span(), e.message, e.hint);
                return None;
            }
        };
        db.user = match server.user {
            Some(u) => Some(cx.credential(u)?),
            None => None,
        };
        db.password = match server.password {
            Some(p) => Some(cx.secret(p)?),
            None => None,
        };
        Some(db)
    }

    /// Reads `postgres://user@host:port/db?sslmode=verify-full&sslrootcert=ca.pem` (or `mysql://`);
    /// a relative `sslrootcert` is taken from `base_dir`.
    pub fn parse(url: &str, base_dir: &Path) -> Result<Self> {
        // MariaDB speaks MySQL's protocol: one driver, one scheme for it.
        let url = &url.replacen("mariadb://", "mysql://", 1);
        let mut parsed = Url::parse(url).map_err(|e| {
            ConnectorError::fatal(format!(
                "\"{}\" is not a valid database URL: {e}",
                crate::redact::url(url)
            ))
            .with_hint(
                "write postgres://user@host:5432/database or mysql://user@host:3306/database",
            )
        })?;
        if parsed.password().is_some() {
            return Err(ConnectorError::fatal(
                "the connection URL holds a password, which would end up in logs and files",
            )
            .with_hint("remove it from the URL and write password = \"${DB_PASSWORD}\" under the connection"));
        }
        let mut tls = None;
        let mut root_cert = None;
        let mut rest = Vec::new();
        for (k, v) in parsed.query_pairs() {
            match k.as_ref() {
                "sslmode" | "ssl-mode" => {
                    tls = Some(TlsMode::parse(&v.to_lowercase()).ok_or_else(|| {
                        ConnectorError::fatal(format!("unknown sslmode \"{v}\""))
                            .with_hint(format!("sslmode = one of: {}", TlsMode::ALL.join(", ")))
                    })?)
                }
                "sslrootcert" => root_cert = Some(base_dir.join(v.as_ref())),
                secret if secret.to_lowercase().contains("pass") => {
                    return Err(ConnectorError::fatal(format!(
                        "the connection URL holds a password (\"{secret}=\"), which would end up in logs and files"
                    ))
                    .with_hint("remove it from the URL and write password = \"${DB_PASSWORD}\" under the connection"));
                }
                _ => rest.push((k.into_owned(), v.into_owned())),
            }
        }
        if rest.is_empty() {
            parsed.set_query(None);
        } else {
            parsed.query_pairs_mut().clear().extend_pairs(rest);
        }
        let loopback = matches!(
            parsed.host_str(),
            None | Some("localhost" | "127.0.0.1" | "[::1]" | "::1" | "")
        );
        // Another host: TLS or no connection. `prefer` would fall back to plain text when the
        // server (or whoever sits in between) declines TLS, and answer a cleartext password request.
        let tls = tls.unwrap_or(if loopback {
            TlsMode::Disable
        } else {
            TlsMode::Require
        });
        Ok(Self {
            url: parsed,
            user: None,
            password: None,
            tls,
            root_cert,
        })
    }

    /// A refused connection, with which host and port to check.
    pub fn explain_refused(&self, err: ConnectorError, default_port: u16) -> ConnectorError {
        if !err.message.contains("Connection refused") {
            return err;
        }
        err.with_hint(format!(
            "nothing answers at {}:{}: is the server running there, and is that its port? check the connection's url",
            self.host(),
            self.url.port().unwrap_or(default_port)
        ))
    }

    pub fn host(&self) -> &str {
        self.url.host_str().unwrap_or("localhost")
    }

    /// The database named in the URL's path, if any.
    pub fn database(&self) -> Option<&str> {
        let db = self.url.path().trim_start_matches('/');
        (!db.is_empty()).then_some(db)
    }

    pub fn user(&self) -> Option<String> {
        let in_url = self.url.username();
        if in_url.is_empty() {
            self.user.clone()
        } else {
            Some(in_url.to_string())
        }
    }

    /// A TLS connector that checks certificates as the mode says.
    pub fn tls_connector(&self) -> Result<native_tls::TlsConnector> {
        let mut builder = native_tls::TlsConnector::builder();
        if self.tls == TlsMode::VerifyCa {
            builder.danger_accept_invalid_hostnames(true);
        }
        if let Some(path) = &self.root_cert {
            let pem = std::fs::read(path).map_err(|e| {
                ConnectorError::fatal(format!("cannot read sslrootcert {}: {e}", path.display()))
            })?;
            let cert = native_tls::Certificate::from_pem(&pem).map_err(|e| {
                ConnectorError::fatal(format!(
                    "sslrootcert {} is not a PEM certificate: {e}",
                    path.display()
                ))
            })?;
            builder.add_root_certificate(cert);
        }
        builder
            .build()
            .map_err(|e| ConnectorError::fatal(format!("cannot set up TLS: {e}")))
    }

    /// What to tell a user whose TLS handshake failed.
    pub fn tls_hint(&self) -> &'static str {
        "the server's certificate was not trusted: give sslrootcert=<CA file.pem> in the URL, \
         sslmode=verify-ca to skip the host name check, or sslmode=disable on a network you trust"
    }
}

impl fmt::Display for DbConfig {
    /// `host:port/database` and the user: what a person needs to know which server it is.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host())?;
        if let Some(port) = self.url.port() {
            write!(f, ":{port}")?;
        }
        if let Some(db) = self.database() {
            write!(f, "/{db}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for DbConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DbConfig")
            .field("url", &self.url.as_str())
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field("tls", &self.tls)
            .finish()
    }
}

/// The URL with any password replaced, for messages.
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslmode_is_taken_out_of_the_url_and_loopback_defaults_to_plain() {
        let c = DbConfig::parse(
            "postgres://me@db.example.com/app?sslmode=verify-full&application_name=x",
            Path::new("/p"),
        )
        .unwrap();
        assert_eq!(c.tls, TlsMode::VerifyFull);
        assert_eq!(c.url.query(), Some("application_name=x"));
        assert_eq!(c.to_string(), "db.example.com/app");
        let local = DbConfig::parse("mysql://root@127.0.0.1:3306/test", Path::new("/p")).unwrap();
        assert_eq!(local.tls, TlsMode::Disable);
        // Another host: TLS or no connection (prefer would fall back to plain text and hand the
        // password to whoever sits in between); prefer only when written.
        let remote = DbConfig::parse("postgres://db.example.com/app", Path::new("/p")).unwrap();
        assert_eq!(remote.tls, TlsMode::Require);
        let written = DbConfig::parse(
            "postgres://db.example.com/app?sslmode=prefer",
            Path::new("/p"),
        )
        .unwrap();
        assert_eq!(written.tls, TlsMode::Prefer);
    }

    #[test]
    fn a_password_in_the_query_is_refused_without_repeating_it() {
        for url in [
            "postgres://me@h/db?password=hunter2",
            "mysql://me@h/db?application_name=x&pass=hunter2",
            "postgres://me@h/db?sslpassword=hunter2",
        ] {
            let err = DbConfig::parse(url, Path::new("/p"))
                .unwrap_err()
                .to_string();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("password ="), "{err}");
        }
    }

    #[test]
    fn a_password_in_the_url_is_refused_without_repeating_it() {
        let err = DbConfig::parse("postgres://me:hunter2@h/db", Path::new("/p")).unwrap_err();
        assert!(!err.to_string().contains("hunter2"));
        assert!(err.to_string().contains("password ="));
    }
}
