//! The enforcement loop end to end, over real mutual TLS with a real store: a seizure reaches
//! the platform whose listing sold it as a listing alert, which the platform answers; a seller
//! seen before by another sender raises a seller match for those who may read both; and
//! neither tells anyone what TLP keeps from them.

mod common;

use common::{example, get, inbox, submit, violated_fields, Gateway, Setup};
use ipex::cli::client::Clients;
use ipex::pb::{self, envelope::Payload, Kind, Tlp};
use tonic::Code;

/// The id of the listing alert a seizure `id` of customs raises for `platform`.
fn alert_id(platform: &str, id: &str) -> String {
    format!("ipex:alert:{platform}:{id}")
}

/// The sample seizure (GREEN, sold on market-a by S-88412907) as `id`, changed by `edit`.
fn seizure(id: &str, edit: impl FnOnce(&mut pb::Envelope, &mut pb::SellerRef)) -> pb::Envelope {
    let mut e = example("seizure-notification.json");
    e.id = id.into();
    let Some(Payload::SeizureNotification(s)) = &mut e.payload else {
        unreachable!()
    };
    let mut seller = s.seller.take().unwrap();
    edit(&mut e, &mut seller);
    let Some(Payload::SeizureNotification(s)) = &mut e.payload else {
        unreachable!()
    };
    s.seller = Some(seller);
    e
}

/// The messages of `kind` in the client's inbox.
async fn inbox_of(clients: &mut Clients, kind: Kind) -> Vec<pb::StoredMessage> {
    inbox(clients)
        .await
        .into_iter()
        .filter(|m| m.envelope.as_ref().unwrap().kind == kind as i32)
        .collect()
}

fn alert_of(m: &pb::StoredMessage) -> &pb::ListingAlert {
    match &m.envelope.as_ref().unwrap().payload {
        Some(Payload::ListingAlert(a)) => a,
        other => panic!("not a listing alert: {other:?}"),
    }
}

fn match_of(m: &pb::StoredMessage) -> &pb::SellerMatch {
    match &m.envelope.as_ref().unwrap().payload {
        Some(Payload::SellerMatch(found)) => found,
        other => panic!("not a seller match: {other:?}"),
    }
}

/// A seller flag of `platform` naming the seller by `pseudonym` (and seller id `seller_id`),
/// with `tlp` and `recipients`.
fn flag(id: &str, pseudonym: &str, seller_id: &str, tlp: Tlp, recipients: &[&str]) -> pb::Envelope {
    let mut e = example("seller-flag.json");
    e.id = id.into();
    e.tlp = tlp as i32;
    e.recipients = recipients.iter().map(|r| r.to_string()).collect();
    let Some(Payload::SellerFlag(f)) = &mut e.payload else {
        unreachable!()
    };
    f.platform_seller_id = seller_id.into();
    f.pseudonyms.truncate(1);
    f.pseudonyms[0].hmac_sha256 = pseudonym.into();
    f.linked_listing_urls.clear();
    e
}

const PSEUDONYM: &str = "932bc9782374eb69ef956432384a3fb1d971cb0b9b70b3a604b65600f52797dd";

/// A GREEN seizure naming market-a's listing reaches market-a as a listing alert, in the
/// same commit, with what it needs to act and nothing of the seizure's values; customs reads
/// it, another platform does not; market-a answers it with an outcome that reaches customs.
#[tokio::test]
async fn a_seizure_reaches_the_listing_that_sold_it() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut a = gw.client("market-a").await;
    let mut b = gw.client("market-b").await;
    // market-a subscribes to its listing alerts before the seizure.
    let mut alerts_stream = a
        .exchange
        .subscribe(pb::SubscribeRequest {
            filter: Some(pb::Filter {
                kinds: vec![Kind::ListingAlert as i32],
                ..Default::default()
            }),
            durable_name: String::new(),
            start: None,
        })
        .await
        .unwrap()
        .into_inner();

    let receipt = submit(&mut nl, seizure("seiz-loop-1", |_, _| {}))
        .await
        .unwrap();
    let delivered = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        tokio_stream::StreamExt::next(&mut alerts_stream),
    )
    .await
    .expect("no listing alert reached market-a's subscription")
    .unwrap()
    .unwrap();
    assert_eq!(delivered.seq, receipt.seq + 1);
    let alerts = inbox_of(&mut a, Kind::ListingAlert).await;
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    let alert = &alerts[0];
    // Stored right after the seizure, in its commit.
    assert_eq!(alert.seq, receipt.seq + 1);
    let envelope = alert.envelope.as_ref().unwrap();
    assert_eq!(envelope.id, alert_id("market-a", "seiz-loop-1"));
    assert_eq!(envelope.sender, "customs-nl");
    assert_eq!(envelope.recipients, ["market-a"]);
    assert_eq!(envelope.tlp, Tlp::Amber as i32, "never below AMBER");
    assert_eq!(envelope.refs[0].id, "seiz-loop-1");
    let payload = alert_of(alert);
    assert_eq!(payload.reason, pb::AlertReason::PlatformNamed as i32);
    assert_eq!(
        payload.listing_urls,
        ["https://market-a.example/listing/7731904412"]
    );
    assert_eq!(payload.seller_id, "S-88412907");
    assert_eq!(payload.listing_id, "7731904412");
    assert_eq!(payload.case_reference, "NL-SPL-2026-004512");
    assert_eq!(payload.seizure_country, "NL");
    assert_eq!(payload.items.len(), 2);
    assert_eq!(payload.items[0].brand, "Acme");

    // The seizing administration reads it; the other platform, reading the GREEN seizure
    // itself, does not see market-a's alert.
    get(&mut nl, "customs-nl", &envelope.id).await.unwrap();
    assert!(get(&mut b, "customs-nl", "seiz-loop-1").await.is_ok());
    let hidden = get(&mut b, "customs-nl", &envelope.id).await.unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound, "{hidden:?}");
    assert!(inbox_of(&mut b, Kind::ListingAlert).await.is_empty());

    // market-a answers the alert as it answers a takedown notice.
    let mut outcome = example("takedown-outcome.json");
    outcome.id = "tdo-loop-1".into();
    outcome.refs = vec![pb::MessageRef {
        sender: "customs-nl".into(),
        id: envelope.id.clone(),
    }];
    let answered = submit(&mut a, outcome).await.unwrap();
    let outcomes = inbox_of(&mut nl, Kind::TakedownOutcome).await;
    assert_eq!(outcomes.len(), 1);
    assert_eq!(outcomes[0].seq, answered.seq);
    gw.stop().await;
}

/// A seizure naming a platform that is not registered, whose listing URL is on a subdomain of
/// market-b's host, alerts market-b (without the seller id, which was given for the other
/// platform); a seizure naming market-a with a listing on market-b's host alerts both, each
/// with its own part.
#[tokio::test]
async fn a_listing_on_a_platforms_host_alerts_that_platform() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut a = gw.client("market-a").await;
    let mut b = gw.client("market-b").await;

    submit(
        &mut nl,
        seizure("seiz-host-1", |_, s| {
            s.platform = "shop-x".into();
            s.listing_url = "https://www.market-b.example/item/55".into();
        }),
    )
    .await
    .unwrap();
    let alerts = inbox_of(&mut b, Kind::ListingAlert).await;
    assert_eq!(alerts.len(), 1);
    let payload = alert_of(&alerts[0]);
    assert_eq!(payload.reason, pb::AlertReason::ListingHost as i32);
    assert_eq!(
        payload.listing_urls,
        ["https://www.market-b.example/item/55"]
    );
    assert_eq!(payload.seller_id, "");
    assert!(inbox_of(&mut a, Kind::ListingAlert).await.is_empty());

    submit(
        &mut nl,
        seizure("seiz-host-2", |_, s| {
            s.listing_url = "https://market-b.example/item/56".into();
        }),
    )
    .await
    .unwrap();
    let for_a = inbox_of(&mut a, Kind::ListingAlert).await;
    assert_eq!(for_a.len(), 1);
    let named = alert_of(&for_a[0]);
    assert_eq!(named.reason, pb::AlertReason::PlatformNamed as i32);
    assert!(named.listing_urls.is_empty(), "the URL is not market-a's");
    assert_eq!(named.seller_id, "S-88412907");
    let for_b = inbox_of(&mut b, Kind::ListingAlert).await;
    assert_eq!(for_b.len(), 2);
    let hosted = alert_of(&for_b[1]);
    assert_eq!(hosted.listing_urls, ["https://market-b.example/item/56"]);
    assert_eq!(
        hosted.seller_id, "",
        "market-a's seller id is not market-b's"
    );
    gw.stop().await;
}

/// TLP decides: a platform is alerted only of a seizure it may read. An AMBER seizure that
/// does not name it, or names it as the seller's platform without making it a recipient,
/// tells it nothing; one addressed to it alerts it at AMBER; a RED one at RED.
#[tokio::test]
async fn a_platform_learns_nothing_of_a_seizure_tlp_keeps_from_it() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut a = gw.client("market-a").await;

    let amber = |id: &str, platform: &str, recipients: &[&str]| {
        let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
        let platform = platform.to_string();
        seizure(id, move |e, s| {
            e.tlp = Tlp::Amber as i32;
            e.recipients = recipients;
            s.platform = platform;
        })
    };
    // Its listing is on market-a's host, but it names another platform and is for customs-fr.
    submit(&mut nl, amber("seiz-amber-1", "shop-x", &["customs-fr"]))
        .await
        .unwrap();
    assert!(inbox(&mut a).await.is_empty(), "market-a learnt of it");
    for reader in ["customs-nl", "market-a"] {
        let mut c = gw.client(reader).await;
        let err = get(&mut c, "customs-nl", &alert_id("market-a", "seiz-amber-1"))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{reader}: {err:?}");
    }

    // Named in the seller reference, but not a recipient: it may not read the seizure, so it
    // learns nothing of it either. A recipient: alerted, at AMBER.
    submit(&mut nl, amber("seiz-amber-2", "market-a", &["customs-fr"]))
        .await
        .unwrap();
    assert!(inbox(&mut a).await.is_empty(), "market-a learnt of it");
    submit(&mut nl, amber("seiz-amber-3", "market-a", &["market-a"]))
        .await
        .unwrap();
    let alerts = inbox_of(&mut a, Kind::ListingAlert).await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].envelope.as_ref().unwrap().tlp, Tlp::Amber as i32);
    assert_eq!(
        alerts[0].envelope.as_ref().unwrap().refs[0].id,
        "seiz-amber-3"
    );

    // RED, named but not a recipient: nothing. RED to market-a: an alert at RED.
    let red = |id: &str, recipients: &[&str]| {
        let recipients: Vec<String> = recipients.iter().map(|r| r.to_string()).collect();
        seizure(id, move |e, _| {
            e.tlp = Tlp::Red as i32;
            e.recipients = recipients;
        })
    };
    submit(&mut nl, red("seiz-red-1", &["customs-fr"]))
        .await
        .unwrap();
    assert_eq!(inbox_of(&mut a, Kind::ListingAlert).await.len(), 1);
    submit(&mut nl, red("seiz-red-2", &["market-a"]))
        .await
        .unwrap();
    let alerts = inbox_of(&mut a, Kind::ListingAlert).await;
    assert_eq!(alerts.len(), 2);
    assert_eq!(alerts[1].envelope.as_ref().unwrap().tlp, Tlp::Red as i32);
    gw.stop().await;
}

/// An administration whose registry entry says `listing_alerts = false` raises none, and the
/// registry refuses the key on a participant that is not customs.
#[tokio::test]
async fn an_administration_may_opt_out_of_listing_alerts() {
    let registry = common::enforcing_registry_toml("").replacen(
        "id = \"customs-nl\"\n",
        "id = \"customs-nl\"\nlisting_alerts = false\n",
        1,
    );
    let setup = Setup::with_registry(&registry);
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut fr = gw.client("customs-fr").await;
    let mut a = gw.client("market-a").await;
    submit(&mut nl, seizure("seiz-opt-out", |_, _| {}))
        .await
        .unwrap();
    assert!(inbox_of(&mut a, Kind::ListingAlert).await.is_empty());
    // customs-fr has not opted out.
    submit(&mut fr, seizure("seiz-fr-1", |_, _| {}))
        .await
        .unwrap();
    assert_eq!(inbox_of(&mut a, Kind::ListingAlert).await.len(), 1);
    gw.stop().await;

    let refused = ipex::auth::registry::Registry::from_toml(
        "[[participant]]\nid = \"market-a\"\nrole = \"PLATFORM\"\nlisting_alerts = false\n",
        "registry.toml",
    )
    .unwrap_err();
    assert!(refused.to_string().contains("listing_alerts"), "{refused}");
    let refused = ipex::auth::registry::Registry::from_toml(
        "[[participant]]\nid = \"market-a\"\nrole = \"PLATFORM\"\ndomains = [\"https://market-a.example/\"]\n",
        "registry.toml",
    )
    .unwrap_err();
    assert!(refused.to_string().contains("domains[0]"), "{refused}");
}

/// A resubmitted seizure answers its original receipt and raises no second alert, before and
/// after a restart; the alert survives the restart with its number.
#[tokio::test]
async fn a_resubmitted_seizure_raises_no_second_alert() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut a = gw.client("market-a").await;
    let first = submit(&mut nl, seizure("seiz-again", |_, _| {}))
        .await
        .unwrap();
    let again = submit(&mut nl, seizure("seiz-again", |_, _| {}))
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    let alerts = inbox_of(&mut a, Kind::ListingAlert).await;
    assert_eq!(alerts.len(), 1);
    gw.stop().await;

    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut a = gw.client("market-a").await;
    let after = submit(&mut nl, seizure("seiz-again", |_, _| {}))
        .await
        .unwrap();
    assert!(after.duplicate);
    let kept = inbox_of(&mut a, Kind::ListingAlert).await;
    assert_eq!(kept.len(), 1);
    assert_eq!(
        (kept[0].seq, kept[0].inbox_no),
        (alerts[0].seq, alerts[0].inbox_no)
    );
    gw.stop().await;
}

/// Only the gateway raises alerts and matches: a submitted one is refused (no policy rule
/// lets anyone send them), and so is an id in the gateway's own `ipex:` namespace.
#[tokio::test]
async fn derived_messages_cannot_be_submitted() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    let mut forged = seizure("seiz-forge", |_, _| {});
    forged.recipients = vec!["market-a".into()];
    forged.tlp = Tlp::Amber as i32;
    forged.payload = Some(Payload::ListingAlert(pb::ListingAlert::default()));
    forged.kind = Kind::ListingAlert as i32;
    let err = submit(&mut nl, forged).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");

    let reserved = seizure(&alert_id("market-a", "seiz-x"), |_, _| {});
    let err = submit(&mut nl, reserved).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert_eq!(violated_fields(&err), ["envelope.id"]);
    assert!(err.message().contains("reserved"), "{err:?}");
    gw.stop().await;
}

/// Submits `envelope` as `sender`.
async fn submit_as(gw: &Gateway, sender: &str, envelope: pb::Envelope) -> pb::Receipt {
    let mut c = gw.client(sender).await;
    submit(&mut c, envelope)
        .await
        .unwrap_or_else(|s| panic!("{sender}: {s:?}"))
}

/// market-b flags a seller market-a flagged before (same e-mail pseudonym): customs-nl, who
/// may read both flags, gets a seller match naming market-a's; customs-fr, who may read only
/// market-b's GREEN flag, and market-b, who may read neither of the others', get none.
#[tokio::test]
async fn a_seller_seen_on_two_platforms_reaches_customs() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let earlier = submit_as(
        &gw,
        "market-a",
        flag("flag-a-1", PSEUDONYM, "S-1", Tlp::Amber, &["customs-nl"]),
    )
    .await;
    submit_as(
        &gw,
        "market-b",
        flag("flag-b-1", PSEUDONYM, "B-77", Tlp::Green, &[]),
    )
    .await;

    let mut nl = gw.client("customs-nl").await;
    let matches = inbox_of(&mut nl, Kind::SellerMatch).await;
    assert_eq!(matches.len(), 1, "{matches:?}");
    let envelope = matches[0].envelope.as_ref().unwrap();
    assert_eq!(envelope.recipients, ["customs-nl"]);
    assert_eq!(envelope.tlp, Tlp::Amber as i32);
    let found = match_of(&matches[0]);
    assert_eq!(found.message.as_ref().unwrap().id, "flag-b-1");
    assert_eq!(found.matches.len(), 1);
    let m = &found.matches[0];
    assert_eq!(m.r#ref.as_ref().unwrap().id, "flag-a-1");
    assert_eq!(m.seq, earlier.seq);
    assert_eq!(m.basis, pb::MatchBasis::Pseudonym as i32);
    assert_eq!(m.value, PSEUDONYM);
    assert_eq!(m.platform, "market-a");
    // Every message it names, its reader may read.
    get(&mut nl, "market-a", "flag-a-1").await.unwrap();

    for reader in ["customs-fr", "market-b", "market-a"] {
        let mut c = gw.client(reader).await;
        assert!(
            inbox_of(&mut c, Kind::SellerMatch).await.is_empty(),
            "{reader} got a match"
        );
    }
    gw.stop().await;
}

/// A platform flagging a seller learns that it is known elsewhere only through messages it
/// may read: a GREEN seizure of that seller, yes; an AMBER seizure for other administrations,
/// no (though those administrations learn of the match).
#[tokio::test]
async fn a_platform_learns_of_a_match_only_through_messages_it_may_read() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let hidden_pseudonym = "a".repeat(64);
    submit_as(
        &gw,
        "customs-nl",
        seizure("seiz-amber-seller", |e, s| {
            e.tlp = Tlp::Amber as i32;
            e.recipients = vec!["customs-fr".into()];
            s.platform = "shop-x".into();
            s.listing_url.clear();
            s.seller_pseudonym = hidden_pseudonym.clone();
        }),
    )
    .await;
    submit_as(
        &gw,
        "market-b",
        flag("flag-b-hidden", &hidden_pseudonym, "B-1", Tlp::Green, &[]),
    )
    .await;
    let mut b = gw.client("market-b").await;
    assert!(inbox_of(&mut b, Kind::SellerMatch).await.is_empty());
    for reader in ["customs-nl", "customs-fr"] {
        let mut c = gw.client(reader).await;
        let matches = inbox_of(&mut c, Kind::SellerMatch).await;
        assert_eq!(matches.len(), 1, "{reader}");
        let named = &match_of(&matches[0]).matches[0];
        assert_eq!(named.r#ref.as_ref().unwrap().id, "seiz-amber-seller");
    }

    let seen = "b".repeat(64);
    let seizure_receipt = submit_as(
        &gw,
        "customs-nl",
        seizure("seiz-green-seller", |_, s| {
            s.platform = "shop-x".into();
            s.listing_url.clear();
            s.seller_pseudonym = seen.clone();
        }),
    )
    .await;
    submit_as(
        &gw,
        "market-b",
        flag("flag-b-seen", &seen, "B-2", Tlp::Green, &[]),
    )
    .await;
    let matches = inbox_of(&mut b, Kind::SellerMatch).await;
    assert_eq!(matches.len(), 1);
    let found = match_of(&matches[0]);
    assert_eq!(found.message.as_ref().unwrap().id, "flag-b-seen");
    assert_eq!(found.matches[0].seq, seizure_receipt.seq);
    get(&mut b, "customs-nl", "seiz-green-seller")
        .await
        .unwrap();
    gw.stop().await;
}

/// An operator may turn matching off (`[matching] enabled = false`): equal pseudonyms raise
/// nothing.
#[tokio::test]
async fn matching_can_be_turned_off() {
    let mut setup = Setup::enforcing();
    setup.config.matching.enabled = false;
    let gw = setup.start().await;
    submit_as(
        &gw,
        "market-a",
        flag("flag-a-off", PSEUDONYM, "S-1", Tlp::Green, &[]),
    )
    .await;
    submit_as(
        &gw,
        "market-b",
        flag("flag-b-off", PSEUDONYM, "B-1", Tlp::Green, &[]),
    )
    .await;
    let mut nl = gw.client("customs-nl").await;
    assert!(inbox_of(&mut nl, Kind::SellerMatch).await.is_empty());
    gw.stop().await;
}

/// The case thread of `id` from `sender`, as `reader` sees it: `(kind, id, reasons)` in time
/// order.
async fn thread(
    gw: &Gateway,
    reader: &str,
    sender: &str,
    id: &str,
) -> Vec<(Kind, String, Vec<pb::LinkReason>)> {
    let mut c = gw.client(reader).await;
    c.exchange
        .get_case(pb::GetCaseRequest {
            message: Some(pb::MessageRef {
                sender: sender.into(),
                id: id.into(),
            }),
            limit: 0,
        })
        .await
        .unwrap_or_else(|s| panic!("{reader}: {s:?}"))
        .into_inner()
        .entries
        .into_iter()
        .map(|e| {
            let envelope = e.message.unwrap().envelope.unwrap();
            (
                Kind::try_from(envelope.kind).unwrap(),
                envelope.id,
                e.links
                    .iter()
                    .map(|l| pb::LinkReason::try_from(l.reason).unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// From one seizure, customs sees the whole thread: the listing alert, market-a's outcome to
/// it, market-b's flag of the same seller, the seller match, the carrier's alert about the same
/// parcel; market-b, asking about the same seizure, sees only what it may read.
#[tokio::test]
async fn a_case_thread_joins_what_each_reader_may_read() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    submit_as(
        &gw,
        "customs-nl",
        seizure("seiz-case-1", |_, s| s.seller_pseudonym = PSEUDONYM.into()),
    )
    .await;
    let mut outcome = example("takedown-outcome.json");
    outcome.id = "tdo-case-1".into();
    outcome.refs = vec![pb::MessageRef {
        sender: "customs-nl".into(),
        id: alert_id("market-a", "seiz-case-1"),
    }];
    submit_as(&gw, "market-a", outcome).await;
    submit_as(
        &gw,
        "market-b",
        flag("flag-case-b", PSEUDONYM, "B-9", Tlp::Green, &[]),
    )
    .await;
    submit_as(&gw, "express-b", example("shipment-alert.json")).await;
    // Not linked: another seller, another parcel.
    submit_as(
        &gw,
        "market-b",
        flag("flag-unrelated", &"c".repeat(64), "B-10", Tlp::Green, &[]),
    )
    .await;

    let customs = thread(&gw, "customs-nl", "customs-nl", "seiz-case-1").await;
    let kinds: Vec<(Kind, &str)> = customs.iter().map(|(k, id, _)| (*k, id.as_str())).collect();
    let match_id = kinds
        .iter()
        .find(|(k, _)| *k == Kind::SellerMatch)
        .map(|(_, id)| id.to_string())
        .expect("the seller match is in the thread");
    assert_eq!(
        kinds,
        [
            (Kind::SeizureNotification, "seiz-case-1"),
            (
                Kind::ListingAlert,
                alert_id("market-a", "seiz-case-1").as_str()
            ),
            (Kind::TakedownOutcome, "tdo-case-1"),
            (Kind::SellerFlag, "flag-case-b"),
            (Kind::SellerMatch, match_id.as_str()),
            (Kind::ShipmentAlert, "alert-2026-0001"),
        ]
    );
    assert_eq!(customs[0].2, [pb::LinkReason::Start]);
    assert!(customs[1].2.contains(&pb::LinkReason::Ref));
    assert!(customs[2].2.contains(&pb::LinkReason::Ref));
    assert!(customs[3].2.contains(&pb::LinkReason::Seller));
    assert!(customs[5].2.contains(&pb::LinkReason::Tracking));

    // market-b reads the GREEN seizure, its own flag and the match it was told of, its own
    // (the seizure is GREEN), nothing addressed to market-a or to customs.
    let platform = thread(&gw, "market-b", "customs-nl", "seiz-case-1").await;
    let ids: Vec<&str> = platform.iter().map(|(_, id, _)| id.as_str()).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");
    assert_eq!(ids[..2], ["seiz-case-1", "flag-case-b"]);
    assert!(
        ids[2].starts_with("ipex:match:market-b:flag-case-b:"),
        "{ids:?}"
    );
    assert_ne!(ids[2], match_id, "market-b shares no match with customs");

    // A message the caller may not read starts no thread, exactly as a missing one; a request
    // without a message or with too large a limit is refused naming the field.
    let mut b = gw.client("market-b").await;
    for id in [alert_id("market-a", "seiz-case-1"), "no-such".to_string()] {
        let err = b
            .exchange
            .get_case(pb::GetCaseRequest {
                message: Some(pb::MessageRef {
                    sender: "customs-nl".into(),
                    id: id.clone(),
                }),
                limit: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::NotFound, "{id}: {err:?}");
        assert!(err.message().contains("may read"), "{err:?}");
    }
    let err = b
        .exchange
        .get_case(pb::GetCaseRequest {
            message: None,
            limit: 501,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&err), ["limit", "message"]);
    gw.stop().await;
}

/// A sender reporting one seller again and again is told of other senders' messages once:
/// its second seizure of the seller raises no match; after market-b flags the seller, its
/// next seizure names market-b's flag, and only that.
#[tokio::test]
async fn a_match_names_only_what_is_news_to_the_sender() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let seized = |id: &str| {
        seizure(id, |_, s| {
            s.platform = "shop-x".into();
            s.listing_url.clear();
            s.seller_pseudonym = PSEUDONYM.into();
        })
    };
    submit_as(
        &gw,
        "market-a",
        flag("flag-news-a", PSEUDONYM, "A-1", Tlp::Green, &[]),
    )
    .await;
    let mut nl = gw.client("customs-nl").await;
    submit(&mut nl, seized("seiz-news-1")).await.unwrap();
    assert_eq!(inbox_of(&mut nl, Kind::SellerMatch).await.len(), 1);
    submit(&mut nl, seized("seiz-news-2")).await.unwrap();
    assert_eq!(
        inbox_of(&mut nl, Kind::SellerMatch).await.len(),
        1,
        "the second seizure told customs-nl nothing new"
    );
    submit_as(
        &gw,
        "market-b",
        flag("flag-news-b", PSEUDONYM, "B-1", Tlp::Green, &[]),
    )
    .await;
    submit(&mut nl, seized("seiz-news-3")).await.unwrap();
    let matches = inbox_of(&mut nl, Kind::SellerMatch).await;
    let last = match_of(matches.last().unwrap());
    assert_eq!(last.message.as_ref().unwrap().id, "seiz-news-3");
    let named: Vec<&str> = last
        .matches
        .iter()
        .map(|m| m.r#ref.as_ref().unwrap().id.as_str())
        .collect();
    assert_eq!(named, ["flag-news-b"]);
    gw.stop().await;
}

/// The gateway sends seller matches under its own id: a configuration whose `gateway_id` is a
/// participant's is refused, naming the key, since that participant would read every match.
#[tokio::test]
async fn the_gateway_id_may_not_be_a_participant() {
    let mut setup = Setup::enforcing();
    setup.config.gateway_id = "customs-nl".into();
    let err = ipex::app::Gateway::open(setup.config.clone().into(), setup.config.clone())
        .err()
        .expect("a gateway whose id is a participant's started");
    assert!(
        err.to_string().contains("gateway_id \"customs-nl\""),
        "{err}"
    );
}

/// A seizure resubmitted after the registry changed raises nothing either: market-b's host is
/// registered only after the seizure of a listing on it was stored, and the resubmission
/// answers the original receipt without alerting market-b.
#[tokio::test]
async fn a_resubmission_raises_nothing_even_when_it_now_would() {
    let full = common::enforcing_registry_toml("");
    let without_b = full.replacen("domains = [\"market-b.example\"]\n", "", 1);
    assert_ne!(full, without_b);
    let mut setup = Setup::with_registry(&without_b);
    setup.config.matching.enabled = true;
    let on_b = || {
        seizure("seiz-later", |_, s| {
            s.platform = "shop-x".into();
            s.listing_url = "https://market-b.example/item/1".into();
        })
    };
    let gw = setup.start().await;
    let first = submit(&mut gw.client("customs-nl").await, on_b())
        .await
        .unwrap();
    gw.stop().await;

    std::fs::write(setup.path().join("registry.toml"), &full).unwrap();
    let gw = setup.start().await;
    let again = submit(&mut gw.client("customs-nl").await, on_b())
        .await
        .unwrap();
    assert!(again.duplicate);
    assert_eq!(again.seq, first.seq);
    let mut b = gw.client("market-b").await;
    assert!(inbox_of(&mut b, Kind::ListingAlert).await.is_empty());
    // A new seizure of the same listing does alert market-b now.
    let mut fresh = on_b();
    fresh.id = "seiz-later-2".into();
    submit(&mut gw.client("customs-nl").await, fresh)
        .await
        .unwrap();
    assert_eq!(inbox_of(&mut b, Kind::ListingAlert).await.len(), 1);
    gw.stop().await;
}
