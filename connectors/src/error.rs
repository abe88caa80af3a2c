//! One error type for every connector, grouped by what to do next and by who is at fault.
//!
//! The run loop never inspects message text: it looks at [`ErrorClass`] alone. Retryable errors are
//! retried with backoff, data errors are narrowed to the rows that caused them, fatal errors stop the run.
//! [`Fault`] says who must act (the user's configuration, the system at the other end, or Ferry), and
//! the exit code follows it. Errors of the libraries underneath (io, Arrow, DataFusion, Delta) are
//! classified by their kind and keep their source chain: a connection reset is retryable, a bad SQL
//! step is the configuration's, an internal DataFusion error is Ferry's.

use std::fmt;
use std::sync::Arc;

/// What the run should do about an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorClass {
    /// A passing fault outside Ferry (busy database, timeout, connection reset, 429, 5xx): try again.
    Retryable,
    /// The rows themselves are wrong for the target (constraint, type, not-null, too long).
    Data,
    /// Nothing will work until a person changes something (bad URL, missing table, auth, disk full).
    Fatal,
}

/// Who must act for the error to go away.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The user's pipeline, credentials, data or target definition.
    Config,
    /// The system at the other end: a database, a service, the disk, the network, another run.
    External,
    /// Ferry itself: a bug to report.
    Ferry,
}

/// Why a target refused a row, in words a business user reads in the quarantine's `cause` column
/// (the log's too). Every connector's classifier names one of these, so the same fault reads the
/// same on every target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    DuplicateKey,
    RequiredMissing,
    TooLong,
    OutOfRange,
    WrongType,
    BadText,
    MissingReference,
    CheckFailed,
    KeyTwiceInBatch,
    KeyMissing,
    NoSuchColumn,
    /// A refusal the target did not explain.
    Rejected,
    /// Retries spent while the target was unavailable.
    Unavailable,
    /// The target asked for less (HTTP 429): the lane paused and the request was sent again.
    Throttled,
    /// The run stopped.
    Stopped,
}

impl Cause {
    pub fn text(self) -> &'static str {
        match self {
            Cause::DuplicateKey => "another row already has this key or unique value",
            Cause::RequiredMissing => "a required column is empty",
            Cause::TooLong => "a value is too long for its column",
            Cause::OutOfRange => "a number is out of its column's range",
            Cause::WrongType => "a value does not fit its column's type",
            Cause::BadText => "a text value is not valid in the target's character set",
            Cause::MissingReference => "a referenced row does not exist",
            Cause::CheckFailed => "a check constraint rejected a value",
            Cause::KeyTwiceInBatch => "the same key appears twice in one batch",
            Cause::KeyMissing => "a key value is missing",
            Cause::NoSuchColumn => "the target has no such column",
            Cause::Rejected => "the target rejected the row's values",
            Cause::Unavailable => "the target was unavailable; retrying can land it",
            Cause::Throttled => "the target throttled the requests (429); retrying can land it",
            Cause::Stopped => "the run could not go on",
        }
    }
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// An error from a source or sink, with its class and, where known, the row it is about.
#[derive(Debug, Clone)]
pub struct ConnectorError {
    pub class: ErrorClass,
    pub message: String,
    /// The row within the batch that caused it (data errors only).
    pub row: Option<usize>,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// The suspected cause of a data error.
    pub cause: Option<Cause>,
    /// Who must act; by default the configuration for fatal and data errors, the other end for
    /// retryable ones.
    pub fault: Fault,
    /// The library error underneath, for `Error::source`.
    pub source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

pub type Result<T, E = ConnectorError> = std::result::Result<T, E>;

impl ConnectorError {
    pub fn fatal(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Fatal,
            message: message.into(),
            row: None,
            hint: None,
            cause: None,
            fault: Fault::Config,
            source: None,
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Retryable,
            fault: Fault::External,
            ..Self::fatal(message)
        }
    }

    /// Says who is at fault.
    pub fn by(mut self, fault: Fault) -> Self {
        self.fault = fault;
        self
    }

    /// Keeps the library error underneath as the source.
    pub fn caused_by(mut self, source: impl std::error::Error + Send + Sync + 'static) -> Self {
        self.source = Some(Arc::new(source));
        self
    }

    pub fn data(message: impl Into<String>, row: Option<usize>) -> Self {
        Self {
            class: ErrorClass::Data,
            row,
            ..Self::fatal(message)
        }
    }

    pub fn with_cause(mut self, cause: Cause) -> Self {
        self.cause = Some(cause);
        self
    }

    /// The cause for the log and quarantine: the sink's own, else one by class.
    pub fn cause_text(&self) -> String {
        self.cause
            .unwrap_or(match self.class {
                ErrorClass::Retryable => Cause::Unavailable,
                ErrorClass::Data => Cause::Rejected,
                ErrorClass::Fatal => Cause::Stopped,
            })
            .text()
            .to_string()
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    /// Prefixes the message with what was being done, keeping class, row and hint.
    pub fn context(mut self, what: impl fmt::Display) -> Self {
        self.message = format!("{what}: {}", self.message);
        self
    }

    pub fn is_retryable(&self) -> bool {
        self.class == ErrorClass::Retryable
    }
}

impl fmt::Display for ConnectorError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConnectorError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.source
            .as_deref()
            .map(|e| e as &(dyn std::error::Error + 'static))
    }
}

/// An io error by its kind: the network or a peer failing for now is retryable; a missing file or
/// a refused permission is the configuration's; the disk failing is the other end's.
fn from_io(err: &std::io::Error, message: String) -> ConnectorError {
    use std::io::ErrorKind as K;
    match err.kind() {
        K::ConnectionReset
        | K::ConnectionAborted
        | K::ConnectionRefused
        | K::NotConnected
        | K::BrokenPipe
        | K::TimedOut
        | K::Interrupted
        | K::UnexpectedEof
        | K::WouldBlock
        | K::HostUnreachable
        | K::NetworkUnreachable
        | K::NetworkDown
        | K::ResourceBusy => ConnectorError::retryable(message),
        K::NotFound | K::PermissionDenied | K::InvalidInput | K::InvalidData | K::IsADirectory => {
            ConnectorError::fatal(message)
        }
        _ => ConnectorError::fatal(message).by(Fault::External),
    }
}

/// The first error in `err`'s source chain that says more than its text: a connector's own error
/// (its class and fault kept) or an io error (by its kind).
fn from_chain(err: &(dyn std::error::Error + 'static), message: &str) -> Option<ConnectorError> {
    let mut next = Some(err);
    while let Some(e) = next {
        if let Some(c) = e.downcast_ref::<ConnectorError>() {
            // Its own words: the wrappers' text ("External error: ...") repeats it, hint and all.
            return Some(c.clone());
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(from_io(io, message.to_string()));
        }
        next = e.source();
    }
    None
}

/// A DataFusion error by its variant, looking through its wrappers.
fn classify_datafusion(
    err: &datafusion::error::DataFusionError,
    message: &str,
) -> Option<ConnectorError> {
    use datafusion::error::DataFusionError as D;
    match err {
        D::ArrowError(inner, _) => classify_arrow(inner, message),
        D::IoError(io) => Some(from_io(io, message.to_string())),
        D::Context(_, inner) | D::Diagnostic(_, inner) => classify_datafusion(inner, message),
        D::Shared(inner) => classify_datafusion(inner, message),
        D::External(e) => from_chain(e.as_ref(), message),
        D::ObjectStore(e) => Some(match e.as_ref() {
            object_store::Error::NotFound { .. } => ConnectorError::fatal(message),
            _ => ConnectorError::retryable(message),
        }),
        D::Internal(_) => Some(
            ConnectorError::fatal(message)
                .by(Fault::Ferry)
                .with_hint("this is a bug in Ferry: please report it with the pipeline file"),
        ),
        D::ResourcesExhausted(_) => Some(ConnectorError::fatal(message).by(Fault::External)),
        _ => None,
    }
}

/// The worker named by a distributed-engine error about connecting to it.
fn unreachable_worker(text: &str) -> Option<String> {
    let at = text.find("Error connecting to Distributed DataFusion worker on '")?;
    let rest = &text[at + "Error connecting to Distributed DataFusion worker on '".len()..];
    Some(rest[..rest.find('\'')?].to_string())
}

/// An Arrow error by its variant.
fn classify_arrow(err: &arrow::error::ArrowError, message: &str) -> Option<ConnectorError> {
    use arrow::error::ArrowError as A;
    match err {
        A::IoError(_, io) => Some(from_io(io, message.to_string())),
        A::ExternalError(e) => from_chain(e.as_ref(), message),
        _ => None,
    }
}

impl From<datafusion::error::DataFusionError> for ConnectorError {
    fn from(err: datafusion::error::DataFusionError) -> Self {
        let message = err.to_string();
        if let Some(worker) = unreachable_worker(&format!("{message} {err:?}")) {
            return ConnectorError::retryable(format!(
                "the worker {worker} of [run] cluster does not answer"
            ))
            .with_hint("start `ferry worker --listen ADDRESS` there, or remove it from cluster; a run that failed this way resumes where it stopped")
            .caused_by(err);
        }
        classify_datafusion(&err, &message)
            .unwrap_or_else(|| ConnectorError::fatal(message))
            .caused_by(err)
    }
}

impl From<arrow::error::ArrowError> for ConnectorError {
    fn from(err: arrow::error::ArrowError) -> Self {
        let message = err.to_string();
        classify_arrow(&err, &message)
            .unwrap_or_else(|| ConnectorError::fatal(message))
            .caused_by(err)
    }
}

impl From<deltalake::DeltaTableError> for ConnectorError {
    fn from(err: deltalake::DeltaTableError) -> Self {
        use deltalake::DeltaTableError as E;
        let message = format!("Delta table: {err}");
        let classified = match &err {
            E::Io { source } => from_io(source, message),
            E::ObjectStore { source } => match source {
                object_store::Error::NotFound { .. } => ConnectorError::fatal(message),
                _ => ConnectorError::retryable(message),
            },
            // Another writer committed first: the commit can be made again on top of it.
            E::VersionAlreadyExists(_) | E::Transaction { .. } => {
                ConnectorError::retryable(message)
            }
            _ => ConnectorError::fatal(message).by(Fault::External),
        };
        classified.caused_by(err)
    }
}

impl From<std::io::Error> for ConnectorError {
    fn from(err: std::io::Error) -> Self {
        from_io(&err, err.to_string()).caused_by(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::error::DataFusionError;
    use std::io::{Error as IoError, ErrorKind};

    #[test]
    fn library_errors_are_classified_by_kind_not_all_fatal() {
        let reset = ConnectorError::from(IoError::from(ErrorKind::ConnectionReset));
        assert_eq!(
            (reset.class, reset.fault),
            (ErrorClass::Retryable, Fault::External)
        );
        let missing = ConnectorError::from(IoError::from(ErrorKind::NotFound));
        assert_eq!(
            (missing.class, missing.fault),
            (ErrorClass::Fatal, Fault::Config)
        );
        // A source's connection reset, wrapped by DataFusion as it streams.
        let wrapped = DataFusionError::Context(
            "reading orders".into(),
            Box::new(DataFusionError::External(Box::new(IoError::from(
                ErrorKind::ConnectionReset,
            )))),
        );
        let e = ConnectorError::from(wrapped);
        assert_eq!(e.class, ErrorClass::Retryable, "{e}");
        assert!(std::error::Error::source(&e).is_some(), "the chain is kept");
        // A connector's own error travelling through Arrow keeps its class and row.
        let data = arrow::error::ArrowError::ExternalError(Box::new(ConnectorError::data(
            "too long",
            Some(3),
        )));
        let e = ConnectorError::from(data);
        assert_eq!((e.class, e.row), (ErrorClass::Data, Some(3)));
        // DataFusion's own bugs are Ferry's to fix; a bad step is the configuration's.
        let internal = ConnectorError::from(DataFusionError::Internal("oops".into()));
        assert_eq!(internal.fault, Fault::Ferry);
        let plan = ConnectorError::from(DataFusionError::Plan("no column x".into()));
        assert_eq!((plan.class, plan.fault), (ErrorClass::Fatal, Fault::Config));
    }
}
