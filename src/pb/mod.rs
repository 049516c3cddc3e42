//! The wire protocol, `ipex.v1`: the types, clients and servers generated from `proto/` by
//! build.rs with our [`codec`] (and [`delivery`], written by hand), their canonical proto3
//! JSON mapping ([`json`]), and the limits of the protocol that both the gateway and its
//! clients must agree on ([`limits`]). The lowest layer: it imports nothing of the crate, and
//! every other layer may use it.

pub mod codec;
pub mod delivery;
pub mod json;
pub mod limits;

mod generated;
pub use delivery::{Delivery, WireMessage};
pub use generated::*;

/// The compiled descriptors of `ipex.v1`, for reflection and JSON.
pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ipex_descriptor");

/// The canonical name of a gRPC code, as in `google.rpc.Code`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}
