//! Search over everything a participant may read, served from secondary indexes written in
//! the same batch as the envelope (`x/<facet>/<value>\0<seq>`), so a query reads the index
//! entries of its most selective criterion instead of scanning the store. The other criteria,
//! TLP and policy are then checked on each candidate.

use super::error::Error;
use super::Gateway;
use crate::auth::identity::Caller;
use crate::domain::facets::{Facet, Facets, MessageFilter};
use crate::domain::Violations;
use crate::pb;
use crate::pb::limits::{DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE};
use base64::Engine;

/// A validated search request: a filter whose seller, listing and tracking criteria come
/// from the request's own fields.
struct Query {
    filter: MessageFilter,
    from: Option<(i64, i32)>,
    to: Option<(i64, i32)>,
    oldest_first: bool,
    limit: usize,
    cursor: Option<u64>,
}

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
        let mut filter = MessageFilter::parse(r.filter.as_ref(), "filter").unwrap_or_else(|e| {
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
        for (facet, value, field) in [
            (Facet::Seller, r.seller, "seller"),
            (Facet::Listing, r.listing_id, "listing_id"),
            (Facet::Tracking, r.tracking_number, "tracking_number"),
        ] {
            if let Some(value) = text(value, field, &mut v) {
                filter.want(facet, value);
            }
        }
        let limit = super::page_limit(r.limit, DEFAULT_SEARCH_PAGE, MAX_SEARCH_PAGE, &mut v);
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
            from,
            to,
            oldest_first: r.oldest_first,
            limit,
            cursor,
        })
    }

    /// The most selective index for this query: a facet and the values wanted of it.
    fn index(&self) -> Option<(Facet, &[String])> {
        Facet::BY_SELECTIVITY
            .into_iter()
            .map(|facet| (facet, self.filter.wanted(facet)))
            .find(|(_, wanted)| !wanted.is_empty())
    }

    fn matches(&self, envelope: &pb::Envelope, receipt: &pb::Receipt) -> bool {
        let stored = receipt
            .stored_at
            .map(|t| (t.seconds, t.nanos))
            .unwrap_or((0, 0));
        self.filter.matches(envelope, &Facets::of(envelope))
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
        self.store.settled().await?;
        let last = self.store.last_seq();
        // The window of sequence numbers still to look at, exclusive of the cursor.
        let (low, high) = match (query.oldest_first, query.cursor) {
            (true, Some(c)) => (c.saturating_add(1), last),
            (true, None) => (1, last),
            (false, Some(c)) => (1, c.saturating_sub(1).min(last)),
            (false, None) => (1, last),
        };
        let budget = (query.limit * 10).max(1000);
        let candidates =
            self.store
                .postings(query.index(), low, high, budget, query.oldest_first)?;
        let exhausted = candidates.len() < budget;
        let mut messages = Vec::new();
        let mut next = None;
        for seq in &candidates {
            let Some(stored) = self.store.get(*seq)? else {
                continue;
            };
            if query.matches(&stored.envelope, &stored.receipt) && self.may_read(caller, &stored) {
                messages.push(super::view(stored, caller.id()));
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
