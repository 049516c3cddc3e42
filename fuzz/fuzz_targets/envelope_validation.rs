//! The validation of an envelope decoded from arbitrary bytes: it passes, or it is refused
//! with violations whose status stays small (a message of at most 1 KiB, trailers far below
//! 8 KiB), however many fields are wrong. Seed it with encoded example envelopes.
#![no_main]

use ipex::app::error::Error;
use ipex::domain::ValidEnvelope;
use ipex::pb;
use libfuzzer_sys::fuzz_target;
use prost::Message;

fuzz_target!(|bytes: &[u8]| {
    let Ok(envelope) = pb::Envelope::decode(bytes) else {
        return;
    };
    match ValidEnvelope::new(envelope, "customs-nl", "envelope", 1_795_510_800) {
        Ok(valid) => {
            // What passes keeps its fields, with the gateway's sender.
            assert_eq!(valid.envelope().sender, "customs-nl");
        }
        Err(v) => {
            assert!(!v.is_empty() && !v.shown().is_empty() && v.shown().len() <= 10);
            let status = ipex::grpc::status::status(Error::Invalid(v));
            assert_eq!(status.code(), tonic::Code::InvalidArgument);
            assert!(status.message().len() <= ipex::grpc::status::MAX_MESSAGE_BYTES);
            let trailers = 3 * status.message().len() + status.details().len().div_ceil(3) * 4;
            assert!(trailers < 8 * 1024, "{trailers} bytes of trailers");
        }
    }
});
