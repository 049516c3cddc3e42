//! `ipex.v1.Delivery`, written by hand instead of generated, so that the gateway can send a
//! message to many subscribers without decoding, copying and encoding it once for each: a
//! delivery carries either the decoded [`StoredMessage`] (what a client reads) or its wire
//! form, shared by every delivery of the message ([`WireMessage`]). Both encode to the same
//! bytes; decoding always gives the decoded form. build.rs points the generated code here
//! (`extern_path`), so the service and its clients use this type.

use super::generated::StoredMessage;
use prost::bytes::{Buf, BufMut, Bytes};
use prost::encoding::{self, DecodeContext, WireType};
use prost::{DecodeError, Message};
use prost_types::Timestamp;

/// A subscription delivery: a message, its sequence number and its acceptance leaf.
#[derive(Clone, PartialEq, Default, Debug)]
pub struct Delivery {
    /// The message, as Get returns it (field 1).
    pub message: Option<StoredMessage>,
    /// Its global sequence number (field 2).
    pub seq: u64,
    /// Index of the audit leaf that recorded its acceptance (field 3).
    pub leaf_index: u64,
    /// The message in wire form, sent instead of `message` when set; never set by decoding.
    pub wire: Option<WireMessage>,
}

/// A [`StoredMessage`] in wire form: what all its readers share, and the one field that
/// differs between them.
#[derive(Clone, PartialEq, Debug)]
pub struct WireMessage {
    /// Fields 1 to 4 of the `StoredMessage`, encoded ([`WireMessage::shared`]).
    pub shared: Bytes,
    /// Field 5, the position in this reader's inbox (0: not addressed to it).
    pub inbox_no: u64,
}

const STORED_INBOX_NO: u32 = 5;

impl WireMessage {
    /// The shared part of a `StoredMessage`: `envelope` (its canonical bytes, as stored),
    /// `seq`, `stored_at` and `envelope_sha256`, in field order, as prost encodes them.
    pub fn shared(
        envelope: &[u8],
        seq: u64,
        stored_at: Option<&Timestamp>,
        envelope_sha256: &str,
    ) -> Bytes {
        let mut buf = Vec::with_capacity(envelope.len() + 96);
        encoding::encode_key(1, WireType::LengthDelimited, &mut buf);
        encoding::encode_varint(envelope.len() as u64, &mut buf);
        buf.put_slice(envelope);
        if seq != 0 {
            encoding::uint64::encode(2, &seq, &mut buf);
        }
        if let Some(at) = stored_at {
            encoding::message::encode(3, at, &mut buf);
        }
        if !envelope_sha256.is_empty() {
            encoding::string::encode(4, &envelope_sha256.to_string(), &mut buf);
        }
        buf.into()
    }

    fn inbox_len(&self) -> usize {
        if self.inbox_no == 0 {
            0
        } else {
            encoding::uint64::encoded_len(STORED_INBOX_NO, &self.inbox_no)
        }
    }

    fn len(&self) -> usize {
        self.shared.len() + self.inbox_len()
    }
}

impl Message for Delivery {
    fn encode_raw(&self, buf: &mut impl BufMut) {
        match (&self.wire, &self.message) {
            (Some(wire), _) => {
                encoding::encode_key(1, WireType::LengthDelimited, buf);
                encoding::encode_varint(wire.len() as u64, buf);
                buf.put_slice(&wire.shared);
                if wire.inbox_no != 0 {
                    encoding::uint64::encode(STORED_INBOX_NO, &wire.inbox_no, buf);
                }
            }
            (None, Some(message)) => encoding::message::encode(1, message, buf),
            (None, None) => {}
        }
        if self.seq != 0 {
            encoding::uint64::encode(2, &self.seq, buf);
        }
        if self.leaf_index != 0 {
            encoding::uint64::encode(3, &self.leaf_index, buf);
        }
    }

    fn merge_field(
        &mut self,
        tag: u32,
        wire_type: WireType,
        buf: &mut impl Buf,
        ctx: DecodeContext,
    ) -> Result<(), DecodeError> {
        let field = |mut e: DecodeError, name: &'static str| {
            e.push("Delivery", name);
            e
        };
        match tag {
            1 => encoding::message::merge(
                wire_type,
                self.message.get_or_insert_with(Default::default),
                buf,
                ctx,
            )
            .map_err(|e| field(e, "message")),
            2 => encoding::uint64::merge(wire_type, &mut self.seq, buf, ctx)
                .map_err(|e| field(e, "seq")),
            3 => encoding::uint64::merge(wire_type, &mut self.leaf_index, buf, ctx)
                .map_err(|e| field(e, "leaf_index")),
            _ => encoding::skip_field(wire_type, tag, buf, ctx),
        }
    }

    fn encoded_len(&self) -> usize {
        let message = match (&self.wire, &self.message) {
            (Some(wire), _) => {
                let len = wire.len();
                encoding::key_len(1) + encoding::encoded_len_varint(len as u64) + len
            }
            (None, Some(message)) => encoding::message::encoded_len(1, message),
            (None, None) => 0,
        };
        let seq = if self.seq != 0 {
            encoding::uint64::encoded_len(2, &self.seq)
        } else {
            0
        };
        let leaf = if self.leaf_index != 0 {
            encoding::uint64::encoded_len(3, &self.leaf_index)
        } else {
            0
        };
        message + seq + leaf
    }

    fn clear(&mut self) {
        *self = Delivery::default();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn stored() -> StoredMessage {
        StoredMessage {
            envelope: Some(pb::Envelope {
                id: "s-1".into(),
                sender: "customs-nl".into(),
                kind: pb::Kind::SeizureNotification as i32,
                ..Default::default()
            }),
            seq: 41,
            stored_at: Some(Timestamp {
                seconds: 1_790_000_000,
                nanos: 5,
            }),
            envelope_sha256: "ab".repeat(32),
            inbox_no: 7,
        }
    }

    #[test]
    fn wire_form_encodes_as_the_decoded_form_and_decodes_back() {
        for inbox_no in [0, 7, 300] {
            let message = StoredMessage {
                inbox_no,
                ..stored()
            };
            let decoded = Delivery {
                message: Some(message.clone()),
                seq: 41,
                leaf_index: 99,
                wire: None,
            };
            let envelope = message.envelope.as_ref().unwrap().encode_to_vec();
            let wire = Delivery {
                message: None,
                seq: 41,
                leaf_index: 99,
                wire: Some(WireMessage {
                    shared: WireMessage::shared(
                        &envelope,
                        message.seq,
                        message.stored_at.as_ref(),
                        &message.envelope_sha256,
                    ),
                    inbox_no,
                }),
            };
            let bytes = decoded.encode_to_vec();
            assert_eq!(wire.encode_to_vec(), bytes, "inbox_no {inbox_no}");
            assert_eq!(wire.encoded_len(), bytes.len());
            assert_eq!(decoded.encoded_len(), bytes.len());
            assert_eq!(Delivery::decode(bytes.as_slice()).unwrap(), decoded);
        }
    }

    #[test]
    fn a_damaged_delivery_names_the_field() {
        let mut bytes = Delivery {
            message: Some(stored()),
            seq: 1,
            ..Default::default()
        }
        .encode_to_vec();
        bytes.truncate(bytes.len() - 4);
        let error = Delivery::decode(bytes.as_slice()).unwrap_err().to_string();
        assert!(error.contains("Delivery.message"), "{error}");
    }
}
