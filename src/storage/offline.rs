//! Offline operations on the data directory of a stopped gateway: rebuilding the index from
//! the log ([`reindex`]) and converting a store of layout 1 — everything in one sled tree,
//! one key per leaf and per tree node — into this layout ([`migrate_v1`]), checking every
//! receipt against the original.

use super::engine::{Engine, SledEngine};
use super::error::{OpenStoreError, StoreError};
use super::keys;
use super::reader::Reader;
use super::recover::{self, OpenOptions};
use super::segments::Appender;
use crate::log::record::MessageRecord;
use crate::log::record::{self, Body, CheckpointRecord, CursorRecord, LeafRecord, LogRecord};
use prost::Message;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

fn io(what: String) -> impl FnOnce(std::io::Error) -> OpenStoreError {
    move |source| OpenStoreError::Io { what, source }
}

/// How offline operations open a store: they compare every checkpoint they replay with the
/// tree, but check no signature (they do not have the gateway's key).
fn open_options() -> OpenOptions<'static> {
    OpenOptions {
        verify: false,
        quarantine: false,
        cache_bytes: Some(256 * 1024 * 1024),
        segment_bytes: 64 * 1024 * 1024,
        verifier: None,
    }
}

/// Deletes the index of the stopped store in `dir` and rebuilds it from the log, checking
/// every checkpoint of the log against the tree. Returns the records replayed.
pub fn reindex(dir: &Path) -> Result<usize, OpenStoreError> {
    recover::check_layout_exists(dir)?;
    let index = dir.join("index");
    if index.exists() {
        std::fs::remove_dir_all(&index).map_err(io(format!("removing {}", index.display())))?;
    }
    let recovered = recover::open(dir, &open_options())?;
    recovered.engine.flush()?;
    Ok(recovered.replayed)
}

/// What a migration did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Migrated {
    /// Messages converted, each checked against its original receipt and bytes.
    pub messages: u64,
    /// Audit leaves converted.
    pub leaves: u64,
    /// Signed checkpoints carried over (each checked against the converted tree).
    pub checkpoints: u64,
    /// Durable subscription cursors carried over.
    pub cursors: u64,
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> OpenStoreError {
    OpenStoreError::Store(StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    })
}

/// Converts the stopped store of layout 1 in `from` into a new store in `to` (which must not
/// exist or be empty): the same leaves in the same order, the same messages with the same
/// receipts, the same signed checkpoints (still valid: the tree is the same) and cursors.
/// Every converted receipt and envelope is compared with the original before it returns.
pub fn migrate_v1(from: &Path, to: &Path) -> Result<Migrated, OpenStoreError> {
    if from.join(recover::FORMAT_FILE).exists() || !from.join("db").exists() {
        return Err(OpenStoreError::UnknownLayout {
            dir: from.display().to_string(),
            found: "not a store of layout 1 (no sled files at its top)".into(),
            current: recover::LAYOUT,
        });
    }
    recover::check_layout(to)?;
    let old = SledEngine::open(from, Some(256 * 1024 * 1024))?;
    // Old keys: e/<seq> → record, l/<index> → leaf data, c/<size> → note, u/<p>\0<name> → seq.
    let mut accepted_at: HashMap<u64, u64> = HashMap::new();
    let mut last_seq = 0;
    for entry in old.range(b"e/", b"e0", false) {
        let (key, value) = entry?;
        let seq = keys::trailing_u64(&key).ok_or_else(|| corrupt(&key, "message key"))?;
        let record =
            MessageRecord::decode(value.as_slice()).map_err(|e| corrupt(&key, e.to_string()))?;
        let receipt = record
            .receipt
            .ok_or_else(|| corrupt(&key, "record without receipt"))?;
        if seq != last_seq + 1 || receipt.seq != seq {
            return Err(corrupt(
                &key,
                format!("message {} after {last_seq}", receipt.seq),
            ));
        }
        last_seq = seq;
        accepted_at.insert(receipt.leaf_index, seq);
    }
    let mut checkpoints: BTreeMap<u64, String> = BTreeMap::new();
    for entry in old.range(b"c/", b"c0", false) {
        let (key, value) = entry?;
        let size = keys::trailing_u64(&key).ok_or_else(|| corrupt(&key, "checkpoint key"))?;
        let note = String::from_utf8(value).map_err(|_| corrupt(&key, "not UTF-8"))?;
        checkpoints.insert(size, note);
    }
    let log_dir = to.join("log");
    std::fs::create_dir_all(&log_dir).map_err(io(format!("creating {}", log_dir.display())))?;
    let mut appender = Appender::open(&log_dir, 64 * 1024 * 1024)
        .map_err(io(format!("opening {}", log_dir.display())))?;
    let mut frames = Vec::new();
    let mut migrated = Migrated::default();
    let mut flush = |frames: &mut Vec<u8>, force: bool| -> Result<(), OpenStoreError> {
        if !frames.is_empty() && (force || frames.len() >= 4 * 1024 * 1024) {
            appender
                .append(frames)
                .map_err(io(format!("writing {}", log_dir.display())))?;
            frames.clear();
        }
        Ok(())
    };
    let push_checkpoint = |size: u64, frames: &mut Vec<u8>, migrated: &mut Migrated| {
        if let Some(note) = checkpoints.get(&size) {
            record::frame_record(
                &LogRecord {
                    body: Some(Body::Checkpoint(CheckpointRecord { note: note.clone() })),
                },
                frames,
            );
            migrated.checkpoints += 1;
        }
    };
    push_checkpoint(0, &mut frames, &mut migrated);
    for (expected, entry) in (0u64..).zip(old.range(b"l/", b"l0", false)) {
        let (key, data) = entry?;
        let index = keys::trailing_u64(&key).ok_or_else(|| corrupt(&key, "leaf key"))?;
        if index != expected {
            return Err(corrupt(&key, format!("leaf {expected} is missing")));
        }
        if let Some(seq) = accepted_at.get(&index) {
            let key = keys::numbered(b"e/", *seq);
            let value = old.get(&key)?.ok_or_else(|| corrupt(&key, "vanished"))?;
            let message = MessageRecord::decode(value.as_slice())
                .map_err(|e| corrupt(&key, e.to_string()))?;
            record::frame_record(
                &LogRecord {
                    body: Some(Body::Message(message)),
                },
                &mut frames,
            );
            migrated.messages += 1;
        }
        record::frame_record(
            &LogRecord {
                body: Some(Body::Leaf(LeafRecord { index, data })),
            },
            &mut frames,
        );
        migrated.leaves += 1;
        push_checkpoint(index + 1, &mut frames, &mut migrated);
        flush(&mut frames, false)?;
    }
    if migrated.messages != last_seq {
        return Err(corrupt(
            b"e/",
            format!(
                "{} messages but {} acceptance leaves",
                last_seq, migrated.messages
            ),
        ));
    }
    for entry in old.range(b"u/", b"u0", false) {
        let (key, value) = entry?;
        let rest = &key[2..];
        let at = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or_else(|| corrupt(&key, "cursor key"))?;
        record::frame_record(
            &LogRecord {
                body: Some(Body::Cursor(CursorRecord {
                    participant: String::from_utf8_lossy(&rest[..at]).into_owned(),
                    name: String::from_utf8_lossy(&rest[at + 1..]).into_owned(),
                    seq: keys::trailing_u64(&value).ok_or_else(|| corrupt(&key, "cursor"))?,
                })),
            },
            &mut frames,
        );
        migrated.cursors += 1;
    }
    flush(&mut frames, true)?;
    drop(appender);
    // Build the index by replay (which checks every checkpoint against the tree), then read
    // every message back and compare it with the original.
    let recovered = recover::open(to, &open_options())?;
    let reader = Reader {
        engine: recovered.engine.clone(),
        segments: recovered.segments.clone(),
        recent: std::sync::Arc::new(super::reader::Recent::new(1024 * 1024)),
    };
    for entry in old.range(b"e/", b"e0", false) {
        let (key, value) = entry?;
        let original =
            MessageRecord::decode(value.as_slice()).map_err(|e| corrupt(&key, e.to_string()))?;
        let seq = keys::trailing_u64(&key).unwrap_or(0);
        let converted = reader
            .message(seq)?
            .ok_or_else(|| corrupt(&key, "missing after conversion"))?;
        if Some(&converted.receipt) != original.receipt.as_ref()
            || converted.envelope.encode_to_vec() != original.envelope
        {
            return Err(corrupt(&key, "differs after conversion"));
        }
    }
    recovered.engine.flush()?;
    Ok(migrated)
}
