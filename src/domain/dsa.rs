//! Statements of reasons for the EU DSA Transparency Database (`POST /api/v1/statements`,
//! batches of 1 to 100): what a platform's takedown outcome, with the notice or listing alert
//! it answers, says in the database's terms ([`statement`]), and the database's own rules,
//! checked before anything is written ([`check`]).
//!
//! Nothing is made up: a field the API requires that the outcome and its notice do not give is
//! named, with the outcome, instead of being filled. Two things are the gateway's own facts:
//! `content_type` is `CONTENT_TYPE_PRODUCT` (ipex carries product listings only), and an
//! outcome whose territorial scope is empty ("worldwide") applies in every EEA country.

use crate::pb::{self, envelope::Payload};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

/// Most statements per API call.
pub const BATCH: usize = 100;

/// `territorial_scope` values the API takes: the EEA countries.
pub const EEA: [&str; 30] = [
    "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU", "IE", "IS",
    "IT", "LI", "LT", "LU", "LV", "MT", "NL", "NO", "PL", "PT", "RO", "SE", "SI", "SK",
];

const VISIBILITY: [&str; 7] = [
    "DECISION_VISIBILITY_CONTENT_REMOVED",
    "DECISION_VISIBILITY_CONTENT_DISABLED",
    "DECISION_VISIBILITY_CONTENT_DEMOTED",
    "DECISION_VISIBILITY_CONTENT_AGE_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_INTERACTION_RESTRICTED",
    "DECISION_VISIBILITY_CONTENT_LABELLED",
    "DECISION_VISIBILITY_OTHER",
];
const MONETARY: [&str; 3] = [
    "DECISION_MONETARY_SUSPENSION",
    "DECISION_MONETARY_TERMINATION",
    "DECISION_MONETARY_OTHER",
];
const PROVISION: [&str; 4] = [
    "DECISION_PROVISION_PARTIAL_SUSPENSION",
    "DECISION_PROVISION_TOTAL_SUSPENSION",
    "DECISION_PROVISION_PARTIAL_TERMINATION",
    "DECISION_PROVISION_TOTAL_TERMINATION",
];
const ACCOUNT: [&str; 2] = ["DECISION_ACCOUNT_SUSPENDED", "DECISION_ACCOUNT_TERMINATED"];
const ACCOUNT_TYPE: [&str; 2] = ["ACCOUNT_TYPE_BUSINESS", "ACCOUNT_TYPE_PRIVATE"];
const GROUND: [&str; 2] = [
    "DECISION_GROUND_ILLEGAL_CONTENT",
    "DECISION_GROUND_INCOMPATIBLE_CONTENT",
];
const CONTENT_TYPE: [&str; 8] = [
    "CONTENT_TYPE_APP",
    "CONTENT_TYPE_AUDIO",
    "CONTENT_TYPE_IMAGE",
    "CONTENT_TYPE_PRODUCT",
    "CONTENT_TYPE_SYNTHETIC_MEDIA",
    "CONTENT_TYPE_TEXT",
    "CONTENT_TYPE_VIDEO",
    "CONTENT_TYPE_OTHER",
];
/// The categories this export uses (the API has more).
const CATEGORY: [&str; 2] = [
    "STATEMENT_CATEGORY_INTELLECTUAL_PROPERTY_INFRINGEMENTS",
    "STATEMENT_CATEGORY_UNSAFE_AND_PROHIBITED_PRODUCTS",
];
/// The keywords this export uses (the API has more).
const KEYWORDS: [&str; 6] = [
    "KEYWORD_COPYRIGHT_INFRINGEMENT",
    "KEYWORD_DESIGN_INFRINGEMENT",
    "KEYWORD_GEOGRAPHIC_INDICATIONS_INFRINGEMENT",
    "KEYWORD_PATENT_INFRINGEMENT",
    "KEYWORD_TRADEMARK_INFRINGEMENT",
    "KEYWORD_UNSAFE_PRODUCTS",
];
const SOURCE: [&str; 4] = [
    "SOURCE_ARTICLE_16",
    "SOURCE_TRUSTED_FLAGGER",
    "SOURCE_TYPE_OTHER_NOTIFICATION",
    "SOURCE_VOLUNTARY",
];
const AUTOMATED: [&str; 3] = [
    "AUTOMATED_DECISION_FULLY",
    "AUTOMATED_DECISION_PARTIALLY",
    "AUTOMATED_DECISION_NOT_AUTOMATED",
];

/// What the outcome answers, as the platform read it.
pub enum Answered<'a> {
    /// A takedown notice.
    Notice(&'a pb::Envelope),
    /// A listing alert: only what the alert told the platform is used, never the seizure
    /// behind it (customs chose what the alert says).
    Alert(&'a pb::Envelope),
}

/// Why an outcome gives no statement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NoStatement {
    /// It restricts nothing (received, not actioned, rejected…): no statement is due.
    NotARestriction(String),
    /// A statement is due, but these fields are missing or do not fit (`field: why`).
    Missing(Vec<String>),
}

/// The platform's unique id of the statement for its outcome `id`: `ipex-<id>` when the id
/// uses only what a puid may hold (`[A-Za-z0-9_-]`), else `ipex-sha256-<40 hex digits of the
/// id's SHA-256>`. The same outcome always gives the same puid, so a second export of it is
/// refused by the database as a duplicate instead of being filed twice.
pub fn puid(id: &str) -> String {
    if !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    {
        format!("ipex-{id}")
    } else {
        format!(
            "ipex-sha256-{}",
            &hex::encode(Sha256::digest(id.as_bytes()))[..40]
        )
    }
}

fn date_of(t: Option<&prost_types::Timestamp>) -> Option<String> {
    t.and_then(|t| t.to_string().get(..10).map(str::to_string))
}

/// The statement of reasons for `outcome` (a stored takedown outcome of the platform) that
/// answers `answered`.
pub fn statement(outcome: &pb::Envelope, answered: Answered<'_>) -> Result<Value, NoStatement> {
    use pb::OutcomeStatus as S;
    let Some(Payload::TakedownOutcome(o)) = &outcome.payload else {
        return Err(NoStatement::NotARestriction(
            "not a takedown outcome".into(),
        ));
    };
    let status = S::try_from(o.status).unwrap_or(S::Unspecified);
    if !matches!(status, S::Actioned | S::PartiallyActioned) {
        return Err(NoStatement::NotARestriction(format!(
            "its status is {}: it restricts nothing",
            status.as_str_name()
        )));
    }
    let mut missing = Vec::new();
    let mut s = Map::new();
    s.insert("puid".into(), json!(puid(&outcome.id)));

    // The decisions.
    use pb::VisibilityDecision as V;
    let visibility = match V::try_from(o.decision_visibility).unwrap_or(V::Unspecified) {
        V::ContentRemoved => Some("DECISION_VISIBILITY_CONTENT_REMOVED"),
        V::ContentDisabled => Some("DECISION_VISIBILITY_CONTENT_DISABLED"),
        V::ContentDemoted => Some("DECISION_VISIBILITY_CONTENT_DEMOTED"),
        V::ContentLabelled => Some("DECISION_VISIBILITY_CONTENT_LABELLED"),
        V::Other => Some("DECISION_VISIBILITY_OTHER"),
        V::None | V::Unspecified => None,
    };
    if let Some(v) = visibility {
        s.insert("decision_visibility".into(), json!([v]));
        if v == "DECISION_VISIBILITY_OTHER" {
            s.insert(
                "decision_visibility_other".into(),
                json!(o.decision_visibility_other),
            );
        }
    }
    use pb::MonetaryDecision as M;
    let monetary = match M::try_from(o.decision_monetary).unwrap_or(M::Unspecified) {
        M::Suspension => Some("DECISION_MONETARY_SUSPENSION"),
        M::Termination => Some("DECISION_MONETARY_TERMINATION"),
        M::Other => Some("DECISION_MONETARY_OTHER"),
        M::None | M::Unspecified => None,
    };
    if let Some(m) = monetary {
        s.insert("decision_monetary".into(), json!(m));
        if m == "DECISION_MONETARY_OTHER" {
            s.insert(
                "decision_monetary_other".into(),
                json!(o.decision_monetary_other),
            );
        }
    }
    use pb::ProvisionDecision as P;
    let provision = match P::try_from(o.decision_provision).unwrap_or(P::Unspecified) {
        P::PartialSuspension => Some("DECISION_PROVISION_PARTIAL_SUSPENSION"),
        P::TotalSuspension => Some("DECISION_PROVISION_TOTAL_SUSPENSION"),
        P::PartialTermination => Some("DECISION_PROVISION_PARTIAL_TERMINATION"),
        P::TotalTermination => Some("DECISION_PROVISION_TOTAL_TERMINATION"),
        P::None | P::Unspecified => None,
    };
    if let Some(p) = provision {
        s.insert("decision_provision".into(), json!(p));
    }
    use pb::AccountDecision as A;
    let account = match A::try_from(o.decision_account).unwrap_or(A::Unspecified) {
        A::Suspended => Some("DECISION_ACCOUNT_SUSPENDED"),
        A::Terminated => Some("DECISION_ACCOUNT_TERMINATED"),
        A::None | A::Unspecified => None,
    };
    if let Some(a) = account {
        s.insert("decision_account".into(), json!(a));
    }
    match pb::AccountType::try_from(o.account_type) {
        Ok(pb::AccountType::Business) => {
            s.insert("account_type".into(), json!("ACCOUNT_TYPE_BUSINESS"));
        }
        Ok(pb::AccountType::Private) => {
            s.insert("account_type".into(), json!("ACCOUNT_TYPE_PRIVATE"));
        }
        _ => {}
    }

    // The ground and the facts.
    let explanation = o.explanation.trim();
    let reference = o.decision_ground_reference.trim();
    match pb::DecisionGround::try_from(o.decision_ground) {
        Ok(pb::DecisionGround::IllegalContent) => {
            s.insert("decision_ground".into(), json!(GROUND[0]));
            s.insert("illegal_content_legal_ground".into(), json!(reference));
            s.insert("illegal_content_explanation".into(), json!(explanation));
        }
        Ok(pb::DecisionGround::IncompatibleContent) => {
            s.insert("decision_ground".into(), json!(GROUND[1]));
            s.insert("incompatible_content_ground".into(), json!(reference));
            s.insert(
                "incompatible_content_explanation".into(),
                json!(explanation),
            );
        }
        _ => missing.push("decision_ground: the outcome gives none".to_string()),
    }
    if reference.is_empty() {
        missing.push(
            "decision_ground_reference: the legal or contractual ground is required".to_string(),
        );
    }
    if explanation.is_empty() {
        missing.push("explanation: the facts and circumstances are required".to_string());
    } else if explanation.chars().count() > 2000 {
        missing.push(format!(
            "explanation: {} characters; the database takes at most 2000 as the ground's explanation",
            explanation.chars().count()
        ));
    }
    s.insert("decision_facts".into(), json!(explanation));

    // What was infringed, and who said so.
    let (infringements, source, gtin) = match answered {
        Answered::Notice(notice) => match &notice.payload {
            Some(Payload::TakedownNotice(n)) => {
                let source = match pb::SourceType::try_from(n.source_type) {
                    Ok(pb::SourceType::AuthorityOrder) => Some("SOURCE_TYPE_OTHER_NOTIFICATION"),
                    Ok(pb::SourceType::TrustedFlagger) => Some("SOURCE_TRUSTED_FLAGGER"),
                    Ok(pb::SourceType::Notice) => Some("SOURCE_ARTICLE_16"),
                    _ => None,
                };
                let gtin = n.product.as_ref().map(|p| p.gtin.clone());
                (vec![n.infringement], source, gtin)
            }
            _ => (Vec::new(), None, None),
        },
        // A seizure by customs reached the platform: a notification by an authority.
        Answered::Alert(alert) => {
            let items = match &alert.payload {
                Some(Payload::ListingAlert(a)) => a.items.clone(),
                _ => Vec::new(),
            };
            (
                items.iter().map(|i| i.ip_right_type).collect(),
                Some("SOURCE_TYPE_OTHER_NOTIFICATION"),
                None,
            )
        }
    };
    use pb::InfringementType as I;
    let mut keywords: Vec<&str> = Vec::new();
    let mut unsafe_product = false;
    for infringement in infringements {
        let keyword = match I::try_from(infringement).unwrap_or(I::Unspecified) {
            I::Trademark => "KEYWORD_TRADEMARK_INFRINGEMENT",
            I::Design => "KEYWORD_DESIGN_INFRINGEMENT",
            I::Copyright => "KEYWORD_COPYRIGHT_INFRINGEMENT",
            I::Patent => "KEYWORD_PATENT_INFRINGEMENT",
            I::GeographicalIndication => "KEYWORD_GEOGRAPHIC_INDICATIONS_INFRINGEMENT",
            I::UnsafeProduct => {
                unsafe_product = true;
                "KEYWORD_UNSAFE_PRODUCTS"
            }
            I::Unspecified => continue,
        };
        if !keywords.contains(&keyword) {
            keywords.push(keyword);
        }
    }
    let ip = keywords.iter().any(|k| *k != "KEYWORD_UNSAFE_PRODUCTS");
    match (ip, unsafe_product) {
        (true, also_unsafe) => {
            s.insert("category".into(), json!(CATEGORY[0]));
            if also_unsafe {
                s.insert("category_addition".into(), json!([CATEGORY[1]]));
            }
        }
        (false, true) => {
            s.insert("category".into(), json!(CATEGORY[1]));
        }
        (false, false) => missing.push(
            "category: the notice answered names no infringement (or could not be read)"
                .to_string(),
        ),
    }
    if !keywords.is_empty() {
        s.insert("category_specification".into(), json!(keywords));
    }
    match source {
        Some(source) => {
            s.insert("source_type".into(), json!(source));
        }
        None => missing.push("source_type: the notice answered gives none".to_string()),
    }
    s.insert("content_type".into(), json!(["CONTENT_TYPE_PRODUCT"]));
    if let Some(gtin) = gtin.filter(|g| g.len() == 13 && g.bytes().all(|b| b.is_ascii_digit())) {
        s.insert("content_id".into(), json!({ "EAN-13": gtin }));
    }

    // When and where.
    if o.content_date.is_empty() {
        missing.push(
            "content_date: when the listing was published; give it in the outcome".to_string(),
        );
    } else {
        s.insert("content_date".into(), json!(o.content_date));
    }
    match date_of(o.actioned_at.as_ref()) {
        Some(day) => {
            s.insert("application_date".into(), json!(day));
        }
        None => missing.push("actioned_at: when the decision was applied".to_string()),
    }
    let scope: Vec<&str> = if o.territorial_scope.is_empty() {
        EEA.to_vec()
    } else {
        EEA.iter()
            .copied()
            .filter(|c| {
                o.territorial_scope
                    .iter()
                    .any(|t| t.eq_ignore_ascii_case(c))
            })
            .collect()
    };
    if scope.is_empty() {
        missing.push(
            "territorial_scope: the decision applies in no EEA country; the database takes EEA decisions"
                .to_string(),
        );
    }
    s.insert("territorial_scope".into(), json!(scope));

    // How it was decided.
    match o.automated_detection {
        Some(detected) => {
            s.insert(
                "automated_detection".into(),
                json!(if detected { "Yes" } else { "No" }),
            );
        }
        None => missing.push(
            "automated_detection: whether the listing was detected by automated means; the outcome does not say"
                .to_string(),
        ),
    }
    match pb::AutomatedDecision::try_from(o.automated_decision) {
        Ok(pb::AutomatedDecision::Fully) => {
            s.insert("automated_decision".into(), json!(AUTOMATED[0]));
        }
        Ok(pb::AutomatedDecision::Partially) => {
            s.insert("automated_decision".into(), json!(AUTOMATED[1]));
        }
        Ok(pb::AutomatedDecision::NotAutomated) => {
            s.insert("automated_decision".into(), json!(AUTOMATED[2]));
        }
        _ => missing.push("automated_decision: the outcome gives none".to_string()),
    }
    if !missing.is_empty() {
        return Err(NoStatement::Missing(missing));
    }
    let statement = Value::Object(s);
    let broken = check(&statement);
    if broken.is_empty() {
        Ok(statement)
    } else {
        Err(NoStatement::Missing(broken))
    }
}

/// The database's rules for one statement (`StatementStoreRequest`), as far as the fields this
/// export writes go: every required field, each value in its enumeration, lengths, formats and
/// the conditional fields. Returns what is wrong, `field: why`; empty when it holds.
pub fn check(statement: &Value) -> Vec<String> {
    let mut wrong = Vec::new();
    let Some(s) = statement.as_object() else {
        return vec!["statement: is not a JSON object".into()];
    };
    let text = |name: &str| s.get(name).and_then(Value::as_str);
    let list = |name: &str| -> Option<Vec<&str>> {
        s.get(name)
            .and_then(Value::as_array)
            .map(|a| a.iter().filter_map(Value::as_str).collect())
    };
    let one_of = |name: &str, allowed: &[&str], required: bool, wrong: &mut Vec<String>| match (
        s.get(name),
        text(name),
    ) {
        (None, _) if required => wrong.push(format!("{name}: is required")),
        (None, _) => {}
        (Some(_), Some(v)) if allowed.contains(&v) => {}
        (Some(v), _) => wrong.push(format!("{name}: {v} is not one of {allowed:?}")),
    };
    one_of("decision_monetary", &MONETARY, false, &mut wrong);
    one_of("decision_provision", &PROVISION, false, &mut wrong);
    one_of("decision_account", &ACCOUNT, false, &mut wrong);
    one_of("account_type", &ACCOUNT_TYPE, false, &mut wrong);
    one_of("decision_ground", &GROUND, true, &mut wrong);
    one_of("category", &CATEGORY, true, &mut wrong);
    one_of("source_type", &SOURCE, true, &mut wrong);
    one_of("automated_detection", &["Yes", "No"], true, &mut wrong);
    one_of("automated_decision", &AUTOMATED, true, &mut wrong);
    let all_of = |name: &str, allowed: &[&str], required: bool, wrong: &mut Vec<String>| match (
        s.get(name),
        list(name),
    ) {
        (None, _) if required => wrong.push(format!("{name}: is required")),
        (None, _) => {}
        (Some(v), Some(values))
            if !values.is_empty()
                && values.len() == v.as_array().map_or(0, Vec::len)
                && values.iter().all(|x| allowed.contains(x)) => {}
        (Some(v), _) => wrong.push(format!("{name}: {v} is not a list of {allowed:?}")),
    };
    all_of("decision_visibility", &VISIBILITY, false, &mut wrong);
    all_of("content_type", &CONTENT_TYPE, true, &mut wrong);
    all_of("category_specification", &KEYWORDS, false, &mut wrong);
    all_of("category_addition", &CATEGORY, false, &mut wrong);
    all_of("territorial_scope", &EEA, false, &mut wrong);
    if [
        "decision_visibility",
        "decision_monetary",
        "decision_provision",
        "decision_account",
    ]
    .iter()
    .all(|d| !s.contains_key(*d))
    {
        wrong.push(
            "decision_visibility: one of decision_visibility, decision_monetary, decision_provision and decision_account is required"
                .into(),
        );
    }
    let bounded = |name: &str, max: usize, required: bool, wrong: &mut Vec<String>| match text(name)
    {
        None | Some("") if required => wrong.push(format!("{name}: is required")),
        Some(v) if v.chars().count() > max => {
            wrong.push(format!("{name}: at most {max} characters"))
        }
        _ => {}
    };
    bounded("decision_facts", 5000, true, &mut wrong);
    let ground = text("decision_ground").unwrap_or_default();
    let illegal = ground == GROUND[0];
    bounded("illegal_content_legal_ground", 500, illegal, &mut wrong);
    bounded("illegal_content_explanation", 2000, illegal, &mut wrong);
    let incompatible = ground == GROUND[1];
    bounded("incompatible_content_ground", 500, incompatible, &mut wrong);
    bounded(
        "incompatible_content_explanation",
        2000,
        incompatible,
        &mut wrong,
    );
    let other_visibility =
        list("decision_visibility").is_some_and(|v| v.contains(&"DECISION_VISIBILITY_OTHER"));
    bounded(
        "decision_visibility_other",
        500,
        other_visibility,
        &mut wrong,
    );
    let other_monetary = text("decision_monetary") == Some("DECISION_MONETARY_OTHER");
    bounded("decision_monetary_other", 500, other_monetary, &mut wrong);
    match text("puid") {
        Some(p)
            if !p.is_empty()
                && p.len() <= 500
                && p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {}
        _ => wrong.push("puid: 1 to 500 of [A-Za-z0-9_-] is required".into()),
    }
    for (name, low) in [
        ("content_date", "2000-01-01"),
        ("application_date", "2020-01-01"),
    ] {
        match text(name) {
            Some(d) if super::vocab::date(d).is_ok() && d >= low && d <= "2038-01-01" => {}
            Some(d) => wrong.push(format!(
                "{name}: {d:?} is not a date YYYY-MM-DD from {low} to 2038-01-01"
            )),
            None => wrong.push(format!("{name}: is required")),
        }
    }
    if let Some(id) = s.get("content_id") {
        let ean = id.get("EAN-13").and_then(Value::as_str);
        if !ean.is_some_and(|e| e.len() == 13 && e.bytes().all(|b| b.is_ascii_digit())) {
            wrong.push("content_id: {\"EAN-13\": 13 digits} expected".into());
        }
    }
    wrong
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn puids_are_stable_and_in_the_allowed_alphabet() {
        assert_eq!(puid("tdo-2026-0001"), "ipex-tdo-2026-0001");
        assert_eq!(puid("tdo.2026:1"), puid("tdo.2026:1"));
        assert!(puid("tdo.2026:1").starts_with("ipex-sha256-"));
        assert_ne!(puid("tdo.2026:1"), puid("tdo.2026:2"));
    }

    #[test]
    fn the_checker_names_what_the_api_refuses() {
        let wrong = check(&json!({"puid": "a b", "content_type": ["CONTENT_TYPE_X"]}));
        for field in [
            "puid:",
            "content_type:",
            "decision_ground:",
            "category:",
            "decision_visibility:",
            "content_date:",
            "automated_detection:",
        ] {
            assert!(
                wrong.iter().any(|w| w.starts_with(field)),
                "{field}: {wrong:?}"
            );
        }
    }
}
