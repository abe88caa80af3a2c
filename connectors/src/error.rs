//! One error type for every connector, grouped by who is at fault and what to do next.
//!
//! The run loop never inspects message text: it looks at [`ErrorClass`] alone. Retryable errors are
//! retried with backoff, data errors are narrowed to the rows that caused them, fatal errors stop the run.

use std::fmt;

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

/// An error from a source or sink, with its class and, where known, the row it is about.
#[derive(Debug, Clone)]
pub struct ConnectorError {
    pub class: ErrorClass,
    pub message: String,
    /// The row within the batch that caused it (data errors only).
    pub row: Option<usize>,
    /// What the user can do about it.
    pub hint: Option<String>,
    /// The suspected cause of a data error, in a few words ("a required column is empty").
    pub cause: Option<String>,
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
        }
    }

    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            class: ErrorClass::Retryable,
            ..Self::fatal(message)
        }
    }

    pub fn data(message: impl Into<String>, row: Option<usize>) -> Self {
        Self {
            class: ErrorClass::Data,
            row,
            ..Self::fatal(message)
        }
    }

    pub fn with_cause(mut self, cause: impl Into<String>) -> Self {
        self.cause = Some(cause.into());
        self
    }

    /// The cause for the log and quarantine: the sink's own words, else one by class.
    pub fn cause_text(&self) -> String {
        self.cause.clone().unwrap_or_else(|| {
            match self.class {
                ErrorClass::Retryable => "the target was unavailable; retrying can land it",
                ErrorClass::Data => "the target rejected the row's values",
                ErrorClass::Fatal => "the run could not go on",
            }
            .to_string()
        })
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

impl std::error::Error for ConnectorError {}

impl From<datafusion::error::DataFusionError> for ConnectorError {
    fn from(err: datafusion::error::DataFusionError) -> Self {
        ConnectorError::fatal(err.to_string())
    }
}

impl From<arrow::error::ArrowError> for ConnectorError {
    fn from(err: arrow::error::ArrowError) -> Self {
        ConnectorError::fatal(err.to_string())
    }
}

impl From<deltalake::DeltaTableError> for ConnectorError {
    fn from(err: deltalake::DeltaTableError) -> Self {
        ConnectorError::fatal(format!("Delta table: {err}"))
    }
}

impl From<std::io::Error> for ConnectorError {
    fn from(err: std::io::Error) -> Self {
        ConnectorError::fatal(err.to_string())
    }
}
