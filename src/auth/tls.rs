//! Mutual TLS for the gateway: our own rustls server configuration (TLS 1.3 only, client
//! certificate required and chained to the participants' CA) and an accept loop that hands
//! tonic connections whose [`PeerInfo`] already holds the parsed client certificate.
//!
//! We do not use tonic's `ServerTlsConfig`: it takes one CA and no revocation lists, and would
//! have us parse the certificate on every call. Handshakes run in their own tasks with a
//! deadline, so a slow or hostile client cannot hold up other connections.

use crate::auth::identity::{PeerCert, PeerInfo};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::server::Connected;

/// Errors building the TLS configuration.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read.
    #[error("cannot read {what} from {path}: {reason}")]
    Pem {
        /// What was expected (certificate, private key, CA).
        what: &'static str,
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// rustls refused the configuration.
    #[error("invalid TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider used everywhere: ring (it builds without cmake).
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Reads every certificate of a PEM file.
pub fn load_certs(
    path: &Path,
    what: &'static str,
) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let err = |reason: String| TlsError::Pem {
        what,
        path: path.display().to_string(),
        reason,
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| err(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(e.to_string()))?;
    if certs.is_empty() {
        return Err(err("no certificate in the file".into()));
    }
    Ok(certs)
}

/// Reads a private key from a PEM file.
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path).map_err(|e| TlsError::Pem {
        what: "private key",
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// Reads every CRL of PEM files.
pub fn load_crls(
    paths: &[PathBuf],
) -> Result<Vec<CertificateRevocationListDer<'static>>, TlsError> {
    let mut crls = Vec::new();
    for path in paths {
        let err = |reason: String| TlsError::Pem {
            what: "certificate revocation list",
            path: path.display().to_string(),
            reason,
        };
        let before = crls.len();
        for crl in
            CertificateRevocationListDer::pem_file_iter(path).map_err(|e| err(e.to_string()))?
        {
            crls.push(crl.map_err(|e| err(e.to_string()))?);
        }
        if crls.len() == before {
            return Err(err("no CRL in the file".into()));
        }
    }
    Ok(crls)
}

/// The server's TLS configuration: TLS 1.3, HTTP/2, client certificates required, verified
/// against `client_ca` and checked against the revocation lists `crls`.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    crls: &[PathBuf],
) -> Result<rustls::ServerConfig, TlsError> {
    let chain = load_certs(cert, "server certificate")?;
    let key = load_key(key)?;
    let mut roots = rustls::RootCertStore::empty();
    for ca in load_certs(client_ca, "client CA certificate")? {
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("client CA {}: {e}", client_ca.display())))?;
    }
    let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
        .with_crls(load_crls(crls)?)
        .build()
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(verifier)
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// A TLS connection with the identity of its client.
pub struct TlsConn {
    /// The TLS stream.
    inner: TlsStream<TcpStream>,
    /// The client's address and certificate.
    info: PeerInfo,
}

impl Connected for TlsConn {
    type ConnectInfo = PeerInfo;

    fn connect_info(&self) -> PeerInfo {
        self.info.clone()
    }
}

impl AsyncRead for TlsConn {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for TlsConn {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// A failed handshake, reported to whoever records refusals.
#[derive(Clone, Debug)]
pub struct HandshakeFailure {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// What went wrong.
    pub reason: String,
}

/// Accepts TCP connections on `listener`, completes TLS handshakes concurrently (each within
/// `handshake_timeout`, with the configuration in force when the connection arrives: a reload
/// swaps it) and yields the established connections. Failed handshakes are logged and passed
/// to `on_failure`. The loop ends when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<arc_swap::ArcSwap<rustls::ServerConfig>>,
    handshake_timeout: Duration,
    on_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>,
) -> ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(128);
    tokio::spawn(async move {
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                () = tx.closed() => break,
            };
            let (tcp, remote_addr) = match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.load_full());
            let tx = tx.clone();
            let on_failure = on_failure.clone();
            tokio::spawn(async move {
                let failure = |reason: String| {
                    tracing::info!(peer = %remote_addr, %reason, "TLS handshake refused");
                    on_failure(HandshakeFailure {
                        remote_addr,
                        reason,
                    });
                };
                match tokio::time::timeout(handshake_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(stream)) => {
                        let Some(leaf) = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                        else {
                            failure("no client certificate".into());
                            return;
                        };
                        let info = PeerInfo {
                            remote_addr: Some(remote_addr),
                            cert: Arc::new(PeerCert::from_der(leaf)),
                        };
                        let _ = tx
                            .send(Ok(TlsConn {
                                inner: stream,
                                info,
                            }))
                            .await;
                    }
                    Ok(Err(error)) => failure(error.to_string()),
                    Err(_) => failure(format!("no handshake within {handshake_timeout:?}")),
                }
            });
        }
    });
    ReceiverStream::new(rx)
}
