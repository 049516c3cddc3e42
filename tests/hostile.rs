//! Hostile input over real mutual TLS against a real gateway and store: bytes that do not
//! decode, requests wrong in ten thousand places, probes for which messages exist, senders
//! who may not send what they send, lists without end and text that displays otherwise
//! than it is stored. Every refusal is exact, bounded, and in the audit log; nothing refused
//! is stored.

mod common;

use common::{example, get, inbox, submit, trailer_bytes, violated_fields, Setup};
use ipex::cli::client::Clients;
use ipex::pb::{self, envelope::Payload};
use prost::bytes::{Buf, BufMut};
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::{Code, Status};

/// A codec that sends the bytes it is given, as a hostile client would.
#[derive(Clone, Copy, Default)]
struct Raw;

impl Codec for Raw {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = Raw;
    type Decoder = Raw;
    fn encoder(&mut self) -> Raw {
        Raw
    }
    fn decoder(&mut self) -> Raw {
        Raw
    }
}

impl Encoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn encode(&mut self, item: Vec<u8>, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        buf.put_slice(&item);
        Ok(())
    }
}

impl Decoder for Raw {
    type Item = Vec<u8>;
    type Error = Status;
    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<Vec<u8>>, Status> {
        Ok(Some(buf.copy_to_bytes(buf.remaining()).to_vec()))
    }
}

/// Calls `path` with `body` as the request's bytes.
async fn raw_call(clients: &Clients, path: &'static str, body: Vec<u8>) -> Result<Vec<u8>, Status> {
    let mut grpc = tonic::client::Grpc::new(clients.channel.clone());
    grpc.ready().await.unwrap();
    grpc.unary(
        tonic::Request::new(body),
        PathAndQuery::from_static(path),
        Raw,
    )
    .await
    .map(tonic::Response::into_inner)
}

/// The refusals in the audit log that `clients`' participant may read, once at least `n` are
/// there.
async fn refusals(clients: &mut Clients, n: usize) -> Vec<(pb::CallRefused, usize)> {
    let mut found = Vec::new();
    for _ in 0..100 {
        let cp = clients
            .audit
            .get_checkpoint(pb::GetCheckpointRequest {
                refresh: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        found.clear();
        let mut start = 0;
        while start < cp.tree_size {
            let end = cp.tree_size.min(start + 1000);
            let leaves = clients
                .audit
                .get_leaves(pb::GetLeavesRequest { start, end })
                .await
                .unwrap()
                .into_inner()
                .leaves;
            for leaf in leaves.iter().filter(|l| !l.data.is_empty()) {
                if let Some(pb::audit_leaf::Event::Refused(r)) =
                    pb::AuditLeaf::decode(leaf.data.as_slice()).unwrap().event
                {
                    found.push((r, leaf.data.len()));
                }
            }
            start = end;
        }
        if found.len() >= n {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    found
}

/// Random, truncated, overlong, invalid UTF-8 and 5,000-deep bodies are INVALID_ARGUMENT
/// saying where decoding stopped, each recorded in the audit log; nothing is stored; a
/// caller the gateway does not know is UNAUTHENTICATED whatever it sends.
#[tokio::test]
async fn undecodable_bodies_are_invalid_argument_and_audited() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    // Bytes of a fixed pseudo-random sequence (xorshift), so that the test is repeatable.
    let mut x: u32 = 0x9e37_79b9;
    let random: Vec<u8> = (0..256)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect();
    // Start-group keys of an unknown field 15, 5,000 deep and never closed.
    let deep = vec![(15 << 3) | 3; 5000];
    let cases: Vec<(&str, Vec<u8>, String)> = vec![
        (
            "invalid UTF-8",
            // SubmitRequest.envelope { Envelope.id = 0xff }
            vec![0x0a, 0x03, 0x0a, 0x01, 0xff],
            "the body is not a valid ipex.v1.SubmitRequest: invalid string value: data is not \
             UTF-8 encoded in envelope.id, decoding stopped at byte 5 of 5"
                .into(),
        ),
        (
            "overlong varint",
            vec![0xff; 11],
            "the body is not a valid ipex.v1.SubmitRequest: invalid varint, decoding stopped \
             at byte 0 of 11"
                .into(),
        ),
        (
            "truncated length",
            // SubmitRequest.envelope, 16 bytes announced, 1 sent.
            vec![0x0a, 0x10, 0x0a],
            "the body is not a valid ipex.v1.SubmitRequest: buffer underflow in envelope, \
             decoding stopped at byte 2 of 3"
                .into(),
        ),
        (
            "5,000-deep groups",
            deep,
            "the body is not a valid ipex.v1.SubmitRequest: recursion limit reached, decoding \
             stopped at byte 101 of 5000"
                .into(),
        ),
        ("random bytes", random, String::new()),
    ];
    let mut messages = Vec::new();
    for (name, body, expected) in cases {
        let status = raw_call(&nl, "/ipex.v1.Exchange/Submit", body)
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{name}: {status:?}");
        if expected.is_empty() {
            assert!(
                status
                    .message()
                    .starts_with("the body is not a valid ipex.v1.SubmitRequest: "),
                "{name}: {}",
                status.message()
            );
        } else {
            assert_eq!(status.message(), expected, "{name}");
        }
        assert!(
            status
                .metadata()
                .get(ipex::pb::codec::UNDECODABLE)
                .is_none(),
            "{name}: the mark is the gateway's own"
        );
        messages.push(status.message().to_string());
    }
    let status = raw_call(
        &nl,
        "/ipex.v1.Exchange/Submit",
        vec![0x0a, 0x03, 0x0a, 0x01, 0xff],
    )
    .await
    .unwrap_err();
    assert_eq!(violated_fields(&status), ["envelope.id"]);
    messages.push(status.message().to_string());
    // Other methods decode the same way: field 1 of a GetRequest is the seq of its key.
    let status = raw_call(&nl, "/ipex.v1.Exchange/Get", vec![0x0a, 0x05, 0x0a])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "the body is not a valid ipex.v1.GetRequest: invalid wire type: LengthDelimited \
         (expected Varint) in key, decoding stopped at byte 1 of 3"
    );

    // An unknown caller is told that, not how its bytes are wrong.
    let stranger = gw.pki.ca.issue_participant("customs-xx").unwrap();
    let unknown = gw.client_with(&gw.pki.client_tls(&stranger)).await;
    let status = raw_call(&unknown, "/ipex.v1.Exchange/Submit", vec![0xff; 11])
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");

    // Each refusal is a leaf the caller can read, saying what it was told.
    let recorded = refusals(&mut nl, 7).await;
    let submits: Vec<&pb::CallRefused> = recorded
        .iter()
        .map(|(r, _)| r)
        .filter(|r| r.method == "Submit")
        .collect();
    assert_eq!(submits.len(), messages.len(), "{recorded:?}");
    for (leaf, message) in submits.iter().zip(&messages) {
        assert_eq!(leaf.participant, "customs-nl");
        assert_eq!(leaf.code, "INVALID_ARGUMENT");
        assert_eq!(&leaf.reason, message);
    }
    assert!(recorded
        .iter()
        .any(|(r, _)| r.method == "Get" && r.code == "INVALID_ARGUMENT"));

    // Nothing was stored, and the connection still serves.
    let mut market = gw.client("market-a").await;
    assert!(inbox(&mut market).await.is_empty());
    submit(&mut nl, example("takedown-notice.json"))
        .await
        .unwrap();
    gw.stop().await;
}

/// A request wrong in 10,000 places gets a refusal whose trailers stay under 8 KiB: the first
/// violations in full and how many more there are; its audit leaf is as small; nothing is
/// stored. Also when every description quotes text that percent-encoding triples.
#[tokio::test]
async fn many_invalid_items_give_a_bounded_refusal() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut notice = example("takedown-notice.json");
    notice.territorial_scope = vec!["XX".to_string(); 10_000];
    let status = submit(&mut nl, notice.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let fields = violated_fields(&status);
    assert_eq!(fields[0], "envelope.territorial_scope");
    assert_eq!(fields[1], "envelope.territorial_scope[0]");
    assert!(
        fields.len() <= 10,
        "{} violations in the details",
        fields.len()
    );
    // The scope's count, and one violation per entry.
    let more = 10_001 - fields.len();
    assert!(
        status.message().starts_with(
            "invalid request: envelope.territorial_scope: at most 249 countries, not 10000; \
             envelope.territorial_scope[0]: \"XX\" is not an ISO 3166-1 alpha-2 country code; "
        ),
        "{}",
        status.message()
    );
    assert!(
        status.message().ends_with(&format!("; and {more} more")),
        "{}",
        status.message()
    );
    assert!(
        trailer_bytes(&status) < 8 * 1024,
        "{} bytes",
        trailer_bytes(&status)
    );

    // Text that every escape and percent-encoding makes longer.
    let mut wide = example("takedown-notice.json");
    wide.id = "tdn-wide".into();
    wide.territorial_scope = vec!["é\u{1b}".repeat(60); 3000];
    let Some(Payload::TakedownNotice(n)) = wide.payload.as_mut() else {
        panic!("a takedown notice")
    };
    n.listing_urls = vec!["ü".repeat(300); 100];
    let wide_status = submit(&mut nl, wide.clone()).await.unwrap_err();
    assert_eq!(wide_status.code(), Code::InvalidArgument);
    assert!(
        wide_status.message().contains(" more"),
        "{}",
        wide_status.message()
    );
    assert!(
        trailer_bytes(&wide_status) < 8 * 1024,
        "{} bytes",
        trailer_bytes(&wide_status)
    );

    // A batch of such envelopes, too.
    let envelopes: Vec<pb::Envelope> = (0..20)
        .map(|i| {
            let mut e = notice.clone();
            e.id = format!("tdn-bad-{i}");
            e.territorial_scope = vec!["XX".to_string(); 1000];
            e
        })
        .collect();
    let batch_status = nl
        .exchange
        .submit_batch(pb::SubmitBatchRequest { envelopes })
        .await
        .unwrap_err();
    assert_eq!(batch_status.code(), Code::InvalidArgument);
    let shown = violated_fields(&batch_status).len();
    assert!(
        batch_status
            .message()
            .ends_with(&format!("; and {} more", 20 * 1001 - shown)),
        "{}",
        batch_status.message()
    );
    assert!(trailer_bytes(&batch_status) < 8 * 1024);

    // The audit leaves say what the caller was told, and are small.
    let recorded = refusals(&mut nl, 3).await;
    assert_eq!(recorded.len(), 3, "{recorded:?}");
    for ((leaf, size), status) in recorded.iter().zip([&status, &wide_status, &batch_status]) {
        assert_eq!(leaf.reason, status.message());
        assert!(*size < 2048, "a leaf of {size} bytes");
    }

    // Nothing was stored.
    let mut market = gw.client("market-a").await;
    assert!(inbox(&mut market).await.is_empty());
    for id in [&notice.id, &wide.id, &"tdn-bad-0".to_string()] {
        assert_eq!(
            get(&mut nl, "customs-nl", id).await.unwrap_err().code(),
            Code::NotFound
        );
    }
    gw.stop().await;
}

/// A message the caller may not read answers exactly as one that does not exist, by
/// (sender, id) and by seq, and an answer that refs another participant's notice learns
/// nothing of it; each refusal is still in the audit log.
#[tokio::test]
async fn unreadable_messages_answer_as_missing_ones() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut market_b = gw.client("market-b").await;
    // RED, to market-a only.
    let request = example("data-request.json");
    let receipt = submit(&mut nl, request.clone()).await.unwrap();

    let hidden = get(&mut market_b, "customs-nl", &request.id)
        .await
        .unwrap_err();
    let missing = get(&mut market_b, "customs-nl", "dr-no-such")
        .await
        .unwrap_err();
    for (status, id) in [(&hidden, request.id.as_str()), (&missing, "dr-no-such")] {
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.message(),
            format!("no message {id:?} from customs-nl is stored that market-b may read")
        );
        assert!(status.details().is_empty());
    }
    let by_seq = |seq| pb::GetRequest {
        key: Some(pb::get_request::Key::Seq(seq)),
    };
    for seq in [receipt.seq, 999] {
        let status = market_b.exchange.get(by_seq(seq)).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(
            status.message(),
            format!("no message seq {seq} is stored that market-b may read")
        );
    }

    // An outcome refs a notice addressed to market-a: market-b cannot tell it from none.
    let notice = example("takedown-notice.json");
    submit(&mut nl, notice.clone()).await.unwrap();
    let outcome = example("takedown-outcome.json");
    assert_eq!(outcome.refs[0].id, notice.id);
    let mut to_missing = outcome.clone();
    to_missing.refs[0].id = "tdn-no-such".into();
    for (envelope, id) in [
        (outcome, &notice.id),
        (to_missing, &"tdn-no-such".to_string()),
    ] {
        let status = submit(&mut market_b, envelope).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violated_fields(&status), ["envelope.refs[0]"]);
        assert_eq!(
            status.message(),
            format!(
                "invalid request: envelope.refs[0]: no message {id:?} from customs-nl is stored \
                 that market-b may read"
            )
        );
    }

    // Every refusal is in the audit log, alike for the hidden and the missing.
    let recorded = refusals(&mut market_b, 6).await;
    let codes: Vec<(&str, &str)> = recorded
        .iter()
        .map(|(r, _)| (r.method.as_str(), r.code.as_str()))
        .collect();
    assert_eq!(
        codes,
        [
            ("Get", "NOT_FOUND"),
            ("Get", "NOT_FOUND"),
            ("Get", "NOT_FOUND"),
            ("Get", "NOT_FOUND"),
            ("Submit", "INVALID_ARGUMENT"),
            ("Submit", "INVALID_ARGUMENT"),
        ]
    );
    assert_eq!(recorded[0].0.reason, hidden.message());
    assert!(recorded[0].0.reason.contains(&request.id));
    assert!(!recorded[0].0.reason.contains("TLP"));
    gw.stop().await;
}

/// Who may send what is decided before the fields are checked: a sender that may not send a
/// kind, or not to a recipient, gets PERMISSION_DENIED without field details, however wrong
/// the message; a sender that may send it gets the field details.
#[tokio::test]
async fn senders_are_authorized_before_their_fields_are_checked() {
    let gw = Setup::new().start().await;
    let mut market = gw.client("market-a").await;
    let mut seizure = example("seizure-notification.json");
    let Some(Payload::SeizureNotification(s)) = seizure.payload.as_mut() else {
        panic!("a seizure notification")
    };
    s.items[0].hs_code = "64A3".into();
    seizure.territorial_scope = vec!["XX".into()];
    seizure.created_at = None;
    let status = submit(&mut market, seizure.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "policy: a PLATFORM participant may not send SEIZURE_NOTIFICATION"
    );
    assert!(status.details().is_empty());

    // A kind the sender may send, to a recipient it may not send it to.
    let mut nl = gw.client("customs-nl").await;
    let mut notice = example("takedown-notice.json");
    notice.recipients.push("rilo-we".into());
    notice.territorial_scope = vec!["XX".into()];
    notice.created_at = None;
    let status = submit(&mut nl, notice).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(
        status.message(),
        "policy: TAKEDOWN_NOTICE from CUSTOMS may go to PLATFORM, not to rilo-we (PARTNER)"
    );
    assert!(status.details().is_empty());

    // The same fields from a sender that may send seizures are named.
    let status = submit(&mut nl, seizure).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violated_fields(&status),
        [
            "envelope.seizure_notification.items[0].hs_code",
            "envelope.created_at",
            "envelope.territorial_scope[0]",
        ]
    );
    gw.stop().await;
}

/// Every repeated field has a maximum, refused with a violation naming the field; the
/// maximum itself is accepted.
#[tokio::test]
async fn repeated_fields_have_maxima() {
    use ipex::pb::limits::*;
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;

    let mut notice = example("takedown-notice.json");
    notice.territorial_scope = vec!["NL".to_string(); 10_000];
    let status = submit(&mut nl, notice).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["envelope.territorial_scope"]);
    assert_eq!(
        status.message(),
        "invalid request: envelope.territorial_scope: at most 249 countries, not 10000"
    );

    let mut seizure = example("seizure-notification.json");
    let Some(Payload::SeizureNotification(s)) = seizure.payload.as_mut() else {
        panic!("a seizure notification")
    };
    s.items = vec![s.items[0].clone(); MAX_SEIZED_ITEMS + 1];
    let status = submit(&mut nl, seizure).await.unwrap_err();
    assert_eq!(
        violated_fields(&status),
        ["envelope.seizure_notification.items"]
    );
    assert_eq!(
        status.message(),
        "invalid request: envelope.seizure_notification.items: at most 200 items, not 201"
    );

    let mut flag = example("seller-flag.json");
    let Some(Payload::SellerFlag(f)) = flag.payload.as_mut() else {
        panic!("a seller flag")
    };
    f.brands = vec!["Acme".into(); MAX_BRANDS + 1];
    let mut market = gw.client("market-a").await;
    let status = submit(&mut market, flag).await.unwrap_err();
    assert_eq!(violated_fields(&status), ["envelope.seller_flag.brands"]);

    let status = nl
        .exchange
        .search(pb::SearchRequest {
            filter: Some(pb::Filter {
                brands: vec!["acme".into(); MAX_FILTER_VALUES + 1],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["filter.brands"]);
    assert_eq!(
        status.message(),
        "invalid request: filter.brands: at most 100 values, not 101"
    );
    let status = nl
        .exchange
        .list_inbox(pb::ListInboxRequest {
            kinds: vec![1; MAX_FILTER_VALUES + 1],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["kinds"]);

    // Every assigned country at once is a scope.
    let mut notice = example("takedown-notice.json");
    notice.territorial_scope = ipex::domain::vocab::COUNTRIES
        .iter()
        .map(|c| c.to_string())
        .collect();
    assert_eq!(notice.territorial_scope.len(), MAX_TERRITORIAL_SCOPE);
    submit(&mut nl, notice).await.unwrap();
    gw.stop().await;
}

/// Text fields refuse control characters other than tab and line feed, and the Unicode
/// bidirectional overrides that make a name display as something it is not; tabs and line
/// feeds pass.
#[tokio::test]
async fn text_fields_refuse_control_and_bidi_characters() {
    let gw = Setup::new().start().await;
    let mut market = gw.client("market-a").await;
    let mut flag = example("seller-flag.json");
    let Some(Payload::SellerFlag(f)) = flag.payload.as_mut() else {
        panic!("a seller flag")
    };
    let trader = f.trader.as_mut().expect("the example names the trader");
    trader.name = "Acme Official\u{202E}pohS".into();
    trader.address = "Unit 4\u{1b}[2J".into();
    f.brands = vec!["Acme\u{2066}".into()];
    let status = submit(&mut market, flag.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        status.message(),
        "invalid request: envelope.seller_flag.trader.name: must not contain the bidirectional \
         control character U+202E; envelope.seller_flag.trader.address: must not contain the \
         control character U+001B; envelope.seller_flag.brands[0]: must not contain the \
         bidirectional control character U+2066"
    );
    assert!(inbox(&mut gw.client("customs-nl").await).await.is_empty());

    let Some(Payload::SellerFlag(f)) = flag.payload.as_mut() else {
        unreachable!()
    };
    let trader = f.trader.as_mut().unwrap();
    trader.name = "Acme\tOfficial".into();
    trader.address = "Unit 4\nShenzhen".into();
    f.brands = vec!["Acme".into()];
    submit(&mut market, flag).await.unwrap();
    gw.stop().await;
}
