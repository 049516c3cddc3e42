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
