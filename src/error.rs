//! The one error type of the gateway, with the stable codes clients see.
//!
//! Every layer returns [`AppError`]. Its `code()` becomes `extensions.code` of
//! a GraphQL error and `innerError.code` of a Graph REST error. Internal errors
//! keep their detail for the log only: the client is told "internal server
//! error" and nothing of SQL, files or stack traces. async-graphql is built
//! with `custom-error-conversion`, so there is no blanket `From<impl Display>`
//! that could turn a database error into a client message: the only way from
//! an error to a GraphQL error is `From<AppError>` below.

use std::fmt;

use async_graphql::ErrorExtensions;

/// Every stable `extensions.code` a client can see, in one place.
pub(crate) mod codes {
    // Errors of resolvers: the variants of `AppError`.
    pub(crate) const UNAUTHENTICATED: &str = "UNAUTHENTICATED";
    pub(crate) const FORBIDDEN: &str = "FORBIDDEN";
    pub(crate) const NOT_FOUND: &str = "NOT_FOUND";
    pub(crate) const BAD_USER_INPUT: &str = "BAD_USER_INPUT";
    pub(crate) const CONFLICT: &str = "CONFLICT";
    pub(crate) const NOT_CANCELABLE: &str = "NOT_CANCELABLE";
    pub(crate) const INTERNAL_SERVER_ERROR: &str = "INTERNAL_SERVER_ERROR";
    pub(crate) const SUBSCRIBER_TOO_SLOW: &str = "SUBSCRIBER_TOO_SLOW";
    pub(crate) const TIMEOUT: &str = "TIMEOUT";

    // A document that does not parse or validate.
    pub(crate) const GRAPHQL_VALIDATION_FAILED: &str = "GRAPHQL_VALIDATION_FAILED";

    // Operation limits, checked before anything executes.
    pub(crate) const QUERY_TOO_LARGE: &str = "QUERY_TOO_LARGE";
    pub(crate) const QUERY_TOO_DEEP: &str = "QUERY_TOO_DEEP";
    pub(crate) const QUERY_TOO_COMPLEX: &str = "QUERY_TOO_COMPLEX";
    pub(crate) const TOO_MANY_ALIASES: &str = "TOO_MANY_ALIASES";
    pub(crate) const TOO_MANY_ROOT_FIELDS: &str = "TOO_MANY_ROOT_FIELDS";
    pub(crate) const TOO_MANY_DIRECTIVES: &str = "TOO_MANY_DIRECTIVES";
    pub(crate) const INTROSPECTION_DISABLED: &str = "INTROSPECTION_DISABLED";
    pub(crate) const RATE_LIMITED: &str = "RATE_LIMITED";

    // Requests refused by a transport before they reach GraphQL.
    pub(crate) const BAD_REQUEST: &str = "BAD_REQUEST";
    pub(crate) const BATCH_NOT_SUPPORTED: &str = "BATCH_NOT_SUPPORTED";
    pub(crate) const METHOD_NOT_ALLOWED: &str = "METHOD_NOT_ALLOWED";
    pub(crate) const UNSUPPORTED_MEDIA_TYPE: &str = "UNSUPPORTED_MEDIA_TYPE";
    pub(crate) const PAYLOAD_TOO_LARGE: &str = "PAYLOAD_TOO_LARGE";
    pub(crate) const TOO_MANY_CONNECTIONS: &str = "TOO_MANY_CONNECTIONS";
    pub(crate) const TOO_MANY_SUBSCRIPTIONS: &str = "TOO_MANY_SUBSCRIPTIONS";

    /// Microsoft Graph's names of HTTP statuses: the `error.code` of the
    /// Graph REST face, whose `innerError.code` is one of the codes above.
    pub(crate) mod graph {
        pub(crate) const BAD_REQUEST: &str = "BadRequest";
        pub(crate) const INVALID_AUTHENTICATION_TOKEN: &str = "InvalidAuthenticationToken";
        pub(crate) const FORBIDDEN: &str = "Forbidden";
        pub(crate) const NOT_FOUND: &str = "NotFound";
        pub(crate) const METHOD_NOT_ALLOWED: &str = "MethodNotAllowed";
        pub(crate) const CONFLICT: &str = "Conflict";
        pub(crate) const REQUEST_ENTITY_TOO_LARGE: &str = "RequestEntityTooLarge";
        pub(crate) const UNSUPPORTED_MEDIA_TYPE: &str = "UnsupportedMediaType";
        pub(crate) const TOO_MANY_REQUESTS: &str = "TooManyRequests";
        pub(crate) const GATEWAY_TIMEOUT: &str = "GatewayTimeout";
        pub(crate) const SERVICE_UNAVAILABLE: &str = "ServiceUnavailable";
        pub(crate) const INTERNAL_SERVER_ERROR: &str = "InternalServerError";
    }
}

/// An error a request can end with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// No token, or a token that does not verify.
    #[error("{0}")]
    Unauthenticated(String),
    /// A valid token without the role the operation needs.
    #[error("{0}")]
    Forbidden(String),
    /// The named thing does not exist for the caller's tenant.
    #[error("{0}")]
    NotFound(String),
    /// Input that fails validation; `field` is the input path that is wrong.
    #[error("{message}")]
    BadUserInput { field: String, message: String },
    /// A `clientContext` reused with different input.
    #[error("{0}")]
    Conflict(String),
    /// A cancel of an action that cannot be canceled (it failed).
    #[error("{0}")]
    NotCancelable(String),
    /// The database did not answer in time (statement timeout, a lock held
    /// too long, no free connection).
    #[error("the operation took too long and was stopped")]
    Timeout(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// A subscriber fell too far behind and its subscription was ended.
    #[error("{0}")]
    TooSlow(String),
    /// Anything else: the detail is logged, never shown.
    #[error("internal server error")]
    Internal(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl AppError {
    /// The stable `extensions.code` of this error.
    pub(crate) fn code(&self) -> &'static str {
        match self {
            AppError::Unauthenticated(_) => codes::UNAUTHENTICATED,
            AppError::Forbidden(_) => codes::FORBIDDEN,
            AppError::NotFound(_) => codes::NOT_FOUND,
            AppError::BadUserInput { .. } => codes::BAD_USER_INPUT,
            AppError::Conflict(_) => codes::CONFLICT,
            AppError::NotCancelable(_) => codes::NOT_CANCELABLE,
            AppError::TooSlow(_) => codes::SUBSCRIBER_TOO_SLOW,
            AppError::Timeout(_) => codes::TIMEOUT,
            AppError::Internal(_) => codes::INTERNAL_SERVER_ERROR,
        }
    }

    /// A validation error on the input path `field`.
    pub(crate) fn bad_input(field: impl Into<String>, message: impl Into<String>) -> Self {
        AppError::BadUserInput {
            field: field.into(),
            message: message.into(),
        }
    }

    /// An internal error from any source; its text goes to the log only.
    pub(crate) fn internal(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        AppError::Internal(source.into())
    }

    /// The error as the log shows it: an internal error or a timeout with
    /// the chain of its sources, which clients never see; others as they are.
    pub(crate) fn for_log(&self) -> String {
        match self {
            AppError::Internal(source) | AppError::Timeout(source) => {
                DisplayChain(source.as_ref()).to_string()
            }
            other => other.to_string(),
        }
    }

    /// Logs the detail that the client is not told: an internal error's
    /// source, a timeout's cause. Every face calls it before answering.
    pub fn log(&self) {
        match self {
            AppError::Internal(_) => tracing::error!(error = %self.for_log(), "internal error"),
            AppError::Timeout(_) => tracing::warn!(error = %self.for_log(), "database timeout"),
            _ => {}
        }
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(err: sea_orm::DbErr) -> Self {
        if is_timeout(&err) {
            AppError::Timeout(Box::new(err))
        } else {
            AppError::Internal(Box::new(err))
        }
    }
}

/// Whether a database error means "too slow" rather than "broken":
/// PostgreSQL's statement timeout (SQLSTATE 57014) or lock timeout (55P03),
/// SQLite still busy after its busy timeout, or no connection free in time.
fn is_timeout(err: &sea_orm::DbErr) -> bool {
    use sea_orm::{DbErr, RuntimeErr};
    match err {
        DbErr::ConnectionAcquire(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e))
        | DbErr::Query(RuntimeErr::SqlxError(e))
        | DbErr::Conn(RuntimeErr::SqlxError(e)) => match e.as_ref() {
            sqlx::Error::PoolTimedOut => true,
            sqlx::Error::Database(db) => {
                matches!(
                    db.code().as_deref(),
                    Some("57014" | "55P03" | "5" | "6" | "517")
                )
            }
            _ => false,
        },
        _ => false,
    }
}

impl From<sea_orm::TransactionError<AppError>> for AppError {
    fn from(err: sea_orm::TransactionError<AppError>) -> Self {
        match err {
            sea_orm::TransactionError::Connection(db) => db.into(),
            sea_orm::TransactionError::Transaction(app) => app,
        }
    }
}

impl ErrorExtensions for AppError {
    fn extend(&self) -> async_graphql::Error {
        self.log();
        async_graphql::Error::new(self.to_string()).extend_with(|_, ext| {
            ext.set("code", self.code());
            if let AppError::BadUserInput { field, .. } = self {
                ext.set("field", field.as_str());
            }
        })
    }
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        err.extend()
    }
}

/// Formats an error with its chain of sources, for logs.
struct DisplayChain<'a>(&'a (dyn std::error::Error + 'static));

impl fmt::Display for DisplayChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(err) = source {
            write!(f, ": {err}")?;
            source = err.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_errors_hide_their_detail_from_clients() {
        let err = AppError::internal("duplicate key value violates unique constraint \"x\"");
        let gql: async_graphql::Error = err.into();
        assert_eq!(gql.message, "internal server error");
        let ext = gql.extensions.expect("extensions");
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("INTERNAL_SERVER_ERROR"))
        );
    }

    #[test]
    fn bad_input_names_the_field() {
        let gql: async_graphql::Error = AppError::bad_input("input.name", "unknown action").into();
        let ext = gql.extensions.expect("extensions");
        assert_eq!(
            ext.get("field"),
            Some(&async_graphql::Value::from("input.name"))
        );
        assert_eq!(
            ext.get("code"),
            Some(&async_graphql::Value::from("BAD_USER_INPUT"))
        );
    }
}
