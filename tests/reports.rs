//! Takedown-times reports end to end, over real mutual TLS with a real store: customs sends
//! takedown notices (and raises a listing alert), platforms answer some; the report gives each
//! notice's acceptance and first outcome with proven leaves; it verifies offline against the
//! gateway's verifier key alone, and fails naming the entry when anything in it is altered;
//! and nobody learns of notices between others.

mod common;

use common::{example, submit, violated_fields, Setup};
use ipex::cli::client::Clients;
use ipex::log::note::NoteVerifier;
use ipex::log::report;
use ipex::pb::{self, envelope::Payload};
use tonic::Code;

fn notice(id: &str, platform: &str, respond_by_secs: i64) -> pb::Envelope {
    let mut e = common::notice_to(id, platform);
    let Some(Payload::TakedownNotice(n)) = &mut e.payload else {
        unreachable!()
    };
    n.respond_by = Some(prost_types::Timestamp {
        seconds: respond_by_secs,
        nanos: 0,
    });
    e
}

fn outcome(id: &str, to: (&str, &str), status: pb::OutcomeStatus) -> pb::Envelope {
    let mut e = example("takedown-outcome.json");
    e.id = id.into();
    e.recipients = vec![to.0.into()];
    e.refs = vec![pb::MessageRef {
        sender: to.0.into(),
        id: to.1.into(),
    }];
    let Some(Payload::TakedownOutcome(o)) = &mut e.payload else {
        unreachable!()
    };
    o.status = status as i32;
    e
}

async fn report_of(
    clients: &mut Clients,
    platform: &str,
) -> Result<pb::TakedownTimesReport, tonic::Status> {
    clients
        .audit
        .get_takedown_times(pb::GetTakedownTimesRequest {
            platform: platform.into(),
            from: None,
            to: None,
            after_seq: 0,
        })
        .await
        .map(|r| r.into_inner())
}

fn ids(report: &pb::TakedownTimesReport) -> Vec<String> {
    report
        .entries
        .iter()
        .map(|e| e.notice.as_ref().unwrap().id.clone())
        .collect()
}

#[tokio::test]
async fn takedown_times_are_proven_and_tampering_is_named() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut customs = gw.client("customs-nl").await;
    let mut market_a = gw.client("market-a").await;
    let mut market_b = gw.client("market-b").await;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;

    // Two notices to market-a (one due in an hour, one overdue since yesterday), one to
    // market-b, and a seizure that raises a listing alert for market-a.
    let soon = submit(&mut customs, notice("tdn-soon", "market-a", now + 3600))
        .await
        .unwrap();
    submit(
        &mut customs,
        notice("tdn-overdue", "market-a", now - 86_400),
    )
    .await
    .unwrap();
    submit(&mut customs, notice("tdn-b", "market-b", now + 3600))
        .await
        .unwrap();
    submit(&mut customs, example("seizure-notification.json"))
        .await
        .unwrap();
    // market-a acts on the first notice and rejects the alert; the overdue one stays open;
    // market-b acts on its notice.
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    let answer = submit(
        &mut market_a,
        outcome(
            "tdo-soon",
            ("customs-nl", "tdn-soon"),
            pb::OutcomeStatus::Actioned,
        ),
    )
    .await
    .unwrap();
    submit(
        &mut market_a,
        outcome(
            "tdo-alert",
            ("customs-nl", "ipex:alert:market-a:seiz-2026-0001"),
            pb::OutcomeStatus::Rejected,
        ),
    )
    .await
    .unwrap();
    // A second outcome to the same notice: the first one counts.
    submit(
        &mut market_a,
        outcome(
            "tdo-soon-2",
            ("customs-nl", "tdn-soon"),
            pb::OutcomeStatus::Reinstated,
        ),
    )
    .await
    .unwrap();
    submit(
        &mut market_b,
        outcome(
            "tdo-b",
            ("customs-nl", "tdn-b"),
            pb::OutcomeStatus::Actioned,
        ),
    )
    .await
    .unwrap();

    let report = report_of(&mut customs, "").await.unwrap();
    assert_eq!(
        ids(&report),
        [
            "tdn-soon",
            "tdn-overdue",
            "tdn-b",
            "ipex:alert:market-a:seiz-2026-0001"
        ]
    );
    let soon_entry = &report.entries[0];
    assert_eq!(soon_entry.outcome.as_ref().unwrap().id, "tdo-soon");
    assert_eq!(soon_entry.outcome_seq, answer.seq);
    assert_eq!(soon_entry.accepted_at, soon.stored_at);
    assert_eq!(soon_entry.answered_at, answer.stored_at);
    let delay =
        report::seconds(answer.stored_at.as_ref()) - report::seconds(soon.stored_at.as_ref());
    assert!(
        (soon_entry.delay_seconds - delay).abs() < 0.002,
        "{soon_entry:?}"
    );
    assert!(soon_entry.delay_seconds >= 0.05);
    assert!(!soon_entry.answered_late && !soon_entry.open_past_deadline);
    let overdue = &report.entries[1];
    assert!(overdue.answered_at.is_none() && overdue.open_past_deadline);
    let alert = &report.entries[3];
    assert_eq!(alert.kind, pb::Kind::ListingAlert as i32);
    assert_eq!(alert.outcome_status, pb::OutcomeStatus::Rejected as i32);
    // Summaries: per platform, per status, all.
    let all = report.summaries.last().unwrap();
    assert_eq!((all.count, all.answered, all.open_past_deadline), (4, 3, 1));
    let a = report
        .summaries
        .iter()
        .find(|s| s.platform == "market-a")
        .unwrap();
    assert_eq!((a.count, a.answered), (3, 2));
    let open = report
        .summaries
        .iter()
        .find(|s| s.status == "OPEN")
        .unwrap();
    assert_eq!(open.count, 1);

    // Offline, with the verifier key alone, through the proto3 JSON the CLI writes.
    let key = customs
        .audit
        .get_checkpoint(pb::GetCheckpointRequest {
            refresh: false,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .verifier_key;
    let verifier = NoteVerifier::from_verifier_key(&key).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("report.json");
    let json = ipex::pb::json::to_json_value("ipex.v1.TakedownTimesReport", &report);
    std::fs::write(&file, serde_json::to_string_pretty(&json).unwrap()).unwrap();
    let checked = ipex::cli::report::verify_report(&file, std::path::Path::new(&key)).unwrap();
    assert_eq!(checked["report"], "valid");
    assert_eq!(checked["entries"], 4);
    assert_eq!(checked["leaves_proven"], 1 + 4 + 3 * 2);

    // Every alteration is caught and named.
    let refused = |edit: &dyn Fn(&mut pb::TakedownTimesReport)| {
        let mut altered = report.clone();
        edit(&mut altered);
        report::verify(&altered, &verifier).unwrap_err().to_string()
    };
    let why = refused(&|r| r.entries[0].delay_seconds /= 2.0);
    assert!(
        why.starts_with("entries[0] (customs-nl/tdn-soon): delay_seconds"),
        "{why}"
    );
    let why = refused(&|r| {
        let t = r.entries[0].answered_at.as_mut().unwrap();
        t.seconds -= 60;
        report::figures(&mut r.entries[0], r.as_of.as_ref());
        r.summaries = report::summarize(&r.entries);
    });
    assert!(
        why.contains("answered_at is not the time of the leaf"),
        "{why}"
    );
    let why = refused(&|r| r.entries[1].respond_by.as_mut().unwrap().seconds += 172_800);
    assert!(
        why.starts_with("entries[1] (customs-nl/tdn-overdue)"),
        "{why}"
    );
    let why = refused(&|r| r.entries[2].outcome_status = pb::OutcomeStatus::Rejected as i32);
    assert!(why.contains("outcome_status"), "{why}");
    let why = refused(&|r| {
        let last = r.entries[3].accepted.as_mut().unwrap().data.len() - 1;
        r.entries[3].accepted.as_mut().unwrap().data[last] ^= 1;
    });
    assert!(why.contains("is not in the checkpoint's tree"), "{why}");
    let why = refused(&|r| r.summaries[0].max_seconds += 1.0);
    assert!(why.starts_with("summaries[0]"), "{why}");
    let why = refused(&|r| {
        r.entries.remove(1);
        r.summaries = report::summarize(&r.entries);
    });
    assert!(why.starts_with("report_leaf"), "{why}");
    // Hiding an answer, everything recomputed to match: the report's leaf still names it.
    let why = refused(&|r| {
        let e = &mut r.entries[0];
        e.outcome = None;
        e.outcome_seq = 0;
        e.outcome_status = 0;
        e.answered_at = None;
        e.answered = None;
        e.outcome_accepted = None;
        e.outcome_envelope.clear();
        report::figures(e, r.as_of.as_ref());
        r.summaries = report::summarize(&r.entries);
    });
    assert!(
        why.starts_with("report_leaf") && why.contains("claims"),
        "{why}"
    );
    // An open notice dressed with an outcome's status: refused.
    let why = refused(&|r| r.entries[1].outcome_status = pb::OutcomeStatus::Actioned as i32);
    assert!(why.contains("is open, yet carries outcome fields"), "{why}");
    // Another platform, another request, another truncation: refused.
    let why = refused(&|r| r.entries[2].platform = "market-a".into());
    assert!(why.contains("claims"), "{why}");
    let why = refused(&|r| r.request.as_mut().unwrap().platform = "market-b".into());
    assert!(why.contains("claims"), "{why}");
    let why = refused(&|r| r.truncated = true);
    assert!(why.contains("claims"), "{why}");
    let other = ipex::log::note::NoteSigner::generate("ipex.local/other").unwrap();
    let why = report::verify(&report, &other.verifier())
        .unwrap_err()
        .to_string();
    assert!(why.starts_with("checkpoint"), "{why}");
    // The CLI says so with exit status 1.
    let tampered = dir.path().join("tampered.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &tampered,
        text.replacen(
            "\"OUTCOME_STATUS_ACTIONED\"",
            "\"OUTCOME_STATUS_NOT_ACTIONED\"",
            1,
        ),
    )
    .unwrap();
    let error = ipex::cli::report::verify_report(&tampered, std::path::Path::new(&key))
        .unwrap_err()
        .to_string();
    assert!(error.contains("verification failed"), "{error}");

    // The SVG draws one line per platform.
    let svg = ipex::cli::report::draw(&report);
    assert!(svg.starts_with("<svg") && svg.contains("market-a (2 answered, 1 open)"));
    assert_eq!(svg.matches("<path ").count(), 2);
    gw.stop().await;
}

#[tokio::test]
async fn nobody_learns_of_notices_between_others() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut customs = gw.client("customs-nl").await;
    let mut customs_fr = gw.client("customs-fr").await;
    let mut market_a = gw.client("market-a").await;
    let mut market_b = gw.client("market-b").await;
    submit(&mut customs, notice("tdn-a", "market-a", 2_000_000_000))
        .await
        .unwrap();
    let b = submit(&mut customs, notice("tdn-b", "market-b", 2_000_000_000))
        .await
        .unwrap();

    // After tdn-a's number, tdn-b alone: how a truncated report's next page is asked for.
    let page = customs
        .audit
        .get_takedown_times(pb::GetTakedownTimesRequest {
            after_seq: b.seq - 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&page), ["tdn-b"]);
    assert!(!page.truncated && page.next_after_seq == 0);

    // A window from tdn-b's acceptance on holds tdn-b alone.
    let window = customs
        .audit
        .get_takedown_times(pb::GetTakedownTimesRequest {
            platform: String::new(),
            from: b.stored_at,
            to: None,
            after_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ids(&window), ["tdn-b"]);

    // A platform sees the notices to it, whether it names itself or not.
    assert_eq!(ids(&report_of(&mut market_a, "").await.unwrap()), ["tdn-a"]);
    assert_eq!(
        ids(&report_of(&mut market_a, "market-a").await.unwrap()),
        ["tdn-a"]
    );
    // Asking about another platform's notices gives nothing of them.
    let theirs = report_of(&mut market_a, "market-b").await.unwrap();
    assert!(theirs.entries.is_empty() && theirs.summaries.last().unwrap().count == 0);
    assert_eq!(ids(&report_of(&mut market_b, "").await.unwrap()), ["tdn-b"]);
    // Another administration sees none of customs-nl's notices.
    assert!(report_of(&mut customs_fr, "")
        .await
        .unwrap()
        .entries
        .is_empty());
    // The sender filters by platform.
    assert_eq!(
        ids(&report_of(&mut customs, "market-b").await.unwrap()),
        ["tdn-b"]
    );

    // Bad requests name the field.
    let status = report_of(&mut customs, "customs-fr").await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&status), ["platform"]);
    let status = customs
        .audit
        .get_takedown_times(pb::GetTakedownTimesRequest {
            platform: String::new(),
            from: Some(prost_types::Timestamp {
                seconds: 2_000_000_000,
                nanos: 0,
            }),
            to: Some(prost_types::Timestamp {
                seconds: 1_000_000_000,
                nanos: 0,
            }),
            after_seq: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&status), ["to"]);
    // A time window keeps what was accepted inside it.
    let later = customs
        .audit
        .get_takedown_times(pb::GetTakedownTimesRequest {
            platform: String::new(),
            from: Some(prost_types::Timestamp {
                seconds: 2_000_000_000,
                nanos: 0,
            }),
            to: None,
            after_seq: 0,
        })
        .await
        .unwrap()
        .into_inner();
    assert!(later.entries.is_empty());
    gw.stop().await;
}
