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
pub mod keys;

use crate::domain::facets::{Facet, Facets};
use crate::log::leaf::SignedCheckpoint;
use crate::log::merkle::{self, Frontier, Hash, NodeSource};
use crate::log::note::NoteSigner;
use crate::pb;
use arc_swap::ArcSwapOption;
use audit::{AuditError, EngineNodes};
use committer::{Committer, Job};
pub use engine::{Engine, SledEngine, WriteBatch};
use prost::Message;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Storage failures.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The engine reported an error.
    #[error("storage engine error: {0}")]
    Engine(String),
    /// A stored value does not decode: the store is damaged.
    #[error("stored record {key} is damaged: {reason}")]
    Corrupt {
        /// Which key.
        key: String,
        /// What is wrong.
        reason: String,
    },
    /// An earlier flush failed; the store refuses writes until the gateway restarts.
    #[error("the store failed to flush earlier and refuses writes until restart")]
    Failed,
    /// The gateway is shutting down.
    #[error("the store is closed")]
    Closed,
}

/// Why a commit was refused.
#[derive(Debug, Clone, thiserror::Error)]
pub enum CommitError {
    /// The (sender, id) pair is already stored with different content.
    #[error("message {id:?} of {sender} is already stored with different content (seq {seq})")]
    Conflict {
        /// Position of the message in its job.
        index: usize,
        /// Sender.
        sender: String,
        /// Id.
        id: String,
        /// Sequence number of the stored message.
        seq: u64,
    },
    /// Storage failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What is stored per message.
#[derive(Clone, PartialEq, Message)]
pub struct Record {
    /// The canonical envelope bytes (protobuf, sender and kind set by the gateway).
    #[prost(bytes = "vec", tag = "1")]
    pub envelope: Vec<u8>,
    /// The receipt given to the sender.
    #[prost(message, optional, tag = "2")]
    pub receipt: Option<pb::Receipt>,
}

/// A stored message, decoded.
#[derive(Clone, Debug)]
pub struct Stored {
    /// The envelope.
    pub envelope: pb::Envelope,
    /// Its receipt.
    pub receipt: pb::Receipt,
}

/// A message ready to be stored: validated and authorized.
#[derive(Clone, Debug)]
pub struct NewMessage {
    /// Sender participant id.
    pub sender: String,
    /// Sender's message id.
    pub id: String,
    /// Its kind.
    pub kind: pb::Kind,
    /// Canonical envelope bytes.
    pub encoded: Vec<u8>,
    /// SHA-256 of `encoded`.
    pub digest: [u8; 32],
    /// Participants whose inbox receives it.
    pub deliver_to: Vec<String>,
    /// Officer who submitted, if known.
    pub officer: Option<String>,
    /// The message it answers, `(sender, seq)`, for outcomes and responses.
    pub answers: Option<(String, u64)>,
    /// The envelope as stored, for live delivery.
    pub envelope: Arc<pb::Envelope>,
    /// Its search index key prefixes ([`index_prefixes`]), computed by the submitting call so
    /// that the committer only appends the sequence number.
    pub index_prefixes: Vec<Vec<u8>>,
}

/// The audit leaves of a message being stored, built by the application once the committer
/// has numbered it (the store writes leaves; what they say is not its business).
pub trait MessageEvents: Send + Sync {
    /// The leaf that records the acceptance of `message` as number `seq`.
    fn accepted(&self, message: &NewMessage, seq: u64) -> pb::AuditLeaf;
    /// The leaf that records its placement as number `inbox_no` of `recipient`'s inbox.
    fn delivered(
        &self,
        message: &NewMessage,
        seq: u64,
        recipient: &str,
        inbox_no: u64,
    ) -> pb::AuditLeaf;
    /// The leaf that records what it answers, if it answers a message.
    fn answered(&self, message: &NewMessage, seq: u64) -> Option<pb::AuditLeaf>;
}

/// The search index key prefixes of a message with `facets`: one per facet value it is
/// indexed under.
pub fn index_prefixes(facets: &Facets) -> Vec<Vec<u8>> {
    let mut prefixes: Vec<Vec<u8>> = Vec::new();
    for (facet, value) in facets.iter() {
        for indexed in facet.index_values(value) {
            let prefix = keys::posting_prefix(facet, indexed);
            if !prefixes.contains(&prefix) {
                prefixes.push(prefix);
            }
        }
    }
    prefixes
}

/// A message just made durable, as live subscribers receive it.
#[derive(Clone, Debug)]
pub struct Live {
    /// The envelope.
    pub envelope: Arc<pb::Envelope>,
    /// Its receipt.
    pub receipt: pb::Receipt,
}

/// Tuning of the committer.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most messages written in one flush.
    pub max_batch: usize,
    /// Jobs that may wait for the committer before submitters wait too.
    pub queue: usize,
    /// A new checkpoint at least this often while leaves arrive.
    pub checkpoint_interval: Duration,
    /// Recompute and compare the whole audit tree on open.
    pub verify_on_open: bool,
    /// Messages kept for live subscribers; one that falls further behind catches up from the
    /// store.
    pub live_buffer: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 512,
            queue: 4096,
            checkpoint_interval: Duration::from_secs(1),
            verify_on_open: true,
            live_buffer: 1024,
        }
    }
}

/// Errors opening the store.
#[derive(Debug, thiserror::Error)]
pub enum OpenStoreError {
    /// The engine failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The audit log does not match its signed history: the gateway must not start.
    #[error(transparent)]
    Audit(#[from] AuditError),
}

/// What the committer publishes after each flush.
struct Published {
    /// Highest durable sequence number.
    seq: AtomicU64,
    /// Durable audit tree size.
    tree_size: AtomicU64,
    /// Latest durable checkpoint.
    checkpoint: ArcSwapOption<SignedCheckpoint>,
    /// Batch sizes and flush times, for the metrics.
    commits: crate::ops::metrics::CommitStats,
}

/// The message store.
pub struct Store {
    /// The engine.
    engine: Arc<dyn Engine>,
    /// The committer's queue; `None` once closed.
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    /// The committer thread.
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// What is durable.
    published: Arc<Published>,
    /// The checkpoint signer's verifier key.
    verifier_key: String,
    /// Messages just made durable, in sequence order, for live subscribers.
    live: tokio::sync::broadcast::Sender<Arc<Live>>,
}

impl Store {
    /// Opens the store in `dir`, checks its audit log against the last checkpoint signed by
    /// `signer`, and starts the committer and its checkpoint ticker.
    pub fn open(
        dir: &Path,
        options: StoreOptions,
        signer: NoteSigner,
        events: Arc<dyn MessageEvents>,
    ) -> Result<Store, OpenStoreError> {
        let kv: Arc<dyn Engine> = Arc::new(SledEngine::open(dir)?);
        let last_seq = match kv.last_in(keys::ENVELOPE)? {
            Some((key, _)) => keys::trailing_u64(&key).ok_or_else(|| StoreError::Corrupt {
                key: hex::encode(&key),
                reason: "envelope key without a sequence number".into(),
            })?,
            None => 0,
        };
        let (frontier, checkpoint) = if options.verify_on_open {
            audit::check_store(kv.as_ref(), &signer.verifier())?
        } else {
            let size = match kv.last_in(keys::LEAF)? {
                Some((key, _)) => keys::trailing_u64(&key).map_or(0, |i| i + 1),
                None => 0,
            };
            let frontier = Frontier::from_source(size, &EngineNodes(kv.as_ref()))?;
            (frontier, audit::latest_checkpoint(kv.as_ref())?)
        };
        let published = Arc::new(Published {
            seq: AtomicU64::new(last_seq),
            tree_size: AtomicU64::new(frontier.size()),
            checkpoint: ArcSwapOption::from(checkpoint.clone().map(Arc::new)),
            commits: crate::ops::metrics::CommitStats::default(),
        });
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let verifier_key = signer.verifier_key();
        let (live, _) = tokio::sync::broadcast::channel(options.live_buffer.max(16));
        let committer = Committer::new(
            kv.clone(),
            last_seq + 1,
            published.clone(),
            options.max_batch.max(1),
            frontier,
            signer,
            checkpoint.map(|c| c.size),
            options.checkpoint_interval,
            live.clone(),
            events,
        );
        let handle = std::thread::Builder::new()
            .name("ipex-committer".into())
            .spawn(move || committer.run(rx))
            .map_err(|e| StoreError::Engine(format!("cannot start the committer: {e}")))?;
        // The ticker holds only a weak sender, so closing the store ends it.
        let ticker = tx.downgrade();
        let interval = options.checkpoint_interval.max(Duration::from_millis(10));
        std::thread::Builder::new()
            .name("ipex-checkpoints".into())
            .spawn(move || loop {
                std::thread::sleep(interval);
                let Some(tx) = ticker.upgrade() else { break };
                if tx.blocking_send(Job::Checkpoint { reply: None }).is_err() {
                    break;
                }
            })
            .map_err(|e| StoreError::Engine(format!("cannot start the checkpoint ticker: {e}")))?;
        Ok(Store {
            engine: kv,
            queue: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(handle)),
            published,
            verifier_key,
            live,
        })
    }

    /// Receives every message made durable from now on, in sequence order. A receiver that
    /// falls more than `live_buffer` messages behind is told it lagged.
    pub fn live(&self) -> tokio::sync::broadcast::Receiver<Arc<Live>> {
        self.live.subscribe()
    }

    /// The acknowledged sequence number of a durable subscription.
    pub fn cursor(&self, participant: &str, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .engine
            .get(&keys::cursor(participant, name))?
            .and_then(|v| keys::trailing_u64(&v)))
    }

    /// Sets a durable subscription's cursor to `seq` (it never moves backwards; with
    /// `create_only` an existing cursor is kept), durably, with `leaf` in the audit log.
    /// Returns the cursor now and the leaf's index.
    pub async fn set_cursor(
        &self,
        participant: &str,
        name: &str,
        seq: u64,
        create_only: bool,
        leaf: Option<pb::AuditLeaf>,
    ) -> Result<(u64, Option<u64>), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue()?
            .send(Job::Cursor {
                participant: participant.to_string(),
                name: name.to_string(),
                seq,
                create_only,
                leaf,
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    fn queue(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        self.queue
            .lock()
            .expect("queue lock is never poisoned: no code panics while holding it")
            .clone()
            .ok_or(StoreError::Closed)
    }

    /// Stores `messages` all together or not at all, durably, with their audit leaves, and
    /// returns one receipt each. A message whose (sender, id) is already stored with the same
    /// digest gets its original receipt, marked `duplicate`.
    pub async fn commit(&self, messages: Vec<NewMessage>) -> Result<Vec<pb::Receipt>, CommitError> {
        let (reply, answer) = oneshot::channel();
        self.queue()?
            .send(Job::Messages { messages, reply })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Appends audit events and waits until they are durable; returns their leaf indices.
    pub async fn record(&self, leaves: Vec<pb::AuditLeaf>) -> Result<Vec<u64>, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue()?
            .send(Job::Events {
                leaves,
                reply: Some(reply),
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// Queues audit events without waiting for them to be written. Returns false when the
    /// queue is full or closed and the events were dropped.
    pub fn record_later(&self, leaves: Vec<pb::AuditLeaf>) -> bool {
        self.queue().ok().is_some_and(|q| {
            q.try_send(Job::Events {
                leaves,
                reply: None,
            })
            .is_ok()
        })
    }

    /// A checkpoint covering every leaf durable so far, signing a new one if needed.
    pub async fn checkpoint_now(&self) -> Result<SignedCheckpoint, StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue()?
            .send(Job::Checkpoint { reply: Some(reply) })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The latest durable checkpoint.
    pub fn latest_checkpoint(&self) -> Option<Arc<SignedCheckpoint>> {
        self.published.checkpoint.load_full()
    }

    /// The note verifier key of the checkpoint signer.
    pub fn verifier_key(&self) -> &str {
        &self.verifier_key
    }

    /// Durable audit tree size.
    pub fn tree_size(&self) -> u64 {
        self.published.tree_size.load(Ordering::Acquire)
    }

    /// Proof that leaf `index` is in the tree of `size` leaves (both within the durable log).
    pub fn inclusion_proof(&self, index: u64, size: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::inclusion_proof(index, size, &EngineNodes(self.engine.as_ref()))
            .map_err(proof_error)
    }

    /// Proof that the tree of `first` leaves is a prefix of the tree of `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::consistency_proof(first, second, &EngineNodes(self.engine.as_ref()))
            .map_err(proof_error)
    }

    /// Leaves `[start, end)` of the durable log: `(index, leaf hash, data)`.
    pub fn leaves(&self, start: u64, end: u64) -> Result<Vec<(u64, Hash, Vec<u8>)>, StoreError> {
        let end = end.min(self.tree_size());
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        for entry in self
            .engine
            .range(&keys::leaf(start), &keys::leaf(end), false)
        {
            let (key, data) = entry?;
            let index = keys::trailing_u64(&key).unwrap_or(0);
            out.push((
                index,
                EngineNodes(self.engine.as_ref()).node(0, index)?,
                data,
            ));
        }
        Ok(out)
    }

    /// Stops accepting writes, lets the committer finish what is queued (and sign a final
    /// checkpoint), and flushes.
    pub fn close(&self) -> Result<(), StoreError> {
        self.queue
            .lock()
            .expect("queue lock is never poisoned")
            .take();
        if let Some(handle) = self
            .committer
            .lock()
            .expect("committer lock is never poisoned")
            .take()
        {
            // The committer only panics on a bug; the flush below still runs.
            let _ = handle.join();
        }
        self.engine.flush()
    }

    /// Highest durable sequence number: the number of messages stored.
    pub fn last_seq(&self) -> u64 {
        self.published.seq.load(Ordering::Acquire)
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        self.engine.size_on_disk()
    }

    /// The root of the tree of the first `size` leaves of the durable log.
    pub fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        merkle::root_at(size, &EngineNodes(self.engine.as_ref()))
    }

    /// The hash of audit leaf `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, StoreError> {
        EngineNodes(self.engine.as_ref()).node(0, index)
    }

    /// Up to `budget` sequence numbers in `[low, high]` of the messages indexed under any of
    /// `values` of `facet` (under every message when `facet` is `None`), newest first unless
    /// `oldest_first`. Checking them against the rest of a query is the caller's.
    pub fn postings(
        &self,
        index: Option<(Facet, &[String])>,
        low: u64,
        high: u64,
        budget: usize,
        oldest_first: bool,
    ) -> Result<Vec<u64>, StoreError> {
        if low > high {
            return Ok(Vec::new());
        }
        let end = high.saturating_add(1);
        let ranges: Vec<(Vec<u8>, Vec<u8>)> = match index {
            Some((facet, values)) => values
                .iter()
                .map(|v| {
                    let prefix = keys::posting_prefix(facet, facet.index_lookup(v));
                    (keys::posting(&prefix, low), keys::posting(&prefix, end))
                })
                .collect(),
            None => vec![(keys::envelope(low), keys::envelope(end))],
        };
        let mut seqs = Vec::new();
        for (from, to) in ranges {
            for entry in self.engine.range(&from, &to, !oldest_first).take(budget) {
                let (key, _) = entry?;
                seqs.extend(keys::trailing_u64(&key));
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        if !oldest_first {
            seqs.reverse();
        }
        seqs.truncate(budget);
        Ok(seqs)
    }

    /// What the committer measured of its group commits.
    pub fn commit_stats(&self) -> &crate::ops::metrics::CommitStats {
        &self.published.commits
    }

    /// The message with sequence number `seq`.
    pub fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        if seq == 0 || seq > self.last_seq() {
            return Ok(None);
        }
        let key = keys::envelope(seq);
        let Some(bytes) = self.engine.get(&key)? else {
            return Ok(None);
        };
        decode_record(&key, &bytes).map(Some)
    }

    /// The sequence number of the message `id` of `sender`, if stored durably.
    pub fn seq_of(&self, sender: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let key = keys::idempotency(sender, id);
        let Some(value) = self.engine.get(&key)? else {
            return Ok(None);
        };
        let seq = keys::trailing_u64(&value).ok_or_else(|| StoreError::Corrupt {
            key: String::from_utf8_lossy(&key).into_owned(),
            reason: "idempotency value is not a sequence number".into(),
        })?;
        Ok((seq <= self.last_seq()).then_some(seq))
    }

    /// The message `id` of `sender`.
    pub fn get_by_ref(&self, sender: &str, id: &str) -> Result<Option<Stored>, StoreError> {
        match self.seq_of(sender, id)? {
            Some(seq) => self.get(seq),
            None => Ok(None),
        }
    }

    /// Up to `limit` durable inbox entries of `recipient` after `after`: `(inbox_no, seq)`.
    pub fn inbox(
        &self,
        recipient: &str,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(u64, u64)>, StoreError> {
        let durable = self.last_seq();
        let from = keys::inbox(recipient, after.saturating_add(1));
        let to = keys::inbox(recipient, u64::MAX);
        let mut out = Vec::with_capacity(limit.min(1024));
        for entry in self.engine.range(&from, &to, false) {
            let (key, value) = entry?;
            let (Some(no), Some(seq)) = (keys::trailing_u64(&key), keys::trailing_u64(&value))
            else {
                return Err(StoreError::Corrupt {
                    key: hex::encode(&key),
                    reason: "inbox entry without numbers".into(),
                });
            };
            // Inbox numbers are given in sequence order: nothing after this is durable either.
            if seq > durable || out.len() >= limit {
                break;
            }
            out.push((no, seq));
        }
        Ok(out)
    }

    /// The highest durable inbox number of `recipient` (0 for an empty inbox).
    pub fn inbox_head(&self, recipient: &str) -> Result<u64, StoreError> {
        let durable = self.last_seq();
        let from = keys::inbox(recipient, 0);
        let to = keys::inbox(recipient, u64::MAX);
        for entry in self.engine.range(&from, &to, true) {
            let (key, value) = entry?;
            if keys::trailing_u64(&value).is_some_and(|seq| seq <= durable) {
                return Ok(keys::trailing_u64(&key).unwrap_or(0));
            }
        }
        Ok(0)
    }
}

fn decode_record(key: &[u8], bytes: &[u8]) -> Result<Stored, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: hex::encode(key),
        reason,
    };
    let record = Record::decode(bytes).map_err(|e| corrupt(e.to_string()))?;
    let envelope =
        pb::Envelope::decode(record.envelope.as_slice()).map_err(|e| corrupt(e.to_string()))?;
    let receipt = record
        .receipt
        .ok_or_else(|| corrupt("record without receipt".into()))?;
    Ok(Stored { envelope, receipt })
}

fn proof_error(e: merkle::ProofError<StoreError>) -> StoreError {
    match e {
        merkle::ProofError::Source(e) => e,
        other => StoreError::Engine(other.to_string()),
    }
}
