//! The index beside the log: what is looked up by key, written as [`IndexWrites`] after the
//! records they describe are durable in the log, and read back here. Nothing in it is the
//! source of truth: it can be lost and rebuilt by replaying the log, so its writes need no
//! transaction and no flush of their own on the commit path, and replaying a record twice
//! writes the same keys again.
//!
//! Lists are stored as runs ([`super::keys`]): one key per list per group commit, or per
//! group of commits the indexer wrote together (a group ends with a commit that signed a
//! checkpoint, where a replay may begin). Should runs of a replay overlap runs already
//! there, the readers name each number once.

use super::engine::Engine;
use super::error::StoreError;
use super::keys;
use crate::log::merkle::Hash;
use crate::log::merkle::NodeSource;
use crate::log::tiles::{self, ChangedTile, TileSource, TileTree, TooNarrow};
use prost::encoding::{decode_varint, encode_varint};
use std::sync::{Arc, Mutex};

/// Where a record is: its position and its frame's length.
pub type Location = (u64, u32);

/// How far the log is applied to the index.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Applied {
    /// The log position after the last record applied (0: nothing applied).
    pub pos: u64,
    /// The next message sequence number.
    pub next_seq: u64,
    /// The tree size.
    pub tree_size: u64,
}

/// A checkpoint as the index keeps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexedCheckpoint {
    /// Its tree size.
    pub size: u64,
    /// How far the log was applied when it was written (its record included).
    pub applied: Applied,
    /// The signed note.
    pub note: String,
}

fn corrupt(key: &[u8], reason: impl Into<String>) -> StoreError {
    StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        reason: reason.into(),
    }
}

impl From<TooNarrow> for StoreError {
    fn from(e: TooNarrow) -> Self {
        StoreError::Corrupt {
            key: format!("tile {}/{}", e.level, e.index),
            reason: e.to_string(),
        }
    }
}

/// Consecutive numbers from `first`, with one entry each.
struct Run<T> {
    first: u64,
    entries: Vec<T>,
}

/// Appends `entry` for number `n` to the runs, starting a run where `n` does not follow.
fn push<T>(runs: &mut Vec<Run<T>>, n: u64, entry: T) {
    match runs.last_mut() {
        Some(run) if run.first + run.entries.len() as u64 == n => run.entries.push(entry),
        _ => runs.push(Run {
            first: n,
            entries: vec![entry],
        }),
    }
}

fn encode_locations(entries: &[Location]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 12);
    for (pos, len) in entries {
        out.extend_from_slice(&pos.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
    }
    out
}

fn decode_locations(key: &[u8], value: &[u8]) -> Result<Vec<Location>, StoreError> {
    if value.len() % 12 != 0 {
        return Err(corrupt(key, "a location run is not 12-byte entries"));
    }
    Ok(value
        .chunks_exact(12)
        .map(|c| {
            (
                u64::from_be_bytes(c[..8].try_into().expect("8 bytes")),
                u32::from_be_bytes(c[8..].try_into().expect("4 bytes")),
            )
        })
        .collect())
}

fn encode_seqs(seqs: &[u64]) -> Vec<u8> {
    let mut out = Vec::with_capacity(seqs.len() * 2 + 8);
    let mut previous = 0;
    for &seq in seqs {
        encode_varint(seq - previous, &mut out);
        previous = seq;
    }
    out
}

fn decode_seqs(key: &[u8], mut value: &[u8]) -> Result<Vec<u64>, StoreError> {
    let mut seqs = Vec::new();
    let mut previous = 0u64;
    while !value.is_empty() {
        let delta = decode_varint(&mut value).map_err(|e| corrupt(key, e.to_string()))?;
        previous += delta;
        seqs.push(previous);
    }
    Ok(seqs)
}

/// Index writes gathered from records, applied together.
#[derive(Default)]
pub struct IndexWrites {
    messages: Vec<Run<Location>>,
    leaves: Vec<Run<Location>>,
    idempotency: Vec<(Vec<u8>, u64)>,
    /// Per recipient (in first-seen order), runs of inbox numbers → seqs.
    inboxes: Vec<(String, Vec<Run<u64>>)>,
    /// Per posting prefix (in first-seen order), the seqs.
    postings: Vec<(Vec<u8>, Vec<u64>)>,
    posting_slot: std::collections::HashMap<Vec<u8>, usize>,
    cursors: Vec<(Vec<u8>, u64)>,
    witnessed: Vec<(Vec<u8>, String)>,
    checkpoints: Vec<IndexedCheckpoint>,
    tiles: Vec<ChangedTile>,
    /// Records gathered.
    records: usize,
}

/// What the index needs of a stored message.
pub struct MessageEntry<'a> {
    /// Its sequence number.
    pub seq: u64,
    /// Where its record is.
    pub location: Location,
    /// Its sender and the sender's id.
    pub sender: &'a str,
    /// The sender's id.
    pub id: &'a str,
    /// `(recipient, inbox number)` of each placement.
    pub placements: Vec<(&'a str, u64)>,
    /// Its posting prefixes ([`super::message::index_prefixes`]).
    pub prefixes: &'a [Vec<u8>],
}

impl IndexWrites {
    /// Records gathered so far.
    pub fn len(&self) -> usize {
        self.records
    }

    /// True when nothing was gathered.
    pub fn is_empty(&self) -> bool {
        self.records == 0 && self.tiles.is_empty()
    }

    /// A stored message.
    pub fn message(&mut self, m: MessageEntry<'_>) {
        self.records += 1;
        push(&mut self.messages, m.seq, m.location);
        self.idempotency
            .push((keys::idempotency(m.sender, m.id), m.seq));
        for (recipient, inbox_no) in m.placements {
            let slot = match self.inboxes.iter().position(|(r, _)| r == recipient) {
                Some(slot) => slot,
                None => {
                    self.inboxes.push((recipient.to_string(), Vec::new()));
                    self.inboxes.len() - 1
                }
            };
            push(&mut self.inboxes[slot].1, inbox_no, m.seq);
        }
        for prefix in m.prefixes {
            let slot = match self.posting_slot.get(prefix) {
                Some(&slot) => slot,
                None => {
                    self.postings.push((prefix.clone(), Vec::new()));
                    self.posting_slot
                        .insert(prefix.clone(), self.postings.len() - 1);
                    self.postings.len() - 1
                }
            };
            self.postings[slot].1.push(m.seq);
        }
    }

    /// An audit leaf.
    pub fn leaf(&mut self, index: u64, location: Location) {
        self.records += 1;
        push(&mut self.leaves, index, location);
    }

    /// A durable subscription's cursor.
    pub fn cursor(&mut self, participant: &str, name: &str, seq: u64) {
        self.records += 1;
        self.cursors.push((keys::cursor(participant, name), seq));
    }

    /// A peer's checkpoint cosigned as its witness.
    pub fn witnessed(&mut self, origin: &str, note: &str) {
        self.records += 1;
        self.witnessed
            .push((keys::witnessed(origin), note.to_string()));
    }

    /// A signed checkpoint.
    pub fn checkpoint(&mut self, checkpoint: IndexedCheckpoint) {
        self.records += 1;
        self.checkpoints.push(checkpoint);
    }

    /// Tiles the leaves changed.
    pub fn tiles(&mut self, changed: Vec<ChangedTile>) {
        self.tiles.extend(changed);
    }

    /// Takes in the writes of the batch that follows, so that both are applied as one: their
    /// runs joined (one key per list for both), later writes of a key after earlier ones.
    pub fn absorb(&mut self, later: IndexWrites) {
        self.records += later.records;
        for (runs, theirs) in [
            (&mut self.messages, later.messages),
            (&mut self.leaves, later.leaves),
        ] {
            for run in theirs {
                for (i, entry) in run.entries.into_iter().enumerate() {
                    push(runs, run.first + i as u64, entry);
                }
            }
        }
        self.idempotency.extend(later.idempotency);
        for (recipient, theirs) in later.inboxes {
            let slot = match self.inboxes.iter().position(|(r, _)| *r == recipient) {
                Some(slot) => slot,
                None => {
                    self.inboxes.push((recipient, Vec::new()));
                    self.inboxes.len() - 1
                }
            };
            for run in theirs {
                for (i, seq) in run.entries.into_iter().enumerate() {
                    push(&mut self.inboxes[slot].1, run.first + i as u64, seq);
                }
            }
        }
        for (prefix, seqs) in later.postings {
            match self.posting_slot.get(&prefix) {
                Some(&slot) => self.postings[slot].1.extend(seqs),
                None => {
                    self.posting_slot
                        .insert(prefix.clone(), self.postings.len());
                    self.postings.push((prefix, seqs));
                }
            }
        }
        self.cursors.extend(later.cursors);
        self.witnessed.extend(later.witnessed);
        self.checkpoints.extend(later.checkpoints);
        self.tiles.extend(later.tiles);
    }

    /// Writes everything to `engine`, then `applied`, last, so that an index that has
    /// `applied` has everything before it.
    pub fn apply(self, engine: &dyn Engine, applied: Applied) -> Result<(), StoreError> {
        let mut batch = super::engine::WriteBatch::default();
        // A replay starts where a commit ended, so its runs start where the commits' did and
        // overwrite them with the same entries and more.
        for (prefix, runs) in [(keys::MESSAGES, self.messages), (keys::LEAVES, self.leaves)] {
            for run in runs {
                batch.insert(
                    &keys::numbered(prefix, run.first),
                    &encode_locations(&run.entries),
                );
            }
        }
        for (key, seq) in self.idempotency {
            batch.insert(&key, &seq.to_be_bytes());
        }
        for (recipient, runs) in self.inboxes {
            let prefix = keys::inbox_prefix(&recipient);
            for run in runs {
                let key = keys::numbered(&prefix, run.first);
                batch.insert(&key, &encode_seqs(&run.entries));
            }
        }
        for (prefix, seqs) in self.postings {
            let key = keys::numbered(&prefix, seqs[0]);
            batch.insert(&key, &encode_seqs(&seqs));
        }
        for (key, seq) in self.cursors {
            batch.insert(&key, &seq.to_be_bytes());
        }
        for (key, note) in self.witnessed {
            batch.insert(&key, note.as_bytes());
        }
        for (level, index, hashes) in self.tiles {
            batch.insert(&keys::tile(level, index), &tiles::encode(&hashes));
        }
        for cp in self.checkpoints {
            batch.insert(
                &keys::numbered(keys::CHECKPOINT, cp.size),
                &[&encode_applied(cp.applied)[..], cp.note.as_bytes()].concat(),
            );
        }
        batch.insert(keys::APPLIED, &encode_applied(applied));
        engine.apply(batch)
    }
}

fn encode_applied(a: Applied) -> [u8; 24] {
    let mut out = [0u8; 24];
    out[..8].copy_from_slice(&a.pos.to_be_bytes());
    out[8..16].copy_from_slice(&a.next_seq.to_be_bytes());
    out[16..].copy_from_slice(&a.tree_size.to_be_bytes());
    out
}

fn decode_applied(key: &[u8], v: &[u8]) -> Result<Applied, StoreError> {
    match (keys::u64_at(v, 0), keys::u64_at(v, 8), keys::u64_at(v, 16)) {
        (Some(pos), Some(next_seq), Some(tree_size)) => Ok(Applied {
            pos,
            next_seq,
            tree_size,
        }),
        _ => Err(corrupt(key, "not a log position")),
    }
}

/// How far the log is applied to the index (nothing, for a new index).
pub fn applied(engine: &dyn Engine) -> Result<Option<Applied>, StoreError> {
    engine
        .get(keys::APPLIED)?
        .map(|v| decode_applied(keys::APPLIED, &v))
        .transpose()
}

/// The latest checkpoint in the index.
pub fn latest_checkpoint(engine: &dyn Engine) -> Result<Option<IndexedCheckpoint>, StoreError> {
    let Some((key, value)) = engine.last_in(keys::CHECKPOINT)? else {
        return Ok(None);
    };
    let size = keys::trailing_u64(&key).ok_or_else(|| corrupt(&key, "checkpoint key"))?;
    let applied = decode_applied(&key, value.get(..24).unwrap_or_default())?;
    let note = String::from_utf8(value[24..].to_vec())
        .map_err(|_| corrupt(&key, "checkpoint is not UTF-8"))?;
    Ok(Some(IndexedCheckpoint {
        size,
        applied,
        note,
    }))
}

/// The run under `prefix` that holds number `n`, if any: its first number and value.
fn run_holding(
    engine: &dyn Engine,
    prefix: &[u8],
    n: u64,
) -> Result<Option<(u64, Vec<u8>)>, StoreError> {
    let from = keys::numbered(prefix, 0);
    let to = keys::numbered(prefix, n.saturating_add(1));
    match engine.range(&from, &to, true).next() {
        Some(entry) => {
            let (key, value) = entry?;
            let first = keys::trailing_u64(&key).ok_or_else(|| corrupt(&key, "run key"))?;
            Ok(Some((first, value)))
        }
        None => Ok(None),
    }
}

/// Where message `seq`'s record is.
pub fn message_location(engine: &dyn Engine, seq: u64) -> Result<Option<Location>, StoreError> {
    location(engine, keys::MESSAGES, seq)
}

/// Where leaf `index`'s record is.
pub fn leaf_location(engine: &dyn Engine, index: u64) -> Result<Option<Location>, StoreError> {
    location(engine, keys::LEAVES, index)
}

fn location(engine: &dyn Engine, prefix: &[u8], n: u64) -> Result<Option<Location>, StoreError> {
    let Some((first, value)) = run_holding(engine, prefix, n)? else {
        return Ok(None);
    };
    let key = keys::numbered(prefix, first);
    Ok(decode_locations(&key, &value)?
        .get((n - first) as usize)
        .copied())
}

/// Runs as read: `(first number, key, value)`.
type Runs<'a> = Box<dyn Iterator<Item = Result<(u64, Vec<u8>, Vec<u8>), StoreError>> + 'a>;

/// Runs under `prefix` from the one holding `from` on (or back from it), decoded.
fn runs<'a>(
    engine: &'a dyn Engine,
    prefix: &'a [u8],
    from: u64,
    reverse: bool,
) -> Result<Runs<'a>, StoreError> {
    // Backwards, the runs from `from` down start with the one holding it; forwards, the
    // first run is the one holding `from`, which may start below it.
    let (lo, hi) = if reverse {
        (
            keys::numbered(prefix, 0),
            keys::numbered(prefix, from.saturating_add(1)),
        )
    } else {
        let start = run_holding(engine, prefix, from)?.map_or(from, |(first, _)| first);
        (
            keys::numbered(prefix, start),
            keys::numbered(prefix, u64::MAX),
        )
    };
    Ok(Box::new(engine.range(&lo, &hi, reverse).map(|entry| {
        let (key, value) = entry?;
        let first = keys::trailing_u64(&key).ok_or_else(|| corrupt(&key, "run key"))?;
        Ok((first, key, value))
    })))
}

/// Up to `limit` entries `(inbox_no, seq)` of `recipient`'s inbox after `after`, with `seq`
/// at most `durable`.
pub fn inbox(
    engine: &dyn Engine,
    recipient: &str,
    after: u64,
    limit: usize,
    durable: u64,
) -> Result<Vec<(u64, u64)>, StoreError> {
    let prefix = keys::inbox_prefix(recipient);
    let mut out = Vec::with_capacity(limit.min(1024));
    let mut last = after;
    for run in runs(engine, &prefix, after.saturating_add(1), false)? {
        let (first, key, value) = run?;
        for (i, seq) in decode_seqs(&key, &value)?.into_iter().enumerate() {
            let no = first + i as u64;
            // Runs of a replay may overlap runs already there: each number once.
            if no <= last {
                continue;
            }
            last = no;
            // Inbox numbers follow sequence order: nothing after this is durable either.
            if seq > durable || out.len() >= limit {
                return Ok(out);
            }
            out.push((no, seq));
        }
    }
    Ok(out)
}

/// The highest inbox number of `recipient` whose message is at most `durable` (0: empty).
pub fn inbox_head(engine: &dyn Engine, recipient: &str, durable: u64) -> Result<u64, StoreError> {
    let prefix = keys::inbox_prefix(recipient);
    for run in runs(engine, &prefix, u64::MAX - 1, true)? {
        let (first, key, value) = run?;
        let seqs = decode_seqs(&key, &value)?;
        if let Some(i) = seqs.iter().rposition(|&seq| seq <= durable) {
            return Ok(first + i as u64);
        }
    }
    Ok(0)
}

/// Up to `budget` sequence numbers in `[low, high]` posted under `prefix`, ascending or (with
/// `reverse`) descending.
pub fn postings(
    engine: &dyn Engine,
    prefix: &[u8],
    low: u64,
    high: u64,
    budget: usize,
    reverse: bool,
) -> Result<Vec<u64>, StoreError> {
    let mut out: Vec<u64> = Vec::new();
    let from = if reverse { high } else { low };
    for run in runs(engine, prefix, from, reverse)? {
        let (first, key, value) = run?;
        if !reverse && first > high {
            break;
        }
        let mut seqs = decode_seqs(&key, &value)?;
        if reverse {
            seqs.reverse();
        }
        for seq in seqs.into_iter().filter(|s| (low..=high).contains(s)) {
            // Runs of a replay may overlap runs already there: each number once, in order.
            if out
                .last()
                .is_some_and(|&last| if reverse { seq >= last } else { seq <= last })
            {
                continue;
            }
            out.push(seq);
            if out.len() >= budget {
                return Ok(out);
            }
        }
        if reverse && first < low {
            break;
        }
    }
    Ok(out)
}

/// The tiles as the index holds them.
pub struct EngineTiles<'a>(pub &'a dyn Engine);

impl TileSource for EngineTiles<'_> {
    type Error = StoreError;

    fn tile(&self, level: u8, index: u64) -> Result<Vec<Hash>, StoreError> {
        let key = keys::tile(level, index);
        let value = self
            .0
            .get(&key)?
            .ok_or_else(|| corrupt(&key, format!("tile {level}/{index} is missing")))?;
        tiles::decode(&value).ok_or_else(|| corrupt(&key, "a tile is 32-byte hashes"))
    }
}

/// Trees of recently used tiles, so that proofs hash each tile once, not once per node.
pub struct TileCache {
    trees: std::collections::HashMap<(u8, u64), Arc<TileTree>>,
    order: std::collections::VecDeque<(u8, u64)>,
    capacity: usize,
}

impl TileCache {
    /// A cache of at most `capacity` tiles (8 KiB of hashes and as much of nodes each).
    pub fn new(capacity: usize) -> TileCache {
        TileCache {
            trees: Default::default(),
            order: Default::default(),
            capacity: capacity.max(1),
        }
    }

    fn get(&self, key: (u8, u64), needed: usize) -> Option<Arc<TileTree>> {
        self.trees
            .get(&key)
            .filter(|t| t.width() >= needed)
            .cloned()
    }

    fn put(&mut self, key: (u8, u64), tree: Arc<TileTree>) {
        if self.trees.insert(key, tree).is_none() {
            self.order.push_back(key);
            while self.order.len() > self.capacity {
                if let Some(old) = self.order.pop_front() {
                    self.trees.remove(&old);
                }
            }
        }
    }
}

/// The tree's nodes from the index's tiles, through a [`TileCache`].
pub struct CachedNodes<'a> {
    /// The index.
    pub engine: &'a dyn Engine,
    /// The cache.
    pub cache: &'a Mutex<TileCache>,
}

impl NodeSource for CachedNodes<'_> {
    type Error = StoreError;

    fn node(&self, level: u8, index: u64) -> Result<Hash, StoreError> {
        let (tile_level, tile_index, within, k, needed) = tiles::locate(level, index);
        let key = (tile_level, tile_index);
        let cached = self
            .cache
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(key, needed);
        let tree = match cached {
            Some(tree) => tree,
            None => {
                let entries = EngineTiles(self.engine).tile(tile_level, tile_index)?;
                let tree = Arc::new(TileTree::new(entries));
                self.cache
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .put(key, tree.clone());
                tree
            }
        };
        tree.node(within, k).ok_or_else(|| {
            TooNarrow {
                level: tile_level,
                index: tile_index,
                have: tree.width(),
                want: needed - 1,
            }
            .into()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::engine::SledEngine;

    #[test]
    fn runs_answer_lookups_across_commits() {
        runs_answer_lookups(false);
    }

    /// Commits indexed together (an indexer behind) answer exactly as commits indexed one by
    /// one, with one key per list for both.
    #[test]
    fn commits_absorbed_answer_as_commits_apart() {
        runs_answer_lookups(true);
    }

    /// A replay that writes a commit's runs beside the joined runs of a group (it began inside
    /// the group) leaves overlapping runs: every lookup still names each number once.
    #[test]
    fn overlapping_runs_name_each_number_once() {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path(), None).unwrap();
        let engine: &dyn Engine = &engine;
        let prefixes = vec![b"x/s/S-1\0".to_vec()];
        let commit = |seqs: std::ops::RangeInclusive<u64>| {
            let mut w = IndexWrites::default();
            for seq in seqs {
                w.message(MessageEntry {
                    seq,
                    location: (100 + seq, 10),
                    sender: "customs-nl",
                    id: &format!("id-{seq}"),
                    placements: vec![("market-a", seq)],
                    prefixes: &prefixes,
                });
            }
            w
        };
        let mut group = commit(1..=3);
        group.absorb(commit(4..=5));
        group.apply(engine, Applied::default()).unwrap();
        commit(4..=5).apply(engine, Applied::default()).unwrap();
        let p = &prefixes[0];
        assert_eq!(
            postings(engine, p, 1, 5, 10, false).unwrap(),
            vec![1, 2, 3, 4, 5]
        );
        assert_eq!(
            postings(engine, p, 1, 5, 10, true).unwrap(),
            vec![5, 4, 3, 2, 1]
        );
        assert_eq!(postings(engine, p, 1, 5, 3, true).unwrap(), vec![5, 4, 3]);
        assert_eq!(
            inbox(engine, "market-a", 0, 10, 5).unwrap(),
            (1..=5).map(|n| (n, n)).collect::<Vec<_>>()
        );
    }

    fn runs_answer_lookups(absorbed: bool) {
        let dir = tempfile::tempdir().unwrap();
        let engine = SledEngine::open(dir.path(), None).unwrap();
        let engine: &dyn Engine = &engine;
        let prefixes = vec![b"x/s/S-1\0".to_vec()];
        // Two commits: seqs 1..=3 and 4..=5; market-a gets inbox numbers 1..=5.
        let mut together = IndexWrites::default();
        for (seqs, pos) in [(1u64..=3, 100u64), (4..=5, 200)] {
            let mut w = IndexWrites::default();
            for seq in seqs {
                w.message(MessageEntry {
                    seq,
                    location: (pos + seq, 10),
                    sender: "customs-nl",
                    id: &format!("id-{seq}"),
                    placements: vec![("market-a", seq)],
                    prefixes: if seq % 2 == 1 { &prefixes } else { &[] },
                });
            }
            if absorbed {
                together.absorb(w);
            } else {
                w.apply(engine, Applied::default()).unwrap();
            }
        }
        if absorbed {
            assert_eq!(together.len(), 5);
            together.apply(engine, Applied::default()).unwrap();
            let inbox_keys = engine
                .range(
                    &keys::inbox_prefix("market-a"),
                    &keys::inbox_prefix("market-b"),
                    false,
                )
                .count();
            assert_eq!(inbox_keys, 1, "one run for both commits");
        }
        assert_eq!(message_location(engine, 2).unwrap(), Some((102, 10)));
        assert_eq!(message_location(engine, 5).unwrap(), Some((205, 10)));
        assert_eq!(message_location(engine, 6).unwrap(), None);
        assert_eq!(
            inbox(engine, "market-a", 2, 10, 5).unwrap(),
            vec![(3, 3), (4, 4), (5, 5)]
        );
        assert_eq!(
            inbox(engine, "market-a", 0, 2, 5).unwrap(),
            vec![(1, 1), (2, 2)]
        );
        // Not yet durable: neither listed nor counted.
        assert_eq!(inbox(engine, "market-a", 3, 10, 4).unwrap(), vec![(4, 4)]);
        assert_eq!(inbox_head(engine, "market-a", 4).unwrap(), 4);
        assert_eq!(inbox_head(engine, "market-b", 4).unwrap(), 0);
        let p = &prefixes[0];
        assert_eq!(postings(engine, p, 1, 5, 10, false).unwrap(), vec![1, 3, 5]);
        assert_eq!(postings(engine, p, 1, 5, 10, true).unwrap(), vec![5, 3, 1]);
        assert_eq!(postings(engine, p, 2, 4, 10, true).unwrap(), vec![3]);
        assert_eq!(postings(engine, p, 2, 5, 1, false).unwrap(), vec![3]);
        assert_eq!(
            engine
                .get(&keys::idempotency("customs-nl", "id-4"))
                .unwrap(),
            Some(4u64.to_be_bytes().to_vec())
        );
    }
}
