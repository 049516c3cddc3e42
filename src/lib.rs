//! ipex — the IP enforcement exchange: a gRPC gateway through which customs administrations,
//! marketplaces, carriers, right holders and partner organisations exchange takedown notices,
//! seller flags, seizure notifications and data requests over mutual TLS, with every message
//! durably stored.
//!
//! Layout (one crate; `src/bin/ipexd.rs` and `src/bin/ipex.rs` only parse flags):
//! - [`pb`]: the generated `ipex.v1` protobuf types and services;
//! - [`json`]: the canonical proto3 JSON mapping of those types;
//! - [`config`]: the gateway's TOML configuration;
//! - [`pki`]: development and test certificates;
//! - [`tls`]: the rustls server configuration and the accept loop with peer identity;
//! - [`identity`]: certificate → participant, the participant registry;
//! - [`token`]: officer tokens (JWT) bound to the client certificate;
//! - [`policy`]: who may send what to whom, and who may read what (TLP);
//! - [`model`]: validation of envelopes and payloads, field by field;
//! - [`store`]: the sled-backed store with group commit;
//! - [`audit`]: the exchange log: Merkle tree, signed checkpoints, proofs, verification;
//! - [`filter`]: subscription and search filters over the facets of a message;
//! - [`search`]: secondary indexes and `Search`;
//! - [`fanout`]: live subscriptions that fall back to the store when behind;
//! - [`gateway`]: what each call does, independent of gRPC;
//! - [`error`]: the one mapping of errors to gRPC statuses;
//! - [`service`]: the thin tonic handlers;
//! - [`health`]: `grpc.health.v1` (NOT_SERVING while draining) and server reflection;
//! - [`metrics`]: Prometheus metrics and their plain-HTTP listener (`metrics_listen`);
//! - [`server`]: `run(listener, config, shutdown)`;
//! - [`client`]: connecting over mutual TLS;
//! - [`cli`], [`cli_audit`]: the `ipex` command-line client and its audit checks;
//! - [`bench`]: `ipex bench`, health-check baseline against durable `Submit` under load.
#![forbid(unsafe_code)]

pub mod audit;
pub mod bench;
pub mod cli;
pub mod cli_audit;
pub mod client;
pub mod config;
pub mod error;
pub mod fanout;
pub mod filter;
pub mod gateway;
pub mod health;
pub mod identity;
pub mod json;
pub mod metrics;
pub mod model;
pub mod pki;
pub mod policy;
pub mod search;
pub mod server;
pub mod service;
pub mod store;
pub mod tls;
pub mod token;

/// The generated `ipex.v1` types, clients and servers.
#[allow(missing_docs, clippy::all)]
pub mod pb {
    tonic::include_proto!("ipex.v1");
    /// The compiled descriptors of `ipex.v1`, for reflection and JSON.
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("ipex_descriptor");
}
