//! Refused handshakes as evidence without amplification: each refusal is counted by
//! (reason, source address, certificate) in memory, and the counts are written to the
//! exchange log once per interval ([`Gateway::record_handshake_refusals`]) — one leaf for the
//! refusals whose certificate names a registered participant, per participant, and one for
//! all others. Whatever an outsider sends, the log grows by at most a leaf per registered
//! participant and one more per interval, and memory by at most [`MAX_ENTRIES`] entries.

use super::{events, Gateway};
use crate::auth::tls::HandshakeFailure;
use crate::pb;
use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::SystemTime;

/// Distinct (reason, address, certificate) entries kept per interval; refusals beyond them
/// are counted without detail (`untallied`).
pub const MAX_ENTRIES: usize = 1024;

/// What one entry counts.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    reason: String,
    peer: IpAddr,
    certificate_sha256: String,
    participant: String,
}

/// The refusals of one interval.
#[derive(Debug)]
struct Interval {
    since: SystemTime,
    counts: BTreeMap<Key, u64>,
    untallied: u64,
}

impl Interval {
    fn new() -> Interval {
        Interval {
            since: SystemTime::now(),
            counts: BTreeMap::new(),
            untallied: 0,
        }
    }
}

/// Refused handshakes counted since the last summary.
#[derive(Debug)]
pub struct HandshakeTally {
    interval: Mutex<Interval>,
}

impl Default for HandshakeTally {
    fn default() -> Self {
        HandshakeTally {
            interval: Mutex::new(Interval::new()),
        }
    }
}

impl HandshakeTally {
    /// Counts one refused handshake or connection.
    pub fn count(&self, failure: &HandshakeFailure) {
        let (certificate_sha256, participant) = failure
            .presented
            .as_ref()
            .map(|p| (p.certificate_sha256.clone(), p.participant.clone()))
            .unwrap_or_default();
        let key = Key {
            reason: failure.reason.clone(),
            peer: failure.remote_addr.ip(),
            certificate_sha256,
            participant,
        };
        let mut interval = self.lock();
        let full = interval.counts.len() >= MAX_ENTRIES;
        match interval.counts.get_mut(&key) {
            Some(count) => *count += 1,
            None if full => interval.untallied += 1,
            None => {
                interval.counts.insert(key, 1);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Interval> {
        // Counters only: consistent whatever panicked while holding the lock.
        self.interval
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Ends the interval: its counts, and a fresh interval begun.
    fn take(&self) -> Interval {
        std::mem::replace(&mut *self.lock(), Interval::new())
    }
}

/// Refused handshakes.
impl Gateway {
    /// Writes the refused handshakes counted since the last call, if any, as summary leaves,
    /// and waits until they are durable. Returns how many leaves were written.
    pub async fn record_handshake_refusals(
        &self,
        tally: &HandshakeTally,
    ) -> Result<usize, crate::storage::StoreError> {
        let interval = tally.take();
        if interval.counts.is_empty() && interval.untallied == 0 {
            return Ok(0);
        }
        let registry = self.registry.load();
        // The party of each entry: the participant its certificate names, when registered.
        let mut by_party: BTreeMap<String, Vec<pb::RefusedHandshakes>> = BTreeMap::new();
        for (key, count) in interval.counts {
            let party = if !key.participant.is_empty() && registry.get(&key.participant).is_some() {
                key.participant.clone()
            } else {
                String::new()
            };
            by_party
                .entry(party)
                .or_default()
                .push(pb::RefusedHandshakes {
                    reason: key.reason,
                    peer: key.peer.to_string(),
                    certificate_sha256: key.certificate_sha256,
                    participant: key.participant,
                    count,
                });
        }
        if interval.untallied > 0 {
            by_party.entry(String::new()).or_default();
        }
        let leaves: Vec<pb::AuditLeaf> = by_party
            .into_iter()
            .map(|(party, entries)| {
                let untallied = if party.is_empty() {
                    interval.untallied
                } else {
                    0
                };
                events::handshakes_refused(party, interval.since, entries, untallied)
            })
            .collect();
        let written = leaves.len();
        self.store.record(leaves).await?;
        Ok(written)
    }
}
