//! ipex — the IP enforcement exchange: a gRPC gateway through which customs administrations,
//! marketplaces, carriers, right holders and partner organisations exchange takedown notices,
//! seller flags, seizure notifications and data requests over mutual TLS, with every message
//! durably stored and every event in a tamper-evident log.
//!
//! The crate is one package, library plus thin binaries (`src/bin/ipexd.rs`, `src/bin/ipex.rs`
//! only parse flags). Its folders are layers; an arrow is "may use", and every arrow points
//! down, never back (`tests/layers.rs` fails the build when one does, or when two files use
//! each other):
//!
//! ```text
//!  bin ─► cli ─► server, admin ─► grpc ─► app ─► storage ─► log ─┐
//!          │       │  federation ─┤  │        │            ├─► domain ─► pb
//!          │       │        dev ─┘  │        └─► ops ─────┤
//!          │       └──► ops, auth ◄─┘                auth ─┘
//!          └──► dev, log, domain, pb
//! ```
//!
//! - [`pb`] — the wire protocol `ipex.v1` (generated, with `Delivery` written by hand so that a
//!   message is encoded once for all its subscribers), the codec that names where a request
//!   failed to decode, its proto3 JSON, the protocol's limits;
//! - [`domain`] — vocabulary and validation, facets and filters, policy, participants, seller
//!   pseudonyms, what the messages the gateway raises itself say (listing alerts, seller
//!   matches), sender signatures on envelopes (JWS, detached payload), and takedown outcomes
//!   as DSA statements of reasons (pure);
//! - [`log`] — the exchange log's pure parts: RFC 9162 hashing and proofs, signed notes and
//!   checkpoints, witness cosignatures and requests (C2SP tlog-cosignature, tlog-witness),
//!   who may see a leaf, offline verification, takedown-times reports and their
//!   offline check;
//! - [`auth`] — the mutual-TLS acceptor and peer certificate, the registry, officer tokens;
//! - [`ops`] — configuration, Prometheus metrics, reload;
//! - [`storage`] — the exchange log's segment files (the source of truth), the index engine
//!   behind a trait with the one key layout, the committer and indexer, the live ring and the
//!   cache of recent messages, the start-up check, replay and offline tools;
//! - [`app`] — what each call does, with every audit event built in one place; who gets the
//!   listing alerts and seller matches a submitted message raises; case threads; sender
//!   signatures checked on submit; takedown-times reports with proofs; the witness of the
//!   peers' logs;
//! - [`grpc`] — the tonic services, the one error → status mapping, health and reflection;
//! - [`federation`] — peer gateways: the C2SP tlog-witness endpoint beside the gRPC services,
//!   mutual-TLS connections to peers, asking peers to cosign each checkpoint;
//! - [`dev`] — the development PKI, keys and configuration;
//! - [`server`] — `run(listener, config, shutdown)`: wiring only;
//! - [`cli`] — the `ipex` client, its gateway connection, audit checks, bench, tokens,
//!   pseudonyms (computed locally), signing envelopes and verifying them offline, reports and
//!   their offline check, DSA statements of reasons.
#![forbid(unsafe_code)]

pub mod admin;
pub mod app;
pub mod auth;
pub mod cli;
pub mod dev;
pub mod domain;
pub mod federation;
pub mod grpc;
pub mod log;
pub mod ops;
pub mod pb;
pub mod server;
pub mod storage;
