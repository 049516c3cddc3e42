//! Everything a call can fail with, as the application sees it. Each variant reads as a
//! sentence the caller is shown; [`crate::grpc::status`] maps each to its gRPC status.

use crate::auth::identity::AuthError;
use crate::domain::policy::Denial;
use crate::domain::Violations;
use crate::storage::{CommitError, StoreError};

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller is not known.
    #[error("{0}")]
    Unauthenticated(#[from] AuthError),
    /// The officer token was refused.
    #[error("officer token refused: {0}")]
    Token(#[from] crate::auth::token::TokenError),
    /// The participant must present an officer token and did not.
    #[error("participant {0:?} must present an officer token (authorization: Bearer <JWT>)")]
    TokenRequired(String),
    /// The officer's token does not allow this call.
    #[error("the token of officer {officer:?} does not grant scope {scope}")]
    MissingScope {
        /// The token's subject.
        officer: String,
        /// The scope the call needs.
        scope: crate::auth::token::Scope,
    },
    /// The policy does not allow the message.
    #[error(transparent)]
    Denied(#[from] Denial),
    /// The caller may not read this message, and may not learn that it exists: it is
    /// answered exactly as a message that does not exist. `withheld` says why, for the
    /// gateway's own log, never for the caller or the audit log it can read.
    #[error("{answer}")]
    Hidden {
        /// What the caller is told: the sentence of a message that is not stored.
        answer: String,
        /// Why it was refused.
        withheld: String,
    },
    /// The request is invalid; the violations name the fields.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// The gateway is shutting down: streams end, and clients should reconnect.
    #[error("the gateway is shutting down; reconnect to resume")]
    ShuttingDown,
    /// The request is larger than the configured limit.
    #[error("request of {size} bytes exceeds max_message_bytes ({max} bytes)")]
    TooLarge {
        /// Encoded size of the envelopes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
    /// The outbox to a peer gateway is full.
    #[error("the outbox to peer gateway {peer} is full: {waiting} messages wait (federation.outbox_max_messages = {max}); try again once it is reachable")]
    OutboxFull {
        /// The peer.
        peer: String,
        /// Messages waiting.
        waiting: u64,
        /// The limit.
        max: u64,
    },
    /// A peer forwarded a message before this gateway learnt the peer's directory.
    #[error("this gateway has not yet fetched the directory of {0}; try again shortly")]
    PeerNotKnownYet(String),
    /// A forwarded message not decided because one before it in the same call could not be.
    #[error(
        "not stored: a message before it in this call could not be decided now; send both again"
    )]
    Deferred,
    /// A gateway that is not one of `[[peers]]` called the federation service.
    #[error("{0:?} is not a peer gateway of this gateway")]
    NotAPeer(String),
    /// The message asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Storing failed or was refused.
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// A batch failed: `first` decides the status; every failing item is listed.
    #[error("batch refused, nothing stored: {violations}")]
    Batch {
        /// The first failure.
        first: Box<Error>,
        /// One entry per failing item, under `envelopes[i]`.
        violations: Violations,
    },
}

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        Error::Commit(CommitError::Store(e))
    }
}

impl From<Violations> for Error {
    fn from(v: Violations) -> Self {
        Error::Invalid(v)
    }
}

impl Error {
    /// An invalid request with one field violation.
    pub fn invalid(field: impl Into<String>, description: impl Into<String>) -> Error {
        let mut v = Violations::default();
        v.add(field, description);
        Error::Invalid(v)
    }

    /// Why a [`Error::Hidden`] refusal was made, which the caller is not told.
    pub fn withheld(&self) -> Option<&str> {
        match self {
            Error::Hidden { withheld, .. } => Some(withheld),
            Error::Batch { first, .. } => first.withheld(),
            _ => None,
        }
    }

    /// Whether the same request may succeed later (the store or the gateway is not ready),
    /// rather than being refused for what it is: answered `UNAVAILABLE`.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Error::ShuttingDown
                | Error::PeerNotKnownYet(_)
                | Error::Deferred
                | Error::Commit(crate::storage::CommitError::Store(
                    crate::storage::StoreError::Closed
                        | crate::storage::StoreError::Engine(_)
                        | crate::storage::StoreError::Failed
                ))
        )
    }

    /// The field violations the caller is told of, if the request was invalid.
    pub fn violations(&self) -> Option<&Violations> {
        match self {
            Error::Invalid(v) | Error::Batch { violations: v, .. } => Some(v),
            _ => None,
        }
    }
}
