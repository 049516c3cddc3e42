//! The vocabulary of the exchange, pure: what a valid envelope and payload are
//! ([`envelope`], [`payload`], [`vocab`], [`violations`]), the searchable facets of a message
//! and the filters over them ([`facets`]), who may send what to whom and who may read what
//! ([`policy`]), who the participants are ([`participant`]), and seller pseudonyms computed from
//! a seller identifier under a community key ([`pseudonym`]), what the messages the gateway
//! raises itself say ([`derived`]: listing alerts, seller matches), and the signatures an
//! organisation puts on the envelopes it sends ([`signature`]: JWS, detached payload), and a
//! platform's takedown outcomes as DSA statements of reasons ([`dsa`]).
//!
//! Uses only [`crate::pb`]. No tokio, no tonic, no sled, no clock: the caller passes `now`.

pub mod derived;
pub mod dsa;
pub mod envelope;
pub mod facets;
pub mod participant;
pub mod payload;
pub mod policy;
pub mod pseudonym;
pub mod signature;
pub mod violations;
pub mod vocab;

pub use envelope::ValidEnvelope;
pub use violations::Violations;
