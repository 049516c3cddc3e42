//! The canonical proto3 JSON mapping for our messages, driven by the compiled descriptors, so
//! the CLI and any script read and write exactly what other gRPC stacks would.

use prost::Message;
use prost_reflect::{DescriptorPool, DynamicMessage};
use std::sync::OnceLock;

/// The descriptor pool of `ipex.v1` and the well-known types it imports.
pub fn pool() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(super::FILE_DESCRIPTOR_SET)
            .expect("the descriptor set compiled by build.rs decodes")
    })
}

/// Errors reading proto3 JSON.
#[derive(Debug, thiserror::Error)]
pub enum JsonError {
    /// The type is not in the `ipex.v1` descriptors.
    #[error("unknown message type {0}")]
    UnknownType(String),
    /// The text is not valid JSON for the message.
    #[error("invalid JSON for {message}: {source}")]
    Invalid {
        /// Full name of the message type.
        message: String,
        /// What serde found wrong.
        source: serde_json::Error,
    },
    /// The JSON decoded but does not transcode to the Rust type.
    #[error("cannot transcode {message}: {source}")]
    Transcode {
        /// Full name of the message type.
        message: String,
        /// The decode failure.
        source: prost::DecodeError,
    },
}

/// Parses proto3 JSON into the message `T`, whose full proto name is `name`
/// (for example `ipex.v1.Envelope`). Unknown fields are refused.
pub fn from_json<T: Message + Default>(name: &str, json: &str) -> Result<T, JsonError> {
    let descriptor = pool()
        .get_message_by_name(name)
        .ok_or_else(|| JsonError::UnknownType(name.to_string()))?;
    let mut de = serde_json::Deserializer::from_str(json);
    let dynamic =
        DynamicMessage::deserialize(descriptor, &mut de).map_err(|source| JsonError::Invalid {
            message: name.to_string(),
            source,
        })?;
    de.end().map_err(|source| JsonError::Invalid {
        message: name.to_string(),
        source,
    })?;
    dynamic
        .transcode_to::<T>()
        .map_err(|source| JsonError::Transcode {
            message: name.to_string(),
            source,
        })
}

/// Renders `message` (of proto type `name`) as proto3 JSON, as a `serde_json::Value`.
pub fn to_json_value<T: Message>(name: &str, message: &T) -> serde_json::Value {
    let descriptor = pool()
        .get_message_by_name(name)
        .expect("only ipex.v1 message names are passed");
    let mut dynamic = DynamicMessage::new(descriptor);
    dynamic
        .merge(message.encode_to_vec().as_slice())
        .expect("a message encoded by prost decodes with its own descriptor");
    serde_json::to_value(&dynamic).expect("a dynamic message serializes to JSON")
}

/// Parses a JSON envelope.
pub fn envelope_from_json(json: &str) -> Result<super::Envelope, JsonError> {
    from_json("ipex.v1.Envelope", json)
}
