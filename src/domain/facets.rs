//! What subscribers and searches ask for: the searchable [`Facets`] of an envelope, and a
//! [`MessageFilter`] parsed from `ipex.v1.Filter` (and the seller, listing and tracking
//! criteria of `SearchRequest`) matched against them. The facets are listed once, in
//! [`Facet`]; the secondary indexes of the store are keyed by the same list, so a search and a
//! subscription with the same filter select the same messages.

use super::violations::Violations;
use super::vocab;
use crate::pb::limits::MAX_FILTER_VALUES;
use crate::pb::{self, envelope::Payload, Kind, Tlp};

/// A searchable property of a message. Countries, HS codes and ids are as sent; brands are
/// lower-cased; the kind is its proto number in decimal.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Facet {
    /// The message kind.
    Kind,
    /// HS codes of items, products and declared contents (matched and indexed by prefix).
    Hs,
    /// Countries of origin (seizures, seller flags' ship-from) or of the shipper.
    Origin,
    /// Countries of destination or of the consignee.
    Destination,
    /// Countries where seizures took place.
    Location,
    /// Brands, lower-cased.
    Brand,
    /// Carrier participant ids.
    Carrier,
    /// Platform participant ids.
    Platform,
    /// Seller ids and pseudonyms.
    Seller,
    /// Listing ids.
    Listing,
    /// Tracking numbers and UPU item ids.
    Tracking,
    /// Messages it refs or supersedes, as `sender/id` (a participant id holds no '/'): the
    /// messages that answer or tell of a message are found through it.
    Ref,
    /// Customs case references.
    Case,
    /// Listing URLs.
    Url,
    /// The peer gateways a message of this gateway's participants goes to: the gateway of
    /// each recipient `<id>@<gateway>`, and `*` for a GREEN or CLEAR broadcast (for the peers
    /// that take broadcasts). The outbox to each peer is read through it.
    Gateway,
}

/// The [`Facet::Gateway`] value of a GREEN or CLEAR broadcast.
pub const BROADCAST: &str = "*";

/// The [`Facet::Gateway`] values of a stored envelope: the gateway of each recipient
/// `<id>@<gateway>`, and [`BROADCAST`] for a GREEN or CLEAR broadcast. Only what this
/// gateway's own participants send goes out to peers: a message that came from a peer
/// (sender `<id>@<gateway>`) has none, and is never forwarded again.
pub fn gateways_of(envelope: &pb::Envelope) -> Vec<&str> {
    if envelope.sender.contains('@') {
        return Vec::new();
    }
    let mut gateways: Vec<&str> = envelope
        .recipients
        .iter()
        .filter_map(|r| super::participant::split_address(r).1)
        .collect();
    let broadcast = envelope.recipients.is_empty()
        && matches!(
            pb::Tlp::try_from(envelope.tlp),
            Ok(pb::Tlp::Green | pb::Tlp::Clear)
        );
    if broadcast {
        gateways.push(BROADCAST);
    }
    gateways
}

impl Facet {
    /// Every facet.
    pub const ALL: [Facet; 15] = [
        Facet::Kind,
        Facet::Hs,
        Facet::Origin,
        Facet::Destination,
        Facet::Location,
        Facet::Brand,
        Facet::Carrier,
        Facet::Platform,
        Facet::Seller,
        Facet::Listing,
        Facet::Tracking,
        Facet::Ref,
        Facet::Case,
        Facet::Url,
        Facet::Gateway,
    ];

    /// The facets in the order a search prefers their index: the most selective first.
    pub const BY_SELECTIVITY: [Facet; 15] = [
        Facet::Gateway,
        Facet::Ref,
        Facet::Case,
        Facet::Url,
        Facet::Seller,
        Facet::Listing,
        Facet::Tracking,
        Facet::Carrier,
        Facet::Platform,
        Facet::Brand,
        Facet::Hs,
        Facet::Location,
        Facet::Origin,
        Facet::Destination,
        Facet::Kind,
    ];

    fn slot(self) -> usize {
        self as usize
    }

    /// The values under which a message with facet value `value` is indexed: the value
    /// itself, but for HS codes their chapter (2 digits) and heading (4 digits), the
    /// prefixes a filter asks for.
    pub fn index_values(self, value: &str) -> Vec<&str> {
        match self {
            Facet::Hs => [2, 4].iter().filter_map(|&n| value.get(..n)).collect(),
            _ => vec![value],
        }
    }

    /// The index value a search for `wanted` reads: for an HS prefix, its chapter or
    /// heading (the candidates are then checked against the whole prefix).
    pub fn index_lookup(self, wanted: &str) -> &str {
        match self {
            Facet::Hs => &wanted[..if wanted.len() >= 4 { 4 } else { 2 }],
            _ => wanted,
        }
    }

    /// Does the facet value `have` satisfy the criterion value `wanted`?
    fn satisfies(self, have: &str, wanted: &str) -> bool {
        match self {
            Facet::Hs => have.starts_with(wanted),
            _ => have == wanted,
        }
    }
}

/// One list of values per [`Facet`].
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct PerFacet([Vec<String>; Facet::ALL.len()]);

impl PerFacet {
    fn get(&self, facet: Facet) -> &[String] {
        &self.0[facet.slot()]
    }

    fn get_mut(&mut self, facet: Facet) -> &mut Vec<String> {
        &mut self.0[facet.slot()]
    }
}

/// The values of an envelope that filters and indexes look at.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Facets(PerFacet);

impl Facets {
    /// The values of `facet`.
    pub fn get(&self, facet: Facet) -> &[String] {
        self.0.get(facet)
    }

    /// Every `(facet, value)` of the envelope.
    pub fn iter(&self) -> impl Iterator<Item = (Facet, &str)> {
        Facet::ALL
            .into_iter()
            .flat_map(move |f| self.get(f).iter().map(move |v| (f, v.as_str())))
    }

    fn push(&mut self, facet: Facet, value: &str) {
        let value = value.trim();
        let value = match facet {
            Facet::Brand => value.to_lowercase(),
            _ => value.to_string(),
        };
        let list = self.0.get_mut(facet);
        if !value.is_empty() && !list.contains(&value) {
            list.push(value);
        }
    }

    fn seller_ref(&mut self, s: Option<&pb::SellerRef>) {
        if let Some(s) = s {
            self.push(Facet::Platform, &s.platform);
            self.push(Facet::Seller, &s.seller_id);
            self.push(Facet::Seller, &s.seller_pseudonym);
            self.push(Facet::Listing, &s.listing_id);
            self.push(Facet::Url, &s.listing_url);
        }
    }

    /// The [`Facet::Ref`] value of a message.
    pub fn ref_value(sender: &str, id: &str) -> String {
        format!("{sender}/{id}")
    }

    fn transport(&mut self, t: Option<&pb::TransportRefs>) {
        if let Some(t) = t {
            self.push(Facet::Carrier, &t.carrier);
            self.push(Facet::Tracking, &t.tracking_number);
            self.push(Facet::Tracking, &t.upu_item_id);
        }
    }

    /// The facets of a stored envelope.
    pub fn of(envelope: &pb::Envelope) -> Facets {
        use Facet::*;
        let mut f = Facets::default();
        f.push(Kind, &envelope.kind.to_string());
        for gateway in gateways_of(envelope) {
            f.push(Gateway, gateway);
        }
        for r in envelope.refs.iter().chain(envelope.supersedes.as_ref()) {
            f.push(Ref, &Facets::ref_value(&r.sender, &r.id));
        }
        match &envelope.payload {
            Some(Payload::TakedownNotice(n)) => {
                f.push(Platform, &n.platform);
                f.push(Listing, &n.listing_id);
                for url in &n.listing_urls {
                    f.push(Url, url);
                }
                f.seller_ref(n.seller.as_ref());
                if let Some(p) = &n.product {
                    f.push(Hs, &p.hs_code);
                    f.push(Brand, &p.brand);
                }
            }
            Some(Payload::TakedownOutcome(_)) => f.push(Platform, &envelope.sender),
            Some(Payload::SellerFlag(flag)) => {
                f.push(Platform, &envelope.sender);
                f.push(Seller, &flag.platform_seller_id);
                for p in &flag.pseudonyms {
                    f.push(Seller, &p.hmac_sha256);
                }
                for b in &flag.brands {
                    f.push(Brand, b);
                }
                f.push(Origin, &flag.ship_from_country);
                for url in &flag.linked_listing_urls {
                    f.push(Url, url);
                }
                for r in &flag.linked_seizures {
                    f.push(Ref, &Facets::ref_value(&r.sender, &r.id));
                }
            }
            Some(Payload::SeizureNotification(s)) => {
                for item in &s.items {
                    f.push(Hs, &item.hs_code);
                    f.push(Brand, &item.brand);
                }
                f.push(Origin, &s.origin_country);
                f.push(Destination, &s.destination_country);
                if let Some(l) = &s.location {
                    f.push(Location, &l.country);
                }
                f.transport(s.transport.as_ref());
                f.seller_ref(s.seller.as_ref());
                f.push(Case, &s.case_reference);
            }
            Some(Payload::ShipmentAlert(a)) => {
                f.push(Hs, &a.hs_code);
                f.push(Origin, &a.shipper_country);
                f.push(Destination, &a.consignee_country);
                f.transport(a.transport.as_ref());
                f.push(Carrier, &envelope.sender);
            }
            Some(Payload::DataRequest(r)) => {
                let target = match pb::DataSubject::try_from(r.subject) {
                    Ok(pb::DataSubject::Seller) => Some(Seller),
                    Ok(pb::DataSubject::Listing) => Some(Listing),
                    Ok(pb::DataSubject::Shipment) => Some(Tracking),
                    _ => None,
                };
                if let Some(facet) = target {
                    for id in &r.identifiers {
                        f.push(facet, id);
                    }
                }
            }
            Some(Payload::ListingAlert(a)) => {
                // Addressed to the platform alone: indexed under it, as its notices are.
                for platform in &envelope.recipients {
                    f.push(Platform, platform);
                }
                // Not under its seller: an alert is no new sighting of the seller, and matching
                // reads the seller postings.
                f.push(Listing, &a.listing_id);
                f.push(Location, &a.seizure_country);
                f.push(Case, &a.case_reference);
                for url in &a.listing_urls {
                    f.push(Url, url);
                }
                for item in &a.items {
                    f.push(Hs, &item.hs_code);
                    f.push(Brand, &item.brand);
                }
            }
            Some(Payload::ForwardingReport(r)) => {
                // Found from the message it reports on, like an answer.
                if let Some(m) = &r.message {
                    f.push(Ref, &Facets::ref_value(&m.sender, &m.id));
                }
            }
            Some(Payload::DataResponse(_) | Payload::SellerMatch(_)) | None => {}
        }
        f
    }
}

/// A validated filter. Every criterion given must match; within one, any value may.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct MessageFilter {
    /// The values wanted per facet; none wanted means any.
    wanted: PerFacet,
    /// Least TLP (proto number; 0 = any).
    min_tlp: i32,
}

impl MessageFilter {
    /// Validates a proto filter; violations are named under `path` (e.g. `filter`).
    pub fn parse(filter: Option<&pb::Filter>, path: &str) -> Result<MessageFilter, Violations> {
        let mut out = MessageFilter::default();
        let Some(f) = filter else {
            return Ok(out);
        };
        let mut v = Violations::default();
        let mut at_most = |field: &str, len: usize| {
            if len > MAX_FILTER_VALUES {
                v.add(
                    format!("{path}.{field}"),
                    format!("at most {MAX_FILTER_VALUES} values, not {len}"),
                );
            }
        };
        at_most("kinds", f.kinds.len());
        for (field, len) in [
            ("hs_prefixes", f.hs_prefixes.len()),
            ("origin_countries", f.origin_countries.len()),
            ("destination_countries", f.destination_countries.len()),
            ("location_countries", f.location_countries.len()),
            ("brands", f.brands.len()),
            ("carriers", f.carriers.len()),
            ("platforms", f.platforms.len()),
        ] {
            at_most(field, len);
        }
        for (i, k) in f.kinds.iter().enumerate() {
            match Kind::try_from(*k) {
                Ok(Kind::Unspecified) | Err(_) => v.add(
                    format!("{path}.kinds[{i}]"),
                    format!("{k} is not a message kind"),
                ),
                Ok(_) => out.want(Facet::Kind, k.to_string()),
            }
        }
        // The proto field each facet of a filter comes from, with its check.
        type Check = fn(&str) -> Result<(), String>;
        let hs: Check = |p| {
            if (2..=10).contains(&p.len()) && p.bytes().all(|b| b.is_ascii_digit()) {
                Ok(())
            } else {
                Err(format!("{p:?} must be 2 to 10 digits"))
            }
        };
        let brand: Check = |b| {
            if b.trim().is_empty() || b.chars().count() > 200 {
                Err("must be 1 to 200 characters".into())
            } else {
                vocab::plain_text(b)
            }
        };
        let fields: [(Facet, &str, &[String], Check); 7] = [
            (Facet::Hs, "hs_prefixes", &f.hs_prefixes, hs),
            (
                Facet::Origin,
                "origin_countries",
                &f.origin_countries,
                vocab::country,
            ),
            (
                Facet::Destination,
                "destination_countries",
                &f.destination_countries,
                vocab::country,
            ),
            (
                Facet::Location,
                "location_countries",
                &f.location_countries,
                vocab::country,
            ),
            (Facet::Brand, "brands", &f.brands, brand),
            (
                Facet::Carrier,
                "carriers",
                &f.carriers,
                vocab::participant_id,
            ),
            (
                Facet::Platform,
                "platforms",
                &f.platforms,
                vocab::participant_id,
            ),
        ];
        for (facet, field, values, check) in fields {
            for (i, value) in values.iter().enumerate() {
                match check(value) {
                    Ok(()) => out.want(facet, value.clone()),
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

    /// Adds a wanted value (brands are lower-cased, others trimmed).
    pub fn want(&mut self, facet: Facet, value: String) {
        let value = match facet {
            Facet::Brand => value.trim().to_lowercase(),
            _ => value.trim().to_string(),
        };
        let list = self.wanted.get_mut(facet);
        if !list.contains(&value) {
            list.push(value);
        }
    }

    /// The values wanted of `facet`; empty when any will do.
    pub fn wanted(&self, facet: Facet) -> &[String] {
        self.wanted.get(facet)
    }

    /// Does it look at facets at all? When not, [`MessageFilter::matches`] needs none.
    pub fn wants_facets(&self) -> bool {
        Facet::ALL
            .into_iter()
            .any(|facet| !self.wanted(facet).is_empty())
    }

    /// Does the envelope match, its facets computed only when the filter looks at them?
    pub fn accepts(&self, envelope: &pb::Envelope) -> bool {
        if self.wants_facets() {
            self.matches(envelope, &Facets::of(envelope))
        } else {
            envelope.tlp >= self.min_tlp
        }
    }

    /// Does the envelope (with its facets) match?
    pub fn matches(&self, envelope: &pb::Envelope, facets: &Facets) -> bool {
        envelope.tlp >= self.min_tlp
            && Facet::ALL.into_iter().all(|facet| {
                let wanted = self.wanted(facet);
                wanted.is_empty()
                    || wanted.iter().any(|w| {
                        facets
                            .get(facet)
                            .iter()
                            .any(|have| facet.satisfies(have, w))
                    })
            })
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
        let mut e = crate::pb::json::envelope_from_json(&text).unwrap();
        e.kind = Kind::SeizureNotification as i32;
        e
    }

    #[test]
    fn facets_of_a_seizure() {
        let f = Facets::of(&seizure());
        assert!(
            f.get(Facet::Hs).iter().any(|c| c.starts_with("6403")),
            "{f:?}"
        );
        assert_eq!(f.get(Facet::Location), ["NL"]);
        assert_eq!(f.get(Facet::Carrier), ["express-b"]);
        assert_eq!(f.get(Facet::Platform), ["market-a"]);
        assert!(!f.get(Facet::Tracking).is_empty());
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

    #[test]
    fn hs_codes_are_indexed_by_chapter_and_heading() {
        assert_eq!(Facet::Hs.index_values("640399"), ["64", "6403"]);
        assert_eq!(Facet::Hs.index_lookup("64039"), "6403");
        assert_eq!(Facet::Hs.index_lookup("640"), "64");
        assert_eq!(Facet::Seller.index_values("S-1"), ["S-1"]);
    }
}
