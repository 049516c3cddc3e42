//! The one key layout of the store. No other file builds or parses a key. Numbers are
//! big-endian so that byte order is numeric order.
//!
//! - `e/<seq:u64>` → a [`super::Record`]: the canonical envelope bytes and the receipt;
//! - `k/<sender>\0<id>` → `<seq:u64>`: the idempotency key;
//! - `i/<recipient>\0<inbox_no:u64>` → `<seq:u64>`: each recipient's inbox;
//! - `x/<facet>/<value>\0<seq:u64>` → empty: the search indexes, one facet letter per
//!   [`Facet`];
//! - `u/<participant>\0<name>` → `<seq:u64>`: a durable subscription's acknowledged cursor;
//! - `l/<index:u64>` → the data of audit leaf `index` (an encoded `ipex.v1.AuditLeaf`);
//! - `n/<level:u8><index:u64>` → the hash of a perfect subtree of the audit tree;
//! - `c/<size:u64>` → the signed checkpoint note for that tree size.

use crate::domain::facets::Facet;

/// Prefix of the message records.
pub const ENVELOPE: &[u8] = b"e/";
/// Prefix of the idempotency keys.
pub const IDEMPOTENCY: &[u8] = b"k/";
/// Prefix of the inbox entries.
pub const INBOX: &[u8] = b"i/";
/// Prefix of the search index entries.
pub const INDEX: &[u8] = b"x/";
/// Prefix of the durable subscription cursors.
pub const CURSOR: &[u8] = b"u/";
/// Prefix of the audit leaves.
pub const LEAF: &[u8] = b"l/";
/// Prefix of the audit tree nodes.
pub const NODE: &[u8] = b"n/";
/// Prefix of the signed checkpoints.
pub const CHECKPOINT: &[u8] = b"c/";

/// The record of message `seq`.
pub fn envelope(seq: u64) -> Vec<u8> {
    [ENVELOPE, &seq.to_be_bytes()].concat()
}

/// The idempotency key of `(sender, id)`.
pub fn idempotency(sender: &str, id: &str) -> Vec<u8> {
    [IDEMPOTENCY, sender.as_bytes(), b"\0", id.as_bytes()].concat()
}

/// The prefix of every inbox entry of `recipient`.
pub fn inbox_prefix(recipient: &str) -> Vec<u8> {
    [INBOX, recipient.as_bytes(), b"\0"].concat()
}

/// Inbox entry `inbox_no` of `recipient`.
pub fn inbox(recipient: &str, inbox_no: u64) -> Vec<u8> {
    [&inbox_prefix(recipient)[..], &inbox_no.to_be_bytes()].concat()
}

/// The cursor of durable subscription `name` of `participant`.
pub fn cursor(participant: &str, name: &str) -> Vec<u8> {
    [CURSOR, participant.as_bytes(), b"\0", name.as_bytes()].concat()
}

/// The letter of a facet in index keys. Changing one is a change of the on-disk format.
fn facet_letter(facet: Facet) -> u8 {
    match facet {
        Facet::Kind => b'k',
        Facet::Hs => b'h',
        Facet::Origin => b'o',
        Facet::Destination => b'd',
        Facet::Location => b'l',
        Facet::Brand => b'b',
        Facet::Carrier => b'c',
        Facet::Platform => b'p',
        Facet::Seller => b's',
        Facet::Listing => b'i',
        Facet::Tracking => b't',
    }
}

/// The prefix of the index entries of `(facet, value)`; an entry is it followed by the
/// message's sequence number.
pub fn posting_prefix(facet: Facet, value: &str) -> Vec<u8> {
    [INDEX, &[facet_letter(facet), b'/'], value.as_bytes(), b"\0"].concat()
}

/// Index entry of message `seq` under `prefix`.
pub fn posting(prefix: &[u8], seq: u64) -> Vec<u8> {
    [prefix, &seq.to_be_bytes()].concat()
}

/// Audit leaf `index`.
pub fn leaf(index: u64) -> Vec<u8> {
    [LEAF, &index.to_be_bytes()].concat()
}

/// Audit tree node `(level, index)`.
pub fn node(level: u8, index: u64) -> Vec<u8> {
    [NODE, &[level], &index.to_be_bytes()].concat()
}

/// The checkpoint of tree size `size`.
pub fn checkpoint(size: u64) -> Vec<u8> {
    [CHECKPOINT, &size.to_be_bytes()].concat()
}

/// The big-endian number at the end of a key or in a value.
pub fn trailing_u64(bytes: &[u8]) -> Option<u64> {
    let tail = bytes.len().checked_sub(8).map(|at| &bytes[at..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}
