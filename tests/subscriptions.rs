//! Subscriptions and search over real mutual TLS: filters, visibility, durable resumption
//! across disconnects and restarts, slow subscribers, many subscribers, Acks on the channel
//! of unread streams.

mod common;

use common::{example, submit, Setup};
use ipex::cli::client::Clients;
use ipex::pb::{self, envelope::Payload, Kind, Tlp};
use std::collections::BTreeSet;
use std::time::Duration;
use tokio_stream::StreamExt;
use tonic::Code;

type Stream = tonic::Streaming<pb::Delivery>;

/// A GREEN seizure of Acme sneakers (HS 640399) from CN to NL, carried by express-b, listed
/// on market-a: what most tests here submit.
fn green_seizure(id: &str) -> pb::Envelope {
    seizure(
        id,
        "640399",
        "CN",
        "NL",
        ("NL", "NLAMS"),
        "Acme",
        "express-b",
        "market-a",
        Tlp::Green,
        &[],
    )
}

/// A seizure by customs-nl with the given facets, one item.
#[allow(clippy::too_many_arguments)]
fn seizure(
    id: &str,
    hs: &str,
    origin: &str,
    destination: &str,
    location: (&str, &str),
    brand: &str,
    carrier: &str,
    platform: &str,
    tlp: Tlp,
    recipients: &[&str],
) -> pb::Envelope {
    let mut e = example("seizure-notification.json");
    e.id = id.into();
    e.tlp = tlp as i32;
    e.recipients = recipients.iter().map(|r| r.to_string()).collect();
    let Some(Payload::SeizureNotification(s)) = e.payload.as_mut() else {
        unreachable!()
    };
    s.items.truncate(1);
    s.items[0].hs_code = hs.into();
    s.items[0].brand = brand.into();
    s.origin_country = origin.into();
    s.destination_country = destination.into();
    let loc = s.location.as_mut().unwrap();
    loc.country = location.0.into();
    loc.unlocode = location.1.into();
    s.transport.as_mut().unwrap().carrier = carrier.into();
    s.seller.as_mut().unwrap().platform = platform.into();
    e
}

/// The corpus: two seizures, a seller flag and a shipment alert, all readable by customs-nl.
async fn corpus(gw: &common::Gateway) {
    let mut nl = gw.client("customs-nl").await;
    submit(
        &mut nl,
        seizure(
            "s1",
            "640399",
            "CN",
            "NL",
            ("NL", "NLAMS"),
            "ACME",
            "express-b",
            "market-a",
            Tlp::Green,
            &[],
        ),
    )
    .await
    .unwrap();
    submit(
        &mut nl,
        seizure(
            "s2",
            "420221",
            "TR",
            "FR",
            ("FR", "FRCDG"),
            "Beta",
            "",
            "market-b",
            Tlp::Amber,
            &["customs-fr"],
        ),
    )
    .await
    .unwrap();
    let mut flag = example("seller-flag.json");
    flag.id = "f1".into();
    if let Some(Payload::SellerFlag(f)) = flag.payload.as_mut() {
        f.ship_from_country = "HK".into();
        f.brands = vec!["Gamma".into()];
    }
    submit(&mut gw.client("market-a").await, flag)
        .await
        .unwrap();
    let mut alert = example("shipment-alert.json");
    alert.id = "a1".into();
    if let Some(Payload::ShipmentAlert(a)) = alert.payload.as_mut() {
        a.hs_code = "851712".into();
        a.shipper_country = "VN".into();
        a.consignee_country = "DE".into();
    }
    submit(&mut gw.client("express-b").await, alert)
        .await
        .unwrap();
}

async fn open(c: &mut Clients, filter: pb::Filter, durable: &str, from_seq: Option<u64>) -> Stream {
    c.exchange
        .subscribe(pb::SubscribeRequest {
            filter: Some(filter),
            durable_name: durable.into(),
            start: from_seq.map(pb::subscribe_request::Start::FromSeq),
        })
        .await
        .unwrap()
        .into_inner()
}

/// Deliveries until the stream is quiet for `quiet`.
async fn drain(stream: &mut Stream, quiet: Duration) -> Vec<pb::Delivery> {
    let mut out = Vec::new();
    while let Ok(Some(item)) = tokio::time::timeout(quiet, stream.next()).await {
        out.push(item.unwrap());
    }
    out
}

/// Exactly `n` deliveries (fails after 10 s).
async fn take(stream: &mut Stream, n: usize) -> Vec<pb::Delivery> {
    let mut out = Vec::new();
    while out.len() < n {
        let item = tokio::time::timeout(Duration::from_secs(10), stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} deliveries arrived", out.len()))
            .expect("stream ended")
            .unwrap();
        out.push(item);
    }
    out
}

fn ids(deliveries: &[pb::Delivery]) -> BTreeSet<String> {
    deliveries
        .iter()
        .map(|d| {
            d.message
                .as_ref()
                .unwrap()
                .envelope
                .as_ref()
                .unwrap()
                .id
                .clone()
        })
        .collect()
}

fn set(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

/// Each filter selects the same messages for Subscribe and for Search.
#[tokio::test]
async fn each_filter_selects_for_subscribe_and_search() {
    let gw = Setup::new().start().await;
    corpus(&gw).await;
    let mut nl = gw.client("customs-nl").await;
    let cases: Vec<(&str, pb::Filter, &[&str])> = vec![
        ("none", pb::Filter::default(), &["s1", "s2", "f1", "a1"]),
        (
            "kinds",
            pb::Filter {
                kinds: vec![Kind::SeizureNotification as i32],
                ..Default::default()
            },
            &["s1", "s2"],
        ),
        (
            "hs chapter",
            pb::Filter {
                hs_prefixes: vec!["64".into()],
                ..Default::default()
            },
            &["s1"],
        ),
        (
            "hs heading",
            pb::Filter {
                hs_prefixes: vec!["4202".into(), "8517".into()],
                ..Default::default()
            },
            &["s2", "a1"],
        ),
        (
            "origin",
            pb::Filter {
                origin_countries: vec!["CN".into(), "VN".into()],
                ..Default::default()
            },
            &["s1", "a1"],
        ),
        (
            "destination",
            pb::Filter {
                destination_countries: vec!["FR".into()],
                ..Default::default()
            },
            &["s2"],
        ),
        (
            "location",
            pb::Filter {
                location_countries: vec!["NL".into()],
                ..Default::default()
            },
            &["s1"],
        ),
        (
            "brand, any case",
            pb::Filter {
                brands: vec!["acme".into(), "GAMMA".into()],
                ..Default::default()
            },
            &["s1", "f1"],
        ),
        (
            "carrier",
            pb::Filter {
                carriers: vec!["express-b".into()],
                ..Default::default()
            },
            &["s1", "a1"],
        ),
        (
            "platform",
            pb::Filter {
                platforms: vec!["market-b".into()],
                ..Default::default()
            },
            &["s2"],
        ),
        (
            "min tlp",
            pb::Filter {
                min_tlp: Tlp::Amber as i32,
                ..Default::default()
            },
            &["s2", "f1", "a1"],
        ),
        (
            "combined",
            pb::Filter {
                kinds: vec![Kind::SeizureNotification as i32],
                origin_countries: vec!["CN".into(), "TR".into()],
                location_countries: vec!["FR".into()],
                ..Default::default()
            },
            &["s2"],
        ),
    ];
    for (name, filter, expected) in cases {
        let mut stream = open(&mut nl, filter.clone(), "", Some(1)).await;
        let got = drain(&mut stream, Duration::from_millis(300)).await;
        assert_eq!(ids(&got), set(expected), "Subscribe, filter {name}");
        let seqs: Vec<u64> = got.iter().map(|d| d.seq).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "{name}: not in sequence order: {seqs:?}"
        );
        let found = nl
            .exchange
            .search(pb::SearchRequest {
                filter: Some(filter),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let found_ids: BTreeSet<String> = found
            .messages
            .iter()
            .map(|m| m.envelope.as_ref().unwrap().id.clone())
            .collect();
        assert_eq!(found_ids, set(expected), "Search, filter {name}");
    }
    gw.stop().await;
}

/// A subscriber receives only what it could Get: a partner sees the GREEN seizure, not the
/// AMBER one addressed to customs-fr, nor the flag and alert.
#[tokio::test]
async fn visibility_applies_per_subscriber() {
    let gw = Setup::new().start().await;
    corpus(&gw).await;
    let mut partner = gw.client("rilo-we").await;
    let got = drain(
        &mut open(&mut partner, pb::Filter::default(), "", Some(1)).await,
        Duration::from_millis(300),
    )
    .await;
    assert_eq!(ids(&got), set(&["s1"]));
    // Live, too: a new RED data request to market-a never reaches the partner or customs-fr.
    let mut stream = open(&mut partner, pb::Filter::default(), "", None).await;
    let mut fr = gw.client("customs-fr").await;
    let mut fr_stream = open(&mut fr, pb::Filter::default(), "", None).await;
    submit(
        &mut gw.client("customs-nl").await,
        example("data-request.json"),
    )
    .await
    .unwrap();
    submit(&mut gw.client("customs-nl").await, green_seizure("s3"))
        .await
        .unwrap();
    assert_eq!(ids(&take(&mut stream, 1).await), set(&["s3"]));
    assert_eq!(ids(&take(&mut fr_stream, 1).await), set(&["s3"]));
    // Searches obey the same rule.
    let found = partner
        .exchange
        .search(pb::SearchRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        found
            .messages
            .iter()
            .map(|m| m.envelope.as_ref().unwrap().id.as_str())
            .collect::<BTreeSet<_>>(),
        ["s1", "s3"].into_iter().collect()
    );
    gw.stop().await;
}

/// Search by seller, listing and tracking number, pages by cursor in both orders, and
/// refuses bad requests by field.
#[tokio::test]
async fn search_by_identifier_and_pages() {
    let gw = Setup::new().start().await;
    corpus(&gw).await;
    let nl = gw.client("customs-nl").await;
    let search = |request: pb::SearchRequest| {
        let mut nl = nl.clone();
        async move { nl.exchange.search(request).await.map(|r| r.into_inner()) }
    };
    let by_seller = search(pb::SearchRequest {
        seller: "S-88412907".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let got: BTreeSet<&str> = by_seller
        .messages
        .iter()
        .map(|m| m.envelope.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(
        got,
        ["f1", "s1", "s2"].into_iter().collect(),
        "seller id in flags and seizures"
    );
    let by_flag_kind = search(pb::SearchRequest {
        seller: "S-88412907".into(),
        filter: Some(pb::Filter {
            kinds: vec![Kind::SellerFlag as i32],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_flag_kind.messages.len(), 1);
    let by_tracking = search(pb::SearchRequest {
        tracking_number: "EB4471902365".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_tracking.messages.len(), 3, "both seizures and the alert");
    let by_listing = search(pb::SearchRequest {
        listing_id: "7731904412".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(by_listing.messages.len(), 2);

    // Pages of one, newest first, then oldest first.
    for oldest_first in [false, true] {
        let mut seqs = Vec::new();
        let mut cursor = String::new();
        loop {
            let page = search(pb::SearchRequest {
                limit: 1,
                cursor: cursor.clone(),
                oldest_first,
                ..Default::default()
            })
            .await
            .unwrap();
            seqs.extend(page.messages.iter().map(|m| m.seq));
            if page.next_cursor.is_empty() {
                break;
            }
            cursor = page.next_cursor;
        }
        let mut expected = vec![1, 2, 3, 4];
        if !oldest_first {
            expected.reverse();
        }
        assert_eq!(seqs, expected, "oldest_first {oldest_first}");
    }

    // A time range that excludes everything.
    let empty = search(pb::SearchRequest {
        stored_to: Some(prost_types::Timestamp {
            seconds: 946_684_800,
            nanos: 0,
        }),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(empty.messages.is_empty());

    let status = search(pb::SearchRequest {
        cursor: "junk".into(),
        limit: 5000,
        filter: Some(pb::Filter {
            hs_prefixes: vec!["6".into()],
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        common::violated_fields(&status),
        vec!["filter.hs_prefixes[0]", "limit", "cursor"]
    );
    gw.stop().await;
}

/// A durable subscription resumes after a disconnect with everything not acknowledged, then
/// live messages, without a gap; acks are audited.
#[tokio::test]
async fn durable_subscription_resumes_after_disconnect() {
    let gw = Setup::new().start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut partner = gw.client("rilo-we").await;
    let filter = pb::Filter {
        kinds: vec![Kind::SeizureNotification as i32],
        ..Default::default()
    };
    let mut stream = open(&mut partner, filter.clone(), "feed", None).await;
    for i in 0..3 {
        submit(&mut nl, green_seizure(&format!("r{i}")))
            .await
            .unwrap();
    }
    let first = take(&mut stream, 3).await;
    let ack = partner
        .exchange
        .ack(pb::AckRequest {
            name: "feed".into(),
            up_to_seq: first[0].seq,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ack.acked_seq, first[0].seq);
    drop(stream);
    for i in 3..5 {
        submit(&mut nl, green_seizure(&format!("r{i}")))
            .await
            .unwrap();
    }
    let mut again = open(&mut partner, filter.clone(), "feed", None).await;
    let resumed = take(&mut again, 4).await;
    assert_eq!(
        resumed.iter().map(|d| d.seq).collect::<Vec<_>>(),
        vec![
            first[1].seq,
            first[2].seq,
            first[2].seq + 1,
            first[2].seq + 2
        ],
        "unacknowledged first, then the rest, in order"
    );
    submit(&mut nl, green_seizure("r5")).await.unwrap();
    assert_eq!(ids(&take(&mut again, 1).await), set(&["r5"]));
    // An ack never moves the cursor back; unknown names and future seqs are refused.
    let back = partner
        .exchange
        .ack(pb::AckRequest {
            name: "feed".into(),
            up_to_seq: 1,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(back.acked_seq, first[0].seq);
    let status = partner
        .exchange
        .ack(pb::AckRequest {
            name: "nope".into(),
            up_to_seq: 1,
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = partner
        .exchange
        .ack(pb::AckRequest {
            name: "feed".into(),
            up_to_seq: 999,
        })
        .await
        .unwrap_err();
    assert_eq!(common::violated_fields(&status), vec!["up_to_seq"]);
    // The ack is a leaf the partner can see.
    let leaf = partner
        .audit
        .get_leaves(pb::GetLeavesRequest {
            start: ack.leaf_index,
            end: ack.leaf_index + 1,
        })
        .await
        .unwrap()
        .into_inner()
        .leaves;
    use prost::Message;
    let event = pb::AuditLeaf::decode(leaf[0].data.as_slice())
        .unwrap()
        .event;
    assert!(
        matches!(&event, Some(pb::audit_leaf::Event::Acked(a)) if a.name == "feed" && a.participant == "rilo-we"),
        "{event:?}"
    );
    gw.stop().await;
}

/// A durable subscription survives a gateway restart.
#[tokio::test]
async fn durable_subscription_resumes_after_restart() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let mut partner = gw.client("rilo-we").await;
    let mut stream = open(&mut partner, pb::Filter::default(), "feed", Some(1)).await;
    let mut nl = gw.client("customs-nl").await;
    for i in 0..3 {
        submit(&mut nl, green_seizure(&format!("r{i}")))
            .await
            .unwrap();
    }
    let got = take(&mut stream, 3).await;
    partner
        .exchange
        .ack(pb::AckRequest {
            name: "feed".into(),
            up_to_seq: got[1].seq,
        })
        .await
        .unwrap();
    // The stream ends with UNAVAILABLE when the gateway stops.
    let stop = tokio::spawn(gw.stop());
    let end = tokio::time::timeout(Duration::from_secs(10), stream.next())
        .await
        .unwrap();
    match end {
        Some(Err(status)) => assert_eq!(status.code(), Code::Unavailable, "{status:?}"),
        other => panic!("expected UNAVAILABLE, got {other:?}"),
    }
    stop.await.unwrap();
    drop((partner, nl));

    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    submit(&mut nl, green_seizure("r3")).await.unwrap();
    let mut partner = gw.client("rilo-we").await;
    let mut stream = open(&mut partner, pb::Filter::default(), "feed", None).await;
    let resumed = take(&mut stream, 2).await;
    assert_eq!(ids(&resumed), set(&["r2", "r3"]));
    gw.stop().await;
}

/// A subscriber that does not read falls behind the live ring and catches up from the store;
/// a fast one alongside is not held back; the slow one still gets everything, in order.
#[tokio::test]
async fn slow_subscriber_catches_up_without_holding_back_others() {
    let mut setup = Setup::new();
    setup.config.subscriptions.live_buffer = 16;
    let gw = setup.start().await;
    let mut fast_client = gw.client("rilo-we").await;
    let mut slow_client = gw.client("customs-fr").await;
    let mut fast = open(&mut fast_client, pb::Filter::default(), "", None).await;
    let mut slow = open(&mut slow_client, pb::Filter::default(), "", None).await;
    let nl = gw.client("customs-nl").await;
    let n = 300;
    let mut tasks = Vec::new();
    for i in 0..n {
        let mut c = nl.clone();
        tasks.push(tokio::spawn(async move {
            submit(&mut c, green_seizure(&format!("m{i}")))
                .await
                .unwrap()
        }));
    }
    // The fast subscriber gets all of them while the slow one has read nothing.
    let fast_got = take(&mut fast, n).await;
    for t in tasks {
        t.await.unwrap();
    }
    let slow_got = take(&mut slow, n).await;
    let expected: Vec<u64> = (1..=n as u64).collect();
    assert_eq!(fast_got.iter().map(|d| d.seq).collect::<Vec<_>>(), expected);
    assert_eq!(
        slow_got.iter().map(|d| d.seq).collect::<Vec<_>>(),
        expected,
        "gap or duplicate"
    );
    assert!(
        drain(&mut slow, Duration::from_millis(200))
            .await
            .is_empty(),
        "duplicates after the end"
    );
    gw.stop().await;
}

/// 50 subscribers at once, each with its own filter, each get exactly their messages.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_concurrent_subscribers() {
    let gw = Setup::new().start().await;
    let partner = gw.client("rilo-we").await;
    let mut streams = Vec::new();
    for i in 0..50 {
        let mut c = partner.clone();
        let hs = if i % 2 == 0 { "64" } else { "42" };
        streams.push((
            hs,
            open(
                &mut c,
                pb::Filter {
                    hs_prefixes: vec![hs.into()],
                    ..Default::default()
                },
                "",
                None,
            )
            .await,
        ));
    }
    let mut nl = gw.client("customs-nl").await;
    for i in 0..40 {
        let hs = if i % 2 == 0 { "640399" } else { "420221" };
        submit(
            &mut nl,
            seizure(
                &format!("c{i}"),
                hs,
                "CN",
                "NL",
                ("NL", "NLAMS"),
                "Acme",
                "express-b",
                "market-a",
                Tlp::Green,
                &[],
            ),
        )
        .await
        .unwrap();
    }
    let mut handles = Vec::new();
    for (hs, mut stream) in streams {
        handles.push(tokio::spawn(async move {
            let got = take(&mut stream, 20).await;
            let extra = drain(&mut stream, Duration::from_millis(200)).await;
            (hs, got, extra)
        }));
    }
    for h in handles {
        let (hs, got, extra) = h.await.unwrap();
        assert!(extra.is_empty(), "{hs}: more than its 20");
        let expected: Vec<u64> = (1..=40u64)
            .filter(|s| (s % 2 == 1) == (hs == "64"))
            .collect();
        assert_eq!(
            got.iter().map(|d| d.seq).collect::<Vec<_>>(),
            expected,
            "{hs}"
        );
    }
    gw.stop().await;
}

/// Consumers that stop reading their stream while they wait for the answer to their `Ack` on
/// the same channel, as a careful consumer does: with the client's default HTTP/2 windows a
/// few such streams held the whole connection window, and neither the answers nor any more
/// deliveries could be sent. Eight durable replays on one channel, each holding at least
/// 1 MiB unread, and the Acks are answered; then each reads on to the end, acknowledging
/// every 200 deliveries, with nothing skipped or repeated.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_answer_while_streams_on_the_channel_are_unread() {
    const STREAMS: usize = 8;
    const MESSAGES: u64 = 2500;
    let gw = Setup::new().start().await;
    let nl = gw.client("customs-nl").await;
    let next = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut submitters = Vec::new();
    for _ in 0..16 {
        let (mut c, next) = (nl.clone(), next.clone());
        submitters.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= MESSAGES {
                    break;
                }
                let e = green_seizure(&format!("r{i}"));
                submit(&mut c, e).await.unwrap();
            }
        }));
    }
    for s in submitters {
        s.await.unwrap();
    }
    // One channel for every stream and every Ack.
    let reader = gw.client("rilo-we").await;
    let mut streams = Vec::new();
    for i in 0..STREAMS {
        let mut c = reader.clone();
        let name = format!("paused-{i}");
        let mut stream = open(&mut c, pb::Filter::default(), &name, Some(1)).await;
        let first = take(&mut stream, 1).await.remove(0);
        assert_eq!(first.seq, 1);
        let bytes = prost::Message::encoded_len(&first) as u64 * MESSAGES;
        assert!(
            bytes >= 1 << 20,
            "each stream must hold 1 MiB unread: {bytes}"
        );
        streams.push((c, name, stream));
    }
    // Let the gateway send what the windows allow, then Ack on the same channel.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (c, name, _) in &mut streams {
        let answer = tokio::time::timeout(
            Duration::from_secs(10),
            c.exchange.ack(pb::AckRequest {
                name: name.clone(),
                up_to_seq: 1,
            }),
        )
        .await
        .unwrap_or_else(|_| panic!("{name}: no answer to Ack while the streams are unread"))
        .unwrap()
        .into_inner();
        assert_eq!(answer.acked_seq, 1, "{name}");
    }
    let mut readers = Vec::new();
    for (mut c, name, mut stream) in streams {
        readers.push(tokio::spawn(async move {
            let mut seqs = vec![1];
            while (seqs.len() as u64) < MESSAGES {
                let d = take(&mut stream, 1).await.remove(0);
                seqs.push(d.seq);
                if seqs.len() % 200 == 0 || seqs.len() as u64 == MESSAGES {
                    let answer = tokio::time::timeout(
                        Duration::from_secs(10),
                        c.exchange.ack(pb::AckRequest {
                            name: name.clone(),
                            up_to_seq: d.seq,
                        }),
                    )
                    .await
                    .unwrap_or_else(|_| panic!("{name}: no answer to Ack at {}", d.seq))
                    .unwrap()
                    .into_inner();
                    assert_eq!(answer.acked_seq, d.seq, "{name}");
                }
            }
            (name, seqs)
        }));
    }
    let expected: Vec<u64> = (1..=MESSAGES).collect();
    for r in readers {
        let (name, seqs) = r.await.unwrap();
        assert_eq!(seqs, expected, "{name}: gap or duplicate");
    }
    gw.stop().await;
}
