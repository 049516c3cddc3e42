//! Connections to peer gateways: mutual TLS with this gateway's gateway certificate, and the
//! peer's own CA as the only root of trust for its server certificate — a peer's operator
//! vouches for its own gateway, no one else's.

use super::ADD_CHECKPOINT_PATH;
use crate::ops::config::{FederationFiles, PeerConfig};
use http_body_util::BodyExt as _;
use std::time::Duration;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Why a peer could not be reached or answered nothing usable.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// A file of the configuration could not be read.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The connection or the request failed.
    #[error("peer {peer} at {address}: {reason}")]
    Transport {
        /// The peer.
        peer: String,
        /// Its address.
        address: String,
        /// Why.
        reason: String,
    },
}

/// A peer gateway, connected lazily (the first request connects, a broken connection is made
/// again by the next).
#[derive(Clone, Debug)]
pub struct Peer {
    /// Its gateway id.
    pub id: String,
    /// Its address.
    pub address: String,
    channel: Channel,
}

fn read(path: &std::path::Path) -> Result<Vec<u8>, PeerError> {
    std::fs::read(path).map_err(|e| PeerError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

impl Peer {
    /// The peer of `config`, reached as this gateway with the gateway certificate of
    /// `files`; each request may take `timeout`.
    pub fn new(
        config: &PeerConfig,
        files: &FederationFiles,
        timeout: Duration,
    ) -> Result<Peer, PeerError> {
        let transport = |reason: String| PeerError::Transport {
            peer: config.id.clone(),
            address: config.address.clone(),
            reason,
        };
        let host = url::Url::parse(&config.address)
            .ok()
            .and_then(|url| url.host_str().map(str::to_string))
            .unwrap_or_default();
        let server_name = config.server_name.clone().unwrap_or(host);
        let tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(read(&config.ca)?))
            .identity(Identity::from_pem(read(&files.cert)?, read(&files.key)?))
            .domain_name(server_name);
        let channel = Endpoint::from_shared(config.address.clone())
            .map_err(|e| transport(e.to_string()))?
            .tls_config(tls)
            .map_err(|e| transport(e.to_string()))?
            .connect_timeout(timeout)
            .timeout(timeout)
            .connect_lazy();
        Ok(Peer {
            id: config.id.clone(),
            address: config.address.clone(),
            channel,
        })
    }

    /// The gRPC channel to the peer.
    pub fn channel(&self) -> Channel {
        self.channel.clone()
    }

    /// Sends a C2SP tlog-witness `add-checkpoint` request body; returns the HTTP status and
    /// the body of the answer.
    pub async fn add_checkpoint(&self, body: String) -> Result<(u16, String), PeerError> {
        use tonic::codegen::Service as _;
        let transport = |reason: String| PeerError::Transport {
            peer: self.id.clone(),
            address: self.address.clone(),
            reason,
        };
        let uri = format!(
            "{}{ADD_CHECKPOINT_PATH}",
            self.address.trim_end_matches('/')
        );
        let request = http::Request::post(uri)
            .header(http::header::CONTENT_TYPE, "text/plain; charset=utf-8")
            .body(tonic::body::Body::new(http_body_util::Full::new(
                bytes::Bytes::from(body),
            )))
            .map_err(|e| transport(e.to_string()))?;
        let mut channel = self.channel.clone();
        std::future::poll_fn(|cx| channel.poll_ready(cx))
            .await
            .map_err(|e| transport(error_chain(&e)))?;
        let response = channel
            .call(request)
            .await
            .map_err(|e| transport(error_chain(&e)))?;
        let status = response.status().as_u16();
        let body = http_body_util::Limited::new(response.into_body(), 64 * 1024)
            .collect()
            .await
            .map_err(|e| transport(format!("reading the answer: {e}")))?
            .to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }
}

/// An error with its sources, one line.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
