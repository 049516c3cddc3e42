//! DSA statements of reasons end to end, over real mutual TLS with a real store: a platform's
//! takedown outcomes become statements in the shape the Transparency Database API takes, with
//! its required fields and enumerations, stable puids, nothing made up (an outcome that lacks
//! a required field is named instead), and only the platform's own outcomes.

mod common;

use common::{example, notice_to as notice, submit, violated_fields, Setup};
use ipex::domain::dsa;
use ipex::pb::{self, envelope::Payload};
use serde_json::Value;
use tonic::Code;

fn outcome(id: &str, notice: &str, edit: impl FnOnce(&mut pb::TakedownOutcome)) -> pb::Envelope {
    let mut e = example("takedown-outcome.json");
    e.id = id.into();
    e.refs = vec![pb::MessageRef {
        sender: "customs-nl".into(),
        id: notice.into(),
    }];
    let Some(Payload::TakedownOutcome(o)) = &mut e.payload else {
        unreachable!()
    };
    edit(o);
    e
}

/// The API's required fields and enumerations (`StatementStoreRequest` of the Transparency
/// Database), written out here apart from the exporter's own check.
fn assert_api_shape(s: &Value) {
    for required in [
        "decision_ground",
        "content_type",
        "category",
        "content_date",
        "application_date",
        "decision_facts",
        "source_type",
        "automated_detection",
        "automated_decision",
        "puid",
    ] {
        assert!(s.get(required).is_some(), "{required} missing in {s}");
    }
    assert!(
        [
            "decision_visibility",
            "decision_monetary",
            "decision_provision",
            "decision_account"
        ]
        .iter()
        .any(|d| s.get(*d).is_some()),
        "no decision in {s}"
    );
    let is = |field: &str, allowed: &[&str]| {
        let v = s[field]
            .as_str()
            .unwrap_or_else(|| panic!("{field} in {s}"));
        assert!(allowed.contains(&v), "{field} = {v}");
    };
    is(
        "decision_ground",
        &[
            "DECISION_GROUND_ILLEGAL_CONTENT",
            "DECISION_GROUND_INCOMPATIBLE_CONTENT",
        ],
    );
    is(
        "category",
        &["STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS"],
    );
    is(
        "source_type",
        &[
            "SOURCE_ARTICLE_16",
            "SOURCE_TRUSTED_FLAGGER",
            "SOURCE_TYPE_OTHER_NOTIFICATION",
            "SOURCE_VOLUNTARY",
        ],
    );
    is("automated_detection", &["Yes", "No"]);
    is(
        "automated_decision",
        &[
            "AUTOMATED_DECISION_FULLY",
            "AUTOMATED_DECISION_PARTIALLY",
            "AUTOMATED_DECISION_NOT_AUTOMATED",
        ],
    );
    if s["decision_ground"] == "DECISION_GROUND_ILLEGAL_CONTENT" {
        assert!(!s["illegal_content_legal_ground"]
            .as_str()
            .unwrap()
            .is_empty());
        assert!(s["illegal_content_explanation"].as_str().unwrap().len() <= 2000);
    }
    assert_eq!(
        s["content_type"],
        serde_json::json!(["CONTENT_TYPE_PRODUCT"])
    );
    let puid = s["puid"].as_str().unwrap();
    assert!(
        puid.len() <= 500
            && puid
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    );
    for date in ["content_date", "application_date"] {
        let d = s[date].as_str().unwrap();
        assert!(
            d.len() == 10 && ipex::domain::vocab::date(d).is_ok(),
            "{date} = {d}"
        );
    }
    for c in s["territorial_scope"].as_array().unwrap() {
        assert!(dsa::EEA.contains(&c.as_str().unwrap()), "{c}");
    }
    assert!(dsa::check(s).is_empty(), "{:?}", dsa::check(s));
}

fn read(path: &std::path::Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[tokio::test]
async fn outcomes_become_statements_of_reasons() {
    let setup = Setup::enforcing();
    let gw = setup.start().await;
    let mut customs = gw.client("customs-nl").await;
    let mut market_a = gw.client("market-a").await;
    let mut market_b = gw.client("market-b").await;
    for (id, platform) in [
        ("tdn-1", "market-a"),
        ("tdn-2", "market-a"),
        ("tdn-3", "market-a"),
        ("tdn-4", "market-b"),
        ("tdn-5", "market-a"),
    ] {
        submit(&mut customs, notice(id, platform)).await.unwrap();
    }
    submit(&mut customs, example("seizure-notification.json"))
        .await
        .unwrap();
    // Complete; answered to a listing alert; without the content date; rejected (no
    // restriction); and market-b's own.
    submit(
        &mut market_a,
        outcome("tdo-1", "tdn-1", |o| {
            o.decision_provision = pb::ProvisionDecision::PartialSuspension as i32;
            o.territorial_scope = vec!["NL".into(), "BE".into(), "CH".into()];
        }),
    )
    .await
    .unwrap();
    submit(&mut market_a, example("listing-alert-outcome.json"))
        .await
        .unwrap();
    submit(
        &mut market_a,
        outcome("tdo-3", "tdn-2", |o| o.content_date.clear()),
    )
    .await
    .unwrap();
    submit(
        &mut market_a,
        outcome("tdo-4", "tdn-3", |o| {
            o.status = pb::OutcomeStatus::Rejected as i32;
            o.decision_visibility = 0;
            o.decision_account = 0;
            o.actioned_at = None;
        }),
    )
    .await
    .unwrap();
    // tdo-1 is replaced by tdo-1b: only the successor is a decision to file.
    let mut successor = outcome("tdo-1b", "tdn-1", |o| {
        o.decision_provision = pb::ProvisionDecision::PartialSuspension as i32;
        o.territorial_scope = vec!["NL".into(), "BE".into(), "CH".into()];
    });
    successor.supersedes = Some(pb::MessageRef {
        sender: "market-a".into(),
        id: "tdo-1".into(),
    });
    submit(&mut market_a, successor).await.unwrap();
    // The platform did not say whether detection was automated: not made up, named.
    submit(
        &mut market_a,
        outcome("tdo-5", "tdn-5", |o| o.automated_detection = None),
    )
    .await
    .unwrap();
    submit(&mut market_b, {
        let mut e = outcome("tdo-b", "tdn-4", |_| {});
        e.id = "tdo-b".into();
        e
    })
    .await
    .unwrap();

    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    let written = ipex::cli::dsa::export(&mut market_a, None, &first)
        .await
        .unwrap();
    assert_eq!(written["statements"], 2, "{written}");
    assert_eq!(written["not_restrictions"], 1, "{written}");
    assert_eq!(written["superseded"], 1, "{written}");
    assert_eq!(
        written["files"],
        serde_json::json!(["statements-0001.json"])
    );
    let batch = read(&first.join("statements-0001.json"));
    let statements = batch["statements"].as_array().unwrap();
    assert!((1..=100).contains(&statements.len()));
    for s in statements {
        assert_api_shape(s);
    }
    let puids: Vec<&str> = statements
        .iter()
        .map(|s| s["puid"].as_str().unwrap())
        .collect();
    assert_eq!(puids, ["ipex-tdo-2026-0002", "ipex-tdo-1b"]);
    // The alert's statement says only what the alert told the platform: no GTIN of the
    // seizure behind it.
    assert!(
        statements[0].get("content_id").is_none(),
        "{}",
        statements[0]
    );
    assert_eq!(
        statements[0]["category_specification"],
        serde_json::json!(["KEYWORD_TRADEMARK_INFRINGEMENT"])
    );
    // What the outcome said, in the database's words.
    let s = &statements[1];
    assert_eq!(
        s["decision_provision"],
        "DECISION_PROVISION_PARTIAL_SUSPENSION"
    );
    assert_eq!(s["decision_account"], "DECISION_ACCOUNT_SUSPENDED");
    assert_eq!(s["territorial_scope"], serde_json::json!(["BE", "NL"]));
    assert_eq!(
        s["category_specification"],
        serde_json::json!(["KEYWORD_TRADEMARK_INFRINGEMENT"])
    );
    assert_eq!(s["source_type"], "SOURCE_TYPE_OTHER_NOTIFICATION");
    assert_eq!(s["content_date"], "2026-09-14");
    assert_eq!(s["application_date"], "2026-11-18");
    // Nothing made up: the outcome without a content date is named, with the field.
    let problems = read(&first.join("problems.json"));
    assert_eq!(
        problems["outcomes"][0]["outcome"], "market-a/tdo-3",
        "{problems}"
    );
    assert!(problems["outcomes"][0]["missing"][0]
        .as_str()
        .unwrap()
        .starts_with("content_date"));
    assert_eq!(
        problems["outcomes"][1]["outcome"], "market-a/tdo-5",
        "{problems}"
    );
    assert!(problems["outcomes"][1]["missing"][0]
        .as_str()
        .unwrap()
        .starts_with("automated_detection"));
    // Only the platform's own outcomes: market-b's is not there.
    assert!(!std::fs::read_to_string(first.join("statements-0001.json"))
        .unwrap()
        .contains("tdo-b"));

    // A second run gives the same statements, the same puids.
    let second = dir.path().join("second");
    ipex::cli::dsa::export(&mut market_a, None, &second)
        .await
        .unwrap();
    assert_eq!(
        std::fs::read_to_string(first.join("statements-0001.json")).unwrap(),
        std::fs::read_to_string(second.join("statements-0001.json")).unwrap()
    );
    // --since leaves out what was stored before.
    let far = prost_types::Timestamp {
        seconds: 4_000_000_000,
        nanos: 0,
    };
    let none = ipex::cli::dsa::export(&mut market_a, Some(far), &second)
        .await
        .unwrap();
    assert_eq!(none["statements"], 0);
    assert!(!second.join("statements-0001.json").exists());
    // Statements are a platform's.
    let error = ipex::cli::dsa::export(&mut customs, None, &second)
        .await
        .unwrap_err();
    assert!(error.to_string().contains("is not a platform"), "{error}");
    gw.stop().await;
}

/// A change to an outcome.
type Edit = Box<dyn Fn(&mut pb::TakedownOutcome)>;

#[tokio::test]
async fn the_outcome_fields_statements_need_are_validated_on_submit() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let mut customs = gw.client("customs-nl").await;
    let mut market_a = gw.client("market-a").await;
    submit(&mut customs, notice("tdn-1", "market-a"))
        .await
        .unwrap();
    let cases: [(&str, Edit, &str); 5] = [
        (
            "tdo-v",
            Box::new(|o| o.decision_visibility = pb::VisibilityDecision::Other as i32),
            "envelope.takedown_outcome.decision_visibility_other",
        ),
        (
            "tdo-m",
            Box::new(|o| o.decision_monetary_other = "withheld".into()),
            "envelope.takedown_outcome.decision_monetary_other",
        ),
        (
            "tdo-d",
            Box::new(|o| o.content_date = "2026-02-30".into()),
            "envelope.takedown_outcome.content_date",
        ),
        (
            "tdo-f",
            Box::new(|o| o.content_date = "2099-01-01".into()),
            "envelope.takedown_outcome.content_date",
        ),
        (
            "tdo-p",
            Box::new(|o| o.decision_provision = 42),
            "envelope.takedown_outcome.decision_provision",
        ),
    ];
    for (id, edit, field) in cases {
        let status = submit(&mut market_a, outcome(id, "tdn-1", |o| edit(o)))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{id}");
        assert_eq!(violated_fields(&status), [field], "{id}");
    }
    // With what they need, accepted.
    submit(
        &mut market_a,
        outcome("tdo-ok", "tdn-1", |o| {
            o.decision_visibility = pb::VisibilityDecision::Other as i32;
            o.decision_visibility_other = "listing hidden from search in the EU".into();
            o.decision_monetary = pb::MonetaryDecision::Suspension as i32;
            o.account_type = pb::AccountType::Business as i32;
        }),
    )
    .await
    .unwrap();
    gw.stop().await;
}
