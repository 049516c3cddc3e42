//! The store's face to the rest of the gateway. [`Store::open`] brings the index up to the
//! log ([`super::recover`]) and starts the committer; writes are queued to it and answered
//! once durable; reads go to the index and the log, and see only what the indexer published.
//! A write is answered before its batch is in the index: a read that must see every write
//! answered before it calls [`Store::settled`] first.

use super::committer::{Committer, Indexer, Job, Progress, Published};
use super::error::{CommitError, OpenStoreError, StoreError};
use super::index::{self, CachedNodes, EngineTiles, TileCache};
use super::keys;
use super::message::{Live, MessageEvents, NewMessage, Stored};
use super::reader::Reader;
use super::recover::{self, Recovered};
use super::scrub::{self, ScrubStats};
use crate::domain::facets::Facet;
use crate::log::leaf::SignedCheckpoint;
use crate::log::merkle::{self, Hash};
use crate::log::note::NoteSigner;
use crate::log::tiles::TileSource;
use crate::pb;
use arc_swap::ArcSwapOption;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// Tuning of the store.
#[derive(Clone, Debug)]
pub struct StoreOptions {
    /// Most messages written in one group commit.
    pub max_batch: usize,
    /// Jobs that may wait for the committer before submitters wait too.
    pub queue: usize,
    /// A new checkpoint at least this often while leaves arrive.
    pub checkpoint_interval: Duration,
    /// At start, verify the last checkpoint and re-hash the log written after it.
    pub verify_on_open: bool,
    /// Messages kept for live subscribers; one that falls further behind catches up from the
    /// store.
    pub live_buffer: usize,
    /// Bytes of messages (encoded envelopes) kept for live subscribers, at most.
    pub live_buffer_bytes: usize,
    /// The index's page cache, in bytes.
    pub cache_bytes: u64,
    /// Messages kept decoded for subscribers that replay or follow the log, in bytes.
    pub message_cache_bytes: u64,
    /// Size after which the log begins a new segment file, in bytes.
    pub segment_bytes: u64,
    /// At start, move a damaged end of the log aside instead of refusing to start.
    pub quarantine: bool,
    /// How often the index is made durable (what it lacks after a crash is replayed).
    pub index_flush_interval: Duration,
    /// How often the whole log is checked in the background ([`super::scrub`]); `None`: never.
    /// The first check begins one interval (at most ten minutes) after the start.
    pub scrub_interval: Option<Duration>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            max_batch: 512,
            queue: 4096,
            checkpoint_interval: Duration::from_secs(1),
            verify_on_open: true,
            live_buffer: 1024,
            live_buffer_bytes: 64 * 1024 * 1024,
            cache_bytes: 256 * 1024 * 1024,
            message_cache_bytes: 64 * 1024 * 1024,
            segment_bytes: 64 * 1024 * 1024,
            quarantine: false,
            index_flush_interval: Duration::from_secs(1),
            scrub_interval: Some(Duration::from_secs(24 * 3600)),
        }
    }
}

/// The message store.
pub struct Store {
    /// The index and the log, for reads.
    reader: Reader,
    /// The data directory.
    dir: PathBuf,
    /// The committer's queue; `None` once closed.
    queue: Mutex<Option<mpsc::Sender<Job>>>,
    /// The committer thread.
    committer: Mutex<Option<std::thread::JoinHandle<()>>>,
    /// The background threads (index flusher, scrub): each ends when its sender is dropped,
    /// and is joined on close, so that nothing holds the store open after it.
    background: Mutex<Vec<(std::sync::mpsc::Sender<()>, std::thread::JoinHandle<()>)>>,
    /// Set on close: a background check in progress stops.
    closed: Arc<AtomicBool>,
    /// What is durable.
    published: Arc<Published>,
    /// The batches answered and the batches indexed.
    progress: Arc<Progress>,
    /// The checkpoint signer's verifier key.
    verifier_key: String,
    /// Messages just made durable, in sequence order, for live subscribers.
    live: super::live::LivePublisher,
    /// Records replayed into the index at start.
    replayed: usize,
    /// Trees of the tiles proofs used recently.
    tiles: Mutex<TileCache>,
    /// Progress and results of the background checks of the log.
    scrub: Arc<ScrubStats>,
}

fn spawn(
    name: &str,
    f: impl FnOnce() + Send + 'static,
) -> Result<std::thread::JoinHandle<()>, StoreError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map_err(|e| StoreError::Engine(format!("cannot start {name}: {e}")))
}

impl Store {
    /// Opens the store in `dir` (creating it if missing), brings its index up to its log,
    /// checks the log against the last checkpoint signed by `signer`, and starts the
    /// committer, its checkpoint ticker and the index flusher.
    pub fn open(
        dir: &Path,
        options: StoreOptions,
        signer: NoteSigner,
        events: Arc<dyn MessageEvents>,
    ) -> Result<Store, OpenStoreError> {
        let verifier = signer.verifier();
        let recovered = recover::open(
            dir,
            &recover::OpenOptions {
                verify: options.verify_on_open,
                quarantine: options.quarantine,
                cache_bytes: Some(options.cache_bytes),
                segment_bytes: options.segment_bytes,
                verifier: Some(&verifier),
            },
        )?;
        let Recovered {
            engine,
            segments,
            appender,
            frontier,
            edge,
            next_seq,
            checkpoint,
            replayed,
        } = recovered;
        if replayed > 0 {
            tracing::info!(records = replayed, "exchange log replayed into the index");
        }
        let published = Arc::new(Published {
            seq: AtomicU64::new(next_seq - 1),
            tree_size: AtomicU64::new(frontier.size()),
            log_end: AtomicU64::new(appender.end()),
            checkpoint: ArcSwapOption::from(checkpoint.clone().map(Arc::new)),
            commits: crate::ops::metrics::CommitStats::default(),
        });
        let reader = Reader {
            engine,
            segments,
            recent: Arc::new(super::reader::Recent::new(options.message_cache_bytes)),
        };
        let (tx, rx) = mpsc::channel(options.queue.max(1));
        let verifier_key = signer.verifier_key();
        let live =
            super::live::LivePublisher::new(options.live_buffer.max(16), options.live_buffer_bytes);
        let failed = Arc::new(AtomicBool::new(false));
        let progress = Arc::new(Progress::new(failed.clone()));
        let committer = Committer {
            engine: reader.engine.clone(),
            reader: reader.clone(),
            appender,
            next_seq,
            inbox_heads: Default::default(),
            published: published.clone(),
            failed: failed.clone(),
            max_batch: options.max_batch.max(1),
            frontier,
            edge,
            signer,
            checkpoint_size: checkpoint.as_ref().map(|c| c.size),
            latest: checkpoint,
            checkpoint_interval: options.checkpoint_interval,
            events,
            indexer: Some(Indexer {
                engine: reader.engine.clone(),
                published: published.clone(),
                live: live.clone(),
                failed,
                progress: progress.clone(),
            }),
            progress: progress.clone(),
            in_flight: Default::default(),
            batches: 0,
            last_time: match next_seq.checked_sub(1).filter(|&n| n > 0) {
                Some(last) => reader
                    .message(last)?
                    .and_then(|m| m.receipt.stored_at)
                    .unwrap_or_default(),
                None => Default::default(),
            },
        };
        let handle = spawn("ipex-committer", move || committer.run(rx))?;
        // The ticker holds only a weak sender, so closing the store ends it.
        let ticker = tx.downgrade();
        let interval = options.checkpoint_interval.max(Duration::from_millis(10));
        spawn("ipex-checkpoints", move || loop {
            std::thread::sleep(interval);
            let Some(tx) = ticker.upgrade() else { break };
            if tx.blocking_send(Job::Checkpoint { reply: None }).is_err() {
                break;
            }
        })?;
        // The index is made durable off the commit path; what a crash takes from it is
        // replayed from the log at the next start.
        let mut background = Vec::new();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let engine = reader.engine.clone();
        let every = options.index_flush_interval.max(Duration::from_millis(10));
        let flusher = spawn("ipex-index-flush", move || {
            while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) = stopped.recv_timeout(every)
            {
                if let Err(error) = engine.flush() {
                    tracing::warn!(%error, "flushing the index failed; a restart will replay the log");
                }
            }
        })?;
        background.push((stop, flusher));
        let closed = Arc::new(AtomicBool::new(false));
        let scrub = Arc::new(ScrubStats::new());
        if let Some(every) = options.scrub_interval {
            let (reader, published, stats) = (reader.clone(), published.clone(), scrub.clone());
            let closed = closed.clone();
            let (stop, stopped) = std::sync::mpsc::channel::<()>();
            let scrubber = spawn("ipex-scrub", move || {
                let mut wait = every.min(Duration::from_secs(600));
                while let Err(std::sync::mpsc::RecvTimeoutError::Timeout) =
                    stopped.recv_timeout(wait)
                {
                    wait = every;
                    scrub_once(&reader, &published, &verifier, &stats, &closed);
                }
            })?;
            background.push((stop, scrubber));
        }
        Ok(Store {
            reader,
            dir: dir.to_path_buf(),
            queue: Mutex::new(Some(tx)),
            committer: Mutex::new(Some(handle)),
            background: Mutex::new(background),
            closed,
            published,
            progress,
            verifier_key,
            live,
            replayed,
            tiles: Mutex::new(TileCache::new(1024)),
            scrub,
        })
    }

    /// Progress and results of the background checks of the log.
    pub fn scrub_stats(&self) -> Arc<ScrubStats> {
        self.scrub.clone()
    }

    /// Records replayed from the log into the index when the store was opened.
    pub fn replayed_at_open(&self) -> usize {
        self.replayed
    }

    /// Receives every message made durable from now on, in sequence order. A receiver that
    /// falls more than `live_buffer` messages or `live_buffer_bytes` behind is told it lagged.
    pub fn live(&self) -> super::live::LiveReceiver {
        self.live.subscribe()
    }

    /// Waits until the index holds everything stored before this call (every commit, record
    /// and cursor already answered), so that a read made next sees it. Immediate when the
    /// index is caught up; otherwise at most one batch's index write. Fails when the index
    /// cannot catch up because a write failed (until a restart replays the log into it).
    pub async fn settled(&self) -> Result<(), StoreError> {
        self.progress.settled().await
    }

    /// The acknowledged sequence number of a durable subscription.
    pub fn cursor(&self, participant: &str, name: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .reader
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
                leaf: leaf.map(Box::new),
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?
    }

    /// The note of the latest checkpoint of peer log `origin` this gateway cosigned as its
    /// witness, as durable in the log (and indexed once its commit is).
    pub fn witnessed(&self, origin: &str) -> Result<Option<String>, StoreError> {
        self.reader
            .engine
            .get(&keys::witnessed(origin))?
            .map(|v| {
                String::from_utf8(v).map_err(|_| {
                    StoreError::Engine(format!("witnessed note of {origin:?} is not UTF-8"))
                })
            })
            .transpose()
    }

    /// Records, durably in the log, the checkpoint `note` of peer log `origin` as the latest
    /// this gateway cosigned for it. Answers once the record is durable.
    pub async fn set_witnessed(&self, origin: &str, note: &str) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        self.queue()?
            .send(Job::Witnessed {
                record: crate::log::record::WitnessedRecord {
                    origin: origin.to_string(),
                    note: note.to_string(),
                },
                reply,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        answer.await.map_err(|_| StoreError::Closed)?.map(drop)
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
        merkle::inclusion_proof(index, size, &self.nodes()).map_err(proof_error)
    }

    /// Proof that the tree of `first` leaves is a prefix of the tree of `second` leaves.
    pub fn consistency_proof(&self, first: u64, second: u64) -> Result<Vec<Hash>, StoreError> {
        merkle::consistency_proof(first, second, &self.nodes()).map_err(proof_error)
    }

    fn nodes(&self) -> CachedNodes<'_> {
        CachedNodes {
            engine: self.reader.engine.as_ref(),
            cache: &self.tiles,
        }
    }

    /// The root of the tree of the first `size` leaves of the durable log.
    pub fn root_at(&self, size: u64) -> Result<Hash, StoreError> {
        merkle::root_at(size, &self.nodes())
    }

    /// The hash of audit leaf `index`.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, StoreError> {
        self.reader.leaf_hash(index)
    }

    /// The first `width` hashes of tile `(level, index)` of the durable tree, as the C2SP
    /// tlog-tiles spec serves them; `None` when the tree does not (yet) have them.
    pub fn tile(&self, level: u8, index: u64, width: u64) -> Result<Option<Vec<Hash>>, StoreError> {
        let size = self.tree_size();
        let shift = u32::from(level) * u32::from(crate::log::tiles::HEIGHT);
        let entries = size.checked_shr(shift).unwrap_or(0);
        let end = index
            .checked_mul(crate::log::tiles::WIDTH)
            .and_then(|start| start.checked_add(width));
        if end.is_none_or(|end| end > entries) {
            return Ok(None);
        }
        let mut hashes = EngineTiles(self.reader.engine.as_ref()).tile(level, index)?;
        hashes.truncate(width as usize);
        Ok(Some(hashes))
    }

    /// Leaves `[start, end)` of the durable log: `(index, leaf hash, data)`.
    pub fn leaves(&self, start: u64, end: u64) -> Result<Vec<(u64, Hash, Vec<u8>)>, StoreError> {
        let end = end.min(self.tree_size());
        (start..end)
            .map(|index| {
                Ok((
                    index,
                    self.reader.leaf_hash(index)?,
                    self.reader.leaf_data(index)?,
                ))
            })
            .collect()
    }

    /// Stops accepting writes, lets the committer finish what is queued (and sign a final
    /// checkpoint), and makes the index durable.
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
        self.closed.store(true, Ordering::Relaxed);
        let background = std::mem::take(
            &mut *self
                .background
                .lock()
                .expect("the background lock is never poisoned"),
        );
        for (stop, handle) in background {
            drop(stop);
            let _ = handle.join();
        }
        self.reader.engine.flush()
    }

    /// Highest durable sequence number: the number of messages stored.
    pub fn last_seq(&self) -> u64 {
        self.published.seq.load(Ordering::Acquire)
    }

    /// Bytes the store occupies on disk: the log and the index.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        let mut bytes = self.reader.engine.size_on_disk()?;
        let log = self.dir.join("log");
        let entries = std::fs::read_dir(&log)
            .map_err(|e| StoreError::Engine(format!("reading {}: {e}", log.display())))?;
        for entry in entries.flatten() {
            bytes += entry.metadata().map_or(0, |m| m.len());
        }
        Ok(bytes)
    }

    /// Up to `budget` sequence numbers in `[low, high]` of the messages indexed under any of
    /// `values` of `facet` (every message when `index` is `None`), newest first unless
    /// `oldest_first`. Checking them against the rest of a query is the caller's.
    pub fn postings(
        &self,
        index: Option<(Facet, &[String])>,
        low: u64,
        high: u64,
        budget: usize,
        oldest_first: bool,
    ) -> Result<Vec<u64>, StoreError> {
        let high = high.min(self.last_seq());
        if low > high {
            return Ok(Vec::new());
        }
        let Some((facet, values)) = index else {
            let all: Box<dyn Iterator<Item = u64>> = if oldest_first {
                Box::new(low..=high)
            } else {
                Box::new((low..=high).rev())
            };
            return Ok(all.take(budget).collect());
        };
        let mut seqs = Vec::new();
        for value in values {
            let prefix = keys::posting_prefix(facet, facet.index_lookup(value));
            seqs.extend(index::postings(
                self.reader.engine.as_ref(),
                &prefix,
                low,
                high,
                budget,
                !oldest_first,
            )?);
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

    /// The message with sequence number `seq`, if durable, as subscribers get it: shared with
    /// every other reader of it through the cache of recent messages.
    pub fn shared(&self, seq: u64) -> Result<Option<Arc<Live>>, StoreError> {
        if seq == 0 || seq > self.last_seq() {
            return Ok(None);
        }
        self.reader.shared(seq)
    }

    /// The message with sequence number `seq`, if durable.
    pub fn get(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        if seq == 0 || seq > self.last_seq() {
            return Ok(None);
        }
        self.reader.message(seq)
    }

    /// The sequence number of the message `id` of `sender`, if stored durably.
    pub fn seq_of(&self, sender: &str, id: &str) -> Result<Option<u64>, StoreError> {
        Ok(self
            .reader
            .seq_of(sender, id)?
            .filter(|seq| *seq <= self.last_seq()))
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
        index::inbox(
            self.reader.engine.as_ref(),
            recipient,
            after,
            limit,
            self.last_seq(),
        )
    }

    /// The highest durable inbox number of `recipient` (0 for an empty inbox).
    pub fn inbox_head(&self, recipient: &str) -> Result<u64, StoreError> {
        index::inbox_head(self.reader.engine.as_ref(), recipient, self.last_seq())
    }
}

/// One background check of the whole durable log, paced so that it leaves the cores to the
/// calls; the result goes to the stats and, when it fails, to the log as an error.
fn scrub_once(
    reader: &Reader,
    published: &Published,
    verifier: &crate::log::note::NoteVerifier,
    stats: &ScrubStats,
    closed: &AtomicBool,
) {
    let until = published.log_end.load(Ordering::Acquire);
    let started = std::time::Instant::now();
    let result = scrub::check_log(
        &reader.segments,
        Some(reader.engine.as_ref()),
        Some(verifier),
        until,
        &stats.leaves_checked,
        Some((Duration::from_micros(500), closed)),
    );
    if closed.load(Ordering::Relaxed) {
        return;
    }
    stats.runs.fetch_add(1, Ordering::Relaxed);
    match result {
        Ok(report) => {
            stats.last_ok.store(1, Ordering::Relaxed);
            tracing::info!(
                leaves = report.leaves,
                messages = report.messages,
                checkpoints = report.checkpoints,
                seconds = started.elapsed().as_secs(),
                "background check of the exchange log passed"
            );
        }
        Err(error) => {
            stats.failures.fetch_add(1, Ordering::Relaxed);
            stats.last_ok.store(0, Ordering::Relaxed);
            tracing::error!(%error, "background check of the exchange log FAILED");
        }
    }
}

fn proof_error(e: merkle::ProofError<StoreError>) -> StoreError {
    match e {
        merkle::ProofError::Source(e) => e,
        other => StoreError::Engine(other.to_string()),
    }
}
