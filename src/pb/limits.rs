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
