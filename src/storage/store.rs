//! The store's face to the rest of the gateway: [`Store::open`] checks the log and starts the
//! committer; writes are queued to it and answered once durable; reads go to the engine and
//! see only what the committer published as durable.

use super::audit::{self, EngineNodes};
use super::committer::{Committer, Job, Published};
use super::engine::{Engine, SledEngine};
use super::error::{CommitError, OpenStoreError, StoreError};
use super::keys;
use super::message::{decode_record, Live, MessageEvents, NewMessage, Stored};
use crate::domain::facets::Facet;
use crate::log::leaf::SignedCheckpoint;
use crate::log::merkle::{self, Frontier, Hash, NodeSource};
use crate::log::note::NoteSigner;
use crate::pb;
use arc_swap::ArcSwapOption;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

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
        let committer = Committer {
            engine: kv.clone(),
            next_seq: last_seq + 1,
            inbox_heads: Default::default(),
            published: published.clone(),
            failed: Default::default(),
            max_batch: options.max_batch.max(1),
            frontier,
            signer,
            checkpoint_size: checkpoint.map(|c| c.size),
            checkpoint_interval: options.checkpoint_interval,
            live: live.clone(),
            events,
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

fn proof_error(e: merkle::ProofError<StoreError>) -> StoreError {
    match e {
        merkle::ProofError::Source(e) => e,
        other => StoreError::Engine(other.to_string()),
    }
}
