//! A message on its way into the store and out of it: what the submitting call hands the
//! committer ([`NewMessage`], with the audit leaves the application builds for it through
//! [`MessageEvents`]), and what readers and live subscribers get back ([`Stored`], [`Live`]).

use super::error::StoreError;
use super::keys;
use crate::domain::facets::Facets;
use crate::log::record::MessageRecord;
use crate::pb;
use prost::Message;
use std::sync::Arc;

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
    /// Raised by the gateway from message number `i` of the same commit (a listing alert, a
    /// seller match), not sent by a participant: it is stored only when that message is
    /// (never for a resubmission), and when its `(sender, id)` is stored already, that
    /// message stands, whatever this one holds, so that raising it twice stores it once.
    pub derived_from: Option<usize>,
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

/// A durable message as subscribers receive it, from the live ring or from the store's
/// cache of recent messages: decoded once, and in the wire form its deliveries share.
#[derive(Clone, Debug)]
pub struct Live {
    /// The envelope.
    pub envelope: Arc<pb::Envelope>,
    /// Its receipt.
    pub receipt: pb::Receipt,
    /// The `StoredMessage` fields all readers share, encoded ([`pb::WireMessage::shared`]).
    pub wire: prost::bytes::Bytes,
}

impl Live {
    /// The message whose canonical bytes are `encoded`.
    pub fn new(envelope: Arc<pb::Envelope>, receipt: pb::Receipt, encoded: &[u8]) -> Live {
        let wire = pb::WireMessage::shared(
            encoded,
            receipt.seq,
            receipt.stored_at.as_ref(),
            &receipt.envelope_sha256,
        );
        Live {
            envelope,
            receipt,
            wire,
        }
    }

    /// Bytes it holds, roughly: what a cache of them weighs.
    pub fn weight(&self) -> u64 {
        // The decoded envelope takes about as much again as its wire form.
        2 * self.wire.len() as u64 + 256
    }
}

/// The message of a record read back from the log, shared.
pub(super) fn decode_live(
    record: MessageRecord,
    what: impl Fn() -> String,
) -> Result<Live, StoreError> {
    let encoded = record.envelope.clone();
    let Stored { envelope, receipt } = decode_message(record, what)?;
    Ok(Live::new(Arc::new(envelope), receipt, &encoded))
}

/// The message of a record read back from the log.
pub(super) fn decode_message(
    record: MessageRecord,
    what: impl Fn() -> String,
) -> Result<Stored, StoreError> {
    let corrupt = |reason: String| StoreError::Corrupt {
        key: what(),
        reason,
    };
    let envelope =
        pb::Envelope::decode(record.envelope.as_slice()).map_err(|e| corrupt(e.to_string()))?;
    let receipt = record
        .receipt
        .ok_or_else(|| corrupt("message record without receipt".into()))?;
    Ok(Stored { envelope, receipt })
}
