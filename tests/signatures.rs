//! Sender signatures end to end, over real mutual TLS with a real store: a participant signs
//! its envelopes with its organisation's key, the gateway verifies them against the registry
//! before storing, every read path returns the signature, and anyone holding the sender's
//! public key checks a stored message offline. Refusals name `envelope.signature`, and what
//! is refused is not stored.

mod common;

use common::{example, get, inbox, registry_toml, submit, violated_fields, Setup};
use ipex::domain::signature::{self, SigningKey};
use ipex::pb;
use tonic::Code;

/// Keys of one test: market-a signs with Ed25519 and is rotating to P-256 (both registered);
/// customs-nl must sign (Ed25519); market-b registered no key.
struct Keys {
    market_a: SigningKey,
    market_a_next: SigningKey,
    customs_nl: SigningKey,
}

fn setup() -> (Setup, Keys) {
    let keys = Keys {
        market_a: SigningKey::generate_ed25519(),
        market_a_next: SigningKey::P256(p256::ecdsa::SigningKey::random(&mut rand_core::OsRng)),
        customs_nl: SigningKey::generate_ed25519(),
    };
    let registry = registry_toml("")
        .replacen(
            "id = \"market-a\"\n",
            "id = \"market-a\"\nsigning_keys = [\"keys/market-a.pub\", \"keys/market-a-next.pub\"]\n",
            1,
        )
        .replacen(
            "id = \"customs-nl\"\n",
            "id = \"customs-nl\"\nsigning_keys = [\"keys/customs-nl.pub\"]\nrequire_signature = true\n",
            1,
        );
    let setup = Setup::with_registry(&registry);
    let dir = setup.path().join("keys");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, key) in [
        ("market-a", &keys.market_a),
        ("market-a-next", &keys.market_a_next),
        ("customs-nl", &keys.customs_nl),
    ] {
        std::fs::write(dir.join(format!("{name}.pub")), key.public().to_pem()).unwrap();
    }
    (setup, keys)
}

/// `envelope` signed by `key` as `sender` sends it.
fn signed(mut envelope: pb::Envelope, sender: &str, key: &SigningKey) -> pb::Envelope {
    ipex::cli::message::sign_all(std::slice::from_mut(&mut envelope), sender, key);
    envelope
}

fn flag(id: &str) -> pb::Envelope {
    let mut e = example("seller-flag.json");
    e.id = id.into();
    e
}

fn notice(id: &str) -> pb::Envelope {
    let mut e = example("takedown-notice.json");
    e.id = id.into();
    e
}

/// The one violation of a refused call on `field`, with its description.
fn violation(status: &tonic::Status) -> (String, String) {
    use tonic_types::StatusExt;
    let bad = status.get_details_bad_request().expect("field violations");
    assert_eq!(bad.field_violations.len(), 1, "{status:?}");
    let v = &bad.field_violations[0];
    (v.field.clone(), v.description.clone())
}

#[tokio::test]
async fn signed_messages_are_stored_returned_and_verify_offline() {
    let (setup, keys) = setup();
    let gw = setup.start().await;
    let mut market_a = gw.client("market-a").await;
    let mut customs = gw.client("customs-nl").await;

    // Both registered keys sign: the old Ed25519 one and the P-256 one it rotates to.
    let first = signed(flag("flag-sig-1"), "market-a", &keys.market_a);
    let second = signed(flag("flag-sig-2"), "market-a", &keys.market_a_next);
    submit(&mut market_a, first.clone()).await.unwrap();
    submit(&mut market_a, second.clone()).await.unwrap();
    // An unsigned message of a participant that need not sign is accepted as before.
    submit(&mut market_a, flag("flag-unsigned")).await.unwrap();

    // Get, the inbox and search return the signature as sent.
    let stored = get(&mut customs, "market-a", "flag-sig-1").await.unwrap();
    assert_eq!(stored.envelope.as_ref().unwrap().signature, first.signature);
    let in_inbox = inbox(&mut customs).await;
    let sigs: Vec<&str> = in_inbox
        .iter()
        .map(|m| m.envelope.as_ref().unwrap().signature.as_str())
        .collect();
    assert_eq!(sigs, [&first.signature[..], &second.signature[..], ""]);
    // A subscription delivers it as stored (in the wire form shared by all subscribers).
    let mut stream = customs
        .exchange
        .subscribe(pb::SubscribeRequest {
            filter: Some(pb::Filter::default()),
            durable_name: String::new(),
            start: Some(pb::subscribe_request::Start::FromSeq(1)),
        })
        .await
        .unwrap()
        .into_inner();
    let delivery = tokio_stream::StreamExt::next(&mut stream)
        .await
        .unwrap()
        .unwrap();
    let delivered = delivery.message.unwrap().envelope.unwrap();
    assert_eq!(delivered.signature, first.signature);
    signature::verify(&delivered, &[keys.market_a.public()]).unwrap();
    // Search and case threads return it too.
    let found = customs
        .exchange
        .search(pb::SearchRequest {
            seller: "S-88412907".into(),
            oldest_first: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let searched: Vec<&str> = found
        .messages
        .iter()
        .map(|m| m.envelope.as_ref().unwrap().signature.as_str())
        .collect();
    assert_eq!(searched, [&first.signature[..], &second.signature[..], ""]);
    let case = customs
        .exchange
        .get_case(pb::GetCaseRequest {
            message: Some(pb::MessageRef {
                sender: "market-a".into(),
                id: "flag-sig-1".into(),
            }),
            limit: 10,
        })
        .await
        .unwrap()
        .into_inner();
    let in_case = case
        .entries
        .iter()
        .filter_map(|e| e.message.as_ref()?.envelope.as_ref())
        .find(|e| e.id == "flag-sig-2")
        .expect("the other flag of the seller is in the case thread");
    assert_eq!(in_case.signature, second.signature);

    // Offline, with the sender's public key alone: what `ipex get` prints verifies; the
    // other key, or one changed field, does not.
    let dir = tempfile::tempdir().unwrap();
    let printed = ipex::pb::json::to_json_value(
        "ipex.v1.GetResponse",
        &pb::GetResponse {
            message: Some(stored),
            forwarding: Vec::new(),
        },
    );
    let file = dir.path().join("got.json");
    std::fs::write(&file, serde_json::to_string_pretty(&printed).unwrap()).unwrap();
    let old_key = dir.path().join("market-a.pub");
    let new_key = dir.path().join("market-a-next.pub");
    std::fs::write(&old_key, keys.market_a.public().to_pem()).unwrap();
    std::fs::write(&new_key, keys.market_a_next.public().to_pem()).unwrap();
    let report = ipex::cli::message::verify_file(&file, &old_key).unwrap();
    assert_eq!(report["signature"], "valid");
    assert_eq!(report["kid"], keys.market_a.public().kid());
    let wrong = ipex::cli::message::verify_file(&file, &new_key).unwrap_err();
    assert!(wrong.to_string().contains("signed with key"), "{wrong}");
    let tampered = dir.path().join("tampered.json");
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(text.contains("\"S-88412907\""));
    std::fs::write(&tampered, text.replace("\"S-88412907\"", "\"S-88412908\"")).unwrap();
    let altered = ipex::cli::message::verify_file(&tampered, &old_key).unwrap_err();
    assert!(altered.to_string().contains("does not verify"), "{altered}");
    gw.stop().await;
}

#[tokio::test]
async fn bad_signatures_are_refused_naming_the_field_and_nothing_is_stored() {
    let (setup, keys) = setup();
    let gw = setup.start().await;
    let mut market_a = gw.client("market-a").await;
    let mut market_b = gw.client("market-b").await;
    let mut customs = gw.client("customs-nl").await;

    let refused = |status: &tonic::Status| {
        assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
        let (field, description) = violation(status);
        assert_eq!(field, "envelope.signature");
        description
    };

    // Signed, then changed: the signature no longer covers the envelope.
    let mut changed = signed(flag("flag-bad-1"), "market-a", &keys.market_a);
    changed.tlp = pb::Tlp::Clear as i32;
    let why = refused(&submit(&mut market_a, changed).await.unwrap_err());
    assert!(why.contains("does not verify"), "{why}");

    // Signed with another organisation's key (customs-nl's), or as another sender.
    let foreign = signed(flag("flag-bad-2"), "market-a", &keys.customs_nl);
    let why = refused(&submit(&mut market_a, foreign).await.unwrap_err());
    assert!(
        why.contains("is not a signing key registered for \"market-a\""),
        "{why}"
    );
    let as_other = signed(flag("flag-bad-3"), "market-b", &keys.market_a);
    let why = refused(&submit(&mut market_a, as_other).await.unwrap_err());
    assert!(why.contains("does not verify"), "{why}");

    // Not a JWS, an unsupported algorithm, a sender without keys.
    let mut garbage = flag("flag-bad-4");
    garbage.signature = "not-a-signature".into();
    let why = refused(&submit(&mut market_a, garbage).await.unwrap_err());
    assert!(why.contains("detached payload"), "{why}");
    let mut hs256 = signed(flag("flag-bad-5"), "market-a", &keys.market_a);
    let parts: Vec<&str> = hs256.signature.split("..").collect();
    // {"alg":"HS256","typ":"ipex-envelope+jws"}
    hs256.signature = format!(
        "eyJhbGciOiJIUzI1NiIsInR5cCI6ImlwZXgtZW52ZWxvcGUrandzIn0..{}",
        parts[1]
    );
    let why = refused(&submit(&mut market_a, hs256).await.unwrap_err());
    assert!(why.contains("HS256"), "{why}");
    let keyless = signed(flag("flag-bad-6"), "market-b", &keys.market_a);
    let why = refused(&submit(&mut market_b, keyless).await.unwrap_err());
    assert!(why.contains("no signing key registered"), "{why}");

    // Too long: refused by validation, before any key is looked at.
    let mut long = flag("flag-bad-7");
    long.signature = "a".repeat(signature::MAX_SIGNATURE_LEN + 1);
    let why = refused(&submit(&mut market_a, long).await.unwrap_err());
    assert!(why.contains("at most 1024 characters"), "{why}");

    // customs-nl must sign: unsigned is refused, signed passes.
    let why = refused(
        &submit(&mut customs, notice("tdn-unsigned"))
            .await
            .unwrap_err(),
    );
    assert!(why.contains("require_signature"), "{why}");
    submit(
        &mut customs,
        signed(notice("tdn-signed"), "customs-nl", &keys.customs_nl),
    )
    .await
    .unwrap();

    // In a batch, the refused envelope is named by its index and nothing of the batch stays.
    let good = signed(flag("flag-batch-1"), "market-a", &keys.market_a);
    let mut bad = signed(flag("flag-batch-2"), "market-a", &keys.market_a);
    bad.id = "flag-batch-3".into();
    let status = market_a
        .exchange
        .submit_batch(pb::SubmitBatchRequest {
            envelopes: vec![good, bad],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["envelopes[1].signature"]);

    // Nothing refused was stored: the only messages are the signed notice.
    for id in [
        "flag-bad-1",
        "flag-bad-2",
        "flag-bad-3",
        "flag-bad-4",
        "flag-bad-5",
        "flag-batch-1",
    ] {
        let status = get(&mut market_a, "market-a", id).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{id}");
    }
    let status = get(&mut customs, "customs-nl", "tdn-unsigned")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    get(&mut customs, "customs-nl", "tdn-signed").await.unwrap();
    gw.stop().await;
}

#[test]
fn a_participant_that_must_sign_needs_a_key() {
    let text = "[[participant]]\nid = \"customs-nl\"\nrole = \"CUSTOMS\"\ncountry = \"NL\"\nrequire_signature = true\n";
    let error = ipex::auth::registry::Registry::from_toml(text, "registry.toml").unwrap_err();
    assert!(
        error.to_string().contains("require_signature = true needs"),
        "{error}"
    );
    let missing = "[[participant]]\nid = \"customs-nl\"\nrole = \"CUSTOMS\"\ncountry = \"NL\"\nsigning_keys = [\"nowhere.pub\"]\n";
    let error = ipex::auth::registry::Registry::from_toml(missing, "registry.toml").unwrap_err();
    assert!(error.to_string().contains("signing_keys[0]"), "{error}");
}

/// The test vector of the README and `examples/signatures/vector.json`: the RFC 8032 test 1
/// key (public, never for real use) signs the sample takedown outcome as market-a. Another
/// language checks its encoding and its JWS verification against it
/// (`examples/python/verify_signature.py`). `IPEX_UPDATE_VECTORS=1` rewrites the file.
#[test]
fn signature_vector_is_current() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let seed: [u8; 32] =
        hex::decode("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
            .unwrap()
            .try_into()
            .unwrap();
    let key = SigningKey::Ed25519(ed25519_dalek::SigningKey::from_bytes(&seed));
    let envelope = signed(example("takedown-outcome.json"), "market-a", &key);
    let vector = serde_json::json!({
        "description": "ipex envelope signature test vector: the RFC 8032 test 1 Ed25519 key signs examples/messages/takedown-outcome.json sent by market-a",
        "public_key_pem": key.public().to_pem(),
        "kid": key.public().kid(),
        "envelope": ipex::pb::json::to_json_value("ipex.v1.Envelope", &envelope),
        "canonical_bytes_hex": hex::encode(signature::canonical_bytes(&envelope)),
        "signature": envelope.signature,
    });
    let text = serde_json::to_string_pretty(&vector).unwrap() + "\n";
    let path = root.join("examples/signatures/vector.json");
    if std::env::var_os("IPEX_UPDATE_VECTORS").is_some() {
        std::fs::write(&path, &text).unwrap();
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "examples/signatures/vector.json is stale: run with IPEX_UPDATE_VECTORS=1"
    );
    // The README shows the same vector.
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    for shown in [
        envelope.signature.as_str(),
        &key.public().kid(),
        &vector["canonical_bytes_hex"].as_str().unwrap()[..64],
    ] {
        assert!(readme.contains(shown), "README.md does not show {shown}");
    }
    // And it verifies, while one changed field does not.
    signature::verify(&envelope, &[key.public()]).unwrap();
    let mut changed = envelope.clone();
    changed.tlp = pb::Tlp::Red as i32;
    assert!(signature::verify(&changed, &[key.public()]).is_err());
}

/// A rotated key takes effect on reload, without a restart: the key file is watched with the
/// registry.
#[tokio::test]
async fn a_rotated_signing_key_applies_after_reload() {
    let (mut setup, keys) = setup();
    setup.config.reload_check_ms = 50;
    let gw = setup.start().await;
    let mut market_a = gw.client("market-a").await;
    let next = SigningKey::generate_ed25519();
    let refused = submit(&mut market_a, signed(flag("flag-rot-1"), "market-a", &next))
        .await
        .unwrap_err();
    assert_eq!(violation(&refused).0, "envelope.signature");
    // The old key's file now holds the new key.
    std::fs::write(
        setup.path().join("keys/market-a.pub"),
        next.public().to_pem(),
    )
    .unwrap();
    let rotated = common::eventually(10, || {
        let mut client = market_a.clone();
        let envelope = signed(flag("flag-rot-2"), "market-a", &next);
        async move { submit(&mut client, envelope).await.is_ok() }
    })
    .await;
    assert!(rotated, "the rotated key never took effect");
    let old = submit(
        &mut market_a,
        signed(flag("flag-rot-3"), "market-a", &keys.market_a),
    )
    .await
    .unwrap_err();
    assert!(
        violation(&old)
            .1
            .contains("is not a signing key registered"),
        "{old:?}"
    );
    gw.stop().await;
}
