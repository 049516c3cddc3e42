//! Durable storage of envelopes, their idempotency keys and inboxes, with group commit.
//!
//! Everything lives in one sled tree behind the small [`Kv`] facade (get, range, atomic batch,
//! flush), so the engine stays replaceable. Writes go through one committer thread: it takes
//! every job waiting in its queue, checks idempotency keys, assigns sequence and inbox numbers,
//! writes all of it as one atomic batch and flushes once; only then are the callers answered.
//! Durability therefore costs one flush per batch, not per call, and the committer, being the
//! only writer, keeps the counters in memory.
//!
//! Key layout (big-endian numbers so that byte order is numeric order):
//! - `e/<seq:u64>` → [`Record`]: the canonical envelope bytes and the receipt;
//! - `k/<sender>\0<id>` → `<seq:u64>`: the idempotency key;
//! - `i/<recipient>\0<inbox_no:u64>` → `<seq:u64>`: each recipient's inbox;
//! - `x/<facet>/<value>\0<seq:u64>` → empty: the search indexes ([`crate::search`]);
//! - `u/<participant>\0<name>` → `<seq:u64>`: a durable subscription's acknowledged cursor.
//!
//! The audit log's leaves and tree nodes ([`crate::audit`]) are written by the same committer,
//! in the same batch as the envelope they describe, so an acknowledged envelope always has its
//! leaves; the committer also signs the checkpoints.
//!
//! Readers see only what is durable: the committer publishes the highest flushed sequence
//! number and tree size, and reads ignore anything above them.

use crate::audit::merkle::{self, Frontier, Hash, NodeSource};
use crate::audit::note::{Checkpoint, NoteSigner};
use crate::audit::{self, AuditError, KvNodes, SignedCheckpoint};
use crate::pb;
use arc_swap::ArcSwapOption;
use prost::Message;
use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};
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

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
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

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// The storage facade: the only code that knows the engine.
#[derive(Clone)]
pub struct Kv {
    /// The database, for flushes.
    db: sled::Db,
    /// The one tree everything lives in.
    tree: sled::Tree,
    /// sled's log file, synced after each flush (see [`Kv::flush`]).
    log: Arc<std::fs::File>,
}

/// Writes applied atomically by [`Kv::apply`].
#[derive(Default)]
pub struct WriteBatch {
    /// `(key, value)` in the order given; a later write of a key wins.
    writes: Vec<(Vec<u8>, Vec<u8>)>,
}

impl WriteBatch {
    /// Adds a write.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) {
        self.writes.push((key.to_vec(), value.to_vec()));
    }

    /// How many writes it holds.
    pub fn len(&self) -> usize {
        self.writes.len()
    }

    /// True when it holds no write.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}

impl Kv {
    /// Opens (or creates) the store in `dir`.
    pub fn open(dir: &Path) -> Result<Kv, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            // Our committer flushes explicitly; sled's background flush would only add
            // uncoordinated fsyncs.
            .flush_every_ms(None)
            .open()?;
        let tree = db.open_tree("ipex")?;
        let log = std::fs::File::open(dir.join("db"))
            .map_err(|e| StoreError::Engine(format!("cannot open sled's log file: {e}")))?;
        Ok(Kv {
            db,
            tree,
            log: Arc::new(log),
        })
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    /// The last entry whose key starts with `prefix`.
    pub fn last_in(&self, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .tree
            .scan_prefix(prefix)
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    /// Entries with `from <= key < to`, in key order.
    pub fn range(
        &self,
        from: &[u8],
        to: &[u8],
    ) -> impl DoubleEndedIterator<Item = Result<Entry, StoreError>> {
        self.tree
            .range(from.to_vec()..to.to_vec())
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into))
    }

    /// Applies every write of `batch` atomically (not yet durably: see [`Kv::flush`]).
    ///
    /// This is a sled transaction, not `Tree::apply_batch`: measured on sled 0.34.7, a
    /// `Batch` of many small keys spread over the key space keeps about 3 KiB of memory per
    /// key that is never given back (1.9 GiB after 560 000 index keys), where a transaction of
    /// the same writes keeps what the data needs (155 MiB) for about 20 % more time.
    pub fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        use sled::transaction::{ConflictableTransactionError, TransactionError};
        self.tree
            .transaction(|tx| {
                for (key, value) in &batch.writes {
                    tx.insert(key.as_slice(), value.as_slice())?;
                }
                Ok::<(), ConflictableTransactionError<()>>(())
            })
            .map_err(|e| match e {
                TransactionError::Storage(e) => StoreError::from(e),
                TransactionError::Abort(()) => StoreError::Engine("transaction aborted".into()),
            })
    }

    /// Makes everything applied so far durable. sled 0.34 writes its log with
    /// `sync_file_range`, which neither saves the file's metadata (its growth) nor empties the
    /// drive's write cache; the `fdatasync` that follows does both.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log
            .sync_data()
            .map_err(|e| StoreError::Engine(format!("fdatasync of sled's log failed: {e}")))?;
        Ok(())
    }

    /// Bytes the store occupies on disk.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}

/// Keys of the layout described in the module documentation.
mod keys {
    pub const ENVELOPE: &[u8] = b"e/";
    pub const IDEMPOTENCY: &[u8] = b"k/";
    pub const INBOX: &[u8] = b"i/";

    pub fn envelope(seq: u64) -> Vec<u8> {
        [ENVELOPE, &seq.to_be_bytes()].concat()
    }

    pub fn idempotency(sender: &str, id: &str) -> Vec<u8> {
        [IDEMPOTENCY, sender.as_bytes(), b"\0", id.as_bytes()].concat()
    }

    pub fn inbox_prefix(recipient: &str) -> Vec<u8> {
        [INBOX, recipient.as_bytes(), b"\0"].concat()
    }

    pub fn inbox(recipient: &str, inbox_no: u64) -> Vec<u8> {
        [&inbox_prefix(recipient)[..], &inbox_no.to_be_bytes()].concat()
    }

    pub fn cursor(participant: &str, name: &str) -> Vec<u8> {
        [b"u/", participant.as_bytes(), b"\0", name.as_bytes()].concat()
    }

    /// The big-endian number at the end of a key or in a value.
    pub fn trailing_u64(bytes: &[u8]) -> Option<u64> {
        let tail = bytes.len().checked_sub(8).map(|at| &bytes[at..])?;
        Some(u64::from_be_bytes(tail.try_into().ok()?))
    }
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
    /// Its search index key prefixes ([`crate::search::index_prefixes`]).
    pub index_prefixes: Vec<Vec<u8>>,
}

/// A message just made durable, as live subscribers receive it.
#[derive(Clone, Debug)]
pub struct Live {
    /// The envelope.
    pub envelope: Arc<pb::Envelope>,
    /// Its receipt.
    pub receipt: pb::Receipt,
}

/// Work for the committer.
enum Job {
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
        leaf: Option<pb::AuditLeaf>,
        reply: oneshot::Sender<Result<(u64, Option<u64>), StoreError>>,
    },
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
    commits: crate::metrics::CommitStats,
}

/// The message store.
pub struct Store {
    /// The engine facade.
    kv: Kv,
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
    ) -> Result<Store, OpenStoreError> {
        let kv = Kv::open(dir)?;
        let last_seq = match kv.last_in(keys::ENVELOPE)? {
            Some((key, _)) => keys::trailing_u64(&key).ok_or_else(|| StoreError::Corrupt {
                key: hex::encode(&key),
                reason: "envelope key without a sequence number".into(),
            })?,
            None => 0,
        };
        let (frontier, checkpoint) = if options.verify_on_open {
            audit::check_store(&kv, &signer.verifier())?
        } else {
            let size = match kv.last_in(audit::keys::LEAF)? {
                Some((key, _)) => keys::trailing_u64(&key).map_or(0, |i| i + 1),
                None => 0,
            };
            let frontier = Frontier::from_source(size, &KvNodes(&kv))?;
            (frontier, audit::latest_checkpoint(&kv)?)
        };
        let published = Arc::new(Published {
            seq: AtomicU64::new(last_seq),
            tree_size: AtomicU64::new(frontier.size()),
            checkpoint: ArcSwapOption::from(checkpoint.clone().map(Arc::new)),
            commits: crate::metrics::CommitStats::default(),
        });
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let verifier_key = signer.verifier_key();
        let (live, _) = tokio::sync::broadcast::channel(options.live_buffer.max(16));
        let committer = Committer {
            kv: kv.clone(),
            next_seq: last_seq + 1,
            inbox_heads: HashMap::new(),
            published: published.clone(),
            failed: AtomicBool::new(false),
            max_batch: options.max_batch.max(1),
            frontier,
            signer,
            checkpoint_size: checkpoint.map(|c| c.size),
            checkpoint_interval: options.checkpoint_interval,
            live: live.clone(),
        };
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
            kv,
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
            .kv
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
        merkle::inclusion_proof(index, size, &KvNodes(&self.kv)).map_err(proof_error)
    }

    /// Proof that the tree of `first` leaves is a prefix of the tree of `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::consistency_proof(first, second, &KvNodes(&self.kv)).map_err(proof_error)
    }

    /// Leaves `[start, end)` of the durable log: `(index, leaf hash, data)`.
    pub fn leaves(&self, start: u64, end: u64) -> Result<Vec<(u64, Hash, Vec<u8>)>, StoreError> {
        let end = end.min(self.tree_size());
        let mut out = Vec::with_capacity(end.saturating_sub(start) as usize);
        for entry in self
            .kv
            .range(&audit::keys::leaf(start), &audit::keys::leaf(end))
        {
            let (key, data) = entry?;
            let index = keys::trailing_u64(&key).unwrap_or(0);
            out.push((index, KvNodes(&self.kv).node(0, index)?, data));
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
        self.kv.flush()
    }

    /// Highest durable sequence number: the number of messages stored.
    pub fn last_seq(&self) -> u64 {
        self.published.seq.load(Ordering::Acquire)
    }

    /// The engine facade, for size reports.
    pub fn kv(&self) -> &Kv {
        &self.kv
    }

    /// What the committer measured of its group commits.
    pub fn commit_stats(&self) -> &crate::metrics::CommitStats {
        &self.published.commits
    }

    /// The message with sequence number `seq`.
    pub fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        if seq == 0 || seq > self.last_seq() {
            return Ok(None);
        }
        let key = keys::envelope(seq);
        let Some(bytes) = self.kv.get(&key)? else {
            return Ok(None);
        };
        decode_record(&key, &bytes).map(Some)
    }

    /// The sequence number of the message `id` of `sender`, if stored durably.
    pub fn seq_of(&self, sender: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let key = keys::idempotency(sender, id);
        let Some(value) = self.kv.get(&key)? else {
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
        for entry in self.kv.range(&from, &to) {
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
        for entry in self.kv.range(&from, &to).rev() {
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

/// The single writer.
struct Committer {
    kv: Kv,
    /// Next global sequence number.
    next_seq: u64,
    /// Highest inbox number per recipient, loaded on first use.
    inbox_heads: HashMap<String, u64>,
    /// Published after each flush.
    published: Arc<Published>,
    /// Set when a flush failed: nothing more is written.
    failed: AtomicBool,
    /// Most messages per flush.
    max_batch: usize,
    /// The right edge of the audit tree, including leaves of the batch being built.
    frontier: Frontier,
    /// Signs checkpoints.
    signer: NoteSigner,
    /// Size of the last signed checkpoint.
    checkpoint_size: Option<u64>,
    /// A checkpoint at least this often while leaves arrive.
    checkpoint_interval: Duration,
    /// Live subscribers.
    live: tokio::sync::broadcast::Sender<Arc<Live>>,
}

/// The outcome of the check phase for one message of a job.
enum Check {
    /// Not stored yet.
    Fresh,
    /// Stored already, same content: answer the original receipt.
    Duplicate(pb::Receipt),
}

/// Replies owed once the batch is durable.
enum Answer {
    Messages(
        oneshot::Sender<Result<Vec<pb::Receipt>, CommitError>>,
        Result<Vec<pb::Receipt>, CommitError>,
    ),
    Events(oneshot::Sender<Result<Vec<u64>, StoreError>>, Vec<u64>),
    Checkpoint(oneshot::Sender<Result<SignedCheckpoint, StoreError>>),
    Cursor(
        oneshot::Sender<Result<(u64, Option<u64>), StoreError>>,
        Result<(u64, Option<u64>), StoreError>,
    ),
}

/// The batch being built.
struct Batch {
    writes: WriteBatch,
    now: prost_types::Timestamp,
    /// (sender, id) → (digest, receipt) of messages placed in this batch.
    pending: HashMap<(String, String), ([u8; 32], pb::Receipt)>,
    messages: usize,
    leaves: usize,
    /// Messages placed, for live subscribers once durable.
    live: Vec<Arc<Live>>,
    /// Cursors written in this batch.
    cursors: HashMap<Vec<u8>, u64>,
}

impl Committer {
    fn run(mut self, mut queue: mpsc::Receiver<Job>) {
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
            if self.commit_jobs(jobs, due) {
                last_checkpoint = Instant::now();
            }
        }
        // Closing: sign what is not signed yet.
        self.commit_jobs(vec![], true);
    }

    /// Writes one batch; returns true when it signed a checkpoint.
    fn commit_jobs(&mut self, jobs: Vec<Job>, checkpoint_due: bool) -> bool {
        if self.failed.load(Ordering::Relaxed) {
            for job in jobs {
                job.fail(StoreError::Failed);
            }
            return false;
        }
        let started = Instant::now();
        let tree_before = self.frontier.clone();
        let seq_before = self.next_seq;
        let mut batch = Batch {
            writes: WriteBatch::default(),
            now: timestamp_now(),
            pending: HashMap::new(),
            messages: 0,
            leaves: 0,
            live: Vec::new(),
            cursors: HashMap::new(),
        };
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
                        answers.push(Answer::Checkpoint(reply));
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
                    let result =
                        self.set_cursor(&participant, &name, seq, create_only, leaf, &mut batch);
                    answers.push(Answer::Cursor(reply, result));
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
        let written = if batch.writes.is_empty() {
            Ok(())
        } else {
            let flushing = Instant::now();
            let written = self.kv.apply(batch.writes).and_then(|()| self.kv.flush());
            let commits = &self.published.commits;
            commits.flush_seconds.observe_duration(flushing.elapsed());
            written
        };
        match written {
            Ok(()) => {
                if batch.messages > 0 {
                    let commits = &self.published.commits;
                    commits.batch_messages.observe(batch.messages as u64);
                }
                self.published
                    .seq
                    .store(self.next_seq - 1, Ordering::Release);
                self.published
                    .tree_size
                    .store(self.frontier.size(), Ordering::Release);
                if let Some(cp) = &signed {
                    self.checkpoint_size = Some(cp.size);
                    self.published.checkpoint.store(Some(Arc::new(cp.clone())));
                }
                if batch.leaves > 0 {
                    tracing::debug!(
                        messages = batch.messages,
                        leaves = batch.leaves,
                        micros = started.elapsed().as_micros() as u64,
                        "group commit"
                    );
                }
                for message in batch.live.drain(..) {
                    // No receiver is not an error: nobody subscribes.
                    let _ = self.live.send(message);
                }
                let latest = self.published.checkpoint.load_full();
                for answer in answers {
                    match answer {
                        Answer::Messages(reply, result) => {
                            let _ = reply.send(result);
                        }
                        Answer::Events(reply, indices) => {
                            let _ = reply.send(Ok(indices));
                        }
                        Answer::Cursor(reply, result) => {
                            let _ = reply.send(result);
                        }
                        Answer::Checkpoint(reply) => {
                            let _ = reply.send(
                                latest
                                    .as_deref()
                                    .cloned()
                                    .ok_or(StoreError::Engine("no checkpoint yet".into())),
                            );
                        }
                    }
                }
                signed.is_some()
            }
            Err(error) => {
                // After a failed fsync the state of the file is unknown (and retrying the
                // fsync can report success for lost data), so refuse all further writes.
                tracing::error!(%error, "group commit failed; refusing writes until restart");
                self.failed.store(true, Ordering::Relaxed);
                self.frontier = tree_before;
                self.next_seq = seq_before;
                for answer in answers {
                    match answer {
                        Answer::Messages(reply, _) => {
                            let _ = reply.send(Err(error.clone().into()));
                        }
                        Answer::Events(reply, _) => {
                            let _ = reply.send(Err(error.clone()));
                        }
                        Answer::Checkpoint(reply) => {
                            let _ = reply.send(Err(error.clone()));
                        }
                        Answer::Cursor(reply, _) => {
                            let _ = reply.send(Err(error.clone()));
                        }
                    }
                }
                false
            }
        }
    }

    /// Adds a cursor write (and its leaf) to the batch.
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
        let current = match batch.cursors.get(&key) {
            Some(seq) => Some(*seq),
            None => self.kv.get(&key)?.and_then(|v| keys::trailing_u64(&v)),
        };
        let now = match current {
            Some(current) if create_only => current,
            Some(current) => current.max(seq),
            None => seq,
        };
        if current != Some(now) {
            batch.writes.insert(&key, &now.to_be_bytes());
            batch.cursors.insert(key, now);
        }
        let leaf_index = leaf.map(|leaf| self.append_leaf(leaf, batch));
        Ok((now, leaf_index))
    }

    /// Adds a leaf and its new tree nodes to the batch; returns its index.
    fn append_leaf(&mut self, mut leaf: pb::AuditLeaf, batch: &mut Batch) -> u64 {
        leaf.time = Some(batch.now);
        let data = leaf.encode_to_vec();
        let index = self.frontier.size();
        for (level, node_index, hash) in self.frontier.push(merkle::leaf_hash(&data)) {
            batch
                .writes
                .insert(&audit::keys::node(level, node_index), &hash);
        }
        batch.writes.insert(&audit::keys::leaf(index), &data);
        batch.leaves += 1;
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
        batch
            .writes
            .insert(&audit::keys::checkpoint(size), note.as_bytes());
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
            let existing = match pending.get(&(m.sender.clone(), m.id.clone())) {
                Some((digest, receipt)) => Some((*digest, receipt.clone())),
                None => self.stored_receipt(&m.sender, &m.id)?,
            };
            // Two messages with one id inside a job: the second is checked against the first.
            let earlier = messages[..index]
                .iter()
                .find(|e| e.sender == m.sender && e.id == m.id);
            match (existing, earlier) {
                (Some((digest, receipt)), _) if digest == m.digest => {
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
        let key = keys::idempotency(sender, id);
        let Some(value) = self.kv.get(&key)? else {
            return Ok(None);
        };
        let seq = keys::trailing_u64(&value).unwrap_or(0);
        let record_key = keys::envelope(seq);
        let bytes = self
            .kv
            .get(&record_key)?
            .ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: format!("idempotency key points at missing seq {seq}"),
            })?;
        let stored = decode_record(&record_key, &bytes)?;
        let mut digest = [0u8; 32];
        hex::decode_to_slice(&stored.receipt.envelope_sha256, &mut digest).map_err(|e| {
            StoreError::Corrupt {
                key: hex::encode(&record_key),
                reason: format!("receipt digest: {e}"),
            }
        })?;
        Ok(Some((digest, stored.receipt)))
    }

    /// Assigns numbers and leaves to the fresh messages of a job and adds their writes.
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
            if let Check::Duplicate(receipt) = check {
                receipts.push(receipt);
                continue;
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let envelope_sha256 = hex::encode(m.digest);
            let officer = m.officer.clone().unwrap_or_default();
            let accepted_leaf = self.append_leaf(
                pb::AuditLeaf {
                    time: None,
                    event: Some(pb::audit_leaf::Event::Accepted(pb::MessageAccepted {
                        sender: m.sender.clone(),
                        officer: officer.clone(),
                        id: m.id.clone(),
                        seq,
                        kind: m.kind as i32,
                        envelope_sha256: envelope_sha256.clone(),
                        recipients: m.deliver_to.clone(),
                    })),
                },
                batch,
            );
            let mut placements = Vec::with_capacity(m.deliver_to.len());
            for recipient in &m.deliver_to {
                let head = self.inbox_heads.get_mut(recipient).expect("loaded above");
                *head += 1;
                let inbox_no = *head;
                batch
                    .writes
                    .insert(&keys::inbox(recipient, inbox_no), &seq.to_be_bytes());
                let leaf_index = self.append_leaf(
                    pb::AuditLeaf {
                        time: None,
                        event: Some(pb::audit_leaf::Event::Delivered(pb::MessageDelivered {
                            recipient: recipient.clone(),
                            inbox_no,
                            seq,
                            sender: m.sender.clone(),
                        })),
                    },
                    batch,
                );
                placements.push(pb::InboxPlacement {
                    recipient: recipient.clone(),
                    inbox_no,
                    leaf_index,
                });
            }
            if let Some((answered_sender, answered_seq)) = &m.answers {
                self.append_leaf(
                    pb::AuditLeaf {
                        time: None,
                        event: Some(pb::audit_leaf::Event::Answered(pb::MessageAnswered {
                            sender: m.sender.clone(),
                            seq,
                            answered_sender: answered_sender.clone(),
                            answered_seq: *answered_seq,
                            kind: m.kind as i32,
                        })),
                    },
                    batch,
                );
            }
            let receipt = pb::Receipt {
                sender: m.sender.clone(),
                id: m.id.clone(),
                seq,
                placements,
                stored_at: Some(batch.now),
                envelope_sha256,
                officer,
                duplicate: false,
                leaf_index: accepted_leaf,
            };
            let record = Record {
                envelope: m.encoded.clone(),
                receipt: Some(receipt.clone()),
            };
            batch
                .writes
                .insert(&keys::envelope(seq), &record.encode_to_vec());
            batch
                .writes
                .insert(&keys::idempotency(&m.sender, &m.id), &seq.to_be_bytes());
            for prefix in &m.index_prefixes {
                batch
                    .writes
                    .insert(&[prefix.as_slice(), &seq.to_be_bytes()].concat(), &[]);
            }
            batch.pending.insert(
                (m.sender.clone(), m.id.clone()),
                (m.digest, receipt.clone()),
            );
            batch.live.push(Arc::new(Live {
                envelope: m.envelope.clone(),
                receipt: receipt.clone(),
            }));
            batch.messages += 1;
            receipts.push(receipt);
        }
        Ok(receipts)
    }

    fn inbox_head(&mut self, recipient: &str) -> Result<u64, StoreError> {
        if let Some(head) = self.inbox_heads.get(recipient) {
            return Ok(*head);
        }
        let head = match self.kv.last_in(&keys::inbox_prefix(recipient))? {
            Some((key, _)) => keys::trailing_u64(&key).unwrap_or(0),
            None => 0,
        };
        self.inbox_heads.insert(recipient.to_string(), head);
        Ok(head)
    }
}

impl Job {
    /// How much of a batch this job takes.
    fn weight(&self) -> usize {
        match self {
            Job::Messages { messages, .. } => messages.len(),
            Job::Events { leaves, .. } => leaves.len(),
            Job::Checkpoint { .. } => 0,
            Job::Cursor { .. } => 1,
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
            Job::Events { reply: None, .. } | Job::Checkpoint { reply: None } => {}
        }
    }
}

/// The current time as a protobuf timestamp.
pub fn timestamp_now() -> prost_types::Timestamp {
    prost_types::Timestamp::from(SystemTime::now())
}
