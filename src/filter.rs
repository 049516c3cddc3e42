//! What subscribers and searches ask for: a [`MessageFilter`] parsed from `ipex.v1.Filter`,
//! matched against the searchable [`Facets`] of an envelope. The same facets feed the
//! secondary indexes of [`crate::search`], so a search and a subscription with the same
//! filter select the same messages.

use crate::model::{vocab, Violations};
use crate::pb::{self, envelope::Payload, Kind, Tlp};

/// The values of an envelope that filters and indexes look at. Countries, HS codes and ids
/// are as sent; brands are lower-cased.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facets {
    /// HS codes of items, products and declared contents.
    pub hs_codes: Vec<String>,
    /// Countries of origin (seizures, seller flags' ship-from) or of the shipper.
    pub origin: Vec<String>,
    /// Countries of destination or of the consignee.
    pub destination: Vec<String>,
    /// Countries where seizures took place.
    pub location: Vec<String>,
    /// Brands, lower-cased.
    pub brands: Vec<String>,
    /// Carrier participant ids.
    pub carriers: Vec<String>,
    /// Platform participant ids.
    pub platforms: Vec<String>,
    /// Seller ids and pseudonyms.
    pub sellers: Vec<String>,
    /// Listing ids.
    pub listings: Vec<String>,
    /// Tracking numbers and UPU item ids.
    pub tracking: Vec<String>,
}

fn push(list: &mut Vec<String>, value: &str) {
    let value = value.trim();
    if !value.is_empty() && !list.iter().any(|v| v == value) {
        list.push(value.to_string());
    }
}

fn push_brand(list: &mut Vec<String>, value: &str) {
    push(list, &value.trim().to_lowercase());
}

fn seller_ref(f: &mut Facets, s: Option<&pb::SellerRef>) {
    if let Some(s) = s {
        push(&mut f.platforms, &s.platform);
        push(&mut f.sellers, &s.seller_id);
        push(&mut f.sellers, &s.seller_pseudonym);
        push(&mut f.listings, &s.listing_id);
    }
}

fn transport(f: &mut Facets, t: Option<&pb::TransportRefs>) {
    if let Some(t) = t {
        push(&mut f.carriers, &t.carrier);
        push(&mut f.tracking, &t.tracking_number);
        push(&mut f.tracking, &t.upu_item_id);
    }
}

impl Facets {
    /// The facets of a stored envelope.
    pub fn of(envelope: &pb::Envelope) -> Facets {
        let mut f = Facets::default();
        match &envelope.payload {
            Some(Payload::TakedownNotice(n)) => {
                push(&mut f.platforms, &n.platform);
                push(&mut f.listings, &n.listing_id);
                seller_ref(&mut f, n.seller.as_ref());
                if let Some(p) = &n.product {
                    push(&mut f.hs_codes, &p.hs_code);
                    push_brand(&mut f.brands, &p.brand);
                }
            }
            Some(Payload::TakedownOutcome(_)) => push(&mut f.platforms, &envelope.sender),
            Some(Payload::SellerFlag(flag)) => {
                push(&mut f.platforms, &envelope.sender);
                push(&mut f.sellers, &flag.platform_seller_id);
                for p in &flag.pseudonyms {
                    push(&mut f.sellers, &p.hmac_sha256);
                }
                for b in &flag.brands {
                    push_brand(&mut f.brands, b);
                }
                push(&mut f.origin, &flag.ship_from_country);
            }
            Some(Payload::SeizureNotification(s)) => {
                for item in &s.items {
                    push(&mut f.hs_codes, &item.hs_code);
                    push_brand(&mut f.brands, &item.brand);
                }
                push(&mut f.origin, &s.origin_country);
                push(&mut f.destination, &s.destination_country);
                if let Some(l) = &s.location {
                    push(&mut f.location, &l.country);
                }
                transport(&mut f, s.transport.as_ref());
                seller_ref(&mut f, s.seller.as_ref());
            }
            Some(Payload::ShipmentAlert(a)) => {
                push(&mut f.hs_codes, &a.hs_code);
                push(&mut f.origin, &a.shipper_country);
                push(&mut f.destination, &a.consignee_country);
                transport(&mut f, a.transport.as_ref());
                push(&mut f.carriers, &envelope.sender);
            }
            Some(Payload::DataRequest(r)) => {
                let target = match pb::DataSubject::try_from(r.subject) {
                    Ok(pb::DataSubject::Seller) => Some(&mut f.sellers),
                    Ok(pb::DataSubject::Listing) => Some(&mut f.listings),
                    Ok(pb::DataSubject::Shipment) => Some(&mut f.tracking),
                    _ => None,
                };
                if let Some(list) = target {
                    for id in &r.identifiers {
                        push(list, id);
                    }
                }
            }
            Some(Payload::DataResponse(_)) | None => {}
        }
        f
    }
}

/// A validated filter. Every criterion given must match; within one, any value may.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageFilter {
    /// Kinds (proto numbers).
    pub kinds: Vec<i32>,
    /// HS code prefixes.
    pub hs_prefixes: Vec<String>,
    /// Origin countries.
    pub origin: Vec<String>,
    /// Destination countries.
    pub destination: Vec<String>,
    /// Location countries.
    pub location: Vec<String>,
    /// Brands, lower-cased.
    pub brands: Vec<String>,
    /// Carrier ids.
    pub carriers: Vec<String>,
    /// Platform ids.
    pub platforms: Vec<String>,
    /// Least TLP (proto number; 0 = any).
    pub min_tlp: i32,
}

/// Does any of `wanted` appear in `have` (true when nothing is wanted)?
fn any_of(wanted: &[String], have: &[String]) -> bool {
    wanted.is_empty() || wanted.iter().any(|w| have.contains(w))
}

impl MessageFilter {
    /// Validates a proto filter; violations are named under `path` (e.g. `filter`).
    pub fn parse(filter: Option<&pb::Filter>, path: &str) -> Result<MessageFilter, Violations> {
        let Some(f) = filter else {
            return Ok(MessageFilter::default());
        };
        let mut v = Violations::default();
        let mut out = MessageFilter::default();
        for (i, k) in f.kinds.iter().enumerate() {
            match Kind::try_from(*k) {
                Ok(Kind::Unspecified) | Err(_) => v.add(
                    format!("{path}.kinds[{i}]"),
                    format!("{k} is not a message kind"),
                ),
                Ok(_) => out.kinds.push(*k),
            }
        }
        for (i, p) in f.hs_prefixes.iter().enumerate() {
            if (2..=10).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) {
                out.hs_prefixes.push(p.clone());
            } else {
                v.add(
                    format!("{path}.hs_prefixes[{i}]"),
                    format!("{p:?} must be 2 to 10 digits"),
                );
            }
        }
        for (field, values, target) in [
            ("origin_countries", &f.origin_countries, &mut out.origin),
            (
                "destination_countries",
                &f.destination_countries,
                &mut out.destination,
            ),
            (
                "location_countries",
                &f.location_countries,
                &mut out.location,
            ),
        ] {
            for (i, c) in values.iter().enumerate() {
                match vocab::country(c) {
                    Ok(()) => target.push(c.clone()),
                    Err(e) => v.add(format!("{path}.{field}[{i}]"), e),
                }
            }
        }
        for (i, b) in f.brands.iter().enumerate() {
            if b.trim().is_empty() || b.chars().count() > 200 {
                v.add(format!("{path}.brands[{i}]"), "must be 1 to 200 characters");
            } else {
                out.brands.push(b.trim().to_lowercase());
            }
        }
        for (field, values, target) in [
            ("carriers", &f.carriers, &mut out.carriers),
            ("platforms", &f.platforms, &mut out.platforms),
        ] {
            for (i, id) in values.iter().enumerate() {
                match vocab::participant_id(id) {
                    Ok(()) => target.push(id.clone()),
                    Err(e) => v.add(format!("{path}.{field}[{i}]"), e),
                }
            }
        }
        match Tlp::try_from(f.min_tlp) {
            Ok(_) => out.min_tlp = f.min_tlp,
            Err(_) => v.add(
                format!("{path}.min_tlp"),
                format!("{} is not a TLP value", f.min_tlp),
            ),
        }
        if v.is_empty() {
            Ok(out)
        } else {
            Err(v)
        }
    }

    /// Does the envelope (with its facets) match?
    pub fn matches(&self, envelope: &pb::Envelope, facets: &Facets) -> bool {
        (self.kinds.is_empty() || self.kinds.contains(&envelope.kind))
            && envelope.tlp >= self.min_tlp
            && (self.hs_prefixes.is_empty()
                || self
                    .hs_prefixes
                    .iter()
                    .any(|p| facets.hs_codes.iter().any(|c| c.starts_with(p.as_str()))))
            && any_of(&self.origin, &facets.origin)
            && any_of(&self.destination, &facets.destination)
            && any_of(&self.location, &facets.location)
            && any_of(&self.brands, &facets.brands)
            && any_of(&self.carriers, &facets.carriers)
            && any_of(&self.platforms, &facets.platforms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seizure() -> pb::Envelope {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/examples/messages/seizure-notification.json"
        ))
        .unwrap();
        let mut e = crate::json::envelope_from_json(&text).unwrap();
        e.kind = Kind::SeizureNotification as i32;
        e
    }

    #[test]
    fn facets_of_a_seizure() {
        let f = Facets::of(&seizure());
        assert!(f.hs_codes.iter().any(|c| c.starts_with("6403")), "{f:?}");
        assert_eq!(f.location, vec!["NL"]);
        assert_eq!(f.carriers, vec!["express-b"]);
        assert_eq!(f.platforms, vec!["market-a"]);
        assert!(!f.tracking.is_empty());
    }

    #[test]
    fn each_criterion_must_match() {
        let e = seizure();
        let facets = Facets::of(&e);
        let parse = |f: pb::Filter| MessageFilter::parse(Some(&f), "filter").unwrap();
        assert!(parse(pb::Filter::default()).matches(&e, &facets));
        assert!(parse(pb::Filter {
            hs_prefixes: vec!["64".into()],
            location_countries: vec!["NL".into()],
            ..Default::default()
        })
        .matches(&e, &facets));
        assert!(!parse(pb::Filter {
            hs_prefixes: vec!["64".into()],
            location_countries: vec!["FR".into()],
            ..Default::default()
        })
        .matches(&e, &facets));
        assert!(!parse(pb::Filter {
            kinds: vec![Kind::SellerFlag as i32],
            ..Default::default()
        })
        .matches(&e, &facets));
        assert!(!parse(pb::Filter {
            min_tlp: Tlp::Amber as i32,
            ..Default::default()
        })
        .matches(&e, &facets));
    }

    #[test]
    fn bad_filters_are_named() {
        let err = MessageFilter::parse(
            Some(&pb::Filter {
                hs_prefixes: vec!["6".into()],
                origin_countries: vec!["XX".into()],
                kinds: vec![0],
                ..Default::default()
            }),
            "filter",
        )
        .unwrap_err();
        let fields: Vec<&str> = err.items().iter().map(|(f, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            [
                "filter.kinds[0]",
                "filter.hs_prefixes[0]",
                "filter.origin_countries[0]"
            ]
        );
    }
}
