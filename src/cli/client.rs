//! Connecting to a gateway over mutual TLS, for the CLI, the tests and the benchmarks.

use crate::pb;
use std::path::Path;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint, Identity};

/// Errors connecting.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// A certificate or key file could not be read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// Why.
        source: std::io::Error,
    },
    /// The token cannot be sent as a header.
    #[error("the token has characters that cannot be sent in a header")]
    Token,
    /// The endpoint or TLS settings are invalid, or the connection failed.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The gateway address.
        endpoint: String,
        /// Why.
        source: tonic::transport::Error,
    },
}

/// What a client presents and trusts.
#[derive(Clone, Debug)]
pub struct ClientTls {
    /// Client certificate, PEM.
    pub cert_pem: String,
    /// Client key, PEM.
    pub key_pem: String,
    /// CA that issued the gateway's certificate, PEM.
    pub ca_pem: String,
    /// Name to check the gateway's certificate against.
    pub server_name: String,
}

impl ClientTls {
    /// Reads the PEM files.
    pub fn from_files(
        cert: &Path,
        key: &Path,
        ca: &Path,
        server_name: &str,
    ) -> Result<ClientTls, ClientError> {
        let read = |path: &Path| {
            std::fs::read_to_string(path).map_err(|source| ClientError::Read {
                path: path.display().to_string(),
                source,
            })
        };
        Ok(ClientTls {
            cert_pem: read(cert)?,
            key_pem: read(key)?,
            ca_pem: read(ca)?,
            server_name: server_name.to_string(),
        })
    }

    /// A development participant's files under `certs_dir`.
    pub fn dev(certs_dir: &Path, participant: &str) -> Result<ClientTls, ClientError> {
        let paths = crate::dev::paths::DevPaths {
            dir: certs_dir.to_path_buf(),
        };
        ClientTls::from_files(
            &paths.cert(participant),
            &paths.key(participant),
            &paths.ca(),
            "localhost",
        )
    }
}

/// HTTP/2 receive window of each call on a channel: what one stream the application does not
/// read may hold in the client (1 MiB).
pub const STREAM_WINDOW: u32 = 1 << 20;

/// HTTP/2 receive window of a channel as a whole: the largest HTTP/2 allows, so that it never
/// binds before the windows of the streams do. In the HTTP/2 client, bytes a stream received
/// count against the connection's window until the application reads them; with the default
/// windows (2 MiB a stream, 5 MiB the connection) three subscription streams left unread — a
/// consumer waiting for the answer to its `Ack` on the same channel — took the whole window,
/// and that answer, like every other byte for the channel, could no longer be sent. What an
/// unread stream holds stays bounded by [`STREAM_WINDOW`].
pub const CONNECTION_WINDOW: u32 = (1 << 31) - 1;

/// Opens a channel to `endpoint` (`https://127.0.0.1:50051`).
pub async fn connect(endpoint: &str, tls: &ClientTls) -> Result<Channel, ClientError> {
    let err = |source| ClientError::Connect {
        endpoint: endpoint.to_string(),
        source,
    };
    let config = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(&tls.ca_pem))
        .identity(Identity::from_pem(&tls.cert_pem, &tls.key_pem))
        .domain_name(tls.server_name.clone());
    Endpoint::from_shared(endpoint.to_string())
        .map_err(err)?
        .tls_config(config)
        .map_err(err)?
        .initial_stream_window_size(STREAM_WINDOW)
        .initial_connection_window_size(CONNECTION_WINDOW)
        .connect()
        .await
        .map_err(err)
}

/// Adds `authorization: Bearer <token>` to every call, when there is a token.
#[derive(Clone, Default)]
pub struct Bearer {
    /// The header value, ready to send.
    value: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

impl Bearer {
    /// A bearer of `token`; `None` sends no header.
    pub fn new(token: Option<&str>) -> Result<Bearer, ClientError> {
        let value = token
            .map(|t| format!("Bearer {}", t.trim()).parse())
            .transpose()
            .map_err(|_| ClientError::Token)?;
        Ok(Bearer { value })
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The transport of every client: the channel, with the officer token if any.
pub type Transport = tonic::service::interceptor::InterceptedService<Channel, Bearer>;

/// Clients of every service on one channel.
#[derive(Clone)]
pub struct Clients {
    /// `ipex.v1.Exchange`.
    pub exchange: pb::exchange_client::ExchangeClient<Transport>,
    /// `ipex.v1.Participants`.
    pub participants: pb::participants_client::ParticipantsClient<Transport>,
    /// `ipex.v1.Audit`.
    pub audit: pb::audit_client::AuditClient<Transport>,
    /// The channel, for other clients.
    pub channel: Channel,
}

impl Clients {
    /// Wraps a channel; calls carry no token.
    pub fn new(channel: Channel) -> Clients {
        Clients::with_bearer(channel, Bearer::default())
    }

    /// Wraps a channel; every call carries the bearer's token.
    pub fn with_bearer(channel: Channel, bearer: Bearer) -> Clients {
        let transport =
            tonic::service::interceptor::InterceptedService::new(channel.clone(), bearer);
        Clients {
            exchange: pb::exchange_client::ExchangeClient::new(transport.clone()),
            participants: pb::participants_client::ParticipantsClient::new(transport.clone()),
            audit: pb::audit_client::AuditClient::new(transport),
            channel,
        }
    }
}
