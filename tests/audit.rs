//! The exchange log end to end: leaves for every event, signed checkpoints, proofs that
//! verify, a start-up check that catches tampering, and a verifier that catches forks.

mod common;

use common::{example, get, submit, Setup};
use ipex::cli::CliError;
use ipex::log::merkle::{self, Hash};
use ipex::log::note::NoteVerifier;
use ipex::log::verify::{State, VerifyError};
use ipex::pb;
use prost::Message;
use tonic::Code;

async fn refresh(clients: &mut ipex::cli::client::Clients) -> pb::GetCheckpointResponse {
    clients
        .audit
        .get_checkpoint(pb::GetCheckpointRequest {
            refresh: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn leaves(
    clients: &mut ipex::cli::client::Clients,
    start: u64,
    end: u64,
) -> Vec<pb::LogLeaf> {
    clients
        .audit
        .get_leaves(pb::GetLeavesRequest { start, end })
        .await
        .unwrap()
        .into_inner()
        .leaves
}

fn hash(bytes: &[u8]) -> Hash {
    bytes.try_into().unwrap()
}

/// A receipt names its leaves; the accepted leaf's data matches the receipt, and its inclusion
/// proof verifies against a later signed checkpoint.
#[tokio::test]
async fn receipt_leaf_is_provably_in_a_later_checkpoint() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let receipt = submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    assert_eq!(receipt.placements[0].leaf_index, receipt.leaf_index + 1);
    // More traffic after the receipt.
    let mut market = gw.client("market-a").await;
    submit(&mut market, example("seller-flag.json"))
        .await
        .unwrap();
    let cp = refresh(&mut nl).await;
    assert!(cp.tree_size > receipt.leaf_index + 2);

    // The checkpoint is a signed note of the C2SP tlog-checkpoint format.
    let verifier = NoteVerifier::from_verifier_key(&cp.verifier_key).unwrap();
    let checkpoint = verifier.verify_checkpoint(&cp.checkpoint).unwrap();
    assert_eq!(checkpoint.size, cp.tree_size);
    assert_eq!(checkpoint.root.to_vec(), cp.root_hash);
    assert!(
        cp.checkpoint.starts_with("ipex.local/ipex-dev\n"),
        "{}",
        cp.checkpoint
    );

    let leaf = &leaves(&mut nl, receipt.leaf_index, receipt.leaf_index + 1).await[0];
    assert_eq!(merkle::leaf_hash(&leaf.data).to_vec(), leaf.leaf_hash);
    let decoded = pb::AuditLeaf::decode(leaf.data.as_slice()).unwrap();
    let Some(pb::audit_leaf::Event::Accepted(accepted)) = decoded.event else {
        panic!(
            "leaf {} is not an acceptance: {decoded:?}",
            receipt.leaf_index
        )
    };
    assert_eq!(accepted.seq, receipt.seq);
    assert_eq!(accepted.envelope_sha256, receipt.envelope_sha256);
    assert_eq!(accepted.recipients, vec!["market-a".to_string()]);

    let proof = nl
        .audit
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf_index: receipt.leaf_index,
            tree_size: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(proof.tree_size, cp.tree_size);
    let path: Vec<Hash> = proof.hashes.iter().map(|h| hash(h)).collect();
    merkle::verify_inclusion(
        &hash(&leaf.leaf_hash),
        receipt.leaf_index,
        cp.tree_size,
        &path,
        &checkpoint.root,
    )
    .unwrap();
    // A proof for another leaf does not prove this one.
    assert!(merkle::verify_inclusion(
        &hash(&leaf.leaf_hash),
        receipt.leaf_index + 1,
        cp.tree_size,
        &path,
        &checkpoint.root
    )
    .is_err());

    // The later tree is consistent with an earlier one.
    let consistency = nl
        .audit
        .get_consistency_proof(pb::GetConsistencyProofRequest {
            first: receipt.leaf_index + 1,
            second: cp.tree_size,
        })
        .await
        .unwrap()
        .into_inner();
    let early_root = {
        let all = leaves(&mut nl, 0, receipt.leaf_index + 1).await;
        let mut f = merkle::Frontier::new();
        for l in &all {
            f.push(hash(&l.leaf_hash));
        }
        f.root()
    };
    let path: Vec<Hash> = consistency.hashes.iter().map(|h| hash(h)).collect();
    merkle::verify_consistency(
        receipt.leaf_index + 1,
        cp.tree_size,
        &early_root,
        &checkpoint.root,
        &path,
    )
    .unwrap();
    gw.stop().await;
}

/// Deliveries, reads and answers are leaves; parties see the data, others only hashes.
#[tokio::test]
async fn events_are_leaves_visible_to_their_parties_only() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut market = gw.client("market-a").await;
    let mut fr = gw.client("customs-fr").await;
    let notice = submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    get(&mut market, "customs-nl", &notice.id).await.unwrap();
    let outcome = submit(&mut market, example("takedown-outcome.json"))
        .await
        .unwrap();
    let cp = refresh(&mut nl).await;

    let mine = leaves(&mut market, 0, cp.tree_size).await;
    let events: Vec<pb::audit_leaf::Event> = mine
        .iter()
        .filter(|l| !l.data.is_empty())
        .map(|l| {
            pb::AuditLeaf::decode(l.data.as_slice())
                .unwrap()
                .event
                .unwrap()
        })
        .collect();
    use pb::audit_leaf::Event;
    assert!(events.iter().any(|e| matches!(e, Event::Delivered(d)
        if d.recipient == "market-a" && d.seq == notice.seq && d.inbox_no == 1)));
    assert!(events.iter().any(|e| matches!(e, Event::Read(r)
        if r.reader == "market-a" && r.method == "Get" && r.seqs == vec![notice.seq])));
    assert!(events.iter().any(|e| matches!(e, Event::Answered(a)
        if a.seq == outcome.seq && a.answered_seq == notice.seq && a.answered_sender == "customs-nl")));

    // customs-fr was party to nothing: hashes only, all of them.
    let theirs = leaves(&mut fr, 0, cp.tree_size).await;
    assert_eq!(theirs.len() as u64, cp.tree_size);
    assert!(theirs
        .iter()
        .all(|l| l.data.is_empty() && l.leaf_hash.len() == 32));

    // Bad ranges are named.
    let status = fr
        .audit
        .get_leaves(pb::GetLeavesRequest { start: 5, end: 5 })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(common::violated_fields(&status), vec!["end"]);
    let status = fr
        .audit
        .get_inclusion_proof(pb::GetInclusionProofRequest {
            leaf_index: 0,
            tree_size: cp.tree_size + 1000,
        })
        .await
        .unwrap_err();
    assert_eq!(common::violated_fields(&status), vec!["tree_size"]);
    gw.stop().await;
}

/// Refused calls are leaves too: by a registered participant (visible to it) and by an
/// unregistered certificate. A failed handshake is not a leaf of its own: it is counted in
/// the next summary of refused handshakes (tests/handshakes.rs).
#[tokio::test]
async fn refusals_are_recorded() {
    let gw = Setup::new().start().await;
    let mut market = gw.client("market-a").await;
    let mut seizure = example("seizure-notification.json");
    seizure.recipients = vec!["customs-nl".into()];
    let status = submit(&mut market, seizure).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let stranger = gw.pki.ca.issue_participant("customs-xx").unwrap();
    let mut unknown = gw.client_with(&gw.pki.client_tls(&stranger)).await;
    assert!(unknown
        .participants
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .is_err());

    // A handshake with a certificate of another CA.
    let foreign = common::Pki::generate();
    let tls = ipex::cli::client::ClientTls {
        ca_pem: gw.pki.ca.issued.cert_pem.clone(),
        ..foreign.client_tls(&foreign.participants["customs-nl"])
    };
    if let Ok(channel) = ipex::cli::client::connect(&gw.endpoint(), &tls).await {
        let _ = ipex::cli::client::Clients::new(channel)
            .participants
            .who_am_i(pb::WhoAmIRequest {})
            .await;
    }

    // Refusals are queued without waiting; a refreshed checkpoint comes after them.
    let mut refused = Vec::new();
    for _ in 0..50 {
        let cp = refresh(&mut market).await;
        let all = leaves(&mut market, 0, cp.tree_size).await;
        refused = all
            .iter()
            .filter(|l| !l.data.is_empty())
            .filter_map(
                |l| match pb::AuditLeaf::decode(l.data.as_slice()).unwrap().event {
                    Some(pb::audit_leaf::Event::Refused(r)) => Some(r),
                    _ => None,
                },
            )
            .collect::<Vec<_>>();
        if !refused.is_empty() && cp.tree_size >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mine = refused
        .iter()
        .find(|r| r.method == "Submit")
        .expect("submit refusal recorded");
    assert_eq!(mine.participant, "market-a");
    assert_eq!(mine.code, "PERMISSION_DENIED");
    assert!(
        mine.reason.contains("SEIZURE_NOTIFICATION"),
        "{}",
        mine.reason
    );
    assert_eq!(mine.certificate_sha256.len(), 64);

    // The other two refusals are leaves that market-a sees as hashes only; their count shows.
    let cp = refresh(&mut market).await;
    let all = leaves(&mut market, 0, cp.tree_size).await;
    assert_eq!(all.len(), 2, "submit refusal, unregistered caller");
    gw.stop().await;
}

/// Proofs served from the store verify for every index of every tree size up to 300.
#[tokio::test]
async fn proofs_verify_for_every_index_and_size() {
    let dir = tempfile::tempdir().unwrap();
    let signer = ipex::log::note::NoteSigner::generate("test.local/log").unwrap();
    let store = ipex::storage::Store::open(
        dir.path(),
        Default::default(),
        signer,
        std::sync::Arc::new(ipex::app::events::Events),
    )
    .unwrap();
    let mut hashes = Vec::new();
    for chunk in 0..30 {
        let events: Vec<pb::AuditLeaf> = (0..10)
            .map(|i| pb::AuditLeaf {
                time: None,
                event: Some(pb::audit_leaf::Event::Read(pb::MessagesRead {
                    reader: "customs-nl".into(),
                    officer: String::new(),
                    method: "Get".into(),
                    seqs: vec![chunk * 10 + i],
                    digest: String::new(),
                })),
            })
            .collect();
        store.record(events).await.unwrap();
    }
    // Recorded is durable; the index may be a batch behind until settled.
    store.settled().await.unwrap();
    for (_, h, data) in store.leaves(0, 300).unwrap() {
        assert_eq!(merkle::leaf_hash(&data), h);
        hashes.push(h);
    }
    assert_eq!(hashes.len(), 300);
    let mut frontier = merkle::Frontier::new();
    for size in 1..=300u64 {
        frontier.push(hashes[size as usize - 1]);
        let root = frontier.root();
        for index in 0..size {
            let proof = store.inclusion_proof(index, size).unwrap();
            merkle::verify_inclusion(&hashes[index as usize], index, size, &proof, &root)
                .unwrap_or_else(|e| panic!("index {index} size {size}: {e}"));
        }
    }
    store.close().unwrap();
}

/// A flipped bit in a leaf of a stopped store stops the gateway from starting, naming the
/// record, and an export with a changed leaf fails offline verification at that index.
#[tokio::test]
async fn tampering_is_detected_at_start_and_offline() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    let export = setup.path().join("log.jsonl");
    ipex::cli::audit::export(&mut nl.audit, &export)
        .await
        .unwrap();
    drop(nl);
    gw.stop().await;

    // Offline verification of the untouched export passes, of a changed one fails.
    let state = setup.path().join("state.json");
    ipex::cli::audit::verify_file(&export, &state, None).unwrap();
    std::fs::remove_file(&state).unwrap();
    let text = std::fs::read_to_string(&export).unwrap();
    let mut lines: Vec<String> = text.lines().map(String::from).collect();
    let mut leaf: serde_json::Value = serde_json::from_str(&lines[1]).unwrap();
    leaf["leaf_hash"] = serde_json::Value::String("00".repeat(32));
    lines[1] = leaf.to_string();
    let tampered = setup.path().join("tampered.jsonl");
    std::fs::write(&tampered, lines.join("\n") + "\n").unwrap();
    let err = ipex::cli::audit::verify_file(&tampered, &state, None).unwrap_err();
    assert!(
        matches!(err, CliError::Verify(VerifyError::LeafData(0))),
        "{err}"
    );

    // Flip a bit of leaf 0's record in the stopped store: acknowledged data, damaged.
    let (segment, offset) = common::flip_leaf_bit(&setup.config.data_dir, 0);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let err = ipex::server::run(listener, setup.config.clone(), std::future::pending())
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("damaged: segment {segment} at offset {offset}")),
        "{err}"
    );
}

/// A verifier that saw one history detects another of the same size (or a longer one that
/// does not extend it), even signed with the gateway's key.
#[tokio::test]
async fn forked_history_is_detected_by_verify() {
    // Two gateways with the same signing key and different histories.
    let a = Setup::new();
    let b = Setup::new();
    std::fs::copy(a.path().join("audit.key"), b.path().join("audit.key")).unwrap();
    let state = a.path().join("verifier-state.json");

    let gw = a.start().await;
    let mut nl = gw.client("customs-nl").await;
    submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    refresh(&mut nl).await;
    let report =
        ipex::cli::audit::verify_online(&mut nl.audit, &state, None, 20, &Default::default())
            .await
            .unwrap();
    assert_eq!(report["verified"], true);
    let seen = State::load(&state).unwrap().unwrap();
    // Verifying again, after more traffic, checks consistency with what was seen.
    submit(&mut nl, example("data-request.json")).await.unwrap();
    refresh(&mut nl).await;
    let report =
        ipex::cli::audit::verify_online(&mut nl.audit, &state, None, 20, &Default::default())
            .await
            .unwrap();
    assert_eq!(report["consistentWithSize"], seen.tree_size.to_string());
    drop(nl);
    gw.stop().await;
    seen.save(&state).unwrap();

    // Same size, other content.
    let gw = b.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut other = example("takedown-notice.json");
    other.id = "tdn-rewritten".into();
    submit(&mut nl, other).await.unwrap();
    let cp = refresh(&mut nl).await;
    assert_eq!(cp.tree_size, seen.tree_size);
    let err = ipex::cli::audit::verify_online(&mut nl.audit, &state, None, 20, &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CliError::Verify(VerifyError::Fork { .. })),
        "{err}"
    );
    // Longer, but not an extension of what was seen.
    submit(&mut nl, example("data-request.json")).await.unwrap();
    refresh(&mut nl).await;
    let err = ipex::cli::audit::verify_online(&mut nl.audit, &state, None, 20, &Default::default())
        .await
        .unwrap_err();
    assert!(
        matches!(err, CliError::Verify(VerifyError::Fork { .. })),
        "{err}"
    );
    // The state was not overwritten by a failed run.
    assert_eq!(State::load(&state).unwrap().unwrap(), seen);
    gw.stop().await;
}
