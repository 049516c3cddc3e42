//! Gateways of different operators as peers: each witnesses the others' logs and asks them to
//! witness its own.
//!
//! - [`witness_http`] — the C2SP tlog-witness endpoint, `POST /add-checkpoint`, served on
//!   the gateway's port beside the gRPC services to peer gateways (gateway certificates);
//! - [`peers`] — connections to the peers: mutual TLS with this gateway's gateway
//!   certificate, the peer's own CA as the only root;
//! - [`cosign`] — asks every peer with a witness key to cosign each new checkpoint, and
//!   keeps the cosignatures `GetCheckpoint` serves;
//! - [`forwarder`] — sends the outbox to each peer in order, with retries, and records
//!   what the peer answered; fetches the peers' directories.
//!
//! Uses [`crate::app`] (the witness itself, the store, the metrics), [`crate::auth`],
//! [`crate::log`] and [`crate::ops`].

pub mod cosign;
pub mod forwarder;
pub mod peers;
pub mod witness_http;

/// The path of C2SP tlog-witness's `add-checkpoint`, under the gateway's address.
pub const ADD_CHECKPOINT_PATH: &str = "/add-checkpoint";
