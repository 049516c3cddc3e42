//! The full check of the exchange log, which start-up does not do: every frame's checksum,
//! every leaf re-hashed in order, the tree recomputed from nothing and compared with every
//! checkpoint in the log (and its signature, given the verifier key), every message in
//! sequence, and — when the index is there — every tile against the leaves. It runs offline
//! (`ipex audit verify --full`) and in the background of a running gateway, whose progress
//! and results are metrics ([`ScrubStats`]).

use super::engine::Engine;
use super::error::{AuditError, OpenStoreError};
use super::index::EngineTiles;
use super::segments::{self, ReadError, ScanStop, Segments, FIRST_OFFSET};
use crate::log::merkle::{self, Frontier, Hash};
use crate::log::note::NoteVerifier;
use crate::log::record::{self, Body, FrameError};
use crate::log::tiles::{TileSource, WIDTH};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

/// What a full check found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FullReport {
    /// Leaves re-hashed.
    pub leaves: u64,
    /// Messages read.
    pub messages: u64,
    /// Checkpoints compared with the tree.
    pub checkpoints: u64,
    /// Whether their signatures were verified.
    pub signatures_verified: bool,
    /// Tiles compared with the leaves (0 without an index).
    pub tiles: u64,
    /// The last checkpoint's size and root.
    pub last_checkpoint: Option<(u64, Hash)>,
    /// The root of the whole log.
    pub root: Hash,
}

/// Progress and results of the background checks, for the metrics.
#[derive(Debug, Default)]
pub struct ScrubStats {
    /// Leaves checked by the run in progress (or the last run).
    pub leaves_checked: AtomicU64,
    /// Runs completed.
    pub runs: AtomicU64,
    /// Runs that found the log damaged.
    pub failures: AtomicU64,
    /// 1 when the last completed run passed, 0 when it failed, -1 before the first.
    pub last_ok: AtomicI64,
}

impl ScrubStats {
    /// Stats before any run.
    pub fn new() -> ScrubStats {
        ScrubStats {
            last_ok: AtomicI64::new(-1),
            ..Default::default()
        }
    }
}

/// Checks the log of `segments` up to `until` (a position; `u64::MAX` for all of it).
pub fn check_log(
    segments: &Segments,
    index: Option<&dyn Engine>,
    verifier: Option<&NoteVerifier>,
    until: u64,
    progress: &AtomicU64,
    pace: Option<(Duration, &AtomicBool)>,
) -> Result<FullReport, OpenStoreError> {
    let first = segments.numbers().first().copied().unwrap_or(1);
    let mut frontier = Frontier::new();
    let mut report = FullReport {
        signatures_verified: verifier.is_some(),
        ..Default::default()
    };
    let mut next_seq = 1u64;
    let mut tile_hashes: Vec<Hash> = Vec::with_capacity(WIDTH as usize);
    let mut failure: Option<OpenStoreError> = None;
    progress.store(0, Ordering::Relaxed);
    let scanned = segments.scan(
        segments::position(first, FIRST_OFFSET),
        |segment, offset, payload| {
            if segments::position(segment, offset) >= until {
                return Err(ScanStop::Caller("done".into()));
            }
            let mut fail = |e: OpenStoreError| {
                let reason = e.to_string();
                failure = Some(e);
                ScanStop::Caller(reason)
            };
            let decoded = record::decode(payload, offset).map_err(|e| {
                fail(OpenStoreError::Damaged {
                    segment,
                    offset,
                    reason: e.to_string(),
                })
            })?;
            match decoded.body {
                Some(Body::Leaf(leaf)) => {
                    if leaf.index != frontier.size() {
                        return Err(fail(AuditError::MissingLeaf(frontier.size()).into()));
                    }
                    let hash = merkle::leaf_hash(&leaf.data);
                    frontier.push(hash);
                    report.leaves += 1;
                    progress.store(report.leaves, Ordering::Relaxed);
                    tile_hashes.push(hash);
                    if tile_hashes.len() as u64 == WIDTH {
                        if let Some(engine) = index {
                            compare_tile(engine, frontier.size() / WIDTH - 1, &tile_hashes)
                                .map_err(&mut fail)?;
                            report.tiles += 1;
                        }
                        tile_hashes.clear();
                        // In the background: a pause per tile, and an end when the store closes.
                        if let Some((pause, closed)) = pace {
                            if closed.load(Ordering::Relaxed) {
                                return Err(ScanStop::Caller("done".into()));
                            }
                            std::thread::sleep(pause);
                        }
                    }
                }
                Some(Body::Message(m)) => {
                    let seq = m.receipt.map_or(0, |r| r.seq);
                    if seq != next_seq {
                        return Err(fail(
                            AuditError::MissingMessage {
                                expected: next_seq,
                                found: seq,
                            }
                            .into(),
                        ));
                    }
                    next_seq += 1;
                    report.messages += 1;
                }
                Some(Body::Checkpoint(cp)) => {
                    let checkpoint =
                        super::recover::signed(&cp.note, verifier).map_err(|e| fail(e.into()))?;
                    if checkpoint.size != frontier.size() || checkpoint.root != frontier.root() {
                        return Err(fail(
                            AuditError::CheckpointMismatch {
                                size: checkpoint.size,
                                computed: hex::encode(frontier.root()),
                                signed: hex::encode(checkpoint.root),
                            }
                            .into(),
                        ));
                    }
                    report.checkpoints += 1;
                    report.last_checkpoint = Some((checkpoint.size, checkpoint.root));
                }
                Some(Body::Cursor(_)) | Some(Body::Commit(_)) | Some(Body::Witnessed(_)) => {}
                None => {
                    return Err(fail(OpenStoreError::Damaged {
                        segment,
                        offset,
                        reason: "an empty record".into(),
                    }))
                }
            }
            Ok(())
        },
    );
    match scanned {
        Ok(()) => {}
        Err(ScanStop::Caller(reason)) => {
            if let Some(e) = failure {
                return Err(e);
            }
            debug_assert_eq!(reason, "done");
        }
        // A crash may have torn the end of the last segment, which the next start cuts: never
        // acknowledged, it is no damage.
        Err(ScanStop::Read(ReadError::Frame {
            segment,
            source: FrameError::Torn { .. },
        })) if Some(&segment) == segments.numbers().last() => {}
        Err(ScanStop::Read(ReadError::Frame { segment, source })) => {
            let (offset, reason) = match source {
                FrameError::Torn { offset } => (offset, "the segment ends inside a record".into()),
                FrameError::Damaged { offset, reason } => (offset, reason),
            };
            return Err(OpenStoreError::Damaged {
                segment,
                offset,
                reason,
            });
        }
        Err(ScanStop::Read(ReadError::Io { segment, source })) => {
            return Err(OpenStoreError::Io {
                what: format!("reading log segment {segment}"),
                source,
            })
        }
    }
    report.root = frontier.root();
    Ok(report)
}

fn compare_tile(engine: &dyn Engine, index: u64, hashes: &[Hash]) -> Result<(), OpenStoreError> {
    let stored = EngineTiles(engine).tile(0, index)?;
    if stored.get(..hashes.len()) != Some(hashes) {
        let first_bad = hashes
            .iter()
            .zip(stored.iter())
            .position(|(a, b)| a != b)
            .unwrap_or(stored.len().min(hashes.len()));
        return Err(AuditError::LeafMismatch(index * WIDTH + first_bad as u64).into());
    }
    Ok(())
}

/// Checks the whole log of the stopped store in `dir`, and its index's tiles if it has one.
pub fn check_dir(
    dir: &Path,
    verifier: Option<&NoteVerifier>,
    progress: &AtomicU64,
) -> Result<FullReport, OpenStoreError> {
    super::recover::check_layout_exists(dir)?;
    let segments = Segments::open(&dir.join("log")).map_err(|source| OpenStoreError::Io {
        what: format!("reading {}", dir.join("log").display()),
        source,
    })?;
    let index_dir = dir.join("index");
    let engine = if index_dir.exists() {
        Some(super::engine::SledEngine::open(
            &index_dir,
            Some(64 * 1024 * 1024),
        )?)
    } else {
        None
    };
    check_log(
        &segments,
        engine.as_ref().map(|e| e as &dyn Engine),
        verifier,
        u64::MAX,
        progress,
        None,
    )
}
