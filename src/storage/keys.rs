//! The one key layout of the index (the sled tree beside the log). No other file builds or
//! parses a key. Numbers are big-endian so that byte order is numeric order. Everything here
//! is derived from the log and rebuilt from it ([`super::index`]): what is looked up by key.
//!
//! Keys holding a *run* cover the consecutive numbers one group commit (or one replay)
//! wrote, starting at the number in the key, so a commit of a hundred messages writes one
//! key per list it touches, not a hundred:
//!
//! - `m/<first_seq>` → run of `(position u64, length u32)`: where each message's record is;
//! - `l/<first_leaf>` → run of `(position u64, length u32)`: where each leaf's record is;
//! - `i/<recipient>\0<first_inbox_no>` → run of sequence numbers (varint deltas): an inbox;
//! - `x/<facet>/<value>\0<first_seq>` → run of sequence numbers: the search postings, one
//!   facet letter per [`Facet`];
//!
//! and single values:
//!
//! - `k/<sender>\0<id>` → `<seq:u64>`: the idempotency key;
//! - `u/<participant>\0<name>` → `<seq:u64>`: a durable subscription's acknowledged cursor;
//! - `t/<level:u8><index:u64>` → the hashes of tile `(level, index)` (C2SP tlog-tiles);
//! - `c/<size:u64>` → `(position after its record, next seq)` and the note of the checkpoint
//!   signed at that tree size;
//! - `o/<origin>` → the note of the latest checkpoint of peer log `origin` this gateway
//!   cosigned as its witness;
//! - `w/applied` → how far the log is applied to this index: `(position, next seq, size)`;
//! - `v/format` → the index's layout version.

use crate::domain::facets::Facet;

/// Prefix of the message runs.
pub const MESSAGES: &[u8] = b"m/";
/// Prefix of the leaf runs.
pub const LEAVES: &[u8] = b"l/";
/// Prefix of the inbox runs.
pub const INBOX: &[u8] = b"i/";
/// Prefix of the posting runs.
pub const INDEX: &[u8] = b"x/";
/// Prefix of the idempotency keys.
pub const IDEMPOTENCY: &[u8] = b"k/";
/// Prefix of the durable subscription cursors.
pub const CURSOR: &[u8] = b"u/";
/// Prefix of the tiles.
pub const TILE: &[u8] = b"t/";
/// Prefix of the signed checkpoints.
pub const CHECKPOINT: &[u8] = b"c/";
/// Prefix of the checkpoints cosigned as a witness, per log origin.
pub const WITNESSED: &[u8] = b"o/";
/// How far the log is applied.
pub const APPLIED: &[u8] = b"w/applied";
/// The index's layout version.
pub const FORMAT: &[u8] = b"v/format";

/// A key `prefix` followed by a number.
pub fn numbered(prefix: &[u8], n: u64) -> Vec<u8> {
    [prefix, &n.to_be_bytes()].concat()
}

/// The prefix of every inbox run of `recipient`.
pub fn inbox_prefix(recipient: &str) -> Vec<u8> {
    [INBOX, recipient.as_bytes(), b"\0"].concat()
}

/// The idempotency key of `(sender, id)`.
pub fn idempotency(sender: &str, id: &str) -> Vec<u8> {
    [IDEMPOTENCY, sender.as_bytes(), b"\0", id.as_bytes()].concat()
}

/// The cursor of durable subscription `name` of `participant`.
pub fn cursor(participant: &str, name: &str) -> Vec<u8> {
    [CURSOR, participant.as_bytes(), b"\0", name.as_bytes()].concat()
}

/// The latest checkpoint of peer log `origin` cosigned as its witness.
pub fn witnessed(origin: &str) -> Vec<u8> {
    [WITNESSED, origin.as_bytes()].concat()
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
        Facet::Ref => b'r',
        Facet::Case => b'n',
        Facet::Url => b'u',
        Facet::Gateway => b'g',
    }
}

/// The prefix of the posting runs of `(facet, value)`.
pub fn posting_prefix(facet: Facet, value: &str) -> Vec<u8> {
    [INDEX, &[facet_letter(facet), b'/'], value.as_bytes(), b"\0"].concat()
}

/// Tile `(level, index)`.
pub fn tile(level: u8, index: u64) -> Vec<u8> {
    [TILE, &[level], &index.to_be_bytes()].concat()
}

/// The big-endian number at the end of a key or at the start of a value.
pub fn trailing_u64(bytes: &[u8]) -> Option<u64> {
    let tail = bytes.len().checked_sub(8).map(|at| &bytes[at..])?;
    Some(u64::from_be_bytes(tail.try_into().ok()?))
}

/// The big-endian number at `at` of a value.
pub fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.get(at..at + 8)?.try_into().ok()?))
}
