//! The one place where the gateway's errors become gRPC statuses, and the canonical names
//! of the codes as the audit log and the metrics write them.
//!
//! `UNAUTHENTICATED`: we do not know who you are. `PERMISSION_DENIED`: we know, and you may
//! not. `INVALID_ARGUMENT`: the request is wrong, and `google.rpc.BadRequest` details name each
//! field. `ALREADY_EXISTS`: the id is taken by other content. `NOT_FOUND`: no such message, or
//! one the caller may not read (answered alike, so that existence does not leak).
//! `RESOURCE_EXHAUSTED`: the request exceeds `max_message_bytes`. `UNAVAILABLE`: the store
//! cannot take writes now, or the gateway is shutting down. `DATA_LOSS`: a stored record is
//! damaged.
//!
//! Every answer is bounded: its message is at most [`MAX_MESSAGE_BYTES`], and an invalid
//! request's details list only the violations its message shows
//! ([`crate::domain::Violations::shown`]), so that the trailers of a refusal stay within the
//! 8 KiB the strictest gRPC clients accept, however wrong the request.

use crate::app::error::Error;
use crate::domain::violations::bounded;
use crate::storage::{CommitError, StoreError};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// Most bytes of a status message. Sent percent-encoded in `grpc-message` (at most three
/// bytes each) and again inside `grpc-status-details-bin` (base64), it stays below 6 KiB of
/// trailers with the details of [`crate::domain::Violations::shown`].
pub const MAX_MESSAGE_BYTES: usize = 1024;

/// The code a refused TLS handshake counts as: the caller is not known.
pub const HANDSHAKE_CODE: Code = Code::Unauthenticated;

/// The method name a refused TLS handshake is recorded under.
pub const HANDSHAKE_METHOD: &str = "handshake";

/// The gRPC code of an error.
pub fn code(error: &Error) -> Code {
    match error {
        Error::Unauthenticated(_) | Error::Token(_) | Error::TokenRequired(_) => {
            Code::Unauthenticated
        }
        Error::Denied(_) | Error::MissingScope { .. } => Code::PermissionDenied,
        Error::Invalid(_) => Code::InvalidArgument,
        Error::NotFound(_) | Error::Hidden { .. } => Code::NotFound,
        Error::TooLarge { .. } | Error::OutboxFull { .. } => Code::ResourceExhausted,
        Error::NotAPeer(_) => Code::PermissionDenied,
        Error::ShuttingDown | Error::PeerNotKnownYet(_) | Error::Deferred => Code::Unavailable,
        Error::Commit(CommitError::Conflict { .. }) => Code::AlreadyExists,
        Error::Commit(CommitError::Store(StoreError::Corrupt { .. })) => Code::DataLoss,
        Error::Commit(CommitError::Store(_)) => Code::Unavailable,
        Error::Batch { first, .. } => code(first),
    }
}

/// The status an error is answered with: its code, its sentence, and for invalid requests
/// the violated fields it shows as `google.rpc.BadRequest` details.
pub fn status(error: Error) -> Status {
    let code = code(&error);
    let message = bounded(error.to_string(), MAX_MESSAGE_BYTES);
    match error.violations() {
        Some(v) => {
            let violations: Vec<FieldViolation> = v
                .shown()
                .iter()
                .map(|(field, description)| FieldViolation::new(field, description))
                .collect();
            Status::with_error_details(code, message, ErrorDetails::with_bad_request(violations))
        }
        None => Status::new(code, message),
    }
}

pub use crate::pb::code_name;
