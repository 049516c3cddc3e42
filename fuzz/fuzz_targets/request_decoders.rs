//! Every request of the gateway decoded from arbitrary bytes, as the gateway decodes a body:
//! it decodes, or it is refused with INVALID_ARGUMENT in a short sentence. What decodes as a
//! `SubmitRequest` is validated too.
#![no_main]

use ipex::pb::{self, codec::decode};
use libfuzzer_sys::fuzz_target;

fn refused_boundedly(status: &tonic::Status) {
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(status
        .message()
        .starts_with("the body is not a valid ipex.v1."));
    assert!(status.message().len() <= 512, "{}", status.message());
    assert!(status.details().len() <= 1024);
}

macro_rules! each {
    ($bytes:expr, $($t:ty),*) => {$(
        if let Err(status) = decode::<$t>($bytes) {
            refused_boundedly(&status);
        }
    )*};
}

fuzz_target!(|bytes: &[u8]| {
    each!(
        bytes,
        pb::SubmitBatchRequest,
        pb::GetRequest,
        pb::ListInboxRequest,
        pb::SubscribeRequest,
        pb::AckRequest,
        pb::SearchRequest,
        pb::WhoAmIRequest,
        pb::GetLeavesRequest,
        pb::GetTileRequest
    );
    match decode::<pb::SubmitRequest>(bytes) {
        Ok(request) => {
            if let Some(envelope) = request.envelope {
                if let Err(v) = ipex::domain::ValidEnvelope::new(
                    envelope,
                    "customs-nl",
                    "envelope",
                    1_795_510_800,
                ) {
                    assert!(!v.is_empty() && v.shown().len() <= 10);
                }
            }
        }
        Err(status) => refused_boundedly(&status),
    }
});
