//! Durable storage: the exchange log is the store, and everything looked up by key is an
//! index derived from it.
//!
//! - The log ([`segments`]): append-only segment files of framed records — audit leaves,
//!   messages (envelope bytes and receipt), signed checkpoints, subscription cursors. One
//!   writer, the committer ([`committer`]), takes every job waiting in its queue, assigns
//!   sequence and inbox numbers, and appends the whole group commit with one write and one
//!   `fdatasync`; only then are the callers answered.
//! - The index ([`index`], laid out by [`keys`]): idempotency keys, inboxes, search postings,
//!   cursors, checkpoints, and the tree's hashes as C2SP tiles — written after the log, one
//!   key per list per commit, in an [`Engine`] (sled today) behind a small trait with a
//!   conformance suite. It is made durable off the commit path and rebuilt from the log by
//!   replay ([`recover`]), so a crash between the two loses nothing.
//!
//! The audit leaves of a message are built by the application ([`MessageEvents`]) and framed
//! in the same group commit as the message. Readers see only what is durable: the committer
//! publishes the highest durable sequence number and tree size, and reads ignore anything
//! above them.
//!
//! Uses [`crate::log`], [`crate::domain`], [`crate::ops`] (commit metrics) and [`crate::pb`].

mod committer;
#[cfg(test)]
mod conformance;
pub mod engine;
pub mod error;
pub mod index;
pub mod keys;
pub mod live;
pub mod message;
pub mod offline;
mod reader;
pub mod recover;
pub mod scrub;
pub mod segments;
mod store;

pub use engine::{Engine, SledEngine, WriteBatch};
pub use error::{AuditError, CommitError, OpenStoreError, StoreError};
pub use live::{LiveError, LivePublisher, LiveReceiver};
pub use message::{index_prefixes, Live, MessageEvents, NewMessage, Stored};
pub use reader::Reader;
pub use store::{Store, StoreOptions};
