//! Opening a data directory: its layout, the log's end, and the index brought up to the log.
//!
//! The index says how far it has applied the log (`w/applied`) and which checkpoint it saw
//! last. Start-up verifies that checkpoint's signature, replays the log from the earlier of
//! the two positions — re-hashing every leaf written after the checkpoint, comparing it with
//! its tile, and checking every checkpoint record it meets against the tree — and then the
//! root of the last checkpoint before the replay against the tiles. What it reads is the tail
//! since the last checkpoint, and the checksums of the segment being written (where a crash
//! or a flipped bit would be): not the whole log, so start-up does not grow with the log.
//! [`super::scrub`] reads everything, in the background and offline.
//!
//! A torn end of the last segment (a write never acknowledged) is cut, with a warning naming
//! it. A damaged record refuses the start, naming it, unless told to quarantine: then the
//! damaged end of the last segment is moved aside into `quarantine/`.

use super::engine::{Engine, SledEngine};
use super::error::{AuditError, OpenStoreError, StoreError};
use super::index::{self, Applied, EngineTiles, IndexWrites, IndexedCheckpoint, MessageEntry};
use super::keys;
use super::message::index_prefixes;
use super::segments::{self, Appender, ReadError, ScanStop, Segments, FIRST_OFFSET};
use crate::domain::facets::Facets;
use crate::log::leaf::SignedCheckpoint;
use crate::log::merkle::{self, Frontier, Hash};
use crate::log::note::NoteVerifier;
use crate::log::record::{self, Body, FrameError};
use crate::log::tiles::{Edge, TileNodes, TileSource, WIDTH};
use crate::pb;
use prost::Message;
use std::path::Path;
use std::sync::Arc;

/// The layout version of the index this code reads and writes: 2 added the postings of the
/// messages a message refs, of case references and of listing URLs. An index of another
/// version is rebuilt from the log at start; the log's layout ([`LAYOUT`]) is unchanged.
pub const INDEX_FORMAT: u32 = 2;

/// Opens the index in `dir`; one that holds entries of another [`INDEX_FORMAT`] (or of none,
/// before it was recorded) is deleted first, so that the replay rebuilds it from the log.
fn open_index(dir: &Path, cache_bytes: Option<u64>) -> Result<Arc<dyn Engine>, OpenStoreError> {
    // An index set aside by a rebuild that a crash interrupted.
    let aside = dir.with_extension("old");
    if aside.exists() {
        std::fs::remove_dir_all(&aside).map_err(io(format!("removing {}", aside.display())))?;
    }
    let engine = SledEngine::open(dir, cache_bytes)?;
    let format = engine
        .get(keys::FORMAT)?
        .and_then(|v| <[u8; 4]>::try_from(v.as_slice()).ok())
        .map(u32::from_be_bytes);
    if format == Some(INDEX_FORMAT) {
        return Ok(Arc::new(engine));
    }
    let engine = if index::applied(&engine)?.is_some() {
        tracing::warn!(
            found = format.unwrap_or(1),
            current = INDEX_FORMAT,
            index = %dir.display(),
            "the index was written in an older format; rebuilding it from the log"
        );
        drop(engine);
        // Set aside in one step, so that a crash leaves either the old index or none; a
        // start after it removes what was set aside and rebuilds again.
        std::fs::rename(dir, &aside).map_err(io(format!("moving {} aside", dir.display())))?;
        if let Some(parent) = dir.parent() {
            std::fs::File::open(parent)
                .and_then(|d| d.sync_all())
                .map_err(io(format!("syncing {}", parent.display())))?;
        }
        std::fs::remove_dir_all(&aside).map_err(io(format!("removing {}", aside.display())))?;
        SledEngine::open(dir, cache_bytes)?
    } else {
        engine
    };
    let mut batch = super::engine::WriteBatch::default();
    batch.insert(keys::FORMAT, &INDEX_FORMAT.to_be_bytes());
    engine.apply(batch)?;
    Ok(Arc::new(engine))
}

/// The layout version of a data directory this code reads and writes.
pub const LAYOUT: u32 = 2;
/// The file that names a data directory's layout.
pub const FORMAT_FILE: &str = "FORMAT";
/// Records replayed between two index updates where the log marks no commits (a converted
/// log), to bound the memory of a long replay.
const REPLAY_CHUNK: usize = 20_000;

/// A store opened and brought up to its log.
pub(super) struct Recovered {
    pub engine: Arc<dyn Engine>,
    pub segments: Arc<Segments>,
    pub appender: Appender,
    pub frontier: Frontier,
    pub edge: Edge,
    pub next_seq: u64,
    pub checkpoint: Option<SignedCheckpoint>,
    /// Records replayed into the index.
    pub replayed: usize,
}

/// How to open.
pub(super) struct OpenOptions<'a> {
    /// Verify the last checkpoint and re-hash the tail after it.
    pub verify: bool,
    /// Move a damaged end of the last segment aside instead of refusing to start.
    pub quarantine: bool,
    /// The index's page cache.
    pub cache_bytes: Option<u64>,
    /// Size after which a new segment begins.
    pub segment_bytes: u64,
    /// Verifies the checkpoints' signatures (with `verify`).
    pub verifier: Option<&'a NoteVerifier>,
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> OpenStoreError {
    let what = what.into();
    move |source| OpenStoreError::Io { what, source }
}

/// Checks (or, for a new directory, writes) the layout of `dir`.
pub(super) fn check_layout(dir: &Path) -> Result<(), OpenStoreError> {
    let shown = dir.display().to_string();
    std::fs::create_dir_all(dir).map_err(io(format!("creating {shown}")))?;
    let format = dir.join(FORMAT_FILE);
    match std::fs::read_to_string(&format) {
        Ok(text) => {
            let expected = format!("ipex-store {LAYOUT}");
            if text.trim() != expected {
                return Err(OpenStoreError::UnknownLayout {
                    dir: shown,
                    found: text.trim().to_string(),
                    current: LAYOUT,
                });
            }
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Layout 1 kept sled's own files at the top of the data directory.
            if dir.join("db").exists() || dir.join("conf").exists() {
                return Err(OpenStoreError::OldLayout {
                    dir: shown,
                    current: LAYOUT,
                });
            }
            if std::fs::read_dir(dir)
                .map_err(io(format!("reading {shown}")))?
                .next()
                .is_some()
            {
                return Err(OpenStoreError::UnknownLayout {
                    dir: shown,
                    found: "files without a FORMAT file".into(),
                    current: LAYOUT,
                });
            }
            std::fs::write(&format, format!("ipex-store {LAYOUT}\n"))
                .map_err(io(format!("writing {}", format.display())))?;
            std::fs::File::open(dir)
                .and_then(|d| d.sync_all())
                .map_err(io(format!("syncing {shown}")))?;
            Ok(())
        }
        Err(e) => Err(io(format!("reading {}", format.display()))(e)),
    }
}

pub(super) fn signed(
    note: &str,
    verifier: Option<&NoteVerifier>,
) -> Result<SignedCheckpoint, AuditError> {
    let body = note.split("\n\n").next().unwrap_or_default();
    let parsed = crate::log::note::Checkpoint::parse(&format!("{body}\n")).map_err(|e| {
        AuditError::Store(StoreError::Corrupt {
            key: "checkpoint".into(),
            reason: e.to_string(),
        })
    })?;
    if let Some(verifier) = verifier {
        verifier
            .verify_checkpoint(note)
            .map_err(|e| AuditError::CheckpointSignature {
                size: parsed.size,
                reason: e.to_string(),
            })?;
    }
    Ok(SignedCheckpoint {
        note: note.to_string(),
        size: parsed.size,
        root: parsed.root,
    })
}

/// Checks that `dir` holds a store of this layout, creating nothing.
pub(super) fn check_layout_exists(dir: &Path) -> Result<(), OpenStoreError> {
    if !dir.join(FORMAT_FILE).exists() {
        if dir.join("db").exists() || dir.join("conf").exists() {
            return Err(OpenStoreError::OldLayout {
                dir: dir.display().to_string(),
                current: LAYOUT,
            });
        }
        return Err(OpenStoreError::UnknownLayout {
            dir: dir.display().to_string(),
            found: "no FORMAT file: not an ipex data directory".into(),
            current: LAYOUT,
        });
    }
    check_layout(dir)
}

/// Opens the store in `dir` and replays the log into the index.
pub(super) fn open(dir: &Path, options: &OpenOptions<'_>) -> Result<Recovered, OpenStoreError> {
    check_layout(dir)?;
    let log_dir = dir.join("log");
    std::fs::create_dir_all(&log_dir).map_err(io(format!("creating {}", log_dir.display())))?;
    let engine = open_index(&dir.join("index"), options.cache_bytes)?;
    let mut appender = Appender::open(&log_dir, options.segment_bytes)
        .map_err(io(format!("opening the log in {}", log_dir.display())))?;
    let segments =
        Arc::new(Segments::open(&log_dir).map_err(io(format!("reading {}", log_dir.display())))?);
    let first_segment = segments.numbers().first().copied().unwrap_or(1);
    let applied = index::applied(engine.as_ref())?.unwrap_or(Applied {
        pos: segments::position(first_segment, FIRST_OFFSET),
        next_seq: 1,
        tree_size: 0,
    });
    let verifier = options.verifier.filter(|_| options.verify);
    let indexed = index::latest_checkpoint(engine.as_ref())?;
    let indexed_signed = match &indexed {
        Some(cp) => Some(signed(&cp.note, verifier)?),
        None => None,
    };
    // Replay from the earlier of the last checkpoint and the end of what the index has.
    let start = match &indexed {
        Some(cp) if options.verify && cp.applied.pos < applied.pos => cp.applied,
        _ => applied,
    };
    if start.pos > appender.end() {
        return Err(AuditError::Truncated {
            leaves: 0,
            checkpoint: start.tree_size,
        }
        .into());
    }
    let tiles = EngineTiles(engine.as_ref());
    let mut frontier = Frontier::from_source(start.tree_size, &TileNodes(&tiles))?;
    let mut edge = Edge::from_source(start.tree_size, &tiles)?;
    let mut replay = Replay {
        engine: engine.as_ref(),
        verifier,
        frontier: &mut frontier,
        edge: &mut edge,
        next_seq: start.next_seq,
        writes: IndexWrites::default(),
        pending_hashes: Vec::new(),
        tile_cache: None,
        latest: indexed_signed.clone(),
        replayed: 0,
        at_commit: false,
    };
    // The checksums of the segment being written are read whole: acknowledged data there is
    // what a crash or a failing disk would have touched most recently.
    let active = segments::position(segments::split(appender.end()).0, FIRST_OFFSET);
    let scan_from = start.pos.min(active);
    let mut failure: Option<OpenStoreError> = None;
    let scanned = segments.scan(scan_from, |segment, offset, payload| {
        let pos = segments::position(segment, offset);
        if pos < start.pos {
            return record::decode(payload, offset)
                .map(drop)
                .map_err(|source| ScanStop::Read(ReadError::Frame { segment, source }));
        }
        let after = segments::position(
            segment,
            offset + (record::HEADER_LEN + payload.len()) as u64,
        );
        replay
            .record(pos, offset, segment, payload)
            .and_then(|()| replay.maybe_flush(after))
            .map_err(|e| {
                let reason = e.to_string();
                failure = Some(e);
                ScanStop::Caller(reason)
            })
    });
    let last_segment = segments::split(appender.end()).0;
    match scanned {
        Ok(()) => {}
        Err(ScanStop::Read(ReadError::Frame {
            segment,
            source: FrameError::Torn { offset },
        })) if segment == last_segment => {
            tracing::warn!(
                segment,
                offset,
                "the exchange log ends in a torn record (a write that was never acknowledged); \
                 cutting it off"
            );
            appender
                .truncate(offset)
                .map_err(io(format!("cutting log segment {segment}")))?;
        }
        Err(ScanStop::Read(ReadError::Frame { segment, source })) => {
            let (offset, reason) = match &source {
                FrameError::Torn { offset } => (*offset, "the segment ends inside a record".into()),
                FrameError::Damaged { offset, reason } => (*offset, reason.clone()),
            };
            if options.quarantine && segment == last_segment {
                quarantine(dir, &segments, &mut appender, segment, offset)?;
                tracing::warn!(
                    segment,
                    offset,
                    %reason,
                    "damaged end of the exchange log moved to quarantine/"
                );
            } else {
                return Err(OpenStoreError::Damaged {
                    segment,
                    offset,
                    reason,
                });
            }
        }
        Err(ScanStop::Read(ReadError::Io { segment, source })) => {
            return Err(io(format!("reading log segment {segment}"))(source));
        }
        Err(ScanStop::Caller(reason)) => {
            return Err(
                failure.unwrap_or(OpenStoreError::Store(StoreError::Corrupt {
                    key: "exchange log".into(),
                    reason,
                })),
            )
        }
    }
    let end = Applied {
        pos: appender.end(),
        next_seq: replay.next_seq,
        tree_size: replay.frontier.size(),
    };
    let replayed = replay.replayed;
    let latest = replay.latest.clone();
    let next_seq = replay.next_seq;
    replay.flush(end)?;
    // The last checkpoint from before the replay, against the tiles now complete.
    if let (true, Some(cp)) = (options.verify, &indexed_signed) {
        if cp.size > frontier.size() {
            return Err(AuditError::Truncated {
                leaves: frontier.size(),
                checkpoint: cp.size,
            }
            .into());
        }
        let computed = merkle::root_at(cp.size, &TileNodes(EngineTiles(engine.as_ref())))?;
        if computed != cp.root {
            return Err(AuditError::CheckpointMismatch {
                size: cp.size,
                computed: hex::encode(computed),
                signed: hex::encode(cp.root),
            }
            .into());
        }
    }
    if replayed > 0 {
        engine.flush()?;
    }
    Ok(Recovered {
        engine,
        segments,
        appender,
        frontier,
        edge,
        next_seq,
        checkpoint: latest,
        replayed,
    })
}

/// Moves the end of the last segment from `offset` into `quarantine/` and cuts it there.
fn quarantine(
    dir: &Path,
    segments: &Segments,
    appender: &mut Appender,
    segment: u32,
    offset: u64,
) -> Result<(), OpenStoreError> {
    let aside = dir.join("quarantine");
    std::fs::create_dir_all(&aside).map_err(io(format!("creating {}", aside.display())))?;
    let bytes = segments
        .tail(segment, offset)
        .map_err(|e| OpenStoreError::Io {
            what: format!("reading log segment {segment}"),
            source: std::io::Error::other(e.to_string()),
        })?;
    let file = aside.join(format!("{segment:08}-{offset}.bin"));
    std::fs::write(&file, bytes).map_err(io(format!("writing {}", file.display())))?;
    appender
        .truncate(offset)
        .map_err(io(format!("cutting log segment {segment}")))
}

/// The replay of log records into the index.
struct Replay<'a> {
    engine: &'a dyn Engine,
    verifier: Option<&'a NoteVerifier>,
    frontier: &'a mut Frontier,
    edge: &'a mut Edge,
    next_seq: u64,
    writes: IndexWrites,
    pending_hashes: Vec<Hash>,
    /// The level-0 tile last read, to compare re-hashed leaves with.
    tile_cache: Option<(u64, Vec<Hash>)>,
    /// The latest checkpoint seen.
    latest: Option<SignedCheckpoint>,
    replayed: usize,
    /// The record just read ends a commit.
    at_commit: bool,
}

impl Replay<'_> {
    fn stored_leaf_hash(&mut self, index: u64) -> Option<Hash> {
        let tile_index = index / WIDTH;
        if self.tile_cache.as_ref().map(|(i, _)| *i) != Some(tile_index) {
            let tile = EngineTiles(self.engine).tile(0, tile_index).ok()?;
            self.tile_cache = Some((tile_index, tile));
        }
        let (_, tile) = self.tile_cache.as_ref()?;
        tile.get((index % WIDTH) as usize).copied()
    }

    fn record(
        &mut self,
        pos: u64,
        offset: u64,
        segment: u32,
        payload: &[u8],
    ) -> Result<(), OpenStoreError> {
        let location = (pos, (record::HEADER_LEN + payload.len()) as u32);
        let decoded = record::decode(payload, offset).map_err(|e| OpenStoreError::Damaged {
            segment,
            offset,
            reason: e.to_string(),
        })?;
        self.replayed += 1;
        match decoded.body {
            Some(Body::Leaf(leaf)) => {
                if leaf.index != self.frontier.size() {
                    return Err(AuditError::MissingLeaf(self.frontier.size()).into());
                }
                let hash = merkle::leaf_hash(&leaf.data);
                if let Some(stored) = self.stored_leaf_hash(leaf.index) {
                    if stored != hash {
                        return Err(AuditError::LeafMismatch(leaf.index).into());
                    }
                }
                self.frontier.push(hash);
                self.pending_hashes.push(hash);
                self.writes.leaf(leaf.index, location);
            }
            Some(Body::Message(m)) => {
                let receipt = m.receipt.clone().unwrap_or_default();
                if receipt.seq != self.next_seq {
                    return Err(AuditError::MissingMessage {
                        expected: self.next_seq,
                        found: receipt.seq,
                    }
                    .into());
                }
                let envelope = pb::Envelope::decode(m.envelope.as_slice()).map_err(|e| {
                    OpenStoreError::Damaged {
                        segment,
                        offset,
                        reason: format!("message {}: {e}", receipt.seq),
                    }
                })?;
                let prefixes = index_prefixes(&Facets::of(&envelope));
                self.writes.message(MessageEntry {
                    seq: receipt.seq,
                    location,
                    sender: &receipt.sender,
                    id: &receipt.id,
                    placements: receipt
                        .placements
                        .iter()
                        .map(|p| (p.recipient.as_str(), p.inbox_no))
                        .collect(),
                    prefixes: &prefixes,
                });
                self.next_seq += 1;
            }
            Some(Body::Checkpoint(cp)) => {
                let checkpoint = signed(&cp.note, self.verifier)?;
                if checkpoint.size != self.frontier.size()
                    || checkpoint.root != self.frontier.root()
                {
                    return Err(AuditError::CheckpointMismatch {
                        size: checkpoint.size,
                        computed: hex::encode(self.frontier.root()),
                        signed: hex::encode(checkpoint.root),
                    }
                    .into());
                }
                self.writes.checkpoint(IndexedCheckpoint {
                    size: checkpoint.size,
                    applied: Applied {
                        pos: pos + u64::from(location.1),
                        next_seq: self.next_seq,
                        tree_size: checkpoint.size,
                    },
                    note: cp.note,
                });
                self.latest = Some(checkpoint);
            }
            Some(Body::Cursor(c)) => self.writes.cursor(&c.participant, &c.name, c.seq),
            Some(Body::Witnessed(w)) => self.writes.witnessed(&w.origin, &w.note),
            Some(Body::Commit(_)) => {
                self.replayed -= 1;
                self.at_commit = true;
            }
            None => {
                return Err(OpenStoreError::Damaged {
                    segment,
                    offset,
                    reason: "an empty record".into(),
                })
            }
        }
        Ok(())
    }

    /// Writes what was gathered at the end of each commit — so that the runs it writes are
    /// the commit's own and replace what the commit (or the first commit of a group the
    /// indexer wrote together) left in the index before a crash; a group's later commits get
    /// runs beside the group's, which readers take each number of once — or, in a log that marks no commits, every [`REPLAY_CHUNK`] records (counted
    /// from where the replay began, so that a replay cut short and begun again writes the
    /// same runs). `pos` is just after the last record read.
    fn maybe_flush(&mut self, pos: u64) -> Result<(), OpenStoreError> {
        let at_commit = std::mem::take(&mut self.at_commit);
        if !at_commit && self.writes.len() < REPLAY_CHUNK {
            return Ok(());
        }
        let at = Applied {
            pos,
            next_seq: self.next_seq,
            tree_size: self.frontier.size(),
        };
        self.flush(at)
    }

    fn flush(&mut self, at: Applied) -> Result<(), OpenStoreError> {
        let mut writes = std::mem::take(&mut self.writes);
        writes.tiles(self.edge.append(&std::mem::take(&mut self.pending_hashes)));
        self.tile_cache = None;
        writes.apply(self.engine, at)?;
        Ok(())
    }
}
