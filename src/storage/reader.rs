//! Reading the store: a message or a leaf is one index lookup and one positioned read of its
//! record in the log, checked against the record's checksum.

use super::engine::Engine;
use super::error::StoreError;
use super::index::{self, EngineTiles, Location};
use super::keys;
use super::message::{decode_live, decode_message, Live, Stored};
use super::segments::{self, Segments};
use crate::log::merkle::Hash;
use crate::log::record::{self, Body, LogRecord};
use crate::log::tiles::{TileSource, WIDTH};
use std::sync::Arc;

/// The index and the log, for reads.
#[derive(Clone)]
pub struct Reader {
    /// The index.
    pub(super) engine: Arc<dyn Engine>,
    /// The log.
    pub(super) segments: Arc<Segments>,
    /// Messages recently read for subscribers.
    pub(super) recent: Arc<Recent>,
}

/// Messages recently read for subscribers, decoded and in wire form, up to a weight in bytes.
/// Subscribers replaying the log, or catching up after they fell behind the live ring, read
/// mostly the same messages at about the same time: each is read from the log and decoded
/// once, not once per subscriber (a message being loaded is loaded once, its other readers
/// wait for it). Messages just made durable are not put here: the live ring holds them.
pub struct Recent(quick_cache::sync::Cache<u64, Arc<Live>, ByWeight>);

#[derive(Clone)]
pub struct ByWeight;

impl quick_cache::Weighter<u64, Arc<Live>> for ByWeight {
    fn weight(&self, _: &u64, message: &Arc<Live>) -> u64 {
        message.weight()
    }
}

impl Recent {
    /// A cache of at most `bytes`.
    pub fn new(bytes: u64) -> Recent {
        // Estimated items: messages of about 2 KiB once decoded.
        let items = (bytes / 2048).clamp(16, 1 << 20) as usize;
        Recent(quick_cache::sync::Cache::with_weighter(
            items,
            bytes.max(1),
            ByWeight,
        ))
    }
}

impl Reader {
    /// The record at `location`.
    pub(super) fn record(&self, location: Location) -> Result<LogRecord, StoreError> {
        let (pos, len) = location;
        let (segment, offset) = segments::split(pos);
        let what = || format!("log segment {segment} offset {offset}");
        let payload = self
            .segments
            .read(pos, len)
            .map_err(|e| StoreError::Corrupt {
                key: what(),
                reason: e.to_string(),
            })?;
        record::decode(&payload, offset).map_err(|e| StoreError::Corrupt {
            key: what(),
            reason: e.to_string(),
        })
    }

    /// Message `seq` as subscribers get it, if it is in the index: from the cache of recent
    /// messages, or read from the log and kept there.
    pub fn shared(&self, seq: u64) -> Result<Option<Arc<Live>>, StoreError> {
        let loaded = self.recent.0.get_or_insert_with(&seq, || {
            let Some(location) = index::message_location(self.engine.as_ref(), seq)? else {
                return Err(None);
            };
            match self.record(location).map_err(Some)?.body {
                Some(Body::Message(m)) => decode_live(m, || format!("message {seq}"))
                    .map(Arc::new)
                    .map_err(Some),
                _ => Err(Some(StoreError::Corrupt {
                    key: format!("message {seq}"),
                    reason: "the index points at a record that is not a message".into(),
                })),
            }
        });
        match loaded {
            Ok(message) => Ok(Some(message)),
            Err(None) => Ok(None),
            Err(Some(error)) => Err(error),
        }
    }

    /// Message `seq`, if it is in the index.
    pub fn message(&self, seq: u64) -> Result<Option<Stored>, StoreError> {
        let Some(location) = index::message_location(self.engine.as_ref(), seq)? else {
            return Ok(None);
        };
        match self.record(location)?.body {
            Some(Body::Message(m)) => decode_message(m, || format!("message {seq}")).map(Some),
            _ => Err(StoreError::Corrupt {
                key: format!("message {seq}"),
                reason: "the index points at a record that is not a message".into(),
            }),
        }
    }

    /// The sequence number of message `id` of `sender`, if it is in the index.
    pub fn seq_of(&self, sender: &str, id: &str) -> Result<Option<u64>, StoreError> {
        let key = keys::idempotency(sender, id);
        let Some(value) = self.engine.get(&key)? else {
            return Ok(None);
        };
        keys::trailing_u64(&value)
            .map(Some)
            .ok_or_else(|| StoreError::Corrupt {
                key: String::from_utf8_lossy(&key).into_owned(),
                reason: "idempotency value is not a sequence number".into(),
            })
    }

    /// The data of leaf `index`.
    pub fn leaf_data(&self, index: u64) -> Result<Vec<u8>, StoreError> {
        let missing = || StoreError::Corrupt {
            key: format!("leaf {index}"),
            reason: "not in the index".into(),
        };
        let location = index::leaf_location(self.engine.as_ref(), index)?.ok_or_else(missing)?;
        match self.record(location)?.body {
            Some(Body::Leaf(leaf)) if leaf.index == index => Ok(leaf.data),
            _ => Err(StoreError::Corrupt {
                key: format!("leaf {index}"),
                reason: "the index points at a record that is not this leaf".into(),
            }),
        }
    }

    /// The hash of leaf `index`, from its tile.
    pub fn leaf_hash(&self, index: u64) -> Result<Hash, StoreError> {
        let tile = EngineTiles(self.engine.as_ref()).tile(0, index / WIDTH)?;
        tile.get((index % WIDTH) as usize)
            .copied()
            .ok_or_else(|| StoreError::Corrupt {
                key: format!("leaf {index}"),
                reason: "its tile does not reach it".into(),
            })
    }
}
