//! Search over everything a participant may read, served from secondary indexes written in
//! the same batch as the envelope (`x/<facet>/<value>\0<seq>`), so a query reads the index
//! entries of its most selective criterion instead of scanning the store. The other criteria,
//! TLP and policy are then checked on each candidate.

use crate::error::Error;
use crate::filter::{Facets, MessageFilter};
use crate::gateway::Gateway;
use crate::identity::Caller;
use crate::model::Violations;
use crate::pb;
use base64::Engine;

/// Index key prefix.
pub const INDEX: &[u8] = b"x/";

/// Facet letters of the index keys.
mod facet {
    pub const KIND: u8 = b'k';
    pub const HS: u8 = b'h';
    pub const ORIGIN: u8 = b'o';
    pub const DESTINATION: u8 = b'd';
    pub const LOCATION: u8 = b'l';
    pub const BRAND: u8 = b'b';
    pub const CARRIER: u8 = b'c';
    pub const PLATFORM: u8 = b'p';
    pub const SELLER: u8 = b's';
    pub const LISTING: u8 = b'i';
    pub const TRACKING: u8 = b't';
}

fn prefix(facet: u8, value: &str) -> Vec<u8> {
    [INDEX, &[facet, b'/'], value.as_bytes(), b"\0"].concat()
}

/// The index key prefixes of a message; its keys are these followed by its sequence number.
/// Computed by the submitting call, so that the committer only appends the number.
pub fn index_prefixes(envelope: &pb::Envelope) -> Vec<Vec<u8>> {
    let f = Facets::of(envelope);
    let key = |facet: u8, value: &str| prefix(facet, value);
    let mut keys = vec![key(facet::KIND, &envelope.kind.to_string())];
    let mut hs: Vec<&str> = Vec::new();
    for code in &f.hs_codes {
        for len in [2, 4] {
            if let Some(p) = code.get(..len) {
                if !hs.contains(&p) {
                    hs.push(p);
                }
            }
        }
    }
    keys.extend(hs.into_iter().map(|p| key(facet::HS, p)));
    for (letter, values) in [
        (facet::ORIGIN, &f.origin),
        (facet::DESTINATION, &f.destination),
        (facet::LOCATION, &f.location),
        (facet::BRAND, &f.brands),
        (facet::CARRIER, &f.carriers),
        (facet::PLATFORM, &f.platforms),
        (facet::SELLER, &f.sellers),
        (facet::LISTING, &f.listings),
        (facet::TRACKING, &f.tracking),
    ] {
        keys.extend(values.iter().map(|v| key(letter, v)));
    }
    keys
}

/// A validated search request.
struct Query {
    filter: MessageFilter,
    seller: Option<String>,
    listing: Option<String>,
    tracking: Option<String>,
    from: Option<(i64, i32)>,
    to: Option<(i64, i32)>,
    oldest_first: bool,
    limit: usize,
    cursor: Option<u64>,
}

/// Default and largest page.
const DEFAULT_LIMIT: u32 = 100;
const MAX_LIMIT: u32 = 1000;

fn encode_cursor(seq: u64) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(format!("ipex:1:{seq}"))
}

fn decode_cursor(cursor: &str) -> Option<u64> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(cursor)
        .ok()?;
    String::from_utf8(bytes)
        .ok()?
        .strip_prefix("ipex:1:")?
        .parse()
        .ok()
}

impl Query {
    fn parse(r: pb::SearchRequest) -> Result<Query, Violations> {
        let mut v = Violations::default();
        let filter = MessageFilter::parse(r.filter.as_ref(), "filter").unwrap_or_else(|e| {
            v.append(e);
            MessageFilter::default()
        });
        let text = |value: String, field: &str, v: &mut Violations| {
            let value = value.trim().to_string();
            if value.chars().count() > 200 {
                v.add(field, "at most 200 characters");
            }
            (!value.is_empty()).then_some(value)
        };
        let seller = text(r.seller, "seller", &mut v);
        let listing = text(r.listing_id, "listing_id", &mut v);
        let tracking = text(r.tracking_number, "tracking_number", &mut v);
        let limit = match r.limit {
            0 => DEFAULT_LIMIT,
            n if n > MAX_LIMIT => {
                v.add("limit", format!("at most {MAX_LIMIT}"));
                n
            }
            n => n,
        } as usize;
        let cursor = if r.cursor.is_empty() {
            None
        } else {
            let seq = decode_cursor(&r.cursor);
            if seq.is_none() {
                v.add("cursor", "is not a cursor this gateway returned");
            }
            seq
        };
        let time = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos));
        let (from, to) = (time(r.stored_from), time(r.stored_to));
        if let (Some(f), Some(t)) = (from, to) {
            if f >= t {
                v.add("stored_to", "must be after stored_from");
            }
        }
        if !v.is_empty() {
            return Err(v);
        }
        Ok(Query {
            filter,
            seller,
            listing,
            tracking,
            from,
            to,
            oldest_first: r.oldest_first,
            limit,
            cursor,
        })
    }

    /// The most selective index for this query: a facet letter and its values.
    fn index(&self) -> Option<(u8, Vec<String>)> {
        let one = |v: &Option<String>| v.clone().map(|v| vec![v]);
        let many = |v: &Vec<String>| (!v.is_empty()).then(|| v.clone());
        one(&self.seller)
            .map(|v| (facet::SELLER, v))
            .or_else(|| one(&self.listing).map(|v| (facet::LISTING, v)))
            .or_else(|| one(&self.tracking).map(|v| (facet::TRACKING, v)))
            .or_else(|| many(&self.filter.carriers).map(|v| (facet::CARRIER, v)))
            .or_else(|| many(&self.filter.platforms).map(|v| (facet::PLATFORM, v)))
            .or_else(|| many(&self.filter.brands).map(|v| (facet::BRAND, v)))
            .or_else(|| {
                many(&self.filter.hs_prefixes).map(|v| {
                    let p = v
                        .into_iter()
                        .map(|p| p[..if p.len() >= 4 { 4 } else { 2 }].to_string())
                        .collect();
                    (facet::HS, p)
                })
            })
            .or_else(|| many(&self.filter.location).map(|v| (facet::LOCATION, v)))
            .or_else(|| many(&self.filter.origin).map(|v| (facet::ORIGIN, v)))
            .or_else(|| many(&self.filter.destination).map(|v| (facet::DESTINATION, v)))
            .or_else(|| {
                (!self.filter.kinds.is_empty()).then(|| {
                    (
                        facet::KIND,
                        self.filter.kinds.iter().map(|k| k.to_string()).collect(),
                    )
                })
            })
    }

    fn matches(&self, envelope: &pb::Envelope, receipt: &pb::Receipt) -> bool {
        let facets = Facets::of(envelope);
        let stored = receipt
            .stored_at
            .map(|t| (t.seconds, t.nanos))
            .unwrap_or((0, 0));
        self.filter.matches(envelope, &facets)
            && self
                .seller
                .as_ref()
                .is_none_or(|s| facets.sellers.contains(s))
            && self
                .listing
                .as_ref()
                .is_none_or(|s| facets.listings.contains(s))
            && self
                .tracking
                .as_ref()
                .is_none_or(|s| facets.tracking.contains(s))
            && self.from.is_none_or(|f| stored >= f)
            && self.to.is_none_or(|t| stored < t)
    }
}

impl Gateway {
    /// One page of the messages the caller may read that match the request, newest first
    /// unless asked otherwise. The page is recorded in the audit log as one read.
    pub async fn search(
        &self,
        caller: &Caller,
        request: pb::SearchRequest,
    ) -> Result<pb::SearchResponse, Error> {
        let query = Query::parse(request)?;
        let last = self.store.last_seq();
        // The window of sequence numbers still to look at, exclusive of the cursor.
        let (low, high) = match (query.oldest_first, query.cursor) {
            (true, Some(c)) => (c.saturating_add(1), last),
            (true, None) => (1, last),
            (false, Some(c)) => (1, c.saturating_sub(1).min(last)),
            (false, None) => (1, last),
        };
        let budget = (query.limit * 10).max(1000);
        let candidates = self.candidates(&query, low, high, budget)?;
        let exhausted = candidates.len() < budget;
        let mut messages = Vec::new();
        let mut next = None;
        for seq in &candidates {
            let Some(stored) = self.store.get(*seq)? else {
                continue;
            };
            if query.matches(&stored.envelope, &stored.receipt) && self.may_read(caller, &stored) {
                messages.push(crate::gateway::view(stored, caller.id()));
                if messages.len() == query.limit {
                    next = Some(*seq);
                    break;
                }
            }
        }
        if next.is_none() && !exhausted {
            next = candidates.last().copied();
        }
        self.record_read(caller, "Search", messages.iter().map(|m| m.seq).collect())
            .await?;
        Ok(pb::SearchResponse {
            messages,
            next_cursor: next.map(encode_cursor).unwrap_or_default(),
        })
    }

    /// Up to `budget` sequence numbers in `[low, high]`, in the order asked, from the
    /// query's index (or from the message table when no criterion is indexed).
    fn candidates(
        &self,
        query: &Query,
        low: u64,
        high: u64,
        budget: usize,
    ) -> Result<Vec<u64>, Error> {
        if low > high {
            return Ok(Vec::new());
        }
        let kv = self.store.kv();
        let ranges: Vec<(Vec<u8>, Vec<u8>)> = match query.index() {
            Some((letter, values)) => values
                .iter()
                .map(|v| {
                    let p = prefix(letter, v);
                    (
                        [p.clone(), low.to_be_bytes().to_vec()].concat(),
                        [p, high.saturating_add(1).to_be_bytes().to_vec()].concat(),
                    )
                })
                .collect(),
            None => vec![(
                [b"e/".as_slice(), &low.to_be_bytes()].concat(),
                [b"e/".as_slice(), &high.saturating_add(1).to_be_bytes()].concat(),
            )],
        };
        let mut seqs = Vec::new();
        for (from, to) in ranges {
            let entries = kv.range(&from, &to);
            let entries: Box<dyn Iterator<Item = _>> = if query.oldest_first {
                Box::new(entries)
            } else {
                Box::new(entries.rev())
            };
            for entry in entries.take(budget) {
                let (key, _) = entry?;
                if let Some(seq) = key
                    .len()
                    .checked_sub(8)
                    .and_then(|at| key[at..].try_into().ok())
                    .map(u64::from_be_bytes)
                {
                    seqs.push(seq);
                }
            }
        }
        seqs.sort_unstable();
        seqs.dedup();
        if !query.oldest_first {
            seqs.reverse();
        }
        seqs.truncate(budget);
        Ok(seqs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursors_round_trip_and_reject_junk() {
        assert_eq!(decode_cursor(&encode_cursor(42)), Some(42));
        assert_eq!(decode_cursor("42"), None);
        assert_eq!(decode_cursor(""), None);
    }
}
