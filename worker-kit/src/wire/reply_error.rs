//! The error half of an RPC reply, and how handler errors become one.

use std::borrow::Cow;

use serde_json::Value;

/// What a caller sees when a handler fails: the reply envelope's `error` object.
///
/// `error_type` is a stable name (`NotFound`, `Conflict`, `ValidationError`, ...)
/// that callers match on; `message` is for people. The source chain is kept so that
/// development mode can put it in the envelope's `trace`; production never sends it.
#[derive(Debug, Clone, PartialEq)]
pub struct ErrorReply {
    /// Stable name written to `error.type`.
    pub error_type: Cow<'static, str>,
    /// Human-readable message written to `error.message`.
    pub message: String,
    /// Written to `error.args` (may be empty).
    pub args: Vec<Value>,
    /// The error's source chain, outermost first; only sent in development mode.
    pub trace: Vec<String>,
    /// Whether trying again cannot help (see [`ErrorReply::permanent`]); never sent.
    permanent: bool,
}

impl ErrorReply {
    /// An error reply of the given type and message, with no args.
    pub fn new(error_type: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            args: Vec::new(),
            trace: Vec::new(),
            permanent: false,
        }
    }

    /// Marks the error permanent: trying again cannot help (the customer does not exist,
    /// the input breaks a business rule). A work-queue or event message that fails with it
    /// is parked at once, without waiting for retries; an RPC reply is the same either way.
    #[must_use]
    pub fn permanent(mut self) -> Self {
        self.permanent = true;
        self
    }

    /// Whether the error was marked [`permanent`](ErrorReply::permanent).
    pub fn is_permanent(&self) -> bool {
        self.permanent
    }

    /// Adds `args` to the reply.
    #[must_use]
    pub fn with_args(mut self, args: Vec<Value>) -> Self {
        self.args = args;
        self
    }

    /// Records `err` and its sources as the trace (shown only in development mode).
    #[must_use]
    pub fn with_trace(mut self, err: &(dyn std::error::Error + 'static)) -> Self {
        let mut chain = Vec::new();
        let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
        while let Some(e) = cur {
            chain.push(e.to_string());
            cur = e.source();
        }
        self.trace = chain;
        self
    }

    /// `BadRequest`: the request cannot be understood.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new("BadRequest", message)
    }

    /// `ValidationError`: the payload does not fit the handler's type.
    pub fn validation(message: impl Into<String>) -> Self {
        Self::new("ValidationError", message)
    }

    /// `NotFound`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new("NotFound", message)
    }

    /// `Conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new("Conflict", message)
    }

    /// `Unavailable`: a dependency (database, another service) is down; retrying later may work.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new("Unavailable", message)
    }

    /// `Timeout`: the request's deadline passed.
    pub fn timeout(message: impl Into<String>) -> Self {
        Self::new("Timeout", message)
    }

    /// `Forbidden`: the caller may not call this route (its allow list, or
    /// `RPC_ANONYMOUS=deny` for a message without `user_id`).
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new("Forbidden", message)
    }

    /// `Internal`: a bug or an unexpected failure. The message stays generic for callers in
    /// production; the error itself goes to the trace and the logs.
    pub fn internal(err: &(dyn std::error::Error + 'static)) -> Self {
        Self::new("Internal", "internal error").with_trace(err)
    }
}

impl std::fmt::Display for ErrorReply {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.error_type, self.message)
    }
}

impl std::error::Error for ErrorReply {}

/// Turns a handler's error type into the reply's `error` object.
///
/// Implement it for a service's own error enum to give each variant its `type`;
/// worker-kit implements it for its own errors (database errors map to `NotFound`,
/// `Conflict`, `Unavailable`).
pub trait IntoErrorReply {
    /// Converts `self` into the reply's error object.
    fn into_error_reply(self) -> ErrorReply;
}

impl IntoErrorReply for ErrorReply {
    fn into_error_reply(self) -> ErrorReply {
        self
    }
}

impl IntoErrorReply for std::convert::Infallible {
    fn into_error_reply(self) -> ErrorReply {
        match self {}
    }
}
