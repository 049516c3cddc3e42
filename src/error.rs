//! The one place where the gateway's errors become gRPC statuses.
//!
//! `UNAUTHENTICATED`: we do not know who you are. `PERMISSION_DENIED`: we know, and you may
//! not. `INVALID_ARGUMENT`: the request is wrong, and `google.rpc.BadRequest` details name each
//! field. `ALREADY_EXISTS`: the id is taken by other content. `NOT_FOUND`: no such message.
//! `RESOURCE_EXHAUSTED`: the request exceeds `max_message_bytes`. `UNAVAILABLE`: the store
//! cannot take writes now.

use crate::identity::AuthError;
use crate::model::Violations;
use crate::policy::Denial;
use crate::store::{CommitError, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Everything a call can fail with.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller is not known.
    #[error("{0}")]
    Unauthenticated(#[from] AuthError),
    /// The officer token was refused.
    #[error("officer token refused: {0}")]
    Token(#[from] crate::token::TokenError),
    /// The participant must present an officer token and did not.
    #[error("participant {0:?} must present an officer token (authorization: Bearer <JWT>)")]
    TokenRequired(String),
    /// The officer's token does not allow this call.
    #[error("the token of officer {officer:?} does not grant scope {scope}")]
    MissingScope {
        /// The token's subject.
        officer: String,
        /// The scope the call needs.
        scope: crate::token::Scope,
    },
    /// The policy does not allow the message.
    #[error(transparent)]
    Denied(#[from] Denial),
    /// The caller may not read this message.
    #[error("{0}")]
    ReadDenied(String),
    /// The request is invalid; the violations name the fields.
    #[error("invalid request: {0}")]
    Invalid(Violations),
    /// The request is larger than the configured limit.
    #[error("request of {size} bytes exceeds max_message_bytes ({max} bytes)")]
    TooLarge {
        /// Encoded size of the envelopes.
        size: usize,
        /// The configured limit.
        max: usize,
    },
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

    /// The gRPC code of this error.
    pub fn code(&self) -> Code {
        match self {
            Error::Unauthenticated(_) | Error::Token(_) | Error::TokenRequired(_) => {
                Code::Unauthenticated
            }
            Error::Denied(_) | Error::ReadDenied(_) | Error::MissingScope { .. } => {
                Code::PermissionDenied
            }
            Error::Invalid(_) => Code::InvalidArgument,
            Error::NotFound(_) => Code::NotFound,
            Error::TooLarge { .. } => Code::ResourceExhausted,
            Error::Commit(CommitError::Conflict { .. }) => Code::AlreadyExists,
            Error::Commit(CommitError::Store(StoreError::Corrupt { .. })) => Code::DataLoss,
            Error::Commit(CommitError::Store(_)) => Code::Unavailable,
            Error::Batch { first, .. } => first.code(),
        }
    }

    /// The violations to report as `BadRequest` details.
    fn violations(&self) -> Option<&Violations> {
        match self {
            Error::Invalid(v) | Error::Batch { violations: v, .. } => Some(v),
            _ => None,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Status {
        let code = error.code();
        let message = error.to_string();
        match error.violations() {
            Some(v) => {
                let violations: Vec<FieldViolation> = v
                    .items()
                    .iter()
                    .map(|(field, description)| FieldViolation::new(field, description))
                    .collect();
                Status::with_error_details(
                    code,
                    message,
                    ErrorDetails::with_bad_request(violations),
                )
            }
            None => Status::new(code, message),
        }
    }
}
