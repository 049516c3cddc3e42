//! Mutual TLS for the gateway: our own rustls server configuration (TLS 1.3 only, client
//! certificate required and chained to the participants' CA) and an accept loop that hands
//! tonic connections whose [`PeerInfo`] already holds the parsed client certificate.
//!
//! We do not use tonic's `ServerTlsConfig`: it takes one CA and no revocation lists, and would
//! have us parse the certificate on every call. Handshakes run in their own tasks with a
//! deadline, so a slow or hostile client cannot hold up other connections, and each source
//! address may hold only so many connections and handshakes at once ([`AcceptLimits`]).
//! A refused handshake is reported with a reason from a small fixed vocabulary and the
//! certificate the client presented, if any, so that refusals can be counted rather than
//! recorded one by one.

use crate::auth::identity::{PeerCert, PeerInfo};
use rustls::client::danger::HandshakeSignatureValid;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer, UnixTime};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::WebPkiClientVerifier;
use rustls::{CertificateError, DigitallySignedStruct, DistinguishedName, SignatureScheme};
use std::cell::RefCell;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
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

/// A peer gateway whose gateway certificates the server accepts: those that name it (URI SAN
/// `urn:ipex:gateway:<id>`) and chain to its CA, and no other.
#[derive(Clone, Debug)]
pub struct PeerCa {
    /// The peer's gateway id.
    pub id: String,
    /// The CA that issues its gateway certificates (PEM).
    pub ca: PathBuf,
}

/// The server's TLS configuration: TLS 1.3, HTTP/2, client certificates required: a
/// participant's verified against `client_ca` and checked against the revocation lists
/// `crls`; a peer gateway's (one that names `urn:ipex:gateway:<id>`) verified against that
/// peer's CA only.
pub fn server_config(
    cert: &Path,
    key: &Path,
    client_ca: &Path,
    crls: &[PathBuf],
    peers: &[PeerCa],
) -> Result<rustls::ServerConfig, TlsError> {
    let chain = load_certs(cert, "server certificate")?;
    let key = load_key(key)?;
    let participants = WebPkiClientVerifier::builder_with_provider(
        Arc::new(roots_of(client_ca, "client CA certificate")?),
        provider(),
    )
    .with_crls(load_crls(crls)?)
    .build()
    .map_err(|e| TlsError::Config(e.to_string()))?;
    let mut hints = participants.root_hint_subjects().to_vec();
    let mut gateways = HashMap::new();
    for peer in peers {
        let verifier = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots_of(&peer.ca, "peer CA certificate")?),
            provider(),
        )
        .build()
        .map_err(|e| TlsError::Config(format!("peer {}: {e}", peer.id)))?;
        hints.extend(verifier.root_hint_subjects().iter().cloned());
        gateways.insert(peer.id.clone(), verifier);
    }
    let verifier = Clients {
        participants,
        gateways,
        hints,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_client_cert_verifier(Arc::new(Presenting(Arc::new(verifier))))
        .with_single_cert(chain, key)
        .map_err(|e| TlsError::Config(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec()];
    Ok(config)
}

/// The CA certificates of a PEM file as a root store.
pub fn roots_of(path: &Path, what: &'static str) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for ca in load_certs(path, what)? {
        roots
            .add(ca)
            .map_err(|e| TlsError::Config(format!("{what} {}: {e}", path.display())))?;
    }
    Ok(roots)
}

/// Why a gateway certificate was refused, beyond what the CA check says.
#[derive(Debug, thiserror::Error)]
enum GatewayCertError {
    /// It names a gateway that is not one of `[[peers]]`.
    #[error("{REASON_UNKNOWN_PEER}")]
    UnknownPeer,
    /// It names a peer, but that peer's CA did not issue it.
    #[error("{REASON_NOT_PEERS_CA}")]
    NotPeersCa,
    /// Its gateway names cannot be read, or there are several.
    #[error("{REASON_BAD_GATEWAY_NAME}")]
    BadName,
}

/// The reason of a handshake refused for a gateway certificate naming an unknown peer.
pub const REASON_UNKNOWN_PEER: &str = "gateway certificate of a gateway that is not a peer";
/// The reason of a handshake refused for a gateway certificate its peer's CA did not issue.
pub const REASON_NOT_PEERS_CA: &str = "gateway certificate not issued by that peer's CA";
const REASON_BAD_GATEWAY_NAME: &str =
    "gateway certificate with an unreadable or double name, or a participant's name too";

fn refuse(error: GatewayCertError) -> rustls::Error {
    rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(error))))
}

/// Verifies client certificates: a peer gateway's against that peer's CA alone, everyone
/// else's against the participants' CA. A certificate naming gateway `gw-fr` issued by any
/// other CA — the participants' own included — is refused.
#[derive(Debug)]
struct Clients {
    participants: Arc<dyn ClientCertVerifier>,
    gateways: HashMap<String, Arc<dyn ClientCertVerifier>>,
    hints: Vec<DistinguishedName>,
}

impl ClientCertVerifier for Clients {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        &self.hints
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let gateway = crate::auth::identity::gateway_of(end_entity)
            .map_err(|_| refuse(GatewayCertError::BadName))?;
        let Some(gateway) = gateway else {
            return self
                .participants
                .verify_client_cert(end_entity, intermediates, now);
        };
        // A gateway certificate names no participant as well.
        if crate::auth::identity::PeerCert::from_der(end_entity)
            .participant
            .is_ok()
        {
            return Err(refuse(GatewayCertError::BadName));
        }
        let verifier = self
            .gateways
            .get(&gateway)
            .ok_or_else(|| refuse(GatewayCertError::UnknownPeer))?;
        verifier
            .verify_client_cert(end_entity, intermediates, now)
            .map_err(|error| match error {
                rustls::Error::InvalidCertificate(
                    CertificateError::UnknownIssuer | CertificateError::BadSignature,
                ) => refuse(GatewayCertError::NotPeersCa),
                other => other,
            })
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.participants.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.participants.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.participants.supported_verify_schemes()
    }
}

/// A TLS connection with the identity of its client.
pub struct TlsConn {
    /// The TLS stream.
    inner: TlsStream<TcpStream>,
    /// The client's address and certificate.
    info: PeerInfo,
    /// Counts the connection against its source address until it is dropped.
    _source: SourceSlot,
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

/// The client certificate the client presented, as read before it was verified: the
/// participant it names may be claimed by anyone, and is reported for the audit log only.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Presented {
    /// SHA-256 of the DER certificate, hex.
    pub certificate_sha256: String,
    /// The participant id its URI SAN names, when it is a well-formed id; empty otherwise.
    pub participant: String,
}

impl Presented {
    fn of(der: &[u8]) -> Presented {
        let cert = PeerCert::from_der(der);
        let certificate_sha256 = cert.fingerprint_hex();
        let participant = cert
            .participant
            .ok()
            .filter(|id| crate::domain::vocab::participant_id(id).is_ok())
            .unwrap_or_default();
        Presented {
            certificate_sha256,
            participant,
        }
    }
}

tokio::task_local! {
    /// The certificate presented in the handshake the current task runs: set by
    /// [`Presenting`], read by the accept loop when the handshake fails. rustls verifies the
    /// certificate inside the poll of the handshake future, so on the task that runs it, and
    /// its error does not carry the certificate.
    static PRESENTED: RefCell<Option<Presented>>;
}

/// The participants' CA verifier, noting on the way which certificate was presented.
#[derive(Debug)]
struct Presenting(Arc<dyn ClientCertVerifier>);

impl ClientCertVerifier for Presenting {
    fn offer_client_auth(&self) -> bool {
        self.0.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        self.0.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        let verified = self.0.verify_client_cert(end_entity, intermediates, now);
        if verified.is_err() {
            // Outside the accept loop (no slot) there is nobody to tell.
            let _ = PRESENTED.try_with(|slot| *slot.borrow_mut() = Some(Presented::of(end_entity)));
        }
        verified
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }

    fn requires_raw_public_keys(&self) -> bool {
        self.0.requires_raw_public_keys()
    }
}

/// The reason a client was not served, from a small fixed vocabulary so that refusals of one
/// kind can be counted together (rustls's own messages carry times and byte values).
pub fn handshake_reason(error: &std::io::Error) -> String {
    let Some(tls) = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match error.kind() {
            std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe => "connection closed during the handshake".into(),
            kind => format!("connection failed during the handshake: {kind:?}"),
        };
    };
    match tls {
        rustls::Error::NoCertificatesPresented => REASON_NO_CERTIFICATE.into(),
        rustls::Error::InvalidCertificate(certificate) => match certificate {
            CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
                "certificate expired".into()
            }
            CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
                "certificate not yet valid".into()
            }
            CertificateError::UnknownIssuer => {
                "certificate not issued by a CA of tls.client_ca".into()
            }
            CertificateError::Revoked => "certificate revoked".into(),
            CertificateError::BadSignature => "certificate badly signed".into(),
            CertificateError::BadEncoding => "certificate badly encoded".into(),
            CertificateError::UnknownRevocationStatus
            | CertificateError::ExpiredRevocationList
            | CertificateError::ExpiredRevocationListContext { .. } => {
                "certificate revocation status unknown".into()
            }
            CertificateError::InvalidPurpose | CertificateError::InvalidPurposeContext { .. } => {
                "certificate not for client authentication".into()
            }
            CertificateError::Other(other) => other
                .0
                .downcast_ref::<GatewayCertError>()
                .map_or_else(|| "certificate invalid".into(), ToString::to_string),
            _ => "certificate invalid".into(),
        },
        rustls::Error::InvalidMessage(_) | rustls::Error::InvalidEncryptedClientHello(_) => {
            "malformed TLS message".into()
        }
        rustls::Error::PeerIncompatible(_) => "client incompatible (TLS 1.3 and h2 only)".into(),
        rustls::Error::NoApplicationProtocol => "client incompatible (TLS 1.3 and h2 only)".into(),
        rustls::Error::AlertReceived(alert) => format!("client sent alert {alert:?}"),
        _ => "TLS handshake failed".into(),
    }
}

/// The reason of a handshake that ended without a client certificate.
pub const REASON_NO_CERTIFICATE: &str = "no client certificate";

/// A connection the gateway did not serve, reported to whoever counts refusals.
#[derive(Clone, Debug)]
pub struct HandshakeFailure {
    /// The client's address.
    pub remote_addr: SocketAddr,
    /// What went wrong ([`handshake_reason`], or a limit of [`AcceptLimits`]).
    pub reason: String,
    /// The certificate presented, if the client sent one.
    pub presented: Option<Presented>,
    /// The limit that closed the connection before any handshake, if one did.
    pub limit: Option<SourceLimit>,
}

/// A per-source limit of [`AcceptLimits`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SourceLimit {
    /// `limits.max_connections_per_source`.
    Connections,
    /// `limits.max_handshakes_per_source`.
    Handshakes,
}

impl SourceLimit {
    /// The label of the limit in metrics.
    pub fn label(self) -> &'static str {
        match self {
            SourceLimit::Connections => "connections_per_source",
            SourceLimit::Handshakes => "handshakes_per_source",
        }
    }

    /// The reason a connection closed by it is counted under.
    pub fn reason(self) -> &'static str {
        match self {
            SourceLimit::Connections => "too many connections from this address",
            SourceLimit::Handshakes => "too many handshakes in progress from this address",
        }
    }
}

/// What one source address may cost the accept loop.
#[derive(Clone, Copy, Debug)]
pub struct AcceptLimits {
    /// Deadline of a TLS handshake.
    pub handshake_timeout: Duration,
    /// Connections open at once per source address, handshakes included.
    pub max_connections_per_source: usize,
    /// Handshakes in progress at once per source address.
    pub max_handshakes_per_source: usize,
}

/// Connections and handshakes in progress, per source address.
#[derive(Default)]
struct Sources {
    by_address: std::sync::Mutex<HashMap<IpAddr, InUse>>,
}

#[derive(Default, Clone, Copy)]
struct InUse {
    connections: usize,
    handshakes: usize,
}

impl Sources {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, InUse>> {
        // Counters only: consistent whatever panicked while holding the lock.
        self.by_address
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes a connection and a handshake for `address`, or says which limit forbids it.
    fn admit(
        self: &Arc<Self>,
        address: IpAddr,
        limits: &AcceptLimits,
    ) -> Result<(SourceSlot, HandshakeSlot), SourceLimit> {
        let mut by_address = self.lock();
        let in_use = by_address.entry(address).or_default();
        if in_use.connections >= limits.max_connections_per_source {
            return Err(SourceLimit::Connections);
        }
        if in_use.handshakes >= limits.max_handshakes_per_source {
            return Err(SourceLimit::Handshakes);
        }
        in_use.connections += 1;
        in_use.handshakes += 1;
        Ok((
            SourceSlot {
                sources: self.clone(),
                address,
            },
            HandshakeSlot {
                sources: self.clone(),
                address,
            },
        ))
    }

    fn release(&self, address: IpAddr, what: impl FnOnce(&mut InUse)) {
        let mut by_address = self.lock();
        if let Some(in_use) = by_address.get_mut(&address) {
            what(in_use);
            if in_use.connections == 0 && in_use.handshakes == 0 {
                by_address.remove(&address);
            }
        }
    }
}

/// One connection of a source address, counted until dropped.
struct SourceSlot {
    sources: Arc<Sources>,
    address: IpAddr,
}

impl Drop for SourceSlot {
    fn drop(&mut self) {
        self.sources
            .release(self.address, |in_use| in_use.connections -= 1);
    }
}

/// One handshake in progress of a source address, counted until dropped.
struct HandshakeSlot {
    sources: Arc<Sources>,
    address: IpAddr,
}

impl Drop for HandshakeSlot {
    fn drop(&mut self) {
        self.sources
            .release(self.address, |in_use| in_use.handshakes -= 1);
    }
}

/// Accepts TCP connections on `listener`, completes TLS handshakes concurrently (each within
/// `limits.handshake_timeout`, with the configuration in force when the connection arrives: a
/// reload swaps it) and yields the established connections. A connection beyond a source
/// address's limits is closed at once, before any handshake. Connections not served — over a
/// limit, or whose handshake failed — are logged and passed to `on_failure`. The loop ends
/// when the returned stream is dropped.
pub fn incoming(
    listener: TcpListener,
    config: Arc<arc_swap::ArcSwap<rustls::ServerConfig>>,
    limits: AcceptLimits,
    on_failure: Arc<dyn Fn(HandshakeFailure) + Send + Sync>,
) -> ReceiverStream<Result<TlsConn, std::io::Error>> {
    let (tx, rx) = mpsc::channel(128);
    let sources = Arc::new(Sources::default());
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
            let (source, handshake) = match sources.admit(remote_addr.ip(), &limits) {
                Ok(slots) => slots,
                Err(limit) => {
                    // Dropping the socket closes it: nothing is read, nothing is spawned.
                    drop(tcp);
                    tracing::debug!(peer = %remote_addr, limit = limit.label(), "connection refused");
                    on_failure(HandshakeFailure {
                        remote_addr,
                        reason: limit.reason().into(),
                        presented: None,
                        limit: Some(limit),
                    });
                    continue;
                }
            };
            let _ = tcp.set_nodelay(true);
            let acceptor = TlsAcceptor::from(config.load_full());
            let tx = tx.clone();
            let on_failure = on_failure.clone();
            let timeout = limits.handshake_timeout;
            tokio::spawn(PRESENTED.scope(RefCell::new(None), async move {
                let failure = |reason: String| {
                    let presented = PRESENTED.with(|slot| slot.borrow_mut().take());
                    tracing::info!(
                        peer = %remote_addr,
                        %reason,
                        certificate_sha256 = presented.as_ref().map_or("", |p| p.certificate_sha256.as_str()),
                        "TLS handshake refused"
                    );
                    on_failure(HandshakeFailure {
                        remote_addr,
                        reason,
                        presented,
                        limit: None,
                    });
                };
                let accepted = tokio::time::timeout(timeout, acceptor.accept(tcp)).await;
                drop(handshake);
                match accepted {
                    Ok(Ok(stream)) => {
                        let Some(leaf) = stream
                            .get_ref()
                            .1
                            .peer_certificates()
                            .and_then(|certs| certs.first())
                        else {
                            failure(REASON_NO_CERTIFICATE.into());
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
                                _source: source,
                            }))
                            .await;
                    }
                    Ok(Err(error)) => failure(handshake_reason(&error)),
                    Err(_) => failure(format!("no handshake within {timeout:?}")),
                }
            }));
        }
    });
    ReceiverStream::new(rx)
}
