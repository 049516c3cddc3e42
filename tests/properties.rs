//! Properties of the request decoders and the envelope validation, on inputs proptest makes
//! up: arbitrary bytes, mutations of valid envelopes, and envelopes whose texts and lists are
//! anything. Neither ever panics; each answers Ok or a bounded refusal. CI runs a few hundred
//! cases per property; `PROPTEST_CASES=200000 cargo test --release --test properties` runs
//! them long (the `fuzz/` targets do the same under libFuzzer).

mod common;

use common::trailer_bytes;
use ipex::app::error::Error;
use ipex::domain::{ValidEnvelope, Violations};
use ipex::pb::{self, codec::decode};
use proptest::prelude::*;
use prost::Message;
use tonic::Code;

/// 2026-11-24T09:00:00Z, after the examples' creation times.
const NOW: i64 = 1_795_510_800;

fn config() -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(256);
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// The example messages, read once.
fn examples() -> Vec<pb::Envelope> {
    static EXAMPLES: std::sync::OnceLock<Vec<pb::Envelope>> = std::sync::OnceLock::new();
    EXAMPLES.get_or_init(read_examples).clone()
}

fn read_examples() -> Vec<pb::Envelope> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/messages");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| pb::json::envelope_from_json(&std::fs::read_to_string(p).unwrap()).unwrap())
        .collect()
}

/// A refusal of the decoder: INVALID_ARGUMENT, a short sentence, small trailers.
fn assert_bounded_decode_refusal(status: &tonic::Status) -> Result<(), TestCaseError> {
    prop_assert_eq!(status.code(), Code::InvalidArgument);
    prop_assert!(status
        .message()
        .starts_with("the body is not a valid ipex.v1."));
    prop_assert!(status.message().len() <= 512, "{}", status.message());
    prop_assert!(trailer_bytes(status) < 8 * 1024);
    Ok(())
}

/// Decodes `bytes` as every request of the gateway; a refusal must be bounded.
fn decode_all(bytes: &[u8]) -> Result<Option<pb::SubmitRequest>, TestCaseError> {
    macro_rules! each {
        ($($t:ty),*) => {$(
            if let Err(status) = decode::<$t>(bytes) {
                assert_bounded_decode_refusal(&status)?;
            }
        )*};
    }
    each!(
        pb::SubmitBatchRequest,
        pb::GetRequest,
        pb::ListInboxRequest,
        pb::SubscribeRequest,
        pb::AckRequest,
        pb::SearchRequest,
        pb::WhoAmIRequest,
        pb::ListParticipantsRequest,
        pb::GetCheckpointRequest,
        pb::GetInclusionProofRequest,
        pb::GetConsistencyProofRequest,
        pb::GetLeavesRequest,
        pb::GetTileRequest
    );
    match decode::<pb::SubmitRequest>(bytes) {
        Ok(request) => Ok(Some(request)),
        Err(status) => {
            assert_bounded_decode_refusal(&status)?;
            Ok(None)
        }
    }
}

/// Validates `envelope`; a refusal must be bounded as the caller and the audit log see it.
fn validate(envelope: pb::Envelope) -> Result<(), TestCaseError> {
    if let Err(v) = ValidEnvelope::new(envelope, "customs-nl", "envelope", NOW) {
        assert_bounded_violations(v)?;
    }
    Ok(())
}

fn assert_bounded_violations(v: Violations) -> Result<(), TestCaseError> {
    prop_assert!(!v.is_empty());
    prop_assert!(!v.shown().is_empty() && v.shown().len() <= 10);
    let status = ipex::grpc::status::status(Error::Invalid(v));
    prop_assert_eq!(status.code(), Code::InvalidArgument);
    prop_assert!(status.message().len() <= ipex::grpc::status::MAX_MESSAGE_BYTES);
    prop_assert!(
        trailer_bytes(&status) < 8 * 1024,
        "{} bytes",
        trailer_bytes(&status)
    );
    Ok(())
}

/// One change to an encoded message.
#[derive(Clone, Debug)]
enum Mutation {
    Flip(usize, u8),
    Insert(usize, Vec<u8>),
    Remove(usize, usize),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        (any::<usize>(), prop::collection::vec(any::<u8>(), 1..16))
            .prop_map(|(i, b)| Mutation::Insert(i, b)),
        (any::<usize>(), 1..16usize).prop_map(|(i, n)| Mutation::Remove(i, n)),
        any::<usize>().prop_map(Mutation::Truncate),
    ]
}

fn apply(bytes: &mut Vec<u8>, m: &Mutation) {
    if bytes.is_empty() {
        return;
    }
    match m {
        Mutation::Flip(i, x) => {
            let i = i % bytes.len();
            bytes[i] ^= x;
        }
        Mutation::Insert(i, b) => {
            let i = i % (bytes.len() + 1);
            bytes.splice(i..i, b.iter().copied());
        }
        Mutation::Remove(i, n) => {
            let i = i % bytes.len();
            let end = (i + n).min(bytes.len());
            bytes.drain(i..end);
        }
        Mutation::Truncate(n) => {
            let n = n % bytes.len();
            bytes.truncate(n);
        }
    }
}

/// Text of any characters, controls and bidirectional overrides made likely.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Z]{2}",
        "[a-z0-9-]{1,40}",
        prop::collection::vec(
            prop_oneof![
                Just('\u{202E}'),
                Just('\u{2066}'),
                Just('\u{1b}'),
                Just('\t'),
                Just('\n'),
                Just('é'),
                any::<char>(),
            ],
            0..64
        )
        .prop_map(|c| c.into_iter().collect()),
    ]
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes decode or are refused, boundedly, as every request; what decodes as a
    /// SubmitRequest validates or is refused boundedly.
    #[test]
    fn arbitrary_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2048)) {
        if let Some(request) = decode_all(&bytes)? {
            if let Some(envelope) = request.envelope {
                validate(envelope)?;
            }
        }
    }

    /// Valid envelopes, encoded and then damaged, decode or are refused boundedly, and what
    /// decodes validates or is refused boundedly.
    #[test]
    fn mutated_envelopes(
        which in 0..7usize,
        mutations in prop::collection::vec(mutation(), 1..8),
    ) {
        let envelope = examples().swap_remove(which);
        let mut bytes = pb::SubmitRequest { envelope: Some(envelope) }.encode_to_vec();
        for m in &mutations {
            apply(&mut bytes, m);
        }
        if let Some(request) = decode_all(&bytes)? {
            if let Some(envelope) = request.envelope {
                validate(envelope)?;
            }
        }
    }

    /// Envelopes whose ids, recipients, scopes and references are any texts, in lists up to
    /// well past their maxima, are validated or refused boundedly.
    #[test]
    fn arbitrary_envelope_fields(
        which in 0..7usize,
        id in text(),
        texts in prop::collection::vec(text(), 1..8),
        recipients in 0..150usize,
        scope in 0..400usize,
        refs in 0..30usize,
        tlp in -2..7i32,
        kind in -2..9i32,
    ) {
        let mut envelope = examples().swap_remove(which);
        envelope.id = id;
        envelope.recipients = cycle(&texts, recipients);
        envelope.territorial_scope = cycle(&texts, scope);
        envelope.refs = cycle(&texts, refs)
            .into_iter()
            .zip(cycle(&texts, refs + 1).into_iter().skip(1))
            .map(|(sender, id)| pb::MessageRef { sender, id })
            .collect();
        envelope.tlp = tlp;
        envelope.kind = kind;
        validate(envelope)?;
    }

    /// Violations of any texts, in any number, are bounded in what a refusal shows.
    #[test]
    fn arbitrary_violations(texts in prop::collection::vec(text(), 2..8), n in 1..20_000usize) {
        let mut v = Violations::default();
        for (field, description) in cycle(&texts, n).into_iter().zip(cycle(&texts, n + 1).into_iter().skip(1)) {
            v.add(field, description);
        }
        assert_bounded_violations(v)?;
    }
}

/// `n` items taken from `texts` over and over.
fn cycle(texts: &[String], n: usize) -> Vec<String> {
    texts.iter().cycle().take(n).cloned().collect()
}
