//! The codec of the generated services and clients: prost's, except for what a message that
//! does not decode answers. tonic's own codec makes every decoding failure `INTERNAL: failed
//! to decode Protobuf message`, which blames the gateway for the caller's bytes; here a
//! request that does not decode (random bytes, an overlong varint, a truncated length,
//! invalid UTF-8 in a string, groups nested past prost's recursion limit) is
//! `INVALID_ARGUMENT`, saying where decoding stopped: the field path, what was wrong, and at
//! which byte. The status carries the metadata entry [`UNDECODABLE`], by which the gateway
//! knows to audit the refusal (and removes the entry before it answers).
//!
//! An answer that does not decode (a client reading a broken gateway) stays `INTERNAL`: the
//! caller did nothing wrong.

use prost::bytes::Buf;
use prost::Message;
use std::marker::PhantomData;
use tonic::codec::{DecodeBuf, Decoder};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, FieldViolation, StatusExt};

/// The metadata entry that marks a status as a request that did not decode.
pub const UNDECODABLE: &str = "ipex-undecodable";

/// Most bytes of the field path named in a decoding failure.
const MAX_PATH_BYTES: usize = 200;

/// prost's encoder, and a decoder whose failures name the field (see the module comment).
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = tonic_prost::ProstEncoder<T>;
    type Decoder = MessageDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic_prost::ProstEncoder::default()
    }

    fn decoder(&mut self) -> Self::Decoder {
        MessageDecoder(PhantomData)
    }
}

/// Decodes a `U`; a failure becomes [`undecodable`].
#[derive(Debug, Clone)]
pub struct MessageDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for MessageDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        decode_from(buf).map(Some)
    }
}

/// Decodes `bytes` as a `U` exactly as the gateway decodes a request body.
pub fn decode<U: Message + Default>(mut bytes: &[u8]) -> Result<U, Status> {
    decode_from(&mut bytes)
}

fn decode_from<U: Message + Default>(buf: &mut impl Buf) -> Result<U, Status> {
    let len = buf.remaining();
    U::decode(&mut *buf)
        .map_err(|e| undecodable(message_name::<U>(), &e, len - buf.remaining(), len))
}

/// The proto name of a generated message type: `ipex.v1.SubmitRequest`.
fn message_name<U>() -> String {
    let rust = std::any::type_name::<U>();
    format!("ipex.v1.{}", rust.rsplit("::").next().unwrap_or(rust))
}

/// Where decoding stopped, from prost's error: the field path in proto field names (outer
/// first; empty at the top level) and what was wrong.
///
/// prost keeps its location stack private and writes it innermost first, as
/// `failed to decode Protobuf message: Envelope.id: SubmitRequest.envelope: invalid string
/// value: data is not UTF-8 encoded`; this reads it back from there.
pub fn location(error: &prost::DecodeError) -> (String, String) {
    let text = error.to_string();
    let mut rest = text
        .strip_prefix("failed to decode Protobuf message: ")
        .unwrap_or(&text);
    let mut fields = Vec::new();
    while let Some((head, tail)) = rest.split_once(": ") {
        let Some((message, field)) = head.split_once('.') else {
            break;
        };
        let name =
            |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_');
        let field = field.strip_prefix("r#").unwrap_or(field);
        if !(message.starts_with(|c: char| c.is_ascii_uppercase()) && name(message) && name(field))
        {
            break;
        }
        fields.push(field.to_string());
        rest = tail;
    }
    fields.reverse();
    let mut path = fields.join(".");
    if path.len() > MAX_PATH_BYTES {
        let mut end = MAX_PATH_BYTES;
        while !path.is_char_boundary(end) {
            end -= 1;
        }
        path.truncate(end);
        path.push('…');
    }
    (path, rest.to_string())
}

/// The status of a `message` that did not decode, stopped after `consumed` of `len` bytes.
/// A request is `INVALID_ARGUMENT` naming the field in `google.rpc.BadRequest` details and
/// marked [`UNDECODABLE`]; an answer is `INTERNAL`.
pub fn undecodable(
    message: String,
    error: &prost::DecodeError,
    consumed: usize,
    len: usize,
) -> Status {
    let (path, what) = location(error);
    let at = if path.is_empty() {
        String::new()
    } else {
        format!(" in {path}")
    };
    let text = format!(
        "the body is not a valid {message}: {what}{at}, decoding stopped at byte {consumed} of {len}"
    );
    if !message.ends_with("Request") {
        return Status::internal(text);
    }
    let mut status = if path.is_empty() {
        Status::new(Code::InvalidArgument, text)
    } else {
        let violation = FieldViolation::new(path, what);
        Status::with_error_details(
            Code::InvalidArgument,
            text,
            ErrorDetails::with_bad_request(vec![violation]),
        )
    };
    status.metadata_mut().insert(
        UNDECODABLE,
        tonic::metadata::MetadataValue::from_static("1"),
    );
    status
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pb;

    fn decode<U: Message + Default + std::fmt::Debug>(bytes: &[u8]) -> Status {
        super::decode::<U>(bytes).unwrap_err()
    }

    #[test]
    fn invalid_utf8_names_the_field() {
        // SubmitRequest.envelope (1) { Envelope.id (1) = 0xff }
        let status = decode::<pb::SubmitRequest>(&[0x0a, 0x03, 0x0a, 0x01, 0xff]);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(
            status.message(),
            "the body is not a valid ipex.v1.SubmitRequest: invalid string value: data is not \
             UTF-8 encoded in envelope.id, decoding stopped at byte 5 of 5"
        );
        assert!(status.metadata().get(UNDECODABLE).is_some());
        let details = status.get_details_bad_request().unwrap();
        assert_eq!(details.field_violations[0].field, "envelope.id");
    }

    #[test]
    fn failures_at_the_top_level_have_no_path() {
        // An overlong varint as the first key.
        let status = decode::<pb::GetRequest>(&[0xff; 11]);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("the body is not a valid ipex.v1.GetRequest: invalid varint,"),
            "{}",
            status.message()
        );
        assert!(status.get_details_bad_request().is_none());
        // An answer that does not decode is the gateway's fault, not the caller's.
        let status = decode::<pb::GetResponse>(&[0xff; 11]);
        assert_eq!(status.code(), Code::Internal);
        assert!(status.metadata().get(UNDECODABLE).is_none());
    }
}
