//! The live ring: messages just made durable, kept in memory for live subscribers, bounded
//! by a count of messages and by their bytes, whichever is reached first.
//!
//! Not a `tokio::sync::broadcast` channel, which bounds by count only and keeps each slot
//! until every receiver has read it or it is overwritten: subscribers that stop reading held
//! the whole ring (1024 messages of up to 1 MiB each) however few bytes we meant to spend.
//! Here a receiver holds no slot: it remembers the next sequence number it wants and looks it
//! up when told something new was published; a receiver whose message has left the ring is
//! told it lagged, and reads from the store instead.

use super::message::Live;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use tokio::sync::watch;

/// The messages kept, oldest first, and their bytes.
#[derive(Default)]
struct Ring {
    messages: VecDeque<Arc<Live>>,
    bytes: usize,
}

/// The ring and its bounds; shared by the publisher and every receiver.
struct Shared {
    ring: Mutex<Ring>,
    max_messages: usize,
    max_bytes: usize,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Ring> {
        // A deque and a sum: consistent whatever panicked while holding the lock.
        self.ring.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Publishes messages on the ring; receivers see them closed once every publisher is gone.
#[derive(Clone)]
pub struct LivePublisher {
    shared: Arc<Shared>,
    /// The last sequence number published; a change wakes the receivers.
    published: Arc<watch::Sender<u64>>,
}

/// Why a receiver got no message.
#[derive(Debug, PartialEq, Eq)]
pub enum LiveError {
    /// The message wanted has left the ring: read it from the store.
    Lagged,
    /// Nothing more will be published.
    Closed,
}

/// One subscriber's view of the ring.
pub struct LiveReceiver {
    shared: Arc<Shared>,
    published: watch::Receiver<u64>,
}

impl LivePublisher {
    /// A ring of at most `max_messages` messages and `max_bytes` bytes (the newest message is
    /// kept even when it alone is larger).
    pub fn new(max_messages: usize, max_bytes: usize) -> LivePublisher {
        LivePublisher {
            shared: Arc::new(Shared {
                ring: Mutex::new(Ring::default()),
                max_messages: max_messages.max(1),
                max_bytes,
            }),
            published: Arc::new(watch::Sender::new(0)),
        }
    }

    /// Adds a message, newer than every message before, dropping the oldest beyond the
    /// bounds, and wakes the receivers.
    pub fn publish(&self, message: Arc<Live>) {
        let seq = message.receipt.seq;
        {
            let mut ring = self.shared.lock();
            ring.bytes += message.wire.len();
            ring.messages.push_back(message);
            while ring.messages.len() > self.shared.max_messages
                || (ring.bytes > self.shared.max_bytes && ring.messages.len() > 1)
            {
                if let Some(oldest) = ring.messages.pop_front() {
                    ring.bytes -= oldest.wire.len();
                }
            }
        }
        self.published.send_replace(seq);
    }

    /// A receiver of what is published from now on.
    pub fn subscribe(&self) -> LiveReceiver {
        LiveReceiver {
            shared: self.shared.clone(),
            published: self.published.subscribe(),
        }
    }

    /// Messages and bytes in the ring now.
    pub fn held(&self) -> (usize, usize) {
        let ring = self.shared.lock();
        (ring.messages.len(), ring.bytes)
    }
}

impl LiveReceiver {
    /// The first message published with a sequence number of at least `next`, waiting until
    /// there is one; `Lagged` when it has already left the ring.
    pub async fn recv(&mut self, next: u64) -> Result<Arc<Live>, LiveError> {
        loop {
            let last = *self.published.borrow_and_update();
            if last >= next {
                let ring = self.shared.lock();
                let first = ring.messages.partition_point(|m| m.receipt.seq < next);
                return match ring.messages.get(first) {
                    // The oldest kept is newer than `next`: it may have left the ring.
                    Some(_) if first == 0 && ring.messages[0].receipt.seq > next => {
                        Err(LiveError::Lagged)
                    }
                    Some(message) => Ok(message.clone()),
                    None => Err(LiveError::Lagged),
                };
            }
            if self.published.changed().await.is_err() {
                return Err(LiveError::Closed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn live(seq: u64, bytes: usize) -> Arc<Live> {
        Arc::new(Live {
            envelope: Arc::new(pb::Envelope::default()),
            receipt: pb::Receipt {
                seq,
                ..Default::default()
            },
            wire: vec![0; bytes].into(),
        })
    }

    /// The ring keeps at most its count and its bytes; a receiver past its end lags.
    #[tokio::test]
    async fn bounded_by_count_and_bytes() {
        let ring = LivePublisher::new(4, 1000);
        let mut rx = ring.subscribe();
        for seq in 1..=3 {
            ring.publish(live(seq, 400));
        }
        assert_eq!(ring.held(), (2, 800), "the bytes bound");
        assert_eq!(rx.recv(1).await.unwrap_err(), LiveError::Lagged);
        assert_eq!(rx.recv(2).await.unwrap().receipt.seq, 2);
        assert_eq!(rx.recv(3).await.unwrap().receipt.seq, 3);
        for seq in 4..=9 {
            ring.publish(live(seq, 1));
        }
        assert_eq!(ring.held(), (4, 4), "the count bound");
        ring.publish(live(10, 5000));
        assert_eq!(ring.held(), (1, 5000), "the newest stays, however large");
        assert_eq!(rx.recv(10).await.unwrap().receipt.seq, 10);
    }

    /// A receiver waits for what is not yet published, and learns when nothing more will be.
    #[tokio::test]
    async fn waits_then_closes() {
        let ring = LivePublisher::new(16, 1 << 20);
        let mut rx = ring.subscribe();
        let publisher = ring.clone();
        let waiting = tokio::spawn(async move { rx.recv(1).await.map(|m| m.receipt.seq) });
        tokio::task::yield_now().await;
        publisher.publish(live(1, 10));
        assert_eq!(waiting.await.unwrap(), Ok(1));
        let mut rx = ring.subscribe();
        drop(ring);
        drop(publisher);
        assert_eq!(rx.recv(2).await.unwrap_err(), LiveError::Closed);
    }
}
