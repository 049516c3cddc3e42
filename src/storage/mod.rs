//! Durable storage of envelopes, their idempotency keys, inboxes, search indexes,
//! subscription cursors and the exchange log, with group commit.
//!
//! Everything lives behind the small [`Engine`] trait (get, range, atomic batch, flush), so
//! the engine stays replaceable, and [`keys`] is the only place that knows the key layout.
//! Writes go through one committer thread ([`committer`]): it takes every job waiting in its
//! queue, checks idempotency keys, assigns sequence and inbox numbers, writes all of it as one
//! atomic batch and flushes once; only then are the callers answered. Durability therefore
//! costs one flush per batch, not per call, and the committer, being the only writer, keeps
//! the counters in memory.
//!
//! The audit leaves of a message are built by the application ([`MessageEvents`]) and written
//! by the same committer, in the same batch as the envelope they describe, so an acknowledged
//! envelope always has its leaves; the committer also signs the checkpoints ([`audit`] holds
//! the start-up check of the tree against them).
//!
//! Readers see only what is durable: the committer publishes the highest flushed sequence
//! number and tree size, and reads ignore anything above them.
//!
//! Uses [`crate::log`], [`crate::domain`], [`crate::ops`] (commit metrics) and [`crate::pb`].

pub mod audit;
mod committer;
#[cfg(test)]
mod conformance;
pub mod engine;
pub mod error;
pub mod keys;
pub mod message;
mod store;

pub use engine::{Engine, SledEngine, WriteBatch};
pub use error::{AuditError, CommitError, OpenStoreError, StoreError};
pub use message::{index_prefixes, Live, MessageEvents, NewMessage, Stored};
pub use store::{Store, StoreOptions};
