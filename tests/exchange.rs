//! The exchange end to end: real mutual TLS on 127.0.0.1:0, a sled store in a temporary
//! directory, certificates generated here.

mod common;

use common::{example, get, inbox, submit, violated_fields, Setup};
use ipex::pb::{self, envelope::Payload, Kind, Tlp};
use tonic::Code;

/// Every payload kind travels between the roles allowed to exchange it, lands in the
/// recipient's inbox, and is stored with the authenticated sender.
#[tokio::test]
async fn every_payload_kind_reaches_its_recipient() {
    let setup = Setup::new();
    let gw = setup.start().await;
    // (file, sender, a recipient that must find it in its inbox)
    let flow = [
        ("seller-flag.json", "market-a", "customs-nl"),
        ("takedown-notice.json", "customs-nl", "market-a"),
        ("takedown-outcome.json", "market-a", "customs-nl"),
        ("seizure-notification.json", "customs-nl", "rilo-we"),
        ("shipment-alert.json", "express-b", "customs-nl"),
        ("data-request.json", "customs-nl", "market-a"),
        ("data-response.json", "market-a", "customs-nl"),
    ];
    for (file, sender, recipient) in flow {
        let envelope = example(file);
        let id = envelope.id.clone();
        let mut client = gw.client(sender).await;
        let receipt = submit(&mut client, envelope.clone())
            .await
            .unwrap_or_else(|s| panic!("{file} refused: {s:?}"));
        assert_eq!(receipt.sender, sender);
        assert_eq!(receipt.id, id);
        assert!(!receipt.duplicate);
        assert_eq!(receipt.envelope_sha256.len(), 64);
        let placement = receipt
            .placements
            .iter()
            .find(|p| p.recipient == recipient)
            .unwrap_or_else(|| panic!("{file}: {recipient} not among {:?}", receipt.placements));

        let mut reader = gw.client(recipient).await;
        let got = get(&mut reader, sender, &id).await.unwrap();
        assert_eq!(got.seq, receipt.seq);
        assert_eq!(got.inbox_no, placement.inbox_no);
        let stored = got.envelope.unwrap();
        assert_eq!(stored.sender, sender);
        assert_eq!(
            stored.payload, envelope.payload,
            "{file}: payload changed in storage"
        );
        let listed = inbox(&mut reader).await;
        assert!(
            listed.iter().any(|m| m.seq == receipt.seq),
            "{file}: not in {recipient}'s inbox"
        );
    }
    gw.stop().await;
}

/// The sender of a stored envelope is the certificate's participant, whatever the client
/// wrote in the field.
#[tokio::test]
async fn sender_is_taken_from_the_certificate() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut envelope = example("takedown-notice.json");
    envelope.sender = "customs-fr".into();
    let receipt = submit(&mut nl, envelope.clone()).await.unwrap();
    assert_eq!(receipt.sender, "customs-nl");
    let mut market = gw.client("market-a").await;
    let stored = get(&mut market, "customs-nl", &envelope.id).await.unwrap();
    assert_eq!(stored.envelope.unwrap().sender, "customs-nl");
    assert_eq!(
        get(&mut market, "customs-fr", &envelope.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    gw.stop().await;
}

/// A role may only send the kinds, and to the roles, the policy allows.
#[tokio::test]
async fn policy_refusals_name_the_rule() {
    let gw = Setup::new().start().await;
    // A platform may not notify seizures.
    let mut market = gw.client("market-a").await;
    let mut seizure = example("seizure-notification.json");
    seizure.recipients = vec!["customs-nl".into()];
    seizure.tlp = Tlp::Amber as i32;
    let status = submit(&mut market, seizure).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("PLATFORM") && status.message().contains("SEIZURE_NOTIFICATION"),
        "{}",
        status.message()
    );
    // Customs may send a takedown notice to a platform, not to a partner.
    let mut nl = gw.client("customs-nl").await;
    let mut notice = example("takedown-notice.json");
    notice.recipients.push("rilo-we".into());
    let status = submit(&mut nl, notice).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        status.message().contains("rilo-we (PARTNER)"),
        "{}",
        status.message()
    );
    // A partner sends nothing.
    let mut partner = gw.client("rilo-we").await;
    let status = submit(&mut partner, example("shipment-alert.json"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Nothing refused was stored.
    assert!(inbox(&mut market).await.is_empty());
    assert!(inbox(&mut nl).await.is_empty());
    gw.stop().await;
}

/// Invalid fields are refused with INVALID_ARGUMENT and BadRequest details naming each field;
/// nothing is stored.
#[tokio::test]
async fn invalid_fields_are_named() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut seizure = example("seizure-notification.json");
    let Some(Payload::SeizureNotification(s)) = seizure.payload.as_mut() else {
        panic!("sample is a seizure notification")
    };
    s.items[0].hs_code = "64A3".into();
    s.origin_country = "XX".into();
    seizure.territorial_scope = vec!["NL".into(), "Netherlands".into()];
    let status = submit(&mut nl, seizure).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    for expected in [
        "envelope.seizure_notification.items[0].hs_code",
        "envelope.seizure_notification.origin_country",
        "envelope.territorial_scope[1]",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} not in {fields:?}"
        );
    }
    assert!(
        status.message().contains("items[0].hs_code"),
        "{}",
        status.message()
    );

    // Envelope-level rules.
    let mut bad = example("takedown-notice.json");
    bad.id = "has space".into();
    bad.tlp = Tlp::Unspecified as i32;
    bad.created_at = None;
    bad.kind = Kind::SellerFlag as i32;
    let status = submit(&mut nl, bad).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    for expected in [
        "envelope.id",
        "envelope.tlp",
        "envelope.created_at",
        "envelope.kind",
    ] {
        assert!(
            fields.iter().any(|f| f == expected),
            "{expected} not in {fields:?}"
        );
    }

    // AMBER needs recipients; an unknown recipient is named.
    let mut amber = example("takedown-notice.json");
    amber.recipients = vec![];
    let status = submit(&mut nl, amber).await.unwrap_err();
    assert_eq!(violated_fields(&status), vec!["envelope.recipients"]);
    let mut unknown = example("takedown-notice.json");
    unknown.recipients.push("market-z".into());
    let status = submit(&mut nl, unknown).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["envelope.recipients[1]"]);

    // A missing envelope.
    let status = nl
        .exchange
        .submit(pb::SubmitRequest { envelope: None })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["envelope"]);

    let mut market = gw.client("market-a").await;
    assert!(inbox(&mut market).await.is_empty());
    gw.stop().await;
}

/// An outcome must answer a stored notice addressed to the platform that answers.
#[tokio::test]
async fn answers_must_ref_a_message_addressed_to_the_sender() {
    let gw = Setup::new().start().await;
    let mut market = gw.client("market-a").await;
    let mut market_b = gw.client("market-b").await;
    let mut nl = gw.client("customs-nl").await;

    let status = submit(&mut market, example("takedown-outcome.json"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), vec!["envelope.refs[0]"]);
    assert!(
        status.message().contains("no message"),
        "{}",
        status.message()
    );

    submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    // market-b was not addressed: it cannot answer.
    let status = submit(&mut market_b, example("takedown-outcome.json"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["envelope.refs[0]"]);
    assert!(
        status
            .message()
            .contains("is stored that market-b may read"),
        "{}",
        status.message()
    );
    // An outcome that refs a data request instead of a notice.
    submit(&mut nl, example("data-request.json")).await.unwrap();
    let mut wrong = example("takedown-outcome.json");
    wrong.refs[0].id = example("data-request.json").id;
    let status = submit(&mut market, wrong).await.unwrap_err();
    assert!(
        status.message().contains("not a TAKEDOWN_NOTICE"),
        "{}",
        status.message()
    );
    // The addressed platform can.
    submit(&mut market, example("takedown-outcome.json"))
        .await
        .unwrap();
    gw.stop().await;
}

/// TLP RED, AMBER and AMBER_STRICT are read only by sender and recipients; GREEN by every
/// participant the policy lets receive the kind.
#[tokio::test]
async fn tlp_limits_who_reads() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut fr = gw.client("customs-fr").await;
    let mut market_b = gw.client("market-b").await;
    let mut partner = gw.client("rilo-we").await;
    let mut market = gw.client("market-a").await;

    let request = example("data-request.json");
    assert_eq!(request.tlp, Tlp::Red as i32);
    submit(&mut nl, request.clone()).await.unwrap();
    // Those TLP keeps out are answered as if the message did not exist.
    for (reader, id) in [
        (&mut fr, "customs-fr"),
        (&mut market_b, "market-b"),
        (&mut partner, "rilo-we"),
    ] {
        let status = get(reader, "customs-nl", &request.id).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.message(),
            format!(
                "no message {:?} from customs-nl is stored that {id} may read",
                request.id
            )
        );
    }
    assert!(get(&mut market, "customs-nl", &request.id).await.is_ok());
    assert!(get(&mut nl, "customs-nl", &request.id).await.is_ok());

    // A GREEN broadcast seizure: every role the policy lets receive seizures gets it.
    let seizure = example("seizure-notification.json");
    assert_eq!(seizure.tlp, Tlp::Green as i32);
    assert!(seizure.recipients.is_empty());
    let receipt = submit(&mut nl, seizure.clone()).await.unwrap();
    let mut placed: Vec<&str> = receipt
        .placements
        .iter()
        .map(|p| p.recipient.as_str())
        .collect();
    placed.sort();
    assert_eq!(
        placed,
        [
            "brand-c",
            "customs-fr",
            "express-b",
            "market-a",
            "market-b",
            "rilo-we"
        ]
    );
    assert_eq!(inbox(&mut partner).await.len(), 1);
    assert!(get(&mut partner, "customs-nl", &seizure.id).await.is_ok());
    // The RED request never reached the partner's inbox.
    assert!(inbox(&mut partner)
        .await
        .iter()
        .all(|m| m.envelope.as_ref().unwrap().id != request.id));
    gw.stop().await;
}

/// Resubmitting the same (sender, id) with the same content returns the original receipt;
/// with other content it is refused and the original stays.
#[tokio::test]
async fn resubmission_is_idempotent() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let notice = example("takedown-notice.json");
    let first = submit(&mut nl, notice.clone()).await.unwrap();
    let again = submit(&mut nl, notice.clone()).await.unwrap();
    assert!(again.duplicate);
    assert_eq!(
        pb::Receipt {
            duplicate: false,
            ..again
        },
        first
    );

    let mut changed = notice.clone();
    changed.territorial_scope = vec!["BE".into()];
    let status = submit(&mut nl, changed).await.unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert!(
        status.message().contains(&notice.id),
        "{}",
        status.message()
    );

    let mut market = gw.client("market-a").await;
    let listed = inbox(&mut market).await;
    assert_eq!(listed.len(), 1, "stored once");
    assert_eq!(
        listed[0].envelope.as_ref().unwrap().territorial_scope,
        notice.territorial_scope
    );
    gw.stop().await;
}

/// A batch is stored whole or not at all, and a refusal names each failing item.
#[tokio::test]
async fn batches_are_all_or_nothing() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut market = gw.client("market-a").await;
    let good = example("takedown-notice.json");
    let mut bad_field = example("data-request.json");
    bad_field.territorial_scope = vec!["ZZ".into()];
    let mut forbidden = example("takedown-notice.json");
    forbidden.id = "tdn-forbidden".into();
    forbidden.recipients.push("rilo-we".into());

    let status = nl
        .exchange
        .submit_batch(pb::SubmitBatchRequest {
            envelopes: vec![good.clone(), bad_field.clone(), forbidden],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert_eq!(
        violated_fields(&status),
        vec!["envelopes[1].territorial_scope[0]", "envelopes[2]"]
    );
    assert_eq!(
        get(&mut nl, "customs-nl", &good.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    assert!(inbox(&mut market).await.is_empty());

    // The same id twice in one batch.
    let status = nl
        .exchange
        .submit_batch(pb::SubmitBatchRequest {
            envelopes: vec![good.clone(), good.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["envelopes[1].id"]);

    // Empty and oversized batches.
    for n in [0usize, 101] {
        let mut envelopes = Vec::new();
        for i in 0..n {
            let mut e = good.clone();
            e.id = format!("tdn-{i}");
            envelopes.push(e);
        }
        let status = nl
            .exchange
            .submit_batch(pb::SubmitBatchRequest { envelopes })
            .await
            .unwrap_err();
        assert_eq!(violated_fields(&status), vec!["envelopes"], "{n} envelopes");
    }

    // A valid batch: one receipt each, consecutive sequence numbers.
    let mut second = good.clone();
    second.id = "tdn-2026-0002".into();
    let receipts = nl
        .exchange
        .submit_batch(pb::SubmitBatchRequest {
            envelopes: vec![good.clone(), second, bad_field_fixed(bad_field)],
        })
        .await
        .unwrap()
        .into_inner()
        .receipts;
    assert_eq!(receipts.len(), 3);
    assert_eq!(receipts[1].seq, receipts[0].seq + 1);
    assert_eq!(receipts[2].seq, receipts[0].seq + 2);
    assert_eq!(inbox(&mut market).await.len(), 3);

    // A batch that reuses a stored id with other content stores nothing new.
    let mut conflicting = good.clone();
    conflicting.territorial_scope = vec!["FR".into()];
    let mut fresh = good.clone();
    fresh.id = "tdn-2026-0003".into();
    let status = nl
        .exchange
        .submit_batch(pb::SubmitBatchRequest {
            envelopes: vec![fresh.clone(), conflicting],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(violated_fields(&status), vec!["envelopes[1]"]);
    assert_eq!(
        get(&mut nl, "customs-nl", &fresh.id)
            .await
            .unwrap_err()
            .code(),
        Code::NotFound
    );
    gw.stop().await;
}

fn bad_field_fixed(mut e: pb::Envelope) -> pb::Envelope {
    e.territorial_scope = vec!["NL".into()];
    e
}

/// A request larger than max_message_bytes is refused before it is decoded.
#[tokio::test]
async fn oversized_messages_are_refused() {
    let mut setup = Setup::new();
    setup.config.max_message_bytes = 64 * 1024;
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut notice = example("takedown-notice.json");
    notice.territorial_scope = vec!["NL".to_string(); 40_000];
    let status = submit(&mut nl, notice).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains("max_message_bytes"),
        "{}",
        status.message()
    );
    // The connection still serves normal calls.
    submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    gw.stop().await;
}

/// The inbox pages by inbox number and filters by kind.
#[tokio::test]
async fn inbox_pages_and_filters() {
    let gw = Setup::new().start().await;
    let mut market = gw.client("market-a").await;
    let mut nl = gw.client("customs-nl").await;
    for i in 0..5 {
        let mut notice = example("takedown-notice.json");
        notice.id = format!("tdn-{i}");
        submit(&mut nl, notice).await.unwrap();
    }
    submit(&mut nl, example("data-request.json")).await.unwrap();

    let page = market
        .exchange
        .list_inbox(pb::ListInboxRequest {
            after: 0,
            limit: 2,
            kinds: vec![],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.head, 6);
    assert_eq!(
        page.messages.iter().map(|m| m.inbox_no).collect::<Vec<_>>(),
        [1, 2]
    );
    assert_eq!(page.next_after, 2);
    let page = market
        .exchange
        .list_inbox(pb::ListInboxRequest {
            after: page.next_after,
            limit: 10,
            kinds: vec![Kind::DataRequest as i32],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.messages.len(), 1);
    assert_eq!(page.messages[0].inbox_no, 6);

    let status = market
        .exchange
        .list_inbox(pb::ListInboxRequest {
            after: 0,
            limit: 5000,
            kinds: vec![0],
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), vec!["limit", "kinds[0]"]);
    gw.stop().await;
}

/// What was acknowledged survives a restart on the same directory, and numbering continues.
#[tokio::test]
async fn data_survives_a_restart() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let first = submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    drop(nl);
    gw.stop().await;

    let gw = setup.start().await;
    let mut market = gw.client("market-a").await;
    let stored = get(&mut market, "customs-nl", &first.id).await.unwrap();
    assert_eq!(stored.seq, first.seq);
    assert_eq!(stored.envelope_sha256, first.envelope_sha256);
    let mut nl = gw.client("customs-nl").await;
    // The idempotency key survived too.
    assert!(
        submit(&mut nl, example("takedown-notice.json"))
            .await
            .unwrap()
            .duplicate
    );
    let mut next = example("takedown-notice.json");
    next.id = "tdn-after-restart".into();
    let second = submit(&mut nl, next).await.unwrap();
    assert_eq!(second.seq, first.seq + 1);
    assert_eq!(
        second.placements[0].inbox_no,
        first.placements[0].inbox_no + 1
    );
    gw.stop().await;
}

/// 200 concurrent submits are each stored once, with consecutive inbox numbers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_submits_get_consecutive_inbox_numbers() {
    let gw = Setup::new().start().await;
    let nl = gw.client("customs-nl").await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let mut client = nl.clone();
        tasks.push(tokio::spawn(async move {
            let mut notice = example("takedown-notice.json");
            notice.id = format!("tdn-concurrent-{i}");
            submit(&mut client, notice).await.unwrap()
        }));
    }
    let mut seqs = Vec::new();
    let mut inbox_nos = Vec::new();
    for task in tasks {
        let receipt = task.await.unwrap();
        seqs.push(receipt.seq);
        inbox_nos.push(receipt.placements[0].inbox_no);
    }
    seqs.sort_unstable();
    inbox_nos.sort_unstable();
    assert_eq!(seqs, (1..=200).collect::<Vec<u64>>());
    assert_eq!(inbox_nos, (1..=200).collect::<Vec<u64>>());
    let mut market = gw.client("market-a").await;
    let listed = inbox(&mut market).await;
    assert_eq!(listed.len(), 200);
    let mut ids: Vec<String> = listed
        .iter()
        .map(|m| m.envelope.as_ref().unwrap().id.clone())
        .collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), 200, "each stored once");
    gw.stop().await;
}
