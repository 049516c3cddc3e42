//! Who is calling: the mutual-TLS acceptor and the peer certificate it reads once per
//! connection ([`tls`]), the participant registry ([`registry`]), the caller a certificate
//! identifies ([`identity`]), and the officer tokens (JWT) bound to that certificate
//! ([`token`]).
//!
//! Uses [`crate::domain`] and [`crate::pb`].

pub mod identity;
pub mod registry;
pub mod tls;
pub mod token;
