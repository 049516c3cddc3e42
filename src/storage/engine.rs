//! The storage engine behind a small trait — get, ordered range, atomic batch, flush — so
//! that the rest of the store never names the engine, and another one (PostgreSQL, for an
//! operator that outgrows one machine) can be added by one module that passes the same
//! conformance suite ([`super::conformance`]). Today's engine is sled 0.34 ([`SledEngine`]).

use super::error::StoreError;
use std::path::Path;
use std::sync::Arc;

/// A key and its value.
pub type Entry = (Vec<u8>, Vec<u8>);

/// Entries of a range, in the order asked.
pub type Entries<'a> = Box<dyn Iterator<Item = Result<Entry, StoreError>> + Send + 'a>;

/// What the store needs of an ordered key-value engine.
pub trait Engine: Send + Sync {
    /// The value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError>;

    /// Entries with `from <= key < to`, in key order, or in reverse key order.
    fn range<'a>(&'a self, from: &[u8], to: &[u8], reverse: bool) -> Entries<'a>;

    /// Applies every write of `batch`, in order (not yet durably: see [`Engine::flush`]).
    /// Not atomic: after a crash a prefix of the writes may be there. The store writes only
    /// what it can rebuild from the log, and writes last what says how far it got.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError>;

    /// Makes everything applied so far durable.
    fn flush(&self) -> Result<(), StoreError>;

    /// Bytes the engine occupies on disk.
    fn size_on_disk(&self) -> Result<u64, StoreError>;

    /// The last entry whose key starts with `prefix`.
    fn last_in(&self, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        let mut end = prefix.to_vec();
        // The smallest key above every key with this prefix: the prefix with its last byte
        // below 0xff incremented (and the 0xff tail dropped).
        while let Some(last) = end.pop() {
            if last < 0xff {
                end.push(last + 1);
                return self.range(prefix, &end, true).next().transpose();
            }
        }
        self.range(prefix, &[0xff; 64], true).next().transpose()
    }
}

/// Writes applied atomically by [`Engine::apply`].
#[derive(Default)]
pub struct WriteBatch {
    /// `(key, value)` in the order given; a later write of a key wins.
    writes: Vec<Entry>,
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

impl From<sled::Error> for StoreError {
    fn from(e: sled::Error) -> Self {
        StoreError::Engine(e.to_string())
    }
}

/// sled 0.34.7, one tree.
pub struct SledEngine {
    /// The database, for flushes.
    db: sled::Db,
    /// The one tree everything lives in.
    tree: sled::Tree,
    /// sled's log file, synced after each flush (see [`SledEngine::flush`]).
    log: Arc<std::fs::File>,
}

impl SledEngine {
    /// Opens (or creates) the engine in `dir`, with a page cache of `cache_bytes` (sled's
    /// default, 1 GiB, when `None`).
    pub fn open(dir: &Path, cache_bytes: Option<u64>) -> Result<SledEngine, StoreError> {
        let mut config = sled::Config::new()
            .path(dir)
            // The store flushes when it chooses; sled's own timer would only add
            // uncoordinated fsyncs.
            .flush_every_ms(None);
        if let Some(bytes) = cache_bytes {
            config = config.cache_capacity(bytes);
        }
        // sled's file lock lives as long as its `Db`, which the last reader of a closed store
        // may hold a moment longer; a store closed and opened again in one process (a restart
        // in tests, an offline command right after a stop) waits for it rather than failing.
        let mut attempts = 0;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if attempts < 250
                        && (e.kind() == std::io::ErrorKind::WouldBlock
                            || e.to_string().contains("could not acquire lock")) =>
                {
                    attempts += 1;
                    std::thread::sleep(std::time::Duration::from_millis(40));
                }
                other => break other?,
            }
        };
        let tree = db.open_tree("ipex")?;
        let log = std::fs::File::open(dir.join("db"))
            .map_err(|e| StoreError::Engine(format!("cannot open sled's log file: {e}")))?;
        Ok(SledEngine {
            db,
            tree,
            log: Arc::new(log),
        })
    }
}

impl Engine for SledEngine {
    fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self.tree.get(key)?.map(|v| v.to_vec()))
    }

    fn range<'a>(&'a self, from: &[u8], to: &[u8], reverse: bool) -> Entries<'a> {
        let entries = self
            .tree
            .range(from.to_vec()..to.to_vec())
            .map(|r| r.map(|(k, v)| (k.to_vec(), v.to_vec())).map_err(Into::into));
        if reverse {
            Box::new(entries.rev())
        } else {
            Box::new(entries)
        }
    }

    fn last_in(&self, prefix: &[u8]) -> Result<Option<Entry>, StoreError> {
        Ok(self
            .tree
            .scan_prefix(prefix)
            .next_back()
            .transpose()?
            .map(|(k, v)| (k.to_vec(), v.to_vec())))
    }

    /// One insert after another. Measured on sled 0.34.7 (small keys): an insert costs about
    /// 8 µs, the same insert inside a transaction about 13 µs, and `Tree::apply_batch` keeps
    /// about 3 KiB of memory per key that it never gives back. Single inserts also keep
    /// sled's process-wide lock, which transactions and batches take, away from readers.
    fn apply(&self, batch: WriteBatch) -> Result<(), StoreError> {
        for (key, value) in batch.writes {
            self.tree.insert(key, value)?;
        }
        Ok(())
    }

    /// sled 0.34 writes its log with `sync_file_range`, which neither saves the file's
    /// metadata (its growth) nor empties the drive's write cache; the `fdatasync` that
    /// follows does both.
    fn flush(&self) -> Result<(), StoreError> {
        self.db.flush()?;
        self.log
            .sync_data()
            .map_err(|e| StoreError::Engine(format!("fdatasync of sled's log failed: {e}")))?;
        Ok(())
    }

    fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }
}
