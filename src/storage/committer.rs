//! The single writer of the store, in three stages of one thread each.
//!
//! The committer takes every job waiting in its queue, checks idempotency keys, assigns
//! sequence and inbox numbers, frames the records — audit leaves, messages, a checkpoint when
//! one is due, cursors — and writes them to the end of the log with one write. The syncer
//! makes every batch written so far durable with one `fdatasync` and answers their callers;
//! then it hands them to the indexer, which updates the index (tiles included; batches that
//! wait for it are indexed together, with one write), publishes what it holds and hands new
//! messages to live subscribers. While the syncer waits for the
//! disk, the committer frames and writes the next batch, and the indexer indexes the one
//! before; what the committer must know of batches not yet in the index (their idempotency
//! keys and cursors) it keeps in memory until the indexer says they are there.
//!
//! A caller answered before its batch is in the index must still find it with any read it
//! makes next: [`Progress`] holds the last batch answered and the last one indexed, and a read
//! first waits ([`Progress::settled`]) until the index holds every batch answered before the
//! read began. That wait is at most one batch's index write, and none when nothing is in
//! flight.

use super::engine::Engine;
use super::error::{CommitError, StoreError};
use super::index::{self, Applied, IndexWrites, IndexedCheckpoint, MessageEntry};
use super::keys;
use super::message::{Live, MessageEvents, NewMessage};
use super::reader::Reader;
use super::segments::Appender;
use crate::log::leaf::SignedCheckpoint;
use crate::log::merkle::{self, Frontier, Hash};
use crate::log::note::{Checkpoint, NoteSigner};
use crate::log::record::MessageRecord;
use crate::log::record::{
    self, Body, CheckpointRecord, CommitRecord, CursorRecord, LeafRecord, LogRecord,
};
use crate::log::tiles::Edge;
use crate::pb;
use arc_swap::ArcSwapOption;
use prost::Message;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::sync::{mpsc, oneshot};

/// How far the index is behind what callers were told is stored.
pub(super) struct Progress {
    /// The number of the last batch whose callers were answered.
    answered: AtomicU64,
    /// The number of the last batch in the index.
    indexed: tokio::sync::watch::Sender<u64>,
    /// Set when a write failed, by either stage: nothing more is written or indexed.
    failed: Arc<AtomicBool>,
}

impl Progress {
    pub(super) fn new(failed: Arc<AtomicBool>) -> Progress {
        Progress {
            answered: AtomicU64::new(0),
            indexed: tokio::sync::watch::channel(0).0,
            failed,
        }
    }

    /// The number of the last batch in the index.
    fn indexed(&self) -> u64 {
        *self.indexed.borrow()
    }

    /// Waits until the index holds every batch answered before this call. Fails when the
    /// index cannot catch up because a write failed.
    pub(super) async fn settled(&self) -> Result<(), StoreError> {
        let target = self.answered.load(Ordering::Acquire);
        if self.indexed() >= target {
            return Ok(());
        }
        let mut indexed = self.indexed.subscribe();
        let failed = &self.failed;
        let caught_up = indexed
            .wait_for(|n| *n >= target || failed.load(Ordering::Acquire))
            .await
            .map(|n| *n >= target)
            .unwrap_or(false);
        if caught_up {
            Ok(())
        } else {
            Err(StoreError::Failed)
        }
    }

    /// Marks batch `number` answered; called before its callers are told.
    fn answering(&self, number: u64) {
        self.answered.store(number, Ordering::Release);
    }

    /// Marks batch `number` in the index and wakes the reads waiting for it.
    fn indexed_up_to(&self, number: u64) {
        self.indexed.send_replace(number);
    }

    /// Marks the store failed and wakes the reads waiting for the index.
    fn fail(&self) {
        self.failed.store(true, Ordering::Release);
        self.indexed.send_modify(|_| {});
    }
}

/// What the committer publishes after each group commit.
pub(super) struct Published {
    /// Highest durable sequence number.
    pub(super) seq: AtomicU64,
    /// Durable audit tree size.
    pub(super) tree_size: AtomicU64,
    /// The durable end of the log.
    pub(super) log_end: AtomicU64,
    /// Latest durable checkpoint.
    pub(super) checkpoint: ArcSwapOption<SignedCheckpoint>,
    /// Batch sizes and flush times, for the metrics.
    pub(super) commits: crate::ops::metrics::CommitStats,
}

/// Work for the committer.
pub(super) enum Job {
    /// Messages stored all together or not at all, with their audit leaves.
    Messages {
        messages: Vec<NewMessage>,
        reply: oneshot::Sender<Result<Vec<pb::Receipt>, CommitError>>,
    },
    /// Audit events (reads, refusals); the reply, if any, gets their leaf indices.
    Events {
        leaves: Vec<pb::AuditLeaf>,
        reply: Option<oneshot::Sender<Result<Vec<u64>, StoreError>>>,
    },
    /// Sign a checkpoint if leaves arrived since the last one (a tick), or now (a request).
    Checkpoint {
        reply: Option<oneshot::Sender<Result<SignedCheckpoint, StoreError>>>,
    },
    /// Set a durable subscription's cursor (never backwards), with an audit leaf if given.
    Cursor {
        participant: String,
        name: String,
        seq: u64,
        /// Only create the cursor; leave an existing one as it is.
        create_only: bool,
        leaf: Option<Box<pb::AuditLeaf>>,
        reply: oneshot::Sender<Result<(u64, Option<u64>), StoreError>>,
    },
    /// Record a peer's checkpoint as the latest this gateway cosigned for its log.
    Witnessed {
        record: record::WitnessedRecord,
        reply: oneshot::Sender<Result<Vec<u64>, StoreError>>,
    },
}

/// The single writer.
pub(super) struct Committer {
    /// The index.
    pub(super) engine: Arc<dyn Engine>,
    /// Reads of what is stored, for idempotency checks.
    pub(super) reader: Reader,
    /// The log's end.
    pub(super) appender: Appender,
    /// Next global sequence number.
    pub(super) next_seq: u64,
    /// Highest inbox number per recipient, loaded on first use.
    pub(super) inbox_heads: HashMap<String, u64>,
    /// Published after each commit.
    pub(super) published: Arc<Published>,
    /// Set when a write failed: nothing more is written.
    pub(super) failed: Arc<AtomicBool>,
    /// Most messages per commit.
    pub(super) max_batch: usize,
    /// The right edge of the audit tree, including leaves of the batch being built.
    pub(super) frontier: Frontier,
    /// The right-edge tiles of the durable tree.
    pub(super) edge: Edge,
    /// Signs checkpoints.
    pub(super) signer: NoteSigner,
    /// Size of the last signed checkpoint.
    pub(super) checkpoint_size: Option<u64>,
    /// A checkpoint at least this often while leaves arrive.
    pub(super) checkpoint_interval: Duration,
    /// Builds the audit leaves of the messages stored.
    pub(super) events: Arc<dyn MessageEvents>,
    /// The second stage, started by [`Committer::run`].
    pub(super) indexer: Option<Indexer>,
    /// The batches answered and indexed.
    pub(super) progress: Arc<Progress>,
    /// The latest signed checkpoint, durable in the log.
    pub(super) latest: Option<SignedCheckpoint>,
    /// What batches handed to the indexer and not yet in the index hold.
    pub(super) in_flight: InFlight,
    /// Batches handed to the indexer.
    pub(super) batches: u64,
    /// The time of the last batch: a batch is never stored before it, even when the wall clock
    /// steps back, so that stored times grow with sequence numbers.
    pub(super) last_time: prost_types::Timestamp,
}

/// The third stage: index, publish.
pub(super) struct Indexer {
    /// The index.
    pub(super) engine: Arc<dyn Engine>,
    /// Published after each batch.
    pub(super) published: Arc<Published>,
    /// Live subscribers.
    pub(super) live: super::live::LivePublisher,
    /// Set when a write failed, by either stage: nothing more is written.
    pub(super) failed: Arc<AtomicBool>,
    /// The batches answered and indexed.
    pub(super) progress: Arc<Progress>,
}

/// A batch written to the log, for the syncer: its callers' answers and what the indexer
/// needs once it is durable.
struct Written {
    /// The segment file written, if anything was; its `sync_data` makes the batch durable.
    file: Option<Arc<std::fs::File>>,
    answers: Vec<Answer>,
    durable: Durable,
}

/// A batch durable in the log, for the indexer.
struct Durable {
    number: u64,
    writes: IndexWrites,
    applied: Applied,
    live: Vec<Arc<Live>>,
    signed: Option<SignedCheckpoint>,
    messages: usize,
    leaves: usize,
    bytes: usize,
    started: Instant,
}

/// A batch's number, its `(sender, id)` keys and its cursor keys.
type InFlightBatch = (u64, Vec<(String, String)>, Vec<Vec<u8>>);

/// Idempotency keys and cursors of batches the indexer has not yet written.
#[derive(Default)]
pub(super) struct InFlight {
    /// Per batch number, the keys it added below.
    batches: std::collections::VecDeque<InFlightBatch>,
    messages: HashMap<(String, String), ([u8; 32], pb::Receipt)>,
    cursors: HashMap<Vec<u8>, u64>,
}

impl InFlight {
    /// Forgets the batches up to `indexed`: the index has them now.
    fn prune(&mut self, indexed: u64) {
        while self.batches.front().is_some_and(|(n, _, _)| *n <= indexed) {
            let (_, messages, cursors) = self.batches.pop_front().expect("checked");
            for key in messages {
                self.messages.remove(&key);
            }
            for key in cursors {
                self.cursors.remove(&key);
            }
        }
    }
}

/// The outcome of the check phase for one message of a job.
enum Check {
    /// Not stored yet.
    Fresh,
    /// Stored already, same content: answer the original receipt.
    Duplicate(pb::Receipt),
    /// Raised from a message of the job that is stored already: not stored again, no receipt.
    Skip,
}

/// Replies owed once the batch is durable.
enum Answer {
    Messages(
        oneshot::Sender<Result<Vec<pb::Receipt>, CommitError>>,
        Result<Vec<pb::Receipt>, CommitError>,
    ),
    Events(oneshot::Sender<Result<Vec<u64>, StoreError>>, Vec<u64>),
    Checkpoint(
        oneshot::Sender<Result<SignedCheckpoint, StoreError>>,
        Option<SignedCheckpoint>,
    ),
    Cursor(
        oneshot::Sender<Result<(u64, Option<u64>), StoreError>>,
        Result<(u64, Option<u64>), StoreError>,
    ),
}

/// The batch being built.
struct Batch {
    /// Where its first frame will be.
    base: u64,
    /// Its frames, in log order.
    frames: Vec<u8>,
    /// What the index learns from them.
    writes: IndexWrites,
    /// Hashes of its leaves, for the tiles.
    leaf_hashes: Vec<Hash>,
    now: prost_types::Timestamp,
    /// (sender, id) → (digest, receipt) of messages placed in this batch.
    pending: HashMap<(String, String), ([u8; 32], pb::Receipt)>,
    messages: usize,
    /// Messages placed, for live subscribers once durable.
    live: Vec<Arc<Live>>,
    /// Cursors written in this batch.
    cursors: HashMap<Vec<u8>, u64>,
    /// Records framed.
    records: u32,
}

impl Batch {
    /// Frames `record`; returns its location.
    fn push(&mut self, record: &LogRecord) -> index::Location {
        let pos = self.base + self.frames.len() as u64;
        let len = record::frame_record(record, &mut self.frames);
        self.records += 1;
        (pos, len as u32)
    }
}

impl Committer {
    /// Commits jobs until the queue closes, then signs a last checkpoint and waits until the
    /// indexer has written everything.
    pub(super) fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let (to_indexer, from_syncer) = std::sync::mpsc::sync_channel::<Durable>(2);
        let (to_syncer, from_committer) = std::sync::mpsc::sync_channel::<Written>(4);
        let indexer = self.indexer.take().expect("run once");
        let syncer = Syncer {
            progress: self.progress.clone(),
            published: self.published.clone(),
            indexer: to_indexer,
        };
        let stages = std::thread::Builder::new()
            .name("ipex-indexer".into())
            .spawn(move || indexer.run(from_syncer))
            .and_then(|indexing| {
                std::thread::Builder::new()
                    .name("ipex-syncer".into())
                    .spawn(move || syncer.run(from_committer))
                    .map(|syncing| (syncing, indexing))
            });
        let (syncing, indexing) = match stages {
            Ok(handles) => handles,
            Err(error) => {
                tracing::error!(%error, "cannot start the syncer and the indexer; refusing writes");
                self.progress.fail();
                while let Some(job) = queue.blocking_recv() {
                    job.fail(StoreError::Failed);
                }
                return;
            }
        };
        let mut last_checkpoint = Instant::now();
        while let Some(first) = queue.blocking_recv() {
            let mut jobs = vec![first];
            let mut messages = jobs[0].weight();
            while messages < self.max_batch {
                match queue.try_recv() {
                    Ok(job) => {
                        messages += job.weight();
                        jobs.push(job);
                    }
                    Err(_) => break,
                }
            }
            let due = last_checkpoint.elapsed() >= self.checkpoint_interval;
            if self.commit_jobs(jobs, due, &to_syncer) {
                last_checkpoint = Instant::now();
            }
        }
        // Closing: sign what is not signed yet, and let the syncer and the indexer finish.
        self.commit_jobs(vec![], true, &to_syncer);
        drop(to_syncer);
        let _ = syncing.join();
        let _ = indexing.join();
    }

    /// Writes one batch to the log and hands it to the indexer; returns true when it signed a
    /// checkpoint.
    fn commit_jobs(
        &mut self,
        jobs: Vec<Job>,
        checkpoint_due: bool,
        syncer: &std::sync::mpsc::SyncSender<Written>,
    ) -> bool {
        if self.failed.load(Ordering::Relaxed) {
            for job in jobs {
                job.fail(StoreError::Failed);
            }
            return false;
        }
        let started = Instant::now();
        self.in_flight.prune(self.progress.indexed());
        let tree_before = self.frontier.clone();
        let seq_before = self.next_seq;
        let heads_before = self.inbox_heads.clone();
        let mut batch = Batch {
            base: self.appender.next_position(),
            frames: Vec::new(),
            writes: IndexWrites::default(),
            leaf_hashes: Vec::new(),
            now: {
                let now = prost_types::Timestamp::from(SystemTime::now());
                if (now.seconds, now.nanos) < (self.last_time.seconds, self.last_time.nanos) {
                    self.last_time
                } else {
                    now
                }
            },
            pending: HashMap::new(),
            messages: 0,
            live: Vec::new(),
            cursors: HashMap::new(),
            records: 0,
        };
        self.last_time = batch.now;
        let mut answers = Vec::with_capacity(jobs.len());
        let mut checkpoint_requested = false;
        for job in jobs {
            match job {
                Job::Messages { messages, reply } => {
                    let result = self
                        .check(&messages, &batch.pending)
                        .and_then(|checks| self.place(&messages, checks, &mut batch));
                    answers.push(Answer::Messages(reply, result));
                }
                Job::Events { leaves, reply } => {
                    let indices: Vec<u64> = leaves
                        .into_iter()
                        .map(|leaf| self.append_leaf(leaf, &mut batch))
                        .collect();
                    if let Some(reply) = reply {
                        answers.push(Answer::Events(reply, indices));
                    }
                }
                Job::Checkpoint { reply } => {
                    checkpoint_requested = true;
                    if let Some(reply) = reply {
                        answers.push(Answer::Checkpoint(reply, None));
                    }
                }
                Job::Cursor {
                    participant,
                    name,
                    seq,
                    create_only,
                    leaf,
                    reply,
                } => {
                    let result = self.set_cursor(
                        &participant,
                        &name,
                        seq,
                        create_only,
                        leaf.map(|l| *l),
                        &mut batch,
                    );
                    answers.push(Answer::Cursor(reply, result));
                }
                Job::Witnessed { record, reply } => {
                    batch.writes.witnessed(&record.origin, &record.note);
                    batch.push(&LogRecord {
                        body: Some(Body::Witnessed(record)),
                    });
                    answers.push(Answer::Events(reply, Vec::new()));
                }
            }
        }
        let unsigned = self.checkpoint_size != Some(self.frontier.size());
        let sign = unsigned && (checkpoint_requested || checkpoint_due);
        let signed = if sign {
            match self.sign_checkpoint(&mut batch) {
                Ok(cp) => Some(cp),
                Err(error) => {
                    tracing::error!(%error, "cannot sign a checkpoint");
                    None
                }
            }
        } else {
            None
        };
        let file = match self.write(&mut batch) {
            Ok(file) => file,
            Err(error) => {
                // After a failed write the state of the file is unknown, so refuse all
                // further writes; what did reach the log is indexed by the replay at the
                // next start.
                tracing::error!(%error, "group commit failed; refusing writes until restart");
                self.progress.fail();
                self.frontier = tree_before;
                self.next_seq = seq_before;
                self.inbox_heads = heads_before;
                for answer in answers {
                    answer.fail(error.clone());
                }
                return false;
            }
        };
        if let Some(cp) = &signed {
            self.checkpoint_size = Some(cp.size);
            self.latest = Some(cp.clone());
        }
        for answer in &mut answers {
            if let Answer::Checkpoint(_, latest) = answer {
                latest.clone_from(&self.latest);
            }
        }
        self.batches += 1;
        let number = self.batches;
        self.in_flight.batches.push_back((
            number,
            batch.pending.keys().cloned().collect(),
            batch.cursors.keys().cloned().collect(),
        ));
        self.in_flight.messages.extend(batch.pending.drain());
        self.in_flight.cursors.extend(batch.cursors.drain());
        let durable = Durable {
            number,
            writes: std::mem::take(&mut batch.writes),
            applied: Applied {
                pos: self.appender.end(),
                next_seq: self.next_seq,
                tree_size: self.frontier.size(),
            },
            live: std::mem::take(&mut batch.live),
            signed: signed.clone(),
            messages: batch.messages,
            leaves: batch.leaf_hashes.len(),
            bytes: batch.frames.len(),
            started,
        };
        let written = Written {
            file,
            answers,
            durable,
        };
        if let Err(std::sync::mpsc::SendError(written)) = syncer.send(written) {
            // The syncer is gone: it failed. What is in the log is indexed at the next start.
            self.progress.fail();
            for answer in written.answers {
                answer.fail(StoreError::Failed);
            }
        }
        signed.is_some()
    }

    /// Writes the batch's frames to the end of the log (the syncer makes them durable); the
    /// tiles its leaves changed join its index writes. Returns the file to sync, if anything
    /// was written.
    fn write(&mut self, batch: &mut Batch) -> Result<Option<Arc<std::fs::File>>, StoreError> {
        if batch.frames.is_empty() {
            return Ok(None);
        }
        // A replay indexes the records of a commit together, so that its runs replace the
        // ones the commit (or the group it was indexed in) left in the index (see `recover`).
        record::frame_record(
            &LogRecord {
                body: Some(Body::Commit(CommitRecord {
                    records: batch.records,
                })),
            },
            &mut batch.frames,
        );
        let (at, file) = self
            .appender
            .write(&batch.frames)
            .map_err(|e| StoreError::Engine(format!("appending to the exchange log: {e}")))?;
        debug_assert_eq!(at, batch.base, "the batch was framed for another position");
        batch.writes.tiles(self.edge.append(&batch.leaf_hashes));
        Ok(Some(file))
    }

    /// Adds a cursor record (and its leaf) to the batch.
    fn set_cursor(
        &mut self,
        participant: &str,
        name: &str,
        seq: u64,
        create_only: bool,
        leaf: Option<pb::AuditLeaf>,
        batch: &mut Batch,
    ) -> Result<(u64, Option<u64>), StoreError> {
        let key = keys::cursor(participant, name);
        let current = match batch
            .cursors
            .get(&key)
            .or_else(|| self.in_flight.cursors.get(&key))
        {
            Some(seq) => Some(*seq),
            None => self.engine.get(&key)?.and_then(|v| keys::trailing_u64(&v)),
        };
        let now = match current {
            Some(current) if create_only => current,
            Some(current) => current.max(seq),
            None => seq,
        };
        if current != Some(now) {
            batch.push(&LogRecord {
                body: Some(Body::Cursor(CursorRecord {
                    participant: participant.to_string(),
                    name: name.to_string(),
                    seq: now,
                })),
            });
            batch.writes.cursor(participant, name, now);
            batch.cursors.insert(key, now);
        }
        let leaf_index = leaf.map(|leaf| self.append_leaf(leaf, batch));
        Ok((now, leaf_index))
    }

    /// Adds a leaf to the batch; returns its index.
    fn append_leaf(&mut self, mut leaf: pb::AuditLeaf, batch: &mut Batch) -> u64 {
        leaf.time = Some(batch.now);
        let data = leaf.encode_to_vec();
        let index = self.frontier.size();
        let hash = merkle::leaf_hash(&data);
        self.frontier.push(hash);
        batch.leaf_hashes.push(hash);
        let location = batch.push(&LogRecord {
            body: Some(Body::Leaf(LeafRecord { index, data })),
        });
        batch.writes.leaf(index, location);
        index
    }

    fn sign_checkpoint(&mut self, batch: &mut Batch) -> Result<SignedCheckpoint, String> {
        let size = self.frontier.size();
        let root = self.frontier.root();
        let checkpoint = Checkpoint::new(self.signer.name(), size, root);
        let note = self
            .signer
            .sign_checkpoint(&checkpoint)
            .map_err(|e| e.to_string())?;
        let (pos, len) = batch.push(&LogRecord {
            body: Some(Body::Checkpoint(CheckpointRecord { note: note.clone() })),
        });
        batch.writes.checkpoint(IndexedCheckpoint {
            size,
            applied: Applied {
                pos: pos + u64::from(len),
                next_seq: self.next_seq,
                tree_size: size,
            },
            note: note.clone(),
        });
        Ok(SignedCheckpoint { note, size, root })
    }

    /// Checks every message of a job against stored and pending idempotency keys.
    fn check(
        &self,
        messages: &[NewMessage],
        pending: &HashMap<(String, String), ([u8; 32], pb::Receipt)>,
    ) -> Result<Vec<Check>, CommitError> {
        let mut checks = Vec::with_capacity(messages.len());
        for (index, m) in messages.iter().enumerate() {
            if let Some(source) = m.derived_from {
                if matches!(checks.get(source), Some(Check::Duplicate(_) | Check::Skip)) {
                    checks.push(Check::Skip);
                    continue;
                }
            }
            let key = (m.sender.clone(), m.id.clone());
            let existing = match pending
                .get(&key)
                .or_else(|| self.in_flight.messages.get(&key))
            {
                Some((digest, receipt)) => Some((*digest, receipt.clone())),
                None => self.stored_receipt(&m.sender, &m.id)?,
            };
            // Two messages with one id inside a job: the second is checked against the first.
            let earlier = messages[..index]
                .iter()
                .find(|e| e.sender == m.sender && e.id == m.id);
            match (existing, earlier) {
                (Some((digest, receipt)), _) if digest == m.digest || m.derived_from.is_some() => {
                    checks.push(Check::Duplicate(pb::Receipt {
                        duplicate: true,
                        ..receipt
                    }))
                }
                (Some((_, receipt)), _) => {
                    return Err(CommitError::Conflict {
                        index,
                        sender: m.sender.clone(),
                        id: m.id.clone(),
                        seq: receipt.seq,
                    })
                }
                (None, Some(_)) => {
                    return Err(CommitError::Conflict {
                        index,
                        sender: m.sender.clone(),
                        id: m.id.clone(),
                        seq: 0,
                    })
                }
                (None, None) => checks.push(Check::Fresh),
            }
        }
        Ok(checks)
    }

    fn stored_receipt(
        &self,
        sender: &str,
        id: &str,
    ) -> Result<Option<([u8; 32], pb::Receipt)>, StoreError> {
        let Some(seq) = self.reader.seq_of(sender, id)? else {
            return Ok(None);
        };
        let stored = self
            .reader
            .message(seq)?
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("{sender}/{id}"),
                reason: format!("idempotency key points at missing seq {seq}"),
            })?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&stored.receipt.envelope_sha256, &mut digest).map_err(|e| {
            StoreError::Corrupt {
                key: format!("message {seq}"),
                reason: format!("receipt digest: {e}"),
            }
        })?;
        Ok(Some((digest, stored.receipt)))
    }

    /// Assigns numbers and leaves to the fresh messages of a job and frames their records.
    fn place(
        &mut self,
        messages: &[NewMessage],
        checks: Vec<Check>,
        batch: &mut Batch,
    ) -> Result<Vec<pb::Receipt>, CommitError> {
        // Load every inbox head first so that a read error leaves nothing half placed.
        for m in messages {
            for recipient in &m.deliver_to {
                self.inbox_head(recipient)?;
            }
        }
        let mut receipts = Vec::with_capacity(messages.len());
        for (m, check) in messages.iter().zip(checks) {
            match check {
                Check::Duplicate(receipt) => {
                    receipts.push(receipt);
                    continue;
                }
                Check::Skip => continue,
                Check::Fresh => {}
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let accepted_leaf = self.append_leaf(self.events.accepted(m, seq), batch);
            let mut placements = Vec::with_capacity(m.deliver_to.len());
            for recipient in &m.deliver_to {
                let head = self.inbox_heads.get_mut(recipient).expect("loaded above");
                *head += 1;
                let inbox_no = *head;
                let leaf = self.events.delivered(m, seq, recipient, inbox_no);
                let leaf_index = self.append_leaf(leaf, batch);
                placements.push(pb::InboxPlacement {
                    recipient: recipient.clone(),
                    inbox_no,
                    leaf_index,
                });
            }
            if let Some(leaf) = self.events.answered(m, seq) {
                self.append_leaf(leaf, batch);
            }
            let receipt = pb::Receipt {
                sender: m.sender.clone(),
                id: m.id.clone(),
                seq,
                placements,
                stored_at: Some(batch.now),
                envelope_sha256: hex::encode(m.digest),
                officer: m.officer.clone().unwrap_or_default(),
                duplicate: false,
                leaf_index: accepted_leaf,
            };
            let location = batch.push(&LogRecord {
                body: Some(Body::Message(MessageRecord {
                    envelope: m.encoded.clone(),
                    receipt: Some(receipt.clone()),
                })),
            });
            batch.writes.message(MessageEntry {
                seq,
                location,
                sender: &m.sender,
                id: &m.id,
                placements: receipt
                    .placements
                    .iter()
                    .map(|p| (p.recipient.as_str(), p.inbox_no))
                    .collect(),
                prefixes: &m.index_prefixes,
            });
            batch.pending.insert(
                (m.sender.clone(), m.id.clone()),
                (m.digest, receipt.clone()),
            );
            batch.live.push(Arc::new(Live::new(
                m.envelope.clone(),
                receipt.clone(),
                &m.encoded,
            )));
            batch.messages += 1;
            receipts.push(receipt);
        }
        Ok(receipts)
    }

    fn inbox_head(&mut self, recipient: &str) -> Result<u64, StoreError> {
        if let Some(head) = self.inbox_heads.get(recipient) {
            return Ok(*head);
        }
        let head = index::inbox_head(self.engine.as_ref(), recipient, u64::MAX)?;
        self.inbox_heads.insert(recipient.to_string(), head);
        Ok(head)
    }
}

impl Answer {
    /// Answers with `error` instead of the result.
    fn fail(self, error: StoreError) {
        match self {
            Answer::Messages(reply, _) => {
                let _ = reply.send(Err(error.into()));
            }
            Answer::Events(reply, _) => {
                let _ = reply.send(Err(error));
            }
            Answer::Checkpoint(reply, _) => {
                let _ = reply.send(Err(error));
            }
            Answer::Cursor(reply, _) => {
                let _ = reply.send(Err(error));
            }
        }
    }

    /// Answers with the result.
    fn send(self) {
        match self {
            Answer::Messages(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Events(reply, indices) => {
                let _ = reply.send(Ok(indices));
            }
            Answer::Cursor(reply, result) => {
                let _ = reply.send(result);
            }
            Answer::Checkpoint(reply, latest) => {
                let _ = reply.send(latest.ok_or(StoreError::Engine("no checkpoint yet".into())));
            }
        }
    }
}

/// The second stage: sync, answer.
struct Syncer {
    progress: Arc<Progress>,
    published: Arc<Published>,
    indexer: std::sync::mpsc::SyncSender<Durable>,
}

impl Syncer {
    /// Makes the batches written durable, as many at once as are waiting, answers their
    /// callers and hands them to the indexer, in order.
    fn run(self, batches: std::sync::mpsc::Receiver<Written>) {
        let mut failed = false;
        while let Ok(first) = batches.recv() {
            let mut waiting = vec![first];
            while let Ok(next) = batches.try_recv() {
                waiting.push(next);
            }
            if !failed {
                // A segment is synced in full before the next begins, so syncing the last
                // file written makes every batch waiting durable.
                if let Some(file) = waiting.iter().rev().find_map(|w| w.file.as_ref()) {
                    let flushing = Instant::now();
                    if let Err(error) = file.sync_data() {
                        // After a failed fsync the state of the file is unknown (and retrying
                        // it can report success for lost data), so refuse all further writes;
                        // what did reach the log is indexed by the replay at the next start.
                        tracing::error!(%error, "syncing the exchange log failed; refusing writes until restart");
                        failed = true;
                        self.progress.fail();
                    }
                    self.published
                        .commits
                        .flush_seconds
                        .observe(flushing.elapsed().as_secs_f64());
                }
            }
            for written in waiting {
                if failed {
                    for answer in written.answers {
                        answer.fail(StoreError::Failed);
                    }
                    continue;
                }
                // Durable: the callers may know. Reads they make next wait for the index to
                // hold this batch (`Progress::settled`).
                self.progress.answering(written.durable.number);
                for answer in written.answers {
                    answer.send();
                }
                if self.indexer.send(written.durable).is_err() {
                    // The indexer is gone: it failed. The replay at the next start indexes
                    // what is in the log.
                    failed = true;
                    self.progress.fail();
                }
            }
        }
    }
}

impl Durable {
    /// Takes in the batch that follows, so that both are indexed with one write.
    fn absorb(&mut self, later: Durable) {
        self.number = later.number;
        self.writes.absorb(later.writes);
        self.applied = later.applied;
        self.live.extend(later.live);
        if later.signed.is_some() {
            self.signed = later.signed;
        }
    }
}

impl Indexer {
    /// Counts one group commit for the metrics and the debug log.
    fn observe(&self, batch: &Durable) {
        if batch.messages > 0 {
            self.published
                .commits
                .batch_messages
                .observe(batch.messages as f64);
        }
        if batch.bytes > 0 {
            tracing::debug!(
                messages = batch.messages,
                leaves = batch.leaves,
                bytes = batch.bytes,
                micros = batch.started.elapsed().as_micros() as u64,
                "group commit"
            );
        }
    }

    /// Writes the durable batches into the index, in order, then publishes them and answers.
    /// Batches that wait when the indexer is behind are indexed together, up to one that
    /// signed a checkpoint: their runs join, so a list takes one key for all of them, and the
    /// index catches up with fewer writes.
    fn run(self, batches: std::sync::mpsc::Receiver<Durable>) {
        while let Ok(mut batch) = batches.recv() {
            self.observe(&batch);
            // A group ends with a batch that signed a checkpoint: a replay at start may begin
            // right after one, writing a run per commit from there, and must then overwrite
            // the run keys this writes, not add runs beside them.
            while batch.signed.is_none() {
                let Ok(later) = batches.try_recv() else {
                    break;
                };
                self.observe(&later);
                batch.absorb(later);
            }
            if self.failed.load(Ordering::Relaxed) {
                continue;
            }
            if let Err(error) = batch.writes.apply(self.engine.as_ref(), batch.applied) {
                // The batch is durable in the log and its callers were answered: the replay
                // at the next start indexes it. Until then reads refuse rather than miss it.
                tracing::error!(%error, "writing the index failed; refusing writes until restart");
                self.progress.fail();
                continue;
            }
            let published = &self.published;
            published
                .seq
                .store(batch.applied.next_seq - 1, Ordering::Release);
            published
                .tree_size
                .store(batch.applied.tree_size, Ordering::Release);
            published
                .log_end
                .store(batch.applied.pos, Ordering::Release);
            if let Some(cp) = &batch.signed {
                published.checkpoint.store(Some(Arc::new(cp.clone())));
            }
            self.progress.indexed_up_to(batch.number);
            for message in batch.live {
                self.live.publish(message);
            }
        }
    }
}

impl Job {
    /// How much of a batch this job takes.
    fn weight(&self) -> usize {
        match self {
            Job::Messages { messages, .. } => messages.len(),
            Job::Events { leaves, .. } => leaves.len(),
            Job::Checkpoint { .. } => 0,
            Job::Cursor { .. } | Job::Witnessed { .. } => 1,
        }
    }

    /// Answers the job with an error without doing it.
    fn fail(self, error: StoreError) {
        match self {
            Job::Messages { reply, .. } => {
                let _ = reply.send(Err(error.into()));
            }
            Job::Events {
                reply: Some(reply), ..
            } => {
                let _ = reply.send(Err(error));
            }
            Job::Checkpoint { reply: Some(reply) } => {
                let _ = reply.send(Err(error));
            }
            Job::Cursor { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Job::Witnessed { reply, .. } => {
                let _ = reply.send(Err(error));
            }
            Job::Events { reply: None, .. } | Job::Checkpoint { reply: None } => {}
        }
    }
}
