//! Live subscriptions. Every message made durable is published once on a shared ring bounded
//! in messages and bytes ([`crate::storage::Store::live`]); each subscriber's task takes what
//! it may read and wants from the ring, in sequence order. A subscriber that falls behind the
//! ring — a slow link, a client that does not read — is switched to reading from the store
//! until it has caught up, then back to the ring; it holds nothing of the ring meanwhile.
//! Memory stays bounded whatever the number of slow subscribers: the ring is shared, and each
//! stream buffers at most [`STREAM_BUFFER`] deliveries and [`STREAM_BUFFER_BYTES`] bytes
//! before its task waits for the client. Within one stream nothing is skipped or repeated: the
//! task's next sequence number only moves forward, one message at a time.

use super::error::Error;
use super::{events, inbox_no, Gateway};
use crate::auth::identity::Caller;
use crate::domain::facets::MessageFilter;
use crate::domain::Violations;
use crate::pb;
use crate::pb::limits::MAX_SUBSCRIPTION_NAME;
use crate::storage::{Live, LiveError, LiveReceiver};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::sync::{mpsc, watch, OwnedSemaphorePermit, Semaphore};

/// Subscriptions.
impl Gateway {
    /// Ends every subscription stream (with UNAVAILABLE, so clients reconnect elsewhere).
    pub fn begin_shutdown(&self) {
        self.closing.send_replace(true);
    }

    /// Starts a subscription: what is stored from the chosen start, then live messages.
    pub async fn subscribe(
        self: &Arc<Self>,
        caller: Caller,
        request: pb::SubscribeRequest,
    ) -> Result<DeliveryStream, Error> {
        let mut v = Violations::default();
        let filter = MessageFilter::parse(request.filter.as_ref(), "filter").unwrap_or_else(|e| {
            v.append(e);
            Default::default()
        });
        let durable = (!request.durable_name.is_empty()).then_some(request.durable_name.as_str());
        if let Some(name) = durable {
            check_subscription_name(name, "durable_name", &mut v);
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        // Start after everything stored before this call; subscribe to the live ring before
        // choosing the start, so nothing falls between.
        self.store.settled().await?;
        let live = self.store.live();
        let requested = match request.start {
            Some(pb::subscribe_request::Start::FromSeq(seq)) => seq.max(1),
            Some(pb::subscribe_request::Start::Latest(_)) | None => self.store.last_seq() + 1,
        };
        let next = match durable {
            Some(name) => {
                let (acked, _) = self
                    .store
                    .set_cursor(caller.id(), name, requested - 1, true, None)
                    .await?;
                acked + 1
            }
            None => requested,
        };
        tracing::info!(
            participant = caller.id(),
            durable = durable.unwrap_or(""),
            from_seq = next,
            "subscribed"
        );
        Ok(spawn(
            self.clone(),
            caller,
            filter,
            next,
            live,
            self.closing.subscribe(),
        ))
    }

    /// Acknowledges a durable subscription's deliveries up to a sequence number, durably and
    /// with one audit leaf.
    pub async fn ack(
        &self,
        caller: &Caller,
        request: pb::AckRequest,
    ) -> Result<pb::AckResponse, Error> {
        let mut v = Violations::default();
        check_subscription_name(&request.name, "name", &mut v);
        self.store.settled().await?;
        let last = self.store.last_seq();
        if request.up_to_seq > last {
            v.add(
                "up_to_seq",
                format!("{} is beyond the last message ({last})", request.up_to_seq),
            );
        }
        if !v.is_empty() {
            return Err(v.into());
        }
        if self.store.cursor(caller.id(), &request.name)?.is_none() {
            return Err(Error::NotFound(format!(
                "no durable subscription {:?} of {}",
                request.name,
                caller.id()
            )));
        }
        let leaf = events::acked(caller, &request.name, request.up_to_seq);
        let (acked_seq, leaf_index) = self
            .store
            .set_cursor(
                caller.id(),
                &request.name,
                request.up_to_seq,
                false,
                Some(leaf),
            )
            .await?;
        Ok(pb::AckResponse {
            acked_seq,
            leaf_index: leaf_index.unwrap_or_default(),
        })
    }
}

fn check_subscription_name(name: &str, field: &str, v: &mut Violations) {
    if name.is_empty()
        || name.len() > MAX_SUBSCRIPTION_NAME
        || !name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
    {
        v.add(
            field,
            format!("{name:?} must be 1 to {MAX_SUBSCRIPTION_NAME} characters of [A-Za-z0-9._-]"),
        );
    }
}

/// Deliveries a stream buffers before its task waits for the client.
pub const STREAM_BUFFER: usize = 32;

/// Bytes of deliveries (encoded) a stream buffers before its task waits for the client; a
/// delivery larger than this is sent alone.
pub const STREAM_BUFFER_BYTES: usize = 256 * 1024;

/// A delivery waiting for the client, and the share of the stream's byte budget it holds.
type Buffered = (Result<pb::Delivery, Error>, Option<OwnedSemaphorePermit>);

/// The stream of one subscriber: deliveries in sequence order, ended by an error when the
/// gateway shuts down or the store cannot be read.
pub struct DeliveryStream {
    buffered: mpsc::Receiver<Buffered>,
}

impl futures::Stream for DeliveryStream {
    type Item = Result<pb::Delivery, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        // The permit is dropped here: the bytes are the transport's now, within HTTP/2 flow
        // control.
        self.buffered
            .poll_recv(cx)
            .map(|next| next.map(|(delivery, _permit)| delivery))
    }
}

/// Starts delivering to `caller` every message from sequence number `next` on that matches
/// `filter` and that it may read. `live` must have been subscribed before `next` was chosen,
/// so that nothing falls between the store and the ring. The stream ends with UNAVAILABLE
/// when the gateway shuts down.
pub fn spawn(
    gateway: Arc<Gateway>,
    caller: Caller,
    filter: MessageFilter,
    next: u64,
    live: LiveReceiver,
    closing: watch::Receiver<bool>,
) -> DeliveryStream {
    let (tx, rx) = mpsc::channel(STREAM_BUFFER);
    let open = gateway.metrics.open_stream(next);
    tokio::spawn(
        Pump {
            gateway,
            caller,
            filter,
            next,
            tx,
            budget: Arc::new(Semaphore::new(STREAM_BUFFER_BYTES)),
            open,
        }
        .run(live, closing),
    );
    DeliveryStream { buffered: rx }
}

struct Pump {
    gateway: Arc<Gateway>,
    caller: Caller,
    filter: MessageFilter,
    /// The next sequence number to consider.
    next: u64,
    tx: mpsc::Sender<Buffered>,
    /// The bytes the stream may buffer ([`STREAM_BUFFER_BYTES`]).
    budget: Arc<Semaphore>,
    /// Counts the stream as open, and publishes `next`, for the metrics; dropped with the pump.
    open: crate::ops::metrics::OpenStream,
}

/// Why a pump stops.
enum Stop {
    /// The client went away.
    Gone,
}

impl Pump {
    async fn run(mut self, mut live: LiveReceiver, mut closing: watch::Receiver<bool>) {
        // Behind: the start lies before the durable end, or the ring overtook us. Then read
        // from the store until caught up; otherwise take each message from the ring.
        let mut behind = self.next <= self.gateway.store.last_seq();
        loop {
            self.open.at(self.next);
            if *closing.borrow() {
                let _ = self.tx.send((Err(Error::ShuttingDown), None)).await;
                return;
            }
            if behind {
                if let Err(Stop::Gone) = self.catch_up().await {
                    return;
                }
                behind = self.next <= self.gateway.store.last_seq();
                continue;
            }
            tokio::select! {
                _ = closing.changed() => continue,
                _ = self.tx.closed() => return,
                received = live.recv(self.next) => match received {
                    Ok(message) if message.receipt.seq == self.next => {
                        if self.offer(&message).await.is_err() {
                            return;
                        }
                    }
                    // A gap (cannot happen without a lag, but cheap to be sure of): fill it
                    // from the store, this message included.
                    Ok(_) => behind = true,
                    Err(LiveError::Lagged) => {
                        tracing::debug!(
                            participant = self.caller.id(),
                            next = self.next,
                            "subscriber fell behind the live ring; catching up from the store"
                        );
                        behind = true;
                    }
                    Err(LiveError::Closed) => return,
                },
            }
        }
    }

    /// Delivers from the store up to the durable end, a bounded stretch at a time.
    async fn catch_up(&mut self) -> Result<(), Stop> {
        let end = self.gateway.store.last_seq();
        let stretch_end = end.min(self.next.saturating_add(256));
        while self.next <= stretch_end {
            match self.gateway.store.shared(self.next) {
                Ok(Some(message)) => self.offer(&message).await?,
                Ok(None) => self.next += 1,
                Err(error) => {
                    let _ = self.tx.send((Err(Error::from(error)), None)).await;
                    return Err(Stop::Gone);
                }
            }
        }
        Ok(())
    }

    /// Sends the message `self.next` if the subscriber wants it and may read it; moves on.
    /// What is sent is the message's shared wire form and this reader's inbox number: the
    /// message is neither copied nor encoded again per subscriber.
    async fn offer(&mut self, message: &Live) -> Result<(), Stop> {
        let (envelope, receipt) = (message.envelope.as_ref(), &message.receipt);
        self.next = receipt.seq + 1;
        self.open.at(self.next);
        if !self.filter.accepts(envelope)
            || !self.gateway.may_read_parts(&self.caller, envelope, receipt)
        {
            return Ok(());
        }
        let delivery = pb::Delivery {
            message: None,
            seq: receipt.seq,
            leaf_index: receipt.leaf_index,
            wire: Some(pb::WireMessage {
                shared: message.wire.clone(),
                inbox_no: inbox_no(receipt, self.caller.id()),
            }),
        };
        let bytes = prost::Message::encoded_len(&delivery).clamp(1, STREAM_BUFFER_BYTES);
        // Waits while the stream holds its budget: the client is not reading. A closed
        // client is noticed by the send below.
        let permit = tokio::select! {
            permit = self.budget.clone().acquire_many_owned(bytes as u32) => permit.ok(),
            () = self.tx.closed() => return Err(Stop::Gone),
        };
        self.tx
            .send((Ok(delivery), permit))
            .await
            .map_err(|_| Stop::Gone)
    }
}
