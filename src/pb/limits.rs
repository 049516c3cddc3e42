//! Limits of the protocol that the gateway enforces and its clients page by. They live with
//! the wire types so that a client needs nothing of the server to respect them.

/// Most envelopes in one `SubmitBatch`.
pub const MAX_BATCH: usize = 100;
/// Default page of `ListInbox`.
pub const DEFAULT_PAGE: u32 = 100;
/// Largest page of `ListInbox`.
pub const MAX_PAGE: u32 = 1000;
/// Default page of `Search`.
pub const DEFAULT_SEARCH_PAGE: u32 = 100;
/// Largest page of `Search`.
pub const MAX_SEARCH_PAGE: u32 = 1000;
/// Most leaves per `GetLeaves` call.
pub const MAX_LEAVES: u64 = 1000;
/// Longest durable subscription name.
pub const MAX_SUBSCRIPTION_NAME: usize = 64;

// Every repeated field of a request has a maximum; more items are refused with a field
// violation naming the field. README.md ("Limits") has the same table.

/// Most recipients of one envelope (`Envelope.recipients`).
pub const MAX_RECIPIENTS: usize = 100;
/// Most references of one envelope (`Envelope.refs`).
pub const MAX_REFS: usize = 20;
/// Most countries in a territorial scope (`Envelope.territorial_scope`,
/// `TakedownOutcome.territorial_scope`): the 249 assigned ISO 3166-1 codes.
pub const MAX_TERRITORIAL_SCOPE: usize = 249;
/// Most listing URLs of a takedown notice (`TakedownNotice.listing_urls`; at least one).
pub const MAX_LISTING_URLS: usize = 100;
/// Most pieces of evidence of a takedown notice (`TakedownNotice.evidence`).
pub const MAX_EVIDENCE: usize = 20;
/// Most pseudonyms of a seller flag (`SellerFlag.pseudonyms`).
pub const MAX_PSEUDONYMS: usize = 20;
/// Most reasons of a seller flag (`SellerFlag.reasons`; at least one, each once).
pub const MAX_FLAG_REASONS: usize = 100;
/// Most linked listing URLs of a seller flag (`SellerFlag.linked_listing_urls`).
pub const MAX_LINKED_LISTINGS: usize = 100;
/// Most linked seizures of a seller flag (`SellerFlag.linked_seizures`).
pub const MAX_LINKED_SEIZURES: usize = 100;
/// Most brands of a seller flag (`SellerFlag.brands`).
pub const MAX_BRANDS: usize = 100;
/// Most items of a seizure notification (`SeizureNotification.items`; at least one).
pub const MAX_SEIZED_ITEMS: usize = 200;
/// Most identifiers of a data request (`DataRequest.identifiers`; at least one).
pub const MAX_IDENTIFIERS: usize = 100;
/// Most field names of a data request (`DataRequest.fields`; at least one).
pub const MAX_REQUESTED_FIELDS: usize = 100;
/// Most records of a data response (`DataResponse.records`).
pub const MAX_RECORDS: usize = 100;
/// Most fields of one record of a data response (`DataRecord.fields`).
pub const MAX_RECORD_FIELDS: usize = 100;
/// Most values of each repeated field of a `Filter` (`kinds`, `hs_prefixes`,
/// `origin_countries`, `destination_countries`, `location_countries`, `brands`, `carriers`,
/// `platforms`) and of `ListInboxRequest.kinds`.
pub const MAX_FILTER_VALUES: usize = 100;
/// Longest envelope `signature`, in characters (an ES256 or EdDSA JWS is about 250).
pub const MAX_SIGNATURE_LEN: usize = 1024;
