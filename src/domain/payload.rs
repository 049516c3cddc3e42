//! Validation of the seven payloads, field by field, as the comments of
//! `proto/ipex/v1/payloads.proto` and `common.proto` state the rules.
//!
//! Violations are named by their path in proto field names, below the path of the envelope:
//! `envelope.seizure_notification.items[0].hs_code`. Envelope-level fields (id, kind,
//! recipients, tlp, refs) are validated elsewhere; only `created_at` is read here, to check
//! that deadlines come after it.
//!
//! Where the proto leaves a point open, this module decides, and says so:
//! - Fields the proto calls optional ("optional", "if known", "where lawful") may be empty;
//!   the core fields of each message are required (see each function). An enum field is
//!   required (not `*_UNSPECIFIED`) unless noted; an enum value the schema does not define is
//!   always refused.
//! - Text fields without a stated limit are capped: identifiers at [`ID_MAX`] characters, names
//!   at [`NAME_MAX`], addresses at [`ADDRESS_MAX`]. Every repeated field has a maximum, in
//!   [`crate::pb::limits`] so that clients know it too.
//! - Free text (names, descriptions, explanations, identifiers that are not codes) refuses
//!   control characters but tab and line feed, and the bidirectional overrides
//!   ([`vocab::plain_text`]).
//! - An `IpRight` must name its owner; registration number and office are required except for
//!   copyright, which is not registered. Its type may not be `UNSAFE_PRODUCT` (not a right).
//! - A product or seized item must name the brand unless it is an unsafe product; then at
//!   least a description.
//! - A takedown notice's seller, when given, must be on the notice's platform.
//! - An actioned outcome must say what was done: `decision_visibility` or `decision_account`
//!   set, and not both `NONE`.
//! - A fulfilled or partially fulfilled data response has at least one record.
//! - A shipment alert with reason `OTHER` needs a `reason_detail`.

use super::violations::Violations;
use super::vocab;
use crate::pb::limits::*;
use crate::pb::{self, envelope::Payload, Kind};
use prost_types::Timestamp;

/// Most characters of an identifier whose length the proto does not state (seller ids, case
/// references, registration numbers).
pub const ID_MAX: usize = 128;
/// Most characters of a name whose length the proto does not state (brands, offices, owners).
pub const NAME_MAX: usize = 200;
/// Most characters of a postal address.
pub const ADDRESS_MAX: usize = 500;

/// Most characters of a product or goods description.
const DESCRIPTION_MAX: usize = 500;
/// Most characters of a transport reference (tracking number, waybill).
const TRANSPORT_REF_MAX: usize = 64;
/// Most characters of a data request identifier: it may be a listing URL.
const IDENTIFIER_MAX: usize = vocab::URL_MAX_CHARS;

/// 0001-01-01T00:00:00Z and 9999-12-31T23:59:59Z, the range of RFC 3339 and of proto3 JSON.
const MIN_SECONDS: i64 = -62_135_596_800;
const MAX_SECONDS: i64 = 253_402_300_799;

/// The envelope kind of a payload.
pub fn kind_of(payload: &Payload) -> Kind {
    match payload {
        Payload::TakedownNotice(_) => Kind::TakedownNotice,
        Payload::TakedownOutcome(_) => Kind::TakedownOutcome,
        Payload::SellerFlag(_) => Kind::SellerFlag,
        Payload::SeizureNotification(_) => Kind::SeizureNotification,
        Payload::ShipmentAlert(_) => Kind::ShipmentAlert,
        Payload::DataRequest(_) => Kind::DataRequest,
        Payload::DataResponse(_) => Kind::DataResponse,
        Payload::ListingAlert(_) => Kind::ListingAlert,
        Payload::SellerMatch(_) => Kind::SellerMatch,
        Payload::ForwardingReport(_) => Kind::ForwardingReport,
    }
}

/// Validates every field of `payload` and records what is wrong in `v`, named below `path`
/// (the envelope's path, e.g. "envelope" or "envelopes[3]"). `created_at` is the envelope's
/// creation time: deadlines (`respond_by`, `valid_until`) must come after it when both are set.
pub fn validate_payload(
    payload: &Payload,
    created_at: Option<&Timestamp>,
    path: &str,
    v: &mut Violations,
) {
    match payload {
        Payload::TakedownNotice(m) => {
            takedown_notice(v, &format!("{path}.takedown_notice"), m, created_at)
        }
        Payload::TakedownOutcome(m) => {
            takedown_outcome(v, &format!("{path}.takedown_outcome"), m, created_at)
        }
        Payload::SellerFlag(m) => seller_flag(v, &format!("{path}.seller_flag"), m, created_at),
        Payload::SeizureNotification(m) => {
            seizure_notification(v, &format!("{path}.seizure_notification"), m)
        }
        Payload::ShipmentAlert(m) => shipment_alert(v, &format!("{path}.shipment_alert"), m),
        Payload::DataRequest(m) => data_request(v, &format!("{path}.data_request"), m, created_at),
        Payload::DataResponse(m) => data_response(v, &format!("{path}.data_response"), m),
        // Raised by the gateway from what it stores ([`super::derived`]), never taken from a
        // client: a participant cannot forge what the gateway says it found.
        Payload::ListingAlert(_) => v.add(
            format!("{path}.listing_alert"),
            "listing alerts are raised by the gateway from seizure notifications; they cannot be submitted",
        ),
        Payload::SellerMatch(_) => v.add(
            format!("{path}.seller_match"),
            "seller matches are raised by the gateway; they cannot be submitted",
        ),
        Payload::ForwardingReport(_) => v.add(
            format!("{path}.forwarding_report"),
            "forwarding reports are raised by the gateway; they cannot be submitted",
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// Payloads

/// `TakedownNotice`: platform, 1–100 listing URLs, product, infringement, legal basis, source
/// type and requested action are required; the IP right unless the infringement is an unsafe
/// product; seller, listing id, evidence (≤ 20) and respond-by are optional.
fn takedown_notice(
    v: &mut Violations,
    p: &str,
    m: &pb::TakedownNotice,
    created_at: Option<&Timestamp>,
) {
    required_code(
        v,
        &field(p, "platform"),
        &m.platform,
        vocab::participant_address,
    );
    count(
        v,
        &field(p, "listing_urls"),
        m.listing_urls.len(),
        1,
        MAX_LISTING_URLS,
    );
    for (i, url) in m.listing_urls.iter().enumerate() {
        required_code(v, &index(p, "listing_urls", i), url, vocab::http_url);
    }
    optional_str(v, &field(p, "listing_id"), &m.listing_id, ID_MAX);
    if let Some(seller) = &m.seller {
        let sp = field(p, "seller");
        seller_ref(v, &sp, seller);
        if !m.platform.is_empty() && !seller.platform.is_empty() && seller.platform != m.platform {
            v.add(field(&sp, "platform"), "must be the notice's platform");
        }
    }
    let infringement =
        required_enum::<pb::InfringementType>(v, &field(p, "infringement"), m.infringement);
    let unsafe_product = infringement == Some(pb::InfringementType::UnsafeProduct);
    if let Some(product) = required_msg(v, &field(p, "product"), &m.product) {
        product_fields(v, &field(p, "product"), product, !unsafe_product);
    }
    match &m.ip_right {
        Some(right) => ip_right(v, &field(p, "ip_right"), right),
        None if !unsafe_product => v.add(
            field(p, "ip_right"),
            "is required unless the infringement is an unsafe product",
        ),
        None => {}
    }
    if let Some(basis) = required_msg(v, &field(p, "legal_basis"), &m.legal_basis) {
        legal_basis(v, &field(p, "legal_basis"), basis);
    }
    required_enum::<pb::SourceType>(v, &field(p, "source_type"), m.source_type);
    count(v, &field(p, "evidence"), m.evidence.len(), 0, MAX_EVIDENCE);
    for (i, e) in m.evidence.iter().enumerate() {
        evidence(v, &index(p, "evidence", i), e);
    }
    required_enum::<pb::RequestedAction>(v, &field(p, "requested_action"), m.requested_action);
    deadline(
        v,
        &field(p, "respond_by"),
        m.respond_by.as_ref(),
        created_at,
    );
}

/// `TakedownOutcome`: status required; when actioned (fully or partially) a decision and
/// `actioned_at`; a decision ground when actioned, not actioned or rejected.
fn takedown_outcome(
    v: &mut Violations,
    p: &str,
    m: &pb::TakedownOutcome,
    created_at: Option<&Timestamp>,
) {
    use pb::OutcomeStatus as S;
    let status = required_enum::<S>(v, &field(p, "status"), m.status);
    let visibility = optional_enum::<pb::VisibilityDecision>(
        v,
        &field(p, "decision_visibility"),
        m.decision_visibility,
    );
    let account =
        optional_enum::<pb::AccountDecision>(v, &field(p, "decision_account"), m.decision_account);
    let monetary = optional_enum::<pb::MonetaryDecision>(
        v,
        &field(p, "decision_monetary"),
        m.decision_monetary,
    );
    let provision = optional_enum::<pb::ProvisionDecision>(
        v,
        &field(p, "decision_provision"),
        m.decision_provision,
    );
    optional_enum::<pb::AccountType>(v, &field(p, "account_type"), m.account_type);
    let actioned = matches!(status, Some(S::Actioned | S::PartiallyActioned));
    if actioned {
        use pb::{
            AccountDecision as A, MonetaryDecision as M, ProvisionDecision as P,
            VisibilityDecision as V,
        };
        let when = status_clause(status.map(|s| s.as_str_name()));
        let given = [
            m.decision_visibility,
            m.decision_account,
            m.decision_monetary,
            m.decision_provision,
        ];
        if given.iter().all(|d| *d == 0) {
            v.add(
                field(p, "decision_visibility"),
                format!(
                    "is required {when} (or a decision_account, decision_monetary or decision_provision)"
                ),
            );
        } else if visibility.is_some()
            && account.is_some()
            && monetary.is_some()
            && provision.is_some()
        {
            let nothing_done = matches!(visibility, Some(V::Unspecified | V::None))
                && matches!(account, Some(A::Unspecified | A::None))
                && matches!(monetary, Some(M::Unspecified | M::None))
                && matches!(provision, Some(P::Unspecified | P::None));
            if nothing_done {
                v.add(
                    field(p, "decision_visibility"),
                    format!("must say what was done {when}, not only NONE"),
                );
            }
        }
    }
    for (other, text, name) in [
        (
            visibility == Some(pb::VisibilityDecision::Other),
            &m.decision_visibility_other,
            "decision_visibility_other",
        ),
        (
            monetary == Some(pb::MonetaryDecision::Other),
            &m.decision_monetary_other,
            "decision_monetary_other",
        ),
    ] {
        if other {
            required_str(v, &field(p, name), text, 500);
        } else if !text.is_empty() {
            v.add(
                field(p, name),
                "is only given with the decision OTHER it explains",
            );
        }
    }
    if !m.content_date.is_empty() {
        let at = field(p, "content_date");
        match vocab::date(&m.content_date) {
            Err(e) => v.add(at, e),
            Ok(()) if m.content_date.as_str() < "2000-01-01" => v.add(at, "lies before 2000-01-01"),
            Ok(()) => {
                let created = created_at.map(|t| t.to_string());
                if let Some(day) = created.as_deref().and_then(|c| c.get(..10)) {
                    if m.content_date.as_str() > day {
                        v.add(at, format!("lies after the envelope's created_at ({day})"));
                    }
                }
            }
        }
    }
    count(
        v,
        &field(p, "territorial_scope"),
        m.territorial_scope.len(),
        0,
        MAX_TERRITORIAL_SCOPE,
    );
    for (i, c) in m.territorial_scope.iter().enumerate() {
        required_code(v, &index(p, "territorial_scope", i), c, vocab::country);
    }
    let ground_needed = matches!(
        status,
        Some(S::Actioned | S::PartiallyActioned | S::NotActioned | S::Rejected)
    );
    if ground_needed {
        let ground = field(p, "decision_ground");
        if m.decision_ground == 0 {
            let when = status_clause(status.map(|s| s.as_str_name()));
            v.add(ground, format!("is required {when}"));
        } else {
            optional_enum::<pb::DecisionGround>(v, &ground, m.decision_ground);
        }
    } else {
        optional_enum::<pb::DecisionGround>(v, &field(p, "decision_ground"), m.decision_ground);
    }
    optional_str(
        v,
        &field(p, "decision_ground_reference"),
        &m.decision_ground_reference,
        500,
    );
    optional_str(v, &field(p, "explanation"), &m.explanation, 5000);
    optional_enum::<pb::AutomatedDecision>(
        v,
        &field(p, "automated_decision"),
        m.automated_decision,
    );
    match &m.actioned_at {
        Some(at) => {
            timestamp(v, &field(p, "actioned_at"), at);
        }
        None if actioned => {
            let when = status_clause(status.map(|s| s.as_str_name()));
            v.add(field(p, "actioned_at"), format!("is required {when}"));
        }
        None => {}
    }
}

/// `SellerFlag`: seller id, account type and at least one reason are required; confidence is
/// 0–100; trader data, pseudonyms (≤ 20), ship-from country, linked listings (≤ 100), linked
/// seizures, brands and valid-until are optional.
fn seller_flag(v: &mut Violations, p: &str, m: &pb::SellerFlag, created_at: Option<&Timestamp>) {
    required_str(
        v,
        &field(p, "platform_seller_id"),
        &m.platform_seller_id,
        ID_MAX,
    );
    required_enum::<pb::AccountType>(v, &field(p, "account_type"), m.account_type);
    if let Some(trader) = &m.trader {
        trader_data(v, &field(p, "trader"), trader);
    }
    count(
        v,
        &field(p, "pseudonyms"),
        m.pseudonyms.len(),
        0,
        MAX_PSEUDONYMS,
    );
    for (i, pseudonym) in m.pseudonyms.iter().enumerate() {
        seller_pseudonym(v, &index(p, "pseudonyms", i), pseudonym);
    }
    count(
        v,
        &field(p, "reasons"),
        m.reasons.len(),
        1,
        MAX_FLAG_REASONS,
    );
    for (i, &reason) in m.reasons.iter().enumerate() {
        let rp = index(p, "reasons", i);
        if required_enum::<pb::FlagReason>(v, &rp, reason).is_some()
            && m.reasons[..i].contains(&reason)
        {
            v.add(rp, "is listed twice");
        }
    }
    if m.confidence > 100 {
        v.add(field(p, "confidence"), "must be 0 to 100");
    }
    optional_code(
        v,
        &field(p, "ship_from_country"),
        &m.ship_from_country,
        vocab::country,
    );
    count(
        v,
        &field(p, "linked_listing_urls"),
        m.linked_listing_urls.len(),
        0,
        MAX_LINKED_LISTINGS,
    );
    for (i, url) in m.linked_listing_urls.iter().enumerate() {
        required_code(v, &index(p, "linked_listing_urls", i), url, vocab::http_url);
    }
    count(
        v,
        &field(p, "linked_seizures"),
        m.linked_seizures.len(),
        0,
        MAX_LINKED_SEIZURES,
    );
    for (i, r) in m.linked_seizures.iter().enumerate() {
        message_ref(v, &index(p, "linked_seizures", i), r);
    }
    count(v, &field(p, "brands"), m.brands.len(), 0, MAX_BRANDS);
    for (i, brand) in m.brands.iter().enumerate() {
        required_str(v, &index(p, "brands", i), brand, NAME_MAX);
    }
    deadline(
        v,
        &field(p, "valid_until"),
        m.valid_until.as_ref(),
        created_at,
    );
}

/// `SeizureNotification`: case reference, seizure date, location, procedure, status,
/// conveyance, detection method and 1–200 items are required; transport, countries of origin,
/// departure and destination, seller and operation code are optional.
fn seizure_notification(v: &mut Violations, p: &str, m: &pb::SeizureNotification) {
    required_str(v, &field(p, "case_reference"), &m.case_reference, ID_MAX);
    required_code(v, &field(p, "seizure_date"), &m.seizure_date, vocab::date);
    if let Some(location) = required_msg(v, &field(p, "location"), &m.location) {
        seizure_location(v, &field(p, "location"), location);
    }
    required_enum::<pb::SeizureProcedure>(v, &field(p, "procedure"), m.procedure);
    required_enum::<pb::SeizureStatus>(v, &field(p, "status"), m.status);
    required_enum::<pb::Conveyance>(v, &field(p, "conveyance"), m.conveyance);
    if let Some(transport) = &m.transport {
        transport_refs(v, &field(p, "transport"), transport);
    }
    count(v, &field(p, "items"), m.items.len(), 1, MAX_SEIZED_ITEMS);
    for (i, item) in m.items.iter().enumerate() {
        seized_item(v, &index(p, "items", i), item);
    }
    for (name, value) in [
        ("origin_country", &m.origin_country),
        ("departure_country", &m.departure_country),
        ("destination_country", &m.destination_country),
    ] {
        optional_code(v, &field(p, name), value, vocab::country);
    }
    if let Some(seller) = &m.seller {
        seller_ref(v, &field(p, "seller"), seller);
    }
    required_enum::<pb::DetectionMethod>(v, &field(p, "detection_method"), m.detection_method);
    optional_str(v, &field(p, "operation_code"), &m.operation_code, 64);
}

/// `ShipmentAlert`: transport (with a tracking number or UPU item id), shipper and consignee
/// countries, declared content and reason are required; HS code, declared value and details
/// are optional, except that reason `OTHER` needs details.
fn shipment_alert(v: &mut Violations, p: &str, m: &pb::ShipmentAlert) {
    if let Some(transport) = required_msg(v, &field(p, "transport"), &m.transport) {
        let tp = field(p, "transport");
        transport_refs(v, &tp, transport);
        if is_blank(&transport.tracking_number) && is_blank(&transport.upu_item_id) {
            v.add(
                field(&tp, "tracking_number"),
                "is required (or an upu_item_id)",
            );
        }
    }
    required_code(
        v,
        &field(p, "shipper_country"),
        &m.shipper_country,
        vocab::country,
    );
    required_code(
        v,
        &field(p, "consignee_country"),
        &m.consignee_country,
        vocab::country,
    );
    required_str(
        v,
        &field(p, "declared_content"),
        &m.declared_content,
        DESCRIPTION_MAX,
    );
    optional_code(v, &field(p, "hs_code"), &m.hs_code, vocab::hs_code);
    if let Some(value) = &m.declared_value {
        money(v, &field(p, "declared_value"), value);
    }
    let reason = required_enum::<pb::SuspicionReason>(v, &field(p, "reason"), m.reason);
    if reason == Some(pb::SuspicionReason::Other) {
        required_str(v, &field(p, "reason_detail"), &m.reason_detail, 2000);
    } else {
        optional_str(v, &field(p, "reason_detail"), &m.reason_detail, 2000);
    }
}

/// `DataRequest`: subject, 1–100 identifiers, legal basis and 1–100 field names are required;
/// respond-by is optional.
fn data_request(v: &mut Violations, p: &str, m: &pb::DataRequest, created_at: Option<&Timestamp>) {
    required_enum::<pb::DataSubject>(v, &field(p, "subject"), m.subject);
    count(
        v,
        &field(p, "identifiers"),
        m.identifiers.len(),
        1,
        MAX_IDENTIFIERS,
    );
    for (i, id) in m.identifiers.iter().enumerate() {
        required_str(v, &index(p, "identifiers", i), id, IDENTIFIER_MAX);
    }
    if let Some(basis) = required_msg(v, &field(p, "legal_basis"), &m.legal_basis) {
        legal_basis(v, &field(p, "legal_basis"), basis);
    }
    count(
        v,
        &field(p, "fields"),
        m.fields.len(),
        1,
        MAX_REQUESTED_FIELDS,
    );
    for (i, name) in m.fields.iter().enumerate() {
        required_code(v, &index(p, "fields", i), name, field_name);
    }
    deadline(
        v,
        &field(p, "respond_by"),
        m.respond_by.as_ref(),
        created_at,
    );
}

/// `DataResponse`: status required; records (≤ 100) present when fulfilled, absent when
/// refused or no data; an explanation when refused.
fn data_response(v: &mut Violations, p: &str, m: &pb::DataResponse) {
    use pb::ResponseStatus as S;
    let status = required_enum::<S>(v, &field(p, "status"), m.status);
    let when = status_clause(status.map(|s| s.as_str_name()));
    count(v, &field(p, "records"), m.records.len(), 0, MAX_RECORDS);
    match status {
        Some(S::Refused | S::NoData) if !m.records.is_empty() => {
            v.add(field(p, "records"), format!("must be empty {when}"));
        }
        Some(S::Fulfilled | S::PartiallyFulfilled) if m.records.is_empty() => {
            v.add(
                field(p, "records"),
                format!("at least one is required {when}"),
            );
        }
        _ => {}
    }
    for (i, record) in m.records.iter().enumerate() {
        data_record(v, &index(p, "records", i), record);
    }
    if status == Some(S::Refused) {
        required_str(v, &field(p, "explanation"), &m.explanation, 2000);
    } else {
        optional_str(v, &field(p, "explanation"), &m.explanation, 2000);
    }
}

// ---------------------------------------------------------------------------------------------
// Parts of payloads

/// A `SellerRef`: the platform and at least one of seller id, pseudonym or listing URL.
fn seller_ref(v: &mut Violations, p: &str, s: &pb::SellerRef) {
    required_code(
        v,
        &field(p, "platform"),
        &s.platform,
        vocab::participant_address,
    );
    optional_str(v, &field(p, "seller_id"), &s.seller_id, ID_MAX);
    optional_code(
        v,
        &field(p, "seller_pseudonym"),
        &s.seller_pseudonym,
        vocab::hex64,
    );
    optional_code(v, &field(p, "listing_url"), &s.listing_url, vocab::http_url);
    optional_str(v, &field(p, "listing_id"), &s.listing_id, ID_MAX);
    if is_blank(&s.seller_id) && s.seller_pseudonym.is_empty() && s.listing_url.is_empty() {
        v.add(
            field(p, "seller_id"),
            "is required (or a seller_pseudonym or listing_url)",
        );
    }
}

/// A `Product`. The brand is required when `brand_required`; otherwise a description is
/// required if there is no brand.
fn product_fields(v: &mut Violations, p: &str, m: &pb::Product, brand_required: bool) {
    brand_and_description(v, p, &m.brand, &m.description, brand_required, false);
    optional_code(v, &field(p, "gtin"), &m.gtin, vocab::gtin);
    optional_code(v, &field(p, "hs_code"), &m.hs_code, vocab::hs_code);
}

/// The brand / description pair of a product or seized item.
fn brand_and_description(
    v: &mut Violations,
    p: &str,
    brand: &str,
    description: &str,
    brand_required: bool,
    description_required: bool,
) {
    if brand_required {
        required_str(v, &field(p, "brand"), brand, NAME_MAX);
    } else {
        optional_str(v, &field(p, "brand"), brand, NAME_MAX);
    }
    if description_required {
        required_str(v, &field(p, "description"), description, DESCRIPTION_MAX);
    } else if !brand_required && is_blank(brand) && is_blank(description) {
        v.add(
            field(p, "description"),
            "is required when there is no brand",
        );
    } else {
        optional_str(v, &field(p, "description"), description, DESCRIPTION_MAX);
    }
}

/// An `IpRight`: type and owner; registration number and office unless copyright.
fn ip_right(v: &mut Violations, p: &str, m: &pb::IpRight) {
    use pb::InfringementType as T;
    let kind = required_enum::<T>(v, &field(p, "type"), m.r#type);
    if kind == Some(T::UnsafeProduct) {
        v.add(
            field(p, "type"),
            "must be an IP right, not an unsafe product",
        );
    }
    if kind == Some(T::Copyright) {
        optional_str(
            v,
            &field(p, "registration_number"),
            &m.registration_number,
            ID_MAX,
        );
        optional_str(v, &field(p, "office"), &m.office, NAME_MAX);
    } else {
        required_str(
            v,
            &field(p, "registration_number"),
            &m.registration_number,
            ID_MAX,
        );
        required_str(v, &field(p, "office"), &m.office, NAME_MAX);
    }
    required_str(v, &field(p, "owner"), &m.owner, NAME_MAX);
}

/// A `LegalBasis`: regime and explanation; the reference is required for a national law.
fn legal_basis(v: &mut Violations, p: &str, m: &pb::LegalBasis) {
    let regime = required_enum::<pb::LegalRegime>(v, &field(p, "regime"), m.regime);
    if regime == Some(pb::LegalRegime::NationalLaw) {
        required_str(v, &field(p, "reference"), &m.reference, 200);
    } else {
        optional_str(v, &field(p, "reference"), &m.reference, 200);
    }
    required_str(v, &field(p, "explanation"), &m.explanation, 2000);
}

/// An `Evidence`: SHA-256 and media type; the URI is optional and https.
fn evidence(v: &mut Violations, p: &str, m: &pb::Evidence) {
    required_code(v, &field(p, "sha256"), &m.sha256, vocab::hex64);
    required_code(v, &field(p, "media_type"), &m.media_type, vocab::media_type);
    optional_code(v, &field(p, "uri"), &m.uri, vocab::https_url);
}

/// `TraderData`: the name; everything else optional.
fn trader_data(v: &mut Violations, p: &str, m: &pb::TraderData) {
    required_str(v, &field(p, "name"), &m.name, NAME_MAX);
    optional_str(v, &field(p, "address"), &m.address, ADDRESS_MAX);
    optional_code(v, &field(p, "country"), &m.country, vocab::country);
    optional_str(v, &field(p, "trade_register"), &m.trade_register, NAME_MAX);
    optional_code(v, &field(p, "vat_number"), &m.vat_number, tax_number);
    optional_code(v, &field(p, "eori"), &m.eori, tax_number);
}

/// A `SellerPseudonym`: all three fields.
fn seller_pseudonym(v: &mut Violations, p: &str, m: &pb::SellerPseudonym) {
    required_enum::<pb::PseudonymType>(v, &field(p, "type"), m.r#type);
    required_code(v, &field(p, "hmac_sha256"), &m.hmac_sha256, vocab::hex64);
    required_str(v, &field(p, "key_id"), &m.key_id, 64);
}

/// A `MessageRef`: sender and id.
fn message_ref(v: &mut Violations, p: &str, m: &pb::MessageRef) {
    required_code(v, &field(p, "sender"), &m.sender, vocab::participant_id);
    required_code(v, &field(p, "id"), &m.id, vocab::message_id);
}

/// A `SeizureLocation`: the country; the UN/LOCODE, when given, must be in that country.
fn seizure_location(v: &mut Violations, p: &str, m: &pb::SeizureLocation) {
    let country_ok = required_code(v, &field(p, "country"), &m.country, vocab::country);
    let locode_ok = optional_code(v, &field(p, "unlocode"), &m.unlocode, vocab::unlocode);
    if country_ok && locode_ok && !m.unlocode.is_empty() && m.unlocode[..2] != m.country {
        v.add(
            field(p, "unlocode"),
            format!(
                "must be in location.country {:?}, not {:?}",
                m.country,
                &m.unlocode[..2]
            ),
        );
    }
    optional_str(v, &field(p, "office"), &m.office, NAME_MAX);
}

/// `TransportRefs`: every field optional, each checked when given.
fn transport_refs(v: &mut Violations, p: &str, m: &pb::TransportRefs) {
    optional_code(
        v,
        &field(p, "tracking_number"),
        &m.tracking_number,
        transport_ref,
    );
    optional_code(v, &field(p, "upu_item_id"), &m.upu_item_id, vocab::upu_s10);
    optional_code(
        v,
        &field(p, "house_waybill"),
        &m.house_waybill,
        transport_ref,
    );
    optional_code(
        v,
        &field(p, "master_waybill"),
        &m.master_waybill,
        transport_ref,
    );
    optional_code(v, &field(p, "mrn"), &m.mrn, mrn);
    optional_code(v, &field(p, "carrier"), &m.carrier, vocab::participant_id);
}

/// A `SeizedItem`: HS code, description, quantity and right type; the brand unless it is an
/// unsafe product.
fn seized_item(v: &mut Violations, p: &str, m: &pb::SeizedItem) {
    required_code(v, &field(p, "hs_code"), &m.hs_code, vocab::hs_code);
    let kind =
        required_enum::<pb::InfringementType>(v, &field(p, "ip_right_type"), m.ip_right_type);
    let unsafe_product = kind == Some(pb::InfringementType::UnsafeProduct);
    brand_and_description(v, p, &m.brand, &m.description, !unsafe_product, true);
    optional_code(v, &field(p, "gtin"), &m.gtin, vocab::gtin);
    if let Some(quantity) = required_msg(v, &field(p, "quantity"), &m.quantity) {
        quantity_fields(v, &field(p, "quantity"), quantity);
    }
    if let Some(value) = &m.declared_value {
        money(v, &field(p, "declared_value"), value);
    }
    optional_str(v, &field(p, "right_holder"), &m.right_holder, NAME_MAX);
}

/// A `DataRecord`: the identifier it answers and at most 100 fields.
fn data_record(v: &mut Violations, p: &str, m: &pb::DataRecord) {
    required_str(v, &field(p, "identifier"), &m.identifier, IDENTIFIER_MAX);
    count(v, &field(p, "fields"), m.fields.len(), 0, MAX_RECORD_FIELDS);
    for (i, f) in m.fields.iter().enumerate() {
        let fp = index(p, "fields", i);
        required_code(v, &field(&fp, "name"), &f.name, field_name);
        optional_str(v, &field(&fp, "value"), &f.value, 2000);
    }
}

/// A `Money`: ISO 4217 currency and a non-negative decimal amount.
fn money(v: &mut Violations, p: &str, m: &pb::Money) {
    required_code(v, &field(p, "currency"), &m.currency, vocab::currency);
    required_code(v, &field(p, "amount"), &m.amount, |s| {
        vocab::decimal(s, false)
    });
}

/// A `Quantity`: a positive decimal value and a Rec 20 unit.
fn quantity_fields(v: &mut Violations, p: &str, m: &pb::Quantity) {
    required_code(v, &field(p, "value"), &m.value, |s| vocab::decimal(s, true));
    required_code(v, &field(p, "unit"), &m.unit, vocab::unit_code);
}

// ---------------------------------------------------------------------------------------------
// Syntax of the few codes that only payloads use

/// A transport reference (tracking number, waybill): at most 64 printable characters, no
/// spaces.
fn transport_ref(value: &str) -> Result<(), String> {
    vocab::max_chars(value, TRANSPORT_REF_MAX)?;
    if value.chars().all(|c| c.is_ascii_graphic()) {
        Ok(())
    } else {
        Err("must be printable ASCII without spaces".to_string())
    }
}

/// A customs Movement Reference Number: 18 characters of `[A-Z0-9]`, starting with the
/// two-digit year and the two-letter country of the declaration.
fn mrn(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let ok = b.len() == 18
        && b[..2].iter().all(u8::is_ascii_digit)
        && b[2..4].iter().all(u8::is_ascii_uppercase)
        && b[4..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err("must be 18 characters: year, country and 14 of A-Z, 0-9".to_string())
    }
}

/// A VAT or EORI number: a two-letter prefix ("NL", or "EL", "XI" that ISO 3166 does not
/// assign) and 1 to 15 of `[A-Z0-9]`.
fn tax_number(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let ok = (3..=17).contains(&b.len())
        && b[..2].iter().all(u8::is_ascii_uppercase)
        && b[2..]
            .iter()
            .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err("must be a country prefix and up to 15 of A-Z, 0-9, without spaces".to_string())
    }
}

/// A data field name: 1 to 100 characters of `[a-z0-9_.]`, starting with a letter, e.g.
/// "trader.name", "sales_volume".
fn field_name(value: &str) -> Result<(), String> {
    let b = value.as_bytes();
    let ok = (1..=100).contains(&b.len())
        && b[0].is_ascii_lowercase()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err("must be a field name such as \"trader.name\": a-z, 0-9, '_' and '.'".to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Shared helpers

/// `path.name`
fn field(path: &str, name: &str) -> String {
    format!("{path}.{name}")
}

/// `path.name[i]`
fn index(path: &str, name: &str, i: usize) -> String {
    format!("{path}.{name}[{i}]")
}

fn is_blank(value: &str) -> bool {
    value.trim().is_empty()
}

/// "when the status is X", with X the proto name of the status; empty when it is unknown.
fn status_clause(status: Option<&str>) -> String {
    status
        .map(|s| format!("when the status is {s}"))
        .unwrap_or_default()
}

/// A required text: not blank, at most `max` characters.
fn required_str(v: &mut Violations, path: &str, value: &str, max: usize) {
    if is_blank(value) {
        v.add(path, "is required");
    } else {
        optional_str(v, path, value, max);
    }
}

/// An optional text: at most `max` characters, no control character but tab and line feed,
/// no bidirectional override ([`vocab::plain_text`]).
fn optional_str(v: &mut Violations, path: &str, value: &str, max: usize) {
    if let Err(e) = vocab::max_chars(value, max).and_then(|()| vocab::plain_text(value)) {
        v.add(path, e);
    }
}

/// A required code checked by `rule`. True when present and valid.
fn required_code(
    v: &mut Violations,
    path: &str,
    value: &str,
    rule: impl FnOnce(&str) -> Result<(), String>,
) -> bool {
    if value.is_empty() {
        v.add(path, "is required");
        false
    } else {
        optional_code(v, path, value, rule)
    }
}

/// An optional code checked by `rule` when not empty. True when empty or valid.
fn optional_code(
    v: &mut Violations,
    path: &str,
    value: &str,
    rule: impl FnOnce(&str) -> Result<(), String>,
) -> bool {
    if value.is_empty() {
        return true;
    }
    match rule(value) {
        Ok(()) => true,
        Err(e) => {
            v.add(path, e);
            false
        }
    }
}

/// A required enum: not 0 (`*_UNSPECIFIED`) and a value the schema defines.
fn required_enum<E: TryFrom<i32>>(v: &mut Violations, path: &str, value: i32) -> Option<E> {
    if value == 0 {
        v.add(path, "is required");
        return None;
    }
    optional_enum(v, path, value)
}

/// An optional enum: 0 (`*_UNSPECIFIED`) or a value the schema defines.
fn optional_enum<E: TryFrom<i32>>(v: &mut Violations, path: &str, value: i32) -> Option<E> {
    match E::try_from(value) {
        Ok(e) => Some(e),
        Err(_) => {
            v.add(path, format!("{value} is not a known value"));
            None
        }
    }
}

/// A required nested message.
fn required_msg<'m, T>(v: &mut Violations, path: &str, value: &'m Option<T>) -> Option<&'m T> {
    if value.is_none() {
        v.add(path, "is required");
    }
    value.as_ref()
}

/// The number of items of a repeated field, `min..=max`.
fn count(v: &mut Violations, path: &str, len: usize, min: usize, max: usize) {
    if len < min {
        if min == 1 {
            v.add(path, "at least one is required");
        } else {
            v.add(path, format!("at least {min} are required"));
        }
    } else if len > max {
        v.add(path, format!("at most {max} items, not {len}"));
    }
}

/// A timestamp that RFC 3339 can write: nanos in 0..1e9, years 1 to 9999. True when valid.
fn timestamp(v: &mut Violations, path: &str, ts: &Timestamp) -> bool {
    if !(0..1_000_000_000).contains(&ts.nanos) {
        v.add(path, "nanos must be 0 to 999999999");
        false
    } else if !(MIN_SECONDS..=MAX_SECONDS).contains(&ts.seconds) {
        v.add(path, "must be in the years 1 to 9999");
        false
    } else {
        true
    }
}

/// An optional deadline: a valid timestamp after `created_at` when both are set.
fn deadline(
    v: &mut Violations,
    path: &str,
    value: Option<&Timestamp>,
    created_at: Option<&Timestamp>,
) {
    let Some(ts) = value else { return };
    if !timestamp(v, path, ts) {
        return;
    }
    if let Some(created) = created_at {
        if (ts.seconds, ts.nanos) <= (created.seconds, created.nanos) {
            v.add(path, "must be after created_at");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CREATED: i64 = 1_795_510_800; // 2026-11-24T09:00:00Z
    const DAY: i64 = 86_400;
    const HASH: &str = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08";

    fn ts(seconds: i64) -> Option<Timestamp> {
        Some(Timestamp { seconds, nanos: 0 })
    }

    fn s(value: &str) -> String {
        value.to_string()
    }

    /// The paths of the violations found in `payload` at "envelope", created at `CREATED`.
    fn paths(payload: Payload) -> Vec<String> {
        let mut v = Violations::default();
        validate_payload(&payload, ts(CREATED).as_ref(), "envelope", &mut v);
        v.items().iter().map(|(f, _)| f.clone()).collect()
    }

    fn assert_valid(payload: Payload) {
        let mut v = Violations::default();
        validate_payload(&payload, ts(CREATED).as_ref(), "envelope", &mut v);
        assert!(v.is_empty(), "{v}");
    }

    fn seller() -> pb::SellerRef {
        pb::SellerRef {
            platform: s("market-a"),
            seller_id: s("S-88412907"),
            listing_url: s("https://market-a.example/listing/7731904412"),
            ..Default::default()
        }
    }

    fn notice() -> pb::TakedownNotice {
        pb::TakedownNotice {
            platform: s("market-a"),
            listing_urls: vec![
                s("https://market-a.example/listing/7731904412"),
                s("https://market-a.example/listing/7731904415"),
            ],
            listing_id: s("7731904412"),
            seller: Some(seller()),
            product: Some(pb::Product {
                brand: s("Acme"),
                gtin: s("4006381333931"),
                hs_code: s("640399"),
                description: s("Running shoes"),
            }),
            infringement: pb::InfringementType::Trademark as i32,
            ip_right: Some(pb::IpRight {
                r#type: pb::InfringementType::Trademark as i32,
                registration_number: s("018012345"),
                office: s("EUIPO"),
                owner: s("Acme SAS"),
            }),
            legal_basis: Some(pb::LegalBasis {
                regime: pb::LegalRegime::DsaArt9Order as i32,
                reference: s("Order DOU-NL-2026-0173"),
                explanation: s("Counterfeit goods bearing the Acme trade mark."),
            }),
            source_type: pb::SourceType::AuthorityOrder as i32,
            evidence: vec![pb::Evidence {
                sha256: s(HASH),
                media_type: s("image/jpeg"),
                uri: s("https://evidence.customs-nl.example/e/1.jpg"),
            }],
            requested_action: pb::RequestedAction::Remove as i32,
            respond_by: ts(CREATED + 2 * DAY),
        }
    }

    fn outcome() -> pb::TakedownOutcome {
        pb::TakedownOutcome {
            status: pb::OutcomeStatus::Actioned as i32,
            decision_visibility: pb::VisibilityDecision::ContentRemoved as i32,
            decision_account: pb::AccountDecision::Suspended as i32,
            territorial_scope: vec![],
            decision_ground: pb::DecisionGround::IllegalContent as i32,
            decision_ground_reference: s("Art. 9(2) Reg (EU) 2017/1001"),
            explanation: s("Listings removed on order of Dutch customs."),
            automated_detection: Some(false),
            automated_decision: pb::AutomatedDecision::NotAutomated as i32,
            actioned_at: ts(CREATED - 60),
            content_date: s("2026-09-14"),
            ..Default::default()
        }
    }

    fn flag() -> pb::SellerFlag {
        pb::SellerFlag {
            platform_seller_id: s("S-88412907"),
            account_type: pb::AccountType::Business as i32,
            trader: Some(pb::TraderData {
                name: s("Lucky Star Trading Co., Ltd."),
                address: s("88 Huaqiang North Road, Shenzhen"),
                country: s("CN"),
                trade_register: s("91440300MA5XXXXX"),
                vat_number: s(""),
                eori: s("CN91440300123"),
            }),
            pseudonyms: vec![pb::SellerPseudonym {
                r#type: pb::PseudonymType::Email as i32,
                hmac_sha256: s(HASH),
                key_id: s("2026-q4"),
            }],
            reasons: vec![
                pb::FlagReason::SuspectedCounterfeit as i32,
                pb::FlagReason::RepeatInfringer as i32,
            ],
            confidence: 85,
            ship_from_country: s("CN"),
            linked_listing_urls: vec![s("https://market-a.example/listing/7731904412")],
            linked_seizures: vec![pb::MessageRef {
                sender: s("customs-nl"),
                id: s("seiz-2026-0001"),
            }],
            brands: vec![s("Acme")],
            valid_until: ts(CREATED + 180 * DAY),
        }
    }

    fn item(hs: &str, unit: &str) -> pb::SeizedItem {
        pb::SeizedItem {
            hs_code: s(hs),
            description: s("Counterfeit goods"),
            brand: s("Acme"),
            gtin: s(""),
            quantity: Some(pb::Quantity {
                value: s("12"),
                unit: s(unit),
            }),
            declared_value: Some(pb::Money {
                currency: s("EUR"),
                amount: s("96.00"),
            }),
            ip_right_type: pb::InfringementType::Trademark as i32,
            right_holder: s("brand-c"),
        }
    }

    fn seizure() -> pb::SeizureNotification {
        pb::SeizureNotification {
            case_reference: s("NL-SPL-2026-004512"),
            seizure_date: s("2026-11-23"),
            location: Some(pb::SeizureLocation {
                country: s("NL"),
                unlocode: s("NLAMS"),
                office: s("Douane Schiphol"),
            }),
            procedure: pb::SeizureProcedure::SmallConsignment as i32,
            status: pb::SeizureStatus::Detained as i32,
            conveyance: pb::Conveyance::Express as i32,
            transport: Some(pb::TransportRefs {
                tracking_number: s("EB4471902365"),
                carrier: s("express-b"),
                ..Default::default()
            }),
            items: vec![item("640399", "PR"), item("420221", "H87")],
            origin_country: s("CN"),
            departure_country: s("HK"),
            destination_country: s("NL"),
            seller: Some(seller()),
            detection_method: pb::DetectionMethod::RiskProfile as i32,
            health_safety_risk: false,
            operation_code: s(""),
        }
    }

    fn alert() -> pb::ShipmentAlert {
        pb::ShipmentAlert {
            transport: Some(pb::TransportRefs {
                upu_item_id: s("RR123456785CN"),
                carrier: s("express-b"),
                ..Default::default()
            }),
            shipper_country: s("CN"),
            consignee_country: s("NL"),
            declared_content: s("Sport shoes"),
            hs_code: s("640399"),
            declared_value: Some(pb::Money {
                currency: s("USD"),
                amount: s("18.00"),
            }),
            reason: pb::SuspicionReason::ValueMismatch as i32,
            reason_detail: s(""),
        }
    }

    fn request() -> pb::DataRequest {
        pb::DataRequest {
            subject: pb::DataSubject::Seller as i32,
            identifiers: vec![s("S-88412907")],
            legal_basis: Some(pb::LegalBasis {
                regime: pb::LegalRegime::DsaArt10Order as i32,
                reference: s(""),
                explanation: s("Identify the importer of detained goods."),
            }),
            fields: vec![s("trader.name"), s("sales_volume")],
            respond_by: ts(CREATED + 14 * DAY),
        }
    }

    fn response() -> pb::DataResponse {
        pb::DataResponse {
            status: pb::ResponseStatus::Fulfilled as i32,
            records: vec![pb::DataRecord {
                identifier: s("S-88412907"),
                fields: vec![pb::DataField {
                    name: s("trader.name"),
                    value: s("Lucky Star Trading Co., Ltd."),
                }],
            }],
            explanation: s(""),
        }
    }

    #[test]
    fn valid_payloads_pass() {
        assert_valid(Payload::TakedownNotice(notice()));
        assert_valid(Payload::TakedownOutcome(outcome()));
        assert_valid(Payload::SellerFlag(flag()));
        assert_valid(Payload::SeizureNotification(seizure()));
        assert_valid(Payload::ShipmentAlert(alert()));
        assert_valid(Payload::DataRequest(request()));
        assert_valid(Payload::DataResponse(response()));
        // The minimal ones too.
        assert_valid(Payload::TakedownOutcome(pb::TakedownOutcome {
            status: pb::OutcomeStatus::Received as i32,
            ..Default::default()
        }));
        assert_valid(Payload::DataResponse(pb::DataResponse {
            status: pb::ResponseStatus::NoData as i32,
            ..Default::default()
        }));
    }

    #[test]
    fn kind_of_each_payload() {
        assert_eq!(
            kind_of(&Payload::TakedownNotice(notice())),
            Kind::TakedownNotice
        );
        assert_eq!(
            kind_of(&Payload::TakedownOutcome(outcome())),
            Kind::TakedownOutcome
        );
        assert_eq!(kind_of(&Payload::SellerFlag(flag())), Kind::SellerFlag);
        assert_eq!(
            kind_of(&Payload::SeizureNotification(seizure())),
            Kind::SeizureNotification
        );
        assert_eq!(
            kind_of(&Payload::ShipmentAlert(alert())),
            Kind::ShipmentAlert
        );
        assert_eq!(kind_of(&Payload::DataRequest(request())), Kind::DataRequest);
        assert_eq!(
            kind_of(&Payload::DataResponse(response())),
            Kind::DataResponse
        );
    }

    #[test]
    fn path_is_below_the_envelope_path() {
        let mut n = notice();
        n.listing_urls[1] = s("ftp://market-a.example/x");
        let mut v = Violations::default();
        validate_payload(&Payload::TakedownNotice(n), None, "envelopes[3]", &mut v);
        assert_eq!(v.items().len(), 1);
        assert_eq!(
            v.items()[0].0,
            "envelopes[3].takedown_notice.listing_urls[1]"
        );
    }

    #[test]
    fn takedown_notice_violations() {
        let mut n = notice();
        n.listing_urls[1] = s("market-a.example/listing/1");
        assert_eq!(
            paths(Payload::TakedownNotice(n)),
            ["envelope.takedown_notice.listing_urls[1]"]
        );

        let mut n = notice();
        n.listing_urls.clear();
        assert_eq!(
            paths(Payload::TakedownNotice(n)),
            ["envelope.takedown_notice.listing_urls"]
        );

        let mut n = notice();
        n.listing_urls = vec![s("https://market-a.example/l"); 101];
        assert_eq!(
            paths(Payload::TakedownNotice(n)),
            ["envelope.takedown_notice.listing_urls"]
        );

        let mut n = notice();
        n.ip_right = None;
        assert_eq!(
            paths(Payload::TakedownNotice(n.clone())),
            ["envelope.takedown_notice.ip_right"]
        );
        n.infringement = pb::InfringementType::UnsafeProduct as i32;
        assert!(paths(Payload::TakedownNotice(n.clone())).is_empty());
        // An unsafe product needs no brand, but then a description.
        n.product = Some(pb::Product::default());
        assert_eq!(
            paths(Payload::TakedownNotice(n)),
            ["envelope.takedown_notice.product.description"]
        );

        let mut n = notice();
        n.infringement = 99;
        n.source_type = 0;
        n.product.as_mut().unwrap().gtin = s("4006381333932");
        n.evidence[0].sha256 = HASH.to_uppercase();
        n.legal_basis.as_mut().unwrap().explanation = "x".repeat(2001);
        n.seller.as_mut().unwrap().platform = s("market-z");
        assert_eq!(
            paths(Payload::TakedownNotice(n)),
            [
                "envelope.takedown_notice.seller.platform",
                "envelope.takedown_notice.infringement",
                "envelope.takedown_notice.product.gtin",
                "envelope.takedown_notice.legal_basis.explanation",
                "envelope.takedown_notice.source_type",
                "envelope.takedown_notice.evidence[0].sha256",
            ]
        );

        let mut n = notice();
        n.respond_by = ts(CREATED);
        assert_eq!(
            paths(Payload::TakedownNotice(n.clone())),
            ["envelope.takedown_notice.respond_by"]
        );
        n.respond_by = Some(Timestamp {
            seconds: CREATED + DAY,
            nanos: 1_000_000_000,
        });
        assert_eq!(
            paths(Payload::TakedownNotice(n)),
            ["envelope.takedown_notice.respond_by"]
        );
    }

    #[test]
    fn takedown_outcome_violations() {
        let mut o = outcome();
        o.decision_visibility = 0;
        o.decision_account = 0;
        o.actioned_at = None;
        assert_eq!(
            paths(Payload::TakedownOutcome(o)),
            [
                "envelope.takedown_outcome.decision_visibility",
                "envelope.takedown_outcome.actioned_at",
            ]
        );

        let mut o = outcome();
        o.status = pb::OutcomeStatus::PartiallyActioned as i32;
        o.decision_visibility = pb::VisibilityDecision::None as i32;
        o.decision_account = pb::AccountDecision::None as i32;
        assert_eq!(
            paths(Payload::TakedownOutcome(o)),
            ["envelope.takedown_outcome.decision_visibility"]
        );

        // Only an account decision is enough.
        let mut o = outcome();
        o.decision_visibility = 0;
        assert!(paths(Payload::TakedownOutcome(o)).is_empty());

        let o = pb::TakedownOutcome {
            status: pb::OutcomeStatus::Rejected as i32,
            territorial_scope: vec![s("NL"), s("XX")],
            automated_decision: 17,
            ..Default::default()
        };
        assert_eq!(
            paths(Payload::TakedownOutcome(o)),
            [
                "envelope.takedown_outcome.territorial_scope[1]",
                "envelope.takedown_outcome.decision_ground",
                "envelope.takedown_outcome.automated_decision",
            ]
        );

        let o = pb::TakedownOutcome::default();
        assert_eq!(
            paths(Payload::TakedownOutcome(o)),
            ["envelope.takedown_outcome.status"]
        );
    }

    #[test]
    fn seller_flag_violations() {
        let mut f = flag();
        f.confidence = 101;
        f.reasons.clear();
        f.pseudonyms[0].hmac_sha256 = HASH.to_uppercase();
        f.valid_until = ts(CREATED - DAY);
        f.linked_seizures[0].id = s("seiz 1");
        assert_eq!(
            paths(Payload::SellerFlag(f)),
            [
                "envelope.seller_flag.pseudonyms[0].hmac_sha256",
                "envelope.seller_flag.reasons",
                "envelope.seller_flag.confidence",
                "envelope.seller_flag.linked_seizures[0].id",
                "envelope.seller_flag.valid_until",
            ]
        );

        let mut f = flag();
        f.reasons = vec![1, 0, 1, 42];
        f.trader.as_mut().unwrap().country = s("cn");
        f.ship_from_country = s("");
        assert_eq!(
            paths(Payload::SellerFlag(f)),
            [
                "envelope.seller_flag.trader.country",
                "envelope.seller_flag.reasons[1]",
                "envelope.seller_flag.reasons[2]",
                "envelope.seller_flag.reasons[3]",
            ]
        );
    }

    #[test]
    fn seizure_notification_violations() {
        let mut n = seizure();
        n.items[0].hs_code = s("6403");
        n.items[1].quantity.as_mut().unwrap().value = s("0");
        n.items[1].declared_value.as_mut().unwrap().currency = s("EURO");
        n.location.as_mut().unwrap().unlocode = s("BEANR");
        n.seizure_date = s("2026-02-30");
        assert_eq!(
            paths(Payload::SeizureNotification(n)),
            [
                "envelope.seizure_notification.seizure_date",
                "envelope.seizure_notification.location.unlocode",
                "envelope.seizure_notification.items[0].hs_code",
                "envelope.seizure_notification.items[1].quantity.value",
                "envelope.seizure_notification.items[1].declared_value.currency",
            ]
        );

        let mut n = seizure();
        n.seller = Some(pb::SellerRef {
            platform: s("market-a"),
            ..Default::default()
        });
        n.items[0].brand = s("");
        n.items[1].ip_right_type = pb::InfringementType::UnsafeProduct as i32;
        n.items[1].brand = s("");
        n.transport.as_mut().unwrap().mrn = s("26NL12345");
        assert_eq!(
            paths(Payload::SeizureNotification(n)),
            [
                "envelope.seizure_notification.transport.mrn",
                "envelope.seizure_notification.items[0].brand",
                "envelope.seizure_notification.seller.seller_id",
            ]
        );

        let mut n = seizure();
        n.items.clear();
        n.location = None;
        n.conveyance = 0;
        assert_eq!(
            paths(Payload::SeizureNotification(n)),
            [
                "envelope.seizure_notification.location",
                "envelope.seizure_notification.conveyance",
                "envelope.seizure_notification.items",
            ]
        );
    }

    #[test]
    fn shipment_alert_violations() {
        let mut a = alert();
        a.transport.as_mut().unwrap().upu_item_id = s("");
        a.reason = pb::SuspicionReason::Other as i32;
        a.declared_value.as_mut().unwrap().amount = s("-1");
        assert_eq!(
            paths(Payload::ShipmentAlert(a)),
            [
                "envelope.shipment_alert.transport.tracking_number",
                "envelope.shipment_alert.declared_value.amount",
                "envelope.shipment_alert.reason_detail",
            ]
        );

        let mut a = alert();
        a.transport.as_mut().unwrap().upu_item_id = s("RR123456784CN");
        a.hs_code = s("64039x");
        a.consignee_country = s("");
        assert_eq!(
            paths(Payload::ShipmentAlert(a)),
            [
                "envelope.shipment_alert.transport.upu_item_id",
                "envelope.shipment_alert.consignee_country",
                "envelope.shipment_alert.hs_code",
            ]
        );
    }

    #[test]
    fn data_request_violations() {
        let mut r = request();
        r.fields.clear();
        r.identifiers.push(s(" "));
        r.legal_basis.as_mut().unwrap().regime = pb::LegalRegime::NationalLaw as i32;
        assert_eq!(
            paths(Payload::DataRequest(r)),
            [
                "envelope.data_request.identifiers[1]",
                "envelope.data_request.legal_basis.reference",
                "envelope.data_request.fields",
            ]
        );

        let mut r = request();
        r.legal_basis = None;
        r.fields[1] = s("Sales Volume");
        r.respond_by = Some(Timestamp {
            seconds: CREATED + DAY,
            nanos: -1,
        });
        assert_eq!(
            paths(Payload::DataRequest(r)),
            [
                "envelope.data_request.legal_basis",
                "envelope.data_request.fields[1]",
                "envelope.data_request.respond_by",
            ]
        );
    }

    #[test]
    fn data_response_violations() {
        let mut r = response();
        r.status = pb::ResponseStatus::Refused as i32;
        assert_eq!(
            paths(Payload::DataResponse(r)),
            [
                "envelope.data_response.records",
                "envelope.data_response.explanation",
            ]
        );

        let mut r = response();
        r.records[0].fields[0].value = "é".repeat(2001);
        r.records[0].identifier = s("");
        assert_eq!(
            paths(Payload::DataResponse(r)),
            [
                "envelope.data_response.records[0].identifier",
                "envelope.data_response.records[0].fields[0].value",
            ]
        );

        let r = pb::DataResponse {
            status: pb::ResponseStatus::PartiallyFulfilled as i32,
            ..Default::default()
        };
        assert_eq!(
            paths(Payload::DataResponse(r)),
            ["envelope.data_response.records"]
        );
    }

    #[test]
    fn descriptions_are_short_sentences() {
        let mut n = notice();
        n.platform = s("");
        n.product.as_mut().unwrap().hs_code = s("6403");
        n.legal_basis.as_mut().unwrap().explanation = "x".repeat(2001);
        let mut v = Violations::default();
        validate_payload(&Payload::TakedownNotice(n), None, "envelope", &mut v);
        let found: Vec<(&str, &str)> = v
            .items()
            .iter()
            .map(|(f, d)| (f.as_str(), d.as_str()))
            .collect();
        assert_eq!(
            found,
            [
                ("envelope.takedown_notice.platform", "is required"),
                (
                    "envelope.takedown_notice.product.hs_code",
                    "must be 6 to 10 digits"
                ),
                (
                    "envelope.takedown_notice.legal_basis.explanation",
                    "at most 2000 characters"
                ),
            ]
        );
    }

    #[test]
    fn example_messages_are_valid() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/examples/messages");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("examples/messages exists")
            .map(|entry| entry.expect("directory entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        files.sort();
        let mut kinds = Vec::new();
        for path in &files {
            let name = path.display();
            let text = std::fs::read_to_string(path).expect("example readable");
            let envelope = crate::pb::json::envelope_from_json(&text)
                .unwrap_or_else(|e| panic!("{name}: {e}"));
            let payload = envelope
                .payload
                .as_ref()
                .unwrap_or_else(|| panic!("{name}: no payload"));
            let kind = kind_of(payload);
            if envelope.kind != 0 {
                assert_eq!(envelope.kind, kind as i32, "{name}: kind");
            }
            let mut v = Violations::default();
            validate_payload(payload, envelope.created_at.as_ref(), "envelope", &mut v);
            assert!(v.is_empty(), "{name}: {v}");
            kinds.push(kind);
        }
        kinds.sort_by_key(|k| *k as i32);
        kinds.dedup();
        assert_eq!(kinds.len(), 7, "one example per kind: {kinds:?}");
    }
}
