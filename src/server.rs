//! Runs the gateway: `run` takes a bound listener and a shutdown future, so the binary and
//! the tests start exactly the same server. Wiring only: every layer below is built and
//! joined here.

use crate::app::handshakes::HandshakeTally;
use crate::app::Gateway;
use crate::auth::tls::{AcceptLimits, HandshakeFailure};
use crate::grpc::services::{AuditService, ExchangeService, ParticipantsService};
use crate::grpc::status::{code_name, HANDSHAKE_CODE, HANDSHAKE_METHOD};
use crate::grpc::undecodable::Undecodable;
use crate::ops::config::{Config, Sources};
use crate::pb;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;

/// Errors starting or running the gateway.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The configuration was refused.
    #[error(transparent)]
    Config(#[from] crate::ops::config::ConfigError),
    /// Registry, policy, certificates or store.
    #[error(transparent)]
    Open(#[from] crate::app::OpenError),
    /// The gRPC server failed.
    #[error("gRPC server failed: {0}")]
    Transport(#[from] tonic::transport::Error),
    /// The final flush failed.
    #[error("final flush failed: {0}")]
    Store(#[from] crate::storage::StoreError),
    /// The reflection service could not be built from the compiled descriptors.
    #[error("cannot build the reflection service: {0}")]
    Reflection(#[from] crate::grpc::health::ReflectionError),
    /// The development PKI or checkpoint signing key could not be created.
    #[error(transparent)]
    DevKey(#[from] crate::dev::pki::PkiError),
    /// The connections to peers could not be set up.
    #[error("federation: {0}")]
    Federation(String),
    /// The metrics address (`metrics_listen`) could not be bound.
    #[error("cannot listen for metrics on {addr} (metrics_listen): {source}")]
    MetricsBind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Serves the gateway on `listener` until `shutdown` completes, then drains: health turns
/// NOT_SERVING, the listener closes, connections are told to send no new calls (HTTP/2
/// GOAWAY), and the calls in flight may finish for up to `shutdown_grace_ms`. Then the
/// refused handshakes counted since the last summary are written, and the store is flushed
/// and closed, whether or not every call finished. With `metrics_listen` set, it also serves
/// Prometheus metrics there, from the start until the drain is over; in development mode, a
/// metrics port already taken (another development gateway on the machine) gives way to a
/// free one, logged.
///
/// The configuration is built from `sources` ([`Sources::build`]), and again from them on
/// every reload; a [`Config`] given whole is its own source.
pub async fn run(
    listener: TcpListener,
    sources: impl Into<Sources>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let sources = sources.into();
    let config = sources.build()?;
    serve(listener, sources, config, shutdown).await
}

/// [`run`] with the configuration already built from `sources`.
async fn serve(
    listener: TcpListener,
    sources: Sources,
    config: Config,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), ServeError> {
    let limits = AcceptLimits {
        handshake_timeout: Duration::from_millis(config.handshake_timeout_ms),
        max_connections_per_source: config.limits.max_connections_per_source,
        max_handshakes_per_source: config.limits.max_handshakes_per_source,
    };
    let summary_interval = Duration::from_millis(config.limits.handshake_summary_interval_ms);
    let grace_ms = config.shutdown_grace_ms;
    let max_message = config.max_message_bytes;
    let dev_mode = config.dev_mode;
    let data_dir = config.data_dir.display().to_string();
    // Bound before the store is opened, so that a taken port stops the start early.
    let metrics_listener = match config.metrics_listen {
        Some(addr) => Some(bind_metrics(addr, dev_mode).await?),
        None => None,
    };
    if config.dev_mode {
        if let Some(key) = &config.audit.signing_key {
            if crate::dev::ensure_signing_key(key, &config.origin())? {
                tracing::info!(path = %key.display(), "created the checkpoint signing key");
            }
        }
        // A development PKI (one that keeps its CA key) also gets the gateway certificate
        // and witness key that peering needs.
        let dir = config
            .tls
            .client_ca
            .parent()
            .unwrap_or(std::path::Path::new("."));
        if dir.join("ca.key").exists()
            && crate::dev::ensure_federation(dir, &config.gateway_id, &config.origin())?
        {
            tracing::info!(dir = %dir.display(), "created the development gateway certificate and witness key");
        }
    }
    let (peers, cosigners) = connect_peers(&config)?;
    let cosign_interval = Duration::from_millis(config.federation.cosign_interval_ms);
    let directory_interval = Duration::from_millis(config.federation.directory_interval_ms);
    let reload_check_ms = config.reload_check_ms;
    let gateway = Arc::new(Gateway::open(sources, config)?);
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    tracing::info!(
        %addr,
        data_dir,
        dev_mode,
        tree_size = gateway.store.tree_size(),
        verifier_key = gateway.store.verifier_key(),
        "ipex gateway listening (mutual TLS)"
    );
    if dev_mode {
        tracing::info!(
            "connect as a development participant: cargo run --bin ipex -- --gateway https://{addr} --as customs-nl whoami"
        );
    }
    // A set, so that the metrics server is aborted however `run` ends.
    let mut metrics = tokio::task::JoinSet::new();
    if let Some(listener) = metrics_listener {
        let addr = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        tracing::info!(%addr, "metrics listening (plain HTTP, GET /metrics)");
        metrics.spawn(crate::ops::metrics::serve(
            listener,
            gateway.metrics.clone(),
        ));
    }
    // Refused handshakes are counted here and written as one summary per interval: an
    // outsider cannot make the gateway write a leaf per connection.
    let tally = Arc::new(HandshakeTally::default());
    let counter = tally.clone();
    let counted = gateway.metrics.clone();
    let incoming = crate::auth::tls::incoming(
        listener,
        gateway.tls.clone(),
        limits,
        Arc::new(move |failure: HandshakeFailure| {
            match failure.limit {
                Some(limit) => counted.connection_refused(limit.label()),
                None => counted.refusal(HANDSHAKE_METHOD, code_name(HANDSHAKE_CODE)),
            }
            counter.count(&failure);
        }),
    );
    let (stop_summaries, summaries_stopped) = tokio::sync::oneshot::channel::<()>();
    let summaries = tokio::spawn(summarise_handshakes(
        gateway.clone(),
        tally.clone(),
        summary_interval,
        summaries_stopped,
    ));
    let exchange = pb::exchange_server::ExchangeServer::new(ExchangeService {
        gateway: gateway.clone(),
    })
    .max_decoding_message_size(decode_ceiling(max_message));
    let participants = pb::participants_server::ParticipantsServer::new(ParticipantsService {
        gateway: gateway.clone(),
    });
    let reloader = tokio::spawn(crate::ops::reload::watch(gateway.clone(), reload_check_ms));
    let audit = pb::audit_server::AuditServer::new(AuditService {
        gateway: gateway.clone(),
    });
    let health = crate::grpc::health::GatewayHealth::serving().await;
    let drain = health.clone();
    let closer = gateway.clone();
    let signal = async move {
        shutdown.await;
        // NOT_SERVING first, so that watchers learn it before their connection goes away.
        drain.drain().await;
        // Subscription streams never end by themselves: end them, with UNAVAILABLE.
        closer.begin_shutdown();
        tracing::info!(
            grace_ms,
            "draining: health NOT_SERVING, no new connections or calls; calls in flight may finish"
        );
    };
    let mut federation = tokio::task::JoinSet::new();
    if !cosigners.is_empty() {
        federation.spawn(crate::federation::cosign::run(
            gateway.clone(),
            cosigners,
            cosign_interval,
        ));
    }
    // Each outbox opens where it was left before any call is served.
    let mut cursors = Vec::new();
    for peer in &peers {
        cursors.push(
            gateway
                .open_outbox(&peer.id)
                .await
                .map_err(|e| ServeError::Federation(format!("outbox to {}: {e}", peer.id)))?,
        );
    }
    if !peers.is_empty() {
        federation.spawn(crate::federation::forwarder::directories(
            gateway.clone(),
            peers.clone(),
            directory_interval,
        ));
    }
    for (peer, cursor) in peers.into_iter().zip(cursors) {
        federation.spawn(crate::federation::forwarder::run(
            gateway.clone(),
            peer,
            cursor,
        ));
    }
    let federation_service =
        pb::federation_server::FederationServer::new(crate::grpc::services::FederationService {
            gateway: gateway.clone(),
        })
        .max_decoding_message_size(decode_ceiling(max_message));
    let serve = tonic::transport::Server::builder()
        .add_routes(tonic::service::Routes::from(
            crate::federation::witness_http::router(gateway.clone()),
        ))
        .add_service(health.service())
        .add_service(crate::grpc::health::reflection_v1()?)
        .add_service(crate::grpc::health::reflection_v1alpha()?)
        .add_service(Undecodable::new(exchange, gateway.clone()))
        .add_service(Undecodable::new(participants, gateway.clone()))
        .add_service(Undecodable::new(audit, gateway.clone()))
        .add_service(Undecodable::new(federation_service, gateway.clone()))
        .serve_with_incoming_shutdown(incoming, signal);
    let grace_over = async {
        health.drained().await;
        tokio::time::sleep(Duration::from_millis(grace_ms)).await;
    };
    tokio::select! {
        served = serve => served?,
        () = grace_over => tracing::warn!(
            grace_ms,
            "shutdown_grace_ms ran out with calls still in flight; stopping anyway"
        ),
    }
    reloader.abort();
    metrics.abort_all();
    federation.abort_all();
    // The last interval's refused handshakes, before the store closes.
    let _ = stop_summaries.send(());
    let _ = summaries.await;
    match gateway.record_handshake_refusals(&tally).await {
        Ok(0) => {}
        Ok(leaves) => tracing::info!(leaves, "refused handshakes summarised"),
        Err(error) => {
            tracing::warn!(%error, "the last summary of refused handshakes was not written")
        }
    }
    // Joining the committer and the last flush block: keep them off the runtime's workers.
    let closing = gateway.clone();
    tokio::task::spawn_blocking(move || closing.store.close())
        .await
        .map_err(|e| crate::storage::StoreError::Engine(format!("closing the store: {e}")))??;
    tracing::info!(
        last_seq = gateway.store.last_seq(),
        "store flushed; gateway stopped"
    );
    Ok(())
}

/// Writes a summary of the refused handshakes counted every `interval`, until `stop`.
async fn summarise_handshakes(
    gateway: Arc<Gateway>,
    tally: Arc<HandshakeTally>,
    interval: Duration,
    mut stop: tokio::sync::oneshot::Receiver<()>,
) {
    let mut ticks = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                // Not cancelled by `stop`: a summary taken from the tally is always written.
                match gateway.record_handshake_refusals(&tally).await {
                    Ok(0) => {}
                    Ok(leaves) => tracing::debug!(leaves, "refused handshakes summarised"),
                    Err(error) => tracing::warn!(%error, "a summary of refused handshakes was not written"),
                }
            }
            _ = &mut stop => return,
        }
    }
}

/// Binds the metrics listener on `addr`. In development mode, when `addr` is taken — by
/// another development gateway on the same machine, which uses the same default — a free
/// port on the same address is used instead, with a warning; otherwise that is an error.
async fn bind_metrics(
    addr: std::net::SocketAddr,
    dev_mode: bool,
) -> Result<TcpListener, ServeError> {
    match TcpListener::bind(addr).await {
        Ok(listener) => Ok(listener),
        Err(error) if dev_mode && error.kind() == std::io::ErrorKind::AddrInUse => {
            let free = std::net::SocketAddr::new(addr.ip(), 0);
            let listener = TcpListener::bind(free)
                .await
                .map_err(|source| ServeError::MetricsBind { addr: free, source })?;
            let taken = addr.to_string();
            let addr = listener
                .local_addr()
                .map(|a| a.to_string())
                .unwrap_or_default();
            tracing::warn!(
                taken,
                %addr,
                "metrics_listen is taken; development mode listens for metrics on a free port instead"
            );
            Ok(listener)
        }
        Err(source) => Err(ServeError::MetricsBind { addr, source }),
    }
}

/// The largest request tonic decodes at all. Requests between `max_message_bytes` and this
/// ceiling are decoded and refused by the handler with RESOURCE_EXHAUSTED naming the setting;
/// above it tonic refuses them itself, undecoded, with OUT_OF_RANGE.
pub fn decode_ceiling(max_message_bytes: usize) -> usize {
    max_message_bytes.saturating_mul(4).max(4 * 1024 * 1024)
}

/// Completes on SIGINT (Ctrl-C) or SIGTERM. The SIGTERM handler is installed when this is
/// called, not when the future is first polled, so that a SIGTERM arriving while the gateway
/// starts drains it instead of killing it. Call it inside the runtime.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    #[cfg(unix)]
    let sigterm = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate());
    async move {
        let interrupt = async {
            if let Err(error) = tokio::signal::ctrl_c().await {
                tracing::warn!(%error, "cannot listen for Ctrl-C");
                std::future::pending::<()>().await;
            }
        };
        #[cfg(unix)]
        let terminate = async {
            match sigterm {
                Ok(mut signal) => {
                    signal.recv().await;
                }
                Err(error) => {
                    tracing::warn!(%error, "cannot listen for SIGTERM");
                    std::future::pending::<()>().await;
                }
            }
        };
        #[cfg(not(unix))]
        let terminate = std::future::pending::<()>();
        tokio::select! {
            () = interrupt => tracing::info!("SIGINT received; shutting down"),
            () = terminate => tracing::info!("SIGTERM received; shutting down"),
        }
    }
}

/// Log output formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line, for log pipelines.
    Json,
}

/// Installs the `tracing` subscriber: `RUST_LOG` filters (default `info`).
pub fn init_logging(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// What the binary does: builds the configuration from `sources`, in development mode
/// creates the PKI if missing, binds the listener, says how to connect, and serves until
/// `shutdown`.
pub async fn start(
    sources: Sources,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), StartError> {
    let config = sources.build().map_err(ServeError::from)?;
    if config.dev_mode {
        let dir = config
            .tls
            .client_ca
            .parent()
            .map(|p| p.to_path_buf())
            .unwrap_or_default();
        if crate::dev::pki::ensure_dev_pki(&dir).map_err(ServeError::from)? {
            tracing::info!(dir = %dir.display(), "created the development PKI and registry");
        }
    }
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|source| StartError::Bind {
            addr: config.listen,
            source,
        })?;
    serve(listener, sources, config, shutdown).await?;
    Ok(())
}

/// The connections to the peers, and those that cosign this gateway's checkpoints (the peers
/// with a `witness_key`).
fn connect_peers(
    config: &Config,
) -> Result<
    (
        Vec<crate::federation::peers::Peer>,
        Vec<crate::federation::cosign::Cosigner>,
    ),
    ServeError,
> {
    if config.peers.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let files = config.federation_files().ok_or_else(|| {
        ServeError::Federation("federation.cert, federation.key and federation.witness_key are required with [[peers]]".into())
    })?;
    let timeout = Duration::from_millis(config.federation.peer_timeout_ms);
    let mut peers = Vec::new();
    let mut cosigners = Vec::new();
    for peer in &config.peers {
        let connection = crate::federation::peers::Peer::new(peer, &files, timeout)
            .map_err(|e| ServeError::Federation(e.to_string()))?;
        if let Some(key) = &peer.witness_key {
            let verifier = crate::log::cosign::CosignatureVerifier::from_verifier_key(key)
                .map_err(|e| {
                    ServeError::Federation(format!("peers {}: witness_key: {e}", peer.id))
                })?;
            cosigners.push(crate::federation::cosign::Cosigner::new(
                connection.clone(),
                verifier,
            ));
        }
        peers.push(connection);
    }
    Ok((peers, cosigners))
}

/// Errors of [`start`].
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: std::net::SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
}
