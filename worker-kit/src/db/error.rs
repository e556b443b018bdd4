//! Database errors, classified so that callers get a stable `error.type`.

use tokio_postgres::error::SqlState;

use crate::wire::reply_error::{ErrorReply, IntoErrorReply};

/// What a database call can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DbError {
    /// No row matched (`NotFound`).
    #[error("{what} not found")]
    NotFound {
        /// What was looked for, e.g. `items 42`.
        what: String,
    },
    /// A unique, foreign-key or exclusion constraint refused the change (`Conflict`).
    #[error("conflict on {constraint}: {message}")]
    Conflict {
        /// The constraint's name.
        constraint: String,
        /// The server's message.
        message: String,
    },
    /// The server cannot be reached, or no connection freed up in time (`Unavailable`).
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// The statement ran past `DB_STATEMENT_TIMEOUT_MS` (`Timeout`).
    #[error("statement timed out")]
    Timeout,
    /// A partial update that changes nothing (`BadRequest`).
    #[error("nothing to update: give at least one field")]
    EmptyUpdate,
    /// The value does not fit a constraint or type (`ValidationError`), e.g. a CHECK.
    #[error("invalid value: {0}")]
    Invalid(String),
    /// Anything else: a bug, a schema mismatch (`Internal`; callers in production see only
    /// "internal error").
    #[error("database error: {}", server_message(.0))]
    Query(#[source] tokio_postgres::Error),
}

/// The server's own words when there are some (tokio-postgres displays only "db error").
fn server_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{} ({})", db.message(), db.code().code()),
        None => e.to_string(),
    }
}

impl DbError {
    /// `NotFound` for `what`.
    pub fn not_found(what: impl Into<String>) -> Self {
        Self::NotFound { what: what.into() }
    }
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        if e.is_closed() {
            return Self::Unavailable("connection closed".into());
        }
        let Some(db) = e.as_db_error() else {
            // No server error: the connection itself failed (I/O, TLS, protocol).
            // With its causes: tokio-postgres's own words stop at "error performing TLS
            // handshake" and leave the reason (a certificate problem, no TLS on the
            // server) in the source chain.
            return Self::Unavailable(worker_kit_pg_tls::describe(&e));
        };
        let code = db.code();
        if *code == SqlState::UNIQUE_VIOLATION
            || *code == SqlState::FOREIGN_KEY_VIOLATION
            || *code == SqlState::EXCLUSION_VIOLATION
        {
            Self::Conflict {
                constraint: db.constraint().unwrap_or("unknown").to_owned(),
                message: db.message().to_owned(),
            }
        } else if *code == SqlState::QUERY_CANCELED {
            Self::Timeout
        } else if *code == SqlState::CHECK_VIOLATION
            || *code == SqlState::NOT_NULL_VIOLATION
            || *code == SqlState::STRING_DATA_RIGHT_TRUNCATION
            || *code == SqlState::NUMERIC_VALUE_OUT_OF_RANGE
            || *code == SqlState::INVALID_TEXT_REPRESENTATION
        {
            Self::Invalid(db.message().to_owned())
        } else if code.code().starts_with("08")
            || code.code().starts_with("57P")
            || *code == SqlState::TOO_MANY_CONNECTIONS
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            // Connection exceptions, admin shutdown, crash recovery, too many clients.
            Self::Unavailable(db.message().to_owned())
        } else {
            Self::Query(e)
        }
    }
}

impl From<deadpool_postgres::PoolError> for DbError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        use deadpool_postgres::PoolError;
        match e {
            PoolError::Timeout(_) => {
                Self::Unavailable("no database connection available in time".into())
            }
            PoolError::Backend(e) => e.into(),
            PoolError::Closed => Self::Unavailable("the pool is closed".into()),
            other => Self::Unavailable(other.to_string()),
        }
    }
}

/// `?` on a database call in a handler that answers [`ErrorReply`]: the reply
/// [`IntoErrorReply`] makes of it (not found, conflict, unavailable...).
impl From<DbError> for ErrorReply {
    fn from(e: DbError) -> Self {
        e.into_error_reply()
    }
}

/// `?` on a database call in a service's `build` (a pool that cannot be made):
/// [`Error::Database`](crate::Error::Database) with the database's message.
impl From<DbError> for crate::Error {
    fn from(e: DbError) -> Self {
        crate::Error::Database(e.to_string())
    }
}

impl IntoErrorReply for DbError {
    fn into_error_reply(self) -> ErrorReply {
        match self {
            DbError::NotFound { .. } => ErrorReply::not_found(self.to_string()),
            DbError::Conflict { ref constraint, .. } => {
                let args = vec![serde_json::Value::String(constraint.clone())];
                ErrorReply::conflict(self.to_string()).with_args(args)
            }
            DbError::Unavailable(_) => ErrorReply::unavailable(self.to_string()),
            DbError::Timeout => ErrorReply::timeout(self.to_string()),
            DbError::EmptyUpdate => ErrorReply::bad_request(self.to_string()),
            DbError::Invalid(_) => ErrorReply::validation(self.to_string()),
            DbError::Query(ref e) => ErrorReply::internal(e),
        }
    }
}

#[cfg(test)]
mod conversion_tests {
    use super::DbError;
    use crate::{ErrorReply, IntoErrorReply};

    #[test]
    fn question_mark_turns_a_db_error_into_the_kits_errors() {
        let reply: ErrorReply = DbError::Timeout.into();
        assert_eq!(reply, DbError::Timeout.into_error_reply());
        let err: crate::Error = DbError::Unavailable("pool closed".into()).into();
        assert!(
            matches!(&err, crate::Error::Database(m) if m.contains("pool closed")),
            "{err}"
        );
    }
}
