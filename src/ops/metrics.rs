//! Prometheus metrics of one gateway, and the plain HTTP/1.1 listener (`metrics_listen`) that
//! serves them as `GET /metrics`. A separate listener, because a Prometheus server is not a
//! participant and has no client certificate; it reveals counts and sizes, never a message.
//!
//! The metrics are `prometheus-client` metrics in a registry of their own per gateway (several
//! gateways run in one test process and must keep their own counts). Store size, messages
//! stored, audit tree size, open streams and subscriber lag are read when scraped, so they cost
//! nothing between scrapes.
//!
//! This module knows none of the gateway's types: whoever wires a gateway together hands
//! [`Metrics::new`] the store's [`CommitStats`] and [`Readings`], closures over whatever they
//! read, so that the store and the gateway may depend on this module and not the reverse.

use prometheus_client::encoding::{prometheus_text, EncodeLabelSet, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::metrics::info::Info;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::collections::HashMap;
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::net::TcpListener;

/// The `Content-Type` of the exposition: the Prometheus text format 0.0.4. Kept rather than
/// OpenMetrics text because it is what existing scrapers, dashboards and `grep`s were written
/// against: OpenMetrics would rename the counters' `# TYPE` lines (no `_total`), make
/// `ipex_build_info` an `info` metric and end the body with `# EOF`.
pub const CONTENT_TYPE: &str = prometheus_text::CONTENT_TYPE;

/// Upper bounds of the latency histograms, in seconds: 0.5 ms to 10 s.
const SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// Upper bounds of the batch-size histogram, in messages (`commit.max_batch` defaults to 512).
const MESSAGES_BUCKETS: [f64; 11] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

fn seconds_histogram() -> Histogram {
    Histogram::new(SECONDS_BUCKETS)
}

/// What the store's committer measures of each group commit. Plain metric handles (clones
/// share their counts), so that the store observes them without knowing the registry that
/// [`Metrics::new`] exposes them from.
#[derive(Clone, Debug)]
pub struct CommitStats {
    /// Messages stored per group commit that stored any (buckets 1 to 1024).
    pub batch_messages: Histogram,
    /// Seconds of one fdatasync of the exchange log (buckets 0.5 ms to 10 s).
    pub flush_seconds: Histogram,
}

impl Default for CommitStats {
    fn default() -> Self {
        CommitStats {
            batch_messages: Histogram::new(MESSAGES_BUCKETS),
            flush_seconds: seconds_histogram(),
        }
    }
}

/// A number read from the rest of the gateway at each scrape.
pub type Reading = Box<dyn Fn() -> u64 + Send + Sync>;

/// What a scrape reads from the rest of the gateway. Scrapes run on a blocking thread, so a
/// reading may touch the file system.
pub struct Readings {
    /// Bytes the store occupies on disk; `None` when they cannot be read, which leaves the
    /// sample out of that scrape.
    pub store_size_bytes: Box<dyn Fn() -> Option<u64> + Send + Sync>,
    /// Messages durably stored: the highest sequence number. The subscriber lag is measured
    /// from it too.
    pub messages_stored: Reading,
    /// Leaves in the durable exchange log.
    pub audit_tree_size: Reading,
    /// More gauges read at scrape time: `(name, help, reading)`; a reading of `None` leaves
    /// the sample out.
    pub more: Vec<(&'static str, &'static str, MaybeReading)>,
}

/// A value read at scrape time that may be missing.
pub type MaybeReading = Box<dyn Fn() -> Option<u64> + Send + Sync>;

/// The labels of `ipex_calls_total` and `ipex_refusals_total`, in this order.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodCode {
    method: &'static str,
    /// Canonical gRPC code name.
    code: &'static str,
}

/// The label of `ipex_connections_refused_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LimitLabel {
    /// The per-source limit that closed the connection.
    limit: &'static str,
}

/// The labels of `ipex_witness_requests_total` and `ipex_cosign_requests_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PeerResult {
    /// The peer gateway.
    peer: String,
    /// What came of it: an HTTP status, or a word.
    result: String,
}

/// The label of `ipex_witness_inconsistent_checkpoints_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OriginLabel {
    /// The log's origin.
    origin: String,
}

/// The label of `ipex_call_duration_seconds`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct MethodLabel {
    method: &'static str,
}

/// A gauge whose value is read when scraped; `None` leaves the sample out.
struct Scraped<F>(F);

impl<F> std::fmt::Debug for Scraped<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The registry wants its metrics `Debug`; a closure has nothing to show.
        f.write_str("Scraped")
    }
}

impl<F: Fn() -> Option<u64> + Send + Sync + 'static> EncodeMetric for Scraped<F> {
    fn encode(&self, mut encoder: MetricEncoder) -> Result<(), std::fmt::Error> {
        match (self.0)() {
            Some(value) => encoder.encode_gauge(&value),
            None => Ok(()),
        }
    }

    fn metric_type(&self) -> MetricType {
        MetricType::Gauge
    }
}

/// The metrics one gateway records as it works, and the registry they are exposed from.
pub struct Metrics {
    registry: Registry,
    /// Calls answered, by method and code.
    calls: Family<MethodCode, Counter>,
    /// Time to answer, by method.
    call_seconds: Family<MethodLabel, Histogram>,
    /// Refused calls and handshakes, by method and code.
    refusals: Family<MethodCode, Counter>,
    /// Connections closed before any handshake, by the per-source limit that closed them.
    connections_refused: Family<LimitLabel, Counter>,
    /// Checkpoints peers asked this gateway to cosign, by peer and HTTP status answered.
    witness_requests: Family<PeerResult, Counter>,
    /// Checkpoints refused as inconsistent with one cosigned before, by log.
    witness_inconsistent: Family<OriginLabel, Counter>,
    /// Requests to peers to cosign this gateway's checkpoints, by peer and result.
    cosign_requests: Family<PeerResult, Counter>,
    /// Messages forwarded to peers, by peer and result.
    forwards: Family<PeerResult, Counter>,
    /// Subscription streams open; shared with the gauges that read them and with each
    /// stream's [`OpenStream`].
    streams: Arc<Mutex<Streams>>,
}

/// The subscription streams open, each with the next sequence number it will consider.
#[derive(Default)]
struct Streams {
    next_id: u64,
    open: HashMap<u64, Arc<AtomicU64>>,
}

impl Streams {
    /// The most stored messages any open stream has yet to consider, `head` being stored.
    fn lag(&self, head: u64) -> u64 {
        self.open
            .values()
            .map(|next| (head + 1).saturating_sub(next.load(Ordering::Relaxed)))
            .max()
            .unwrap_or(0)
    }
}

fn lock(streams: &Mutex<Streams>) -> MutexGuard<'_, Streams> {
    // The map stays consistent whatever panicked while holding it.
    streams.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Metrics {
    /// A fresh registry of every metric: the commit histograms are `commits` (the store keeps
    /// observing its handles), the gauges read at scrape time come from `readings`.
    pub fn new(commits: &CommitStats, readings: Readings) -> Metrics {
        let Readings {
            store_size_bytes,
            messages_stored,
            audit_tree_size,
            more,
        } = readings;
        // Read by two gauges: messages stored, and the head the lag is measured from.
        let messages_stored: Arc<dyn Fn() -> u64 + Send + Sync> = Arc::from(messages_stored);
        let calls = Family::<MethodCode, Counter>::default();
        let call_seconds =
            Family::<MethodLabel, Histogram>::new_with_constructor(seconds_histogram);
        let refusals = Family::<MethodCode, Counter>::default();
        let connections_refused = Family::<LimitLabel, Counter>::default();
        let witness_requests = Family::<PeerResult, Counter>::default();
        let witness_inconsistent = Family::<OriginLabel, Counter>::default();
        let cosign_requests = Family::<PeerResult, Counter>::default();
        let forwards = Family::<PeerResult, Counter>::default();
        let streams = Arc::new(Mutex::new(Streams::default()));

        // Registration order is exposition order. The library appends `_total` to counter
        // names and a period to help texts.
        let mut registry = Registry::default();
        registry.register(
            "ipex_calls",
            "Calls answered, by method and canonical gRPC status code (OK on success)",
            calls.clone(),
        );
        registry.register(
            "ipex_call_duration_seconds",
            "Time from a call's arrival to its answer, by method; for Subscribe, until the stream starts",
            call_seconds.clone(),
        );
        registry.register(
            "ipex_refusals",
            "Calls refused, by method and code; failed TLS handshakes as method \"handshake\"",
            refusals.clone(),
        );
        registry.register(
            "ipex_connections_refused",
            "Connections closed before any handshake, by the per-source limit that closed them",
            connections_refused.clone(),
        );
        registry.register(
            "ipex_witness_requests",
            "Checkpoints peer gateways asked this gateway to cosign as their witness, by peer and HTTP status answered (200: cosigned)",
            witness_requests.clone(),
        );
        registry.register(
            "ipex_witness_inconsistent_checkpoints",
            "Checkpoints this gateway refused as witness because they contradict one it cosigned (same size, another root, both signed by the log): a peer's log forked",
            witness_inconsistent.clone(),
        );
        registry.register(
            "ipex_cosign_requests",
            "Requests to peer gateways to cosign this gateway's checkpoints, by peer and result (cosigned, conflict, refused, unreachable, bad_cosignature)",
            cosign_requests.clone(),
        );
        registry.register(
            "ipex_forwarded",
            "Messages forwarded to peer gateways, by peer and result (delivered, refused; retried counts attempts that found the peer unreachable)",
            forwards.clone(),
        );
        registry.register(
            "ipex_commit_batch_messages",
            "Messages stored per group commit (commits that stored at least one)",
            commits.batch_messages.clone(),
        );
        registry.register(
            "ipex_commit_flush_seconds",
            "Time of one fdatasync of the exchange log (it makes every batch written before it durable)",
            commits.flush_seconds.clone(),
        );
        registry.register(
            "ipex_store_size_bytes",
            "Bytes the store occupies on disk",
            Scraped(store_size_bytes),
        );
        let stored = messages_stored.clone();
        registry.register(
            "ipex_messages_stored",
            "Messages durably stored (the highest sequence number)",
            Scraped(move || Some(stored())),
        );
        registry.register(
            "ipex_audit_tree_size",
            "Leaves in the durable exchange log",
            Scraped(move || Some(audit_tree_size())),
        );
        for (name, help, reading) in more {
            registry.register(name, help, Scraped(reading));
        }
        let open = streams.clone();
        registry.register(
            "ipex_open_streams",
            "Subscription streams open",
            Scraped(move || Some(lock(&open).open.len() as u64)),
        );
        let behind = streams.clone();
        registry.register(
            "ipex_subscriber_lag_messages",
            "Largest number of stored messages an open subscription stream has yet to consider",
            Scraped(move || {
                // The head first: it may take the store's time, the lock should not wait on it.
                let head = messages_stored();
                Some(lock(&behind).lag(head))
            }),
        );
        // An info metric: exposed as `ipex_build_info`, a gauge of 1, in the text format 0.0.4.
        registry.register(
            "ipex_build",
            "Always 1; the version of ipexd in a label",
            Info::new([("version", env!("CARGO_PKG_VERSION"))]),
        );
        Metrics {
            registry,
            calls,
            call_seconds,
            refusals,
            connections_refused,
            witness_requests,
            witness_inconsistent,
            cosign_requests,
            forwards,
            streams,
        }
    }

    /// Counts a checkpoint `peer` asked this gateway to cosign, answered with HTTP `status`.
    pub fn witness_request(&self, peer: &str, status: u16) {
        self.witness_requests
            .get_or_create(&PeerResult {
                peer: peer.to_string(),
                result: status.to_string(),
            })
            .inc();
    }

    /// Counts a checkpoint of log `origin` refused as inconsistent with one cosigned before.
    pub fn witness_inconsistent(&self, origin: &str) {
        self.witness_inconsistent
            .get_or_create(&OriginLabel {
                origin: origin.to_string(),
            })
            .inc();
    }

    /// Counts a message forwarded to `peer` (`delivered`, `refused`) or an attempt that found
    /// it unreachable (`retried`).
    pub fn forwarded(&self, peer: &str, result: &str) {
        self.forwards
            .get_or_create(&PeerResult {
                peer: peer.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Counts a request to `peer` to cosign a checkpoint, with what came of it.
    pub fn cosign_request(&self, peer: &str, result: &str) {
        self.cosign_requests
            .get_or_create(&PeerResult {
                peer: peer.to_string(),
                result: result.to_string(),
            })
            .inc();
    }

    /// Counts one answered call of `method` with `code` (`OK` on success), which took `took`.
    pub fn call(&self, method: &'static str, code: &'static str, took: Duration) {
        self.calls.get_or_create(&MethodCode { method, code }).inc();
        self.call_seconds
            .get_or_create(&MethodLabel { method })
            .observe(took.as_secs_f64());
    }

    /// Counts one refusal: a call refused with `code`, or a failed TLS handshake (`method`
    /// `handshake`).
    pub fn refusal(&self, method: &'static str, code: &'static str) {
        self.refusals
            .get_or_create(&MethodCode { method, code })
            .inc();
    }

    /// Counts one connection closed before any handshake by the per-source limit `limit`
    /// (`connections_per_source`, `handshakes_per_source`).
    pub fn connection_refused(&self, limit: &'static str) {
        self.connections_refused
            .get_or_create(&LimitLabel { limit })
            .inc();
    }

    /// Counts a subscription stream as open until the returned guard is dropped; `next` is the
    /// first sequence number it will consider.
    pub fn open_stream(&self, next: u64) -> OpenStream {
        let position = Arc::new(AtomicU64::new(next));
        let mut streams = lock(&self.streams);
        let id = streams.next_id;
        streams.next_id += 1;
        streams.open.insert(id, position.clone());
        OpenStream {
            streams: self.streams.clone(),
            id,
            position,
        }
    }

    /// The exposition of every metric, in the text format 0.0.4, with the gauges read now.
    /// Blocks while the readings do (the store's size is read from the file system).
    pub fn render(&self) -> Result<String, std::fmt::Error> {
        let mut out = String::with_capacity(8 * 1024);
        prometheus_text::encode(&mut out, &self.registry)?;
        Ok(out)
    }
}

/// One subscription stream, counted as open while this lives.
pub struct OpenStream {
    streams: Arc<Mutex<Streams>>,
    id: u64,
    /// The next sequence number the stream will consider.
    position: Arc<AtomicU64>,
}

impl OpenStream {
    /// Publishes the next sequence number the stream will consider.
    pub fn at(&self, next: u64) {
        self.position.store(next, Ordering::Relaxed);
    }
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        lock(&self.streams).open.remove(&self.id);
    }
}

/// Serves `GET /metrics` on `listener` until the returned future is dropped; dropping it also
/// ends every connection it accepted.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let metrics = metrics.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            answer(metrics.clone(), request)
                        });
                        let _ = hyper::server::conn::http1::Builder::new()
                            .timer(hyper_util::rt::TokioTimer::new())
                            .header_read_timeout(HEADER_READ_TIMEOUT)
                            .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                            .await;
                    });
                }
                Err(error) => {
                    // Out of file descriptors, typically: wait instead of spinning.
                    tracing::warn!(%error, "metrics listener cannot accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            // Reap finished connections so the set does not grow.
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// `GET /metrics` (or `HEAD`): the exposition; anything else: 404 or 405.
async fn answer(
    metrics: Arc<Metrics>,
    request: hyper::Request<hyper::body::Incoming>,
) -> Result<hyper::Response<String>, Infallible> {
    use hyper::{header, Method, Response, StatusCode};
    let reply = |status: StatusCode, body: String| {
        let mut response = Response::new(body);
        *response.status_mut() = status;
        response
    };
    if request.uri().path() != "/metrics" {
        return Ok(reply(
            StatusCode::NOT_FOUND,
            "not found; try /metrics\n".into(),
        ));
    }
    if request.method() != Method::GET && request.method() != Method::HEAD {
        let mut response = reply(StatusCode::METHOD_NOT_ALLOWED, "only GET and HEAD\n".into());
        response
            .headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return Ok(response);
    }
    // The store's size is read from the file system: keep that off the runtime's workers.
    let body = match tokio::task::spawn_blocking(move || metrics.render()).await {
        Ok(rendered) => rendered.map_err(|error| error.to_string()),
        Err(joined) => Err(joined.to_string()),
    };
    Ok(match body {
        Ok(body) => {
            let mut response = reply(StatusCode::OK, body);
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                header::HeaderValue::from_static(CONTENT_TYPE),
            );
            response
        }
        Err(error) => reply(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot render the metrics: {error}\n"),
        ),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Metrics over fixed readings: 7 messages stored, 12 leaves, `size` bytes.
    fn metrics(size: Option<u64>) -> Metrics {
        Metrics::new(
            &CommitStats::default(),
            Readings {
                store_size_bytes: Box::new(move || size),
                messages_stored: Box::new(|| 7),
                audit_tree_size: Box::new(|| 12),
                more: Vec::new(),
            },
        )
    }

    fn lines_starting(text: &str, prefix: &str) -> Vec<String> {
        text.lines()
            .filter(|l| l.starts_with(prefix))
            .map(String::from)
            .collect()
    }

    /// The names, types and order of the families dashboards were built on.
    #[test]
    fn families_keep_their_names_types_and_order() {
        let metrics = metrics(Some(4096));
        metrics.call("Submit", "OK", Duration::from_millis(3));
        metrics.refusal("handshake", "UNAUTHENTICATED");
        let text = metrics.render().unwrap();
        assert_eq!(
            lines_starting(&text, "# TYPE "),
            [
                "# TYPE ipex_calls_total counter",
                "# TYPE ipex_call_duration_seconds histogram",
                "# TYPE ipex_refusals_total counter",
                "# TYPE ipex_commit_batch_messages histogram",
                "# TYPE ipex_commit_flush_seconds histogram",
                "# TYPE ipex_store_size_bytes gauge",
                "# TYPE ipex_messages_stored gauge",
                "# TYPE ipex_audit_tree_size gauge",
                "# TYPE ipex_open_streams gauge",
                "# TYPE ipex_subscriber_lag_messages gauge",
                "# TYPE ipex_build_info gauge",
            ]
        );
        // One period at the end of a help text, not two.
        assert!(text.contains("# HELP ipex_store_size_bytes Bytes the store occupies on disk.\n"));
        for sample in [
            r#"ipex_calls_total{method="Submit",code="OK"} 1"#,
            r#"ipex_call_duration_seconds_bucket{method="Submit",le="0.0025"} 0"#,
            r#"ipex_call_duration_seconds_bucket{method="Submit",le="0.005"} 1"#,
            r#"ipex_call_duration_seconds_bucket{method="Submit",le="+Inf"} 1"#,
            r#"ipex_call_duration_seconds_count{method="Submit"} 1"#,
            r#"ipex_refusals_total{method="handshake",code="UNAUTHENTICATED"} 1"#,
            "ipex_store_size_bytes 4096",
            "ipex_messages_stored 7",
            "ipex_audit_tree_size 12",
            "ipex_open_streams 0",
            "ipex_subscriber_lag_messages 0",
        ] {
            assert!(text.lines().any(|l| l == sample), "{sample}\n{text}");
        }
        assert!(text.ends_with(&format!(
            "ipex_build_info{{version=\"{}\"}} 1\n",
            env!("CARGO_PKG_VERSION")
        )));
    }

    /// The bucket bounds are today's: 0.5 ms to 10 s, and 1 to 1024 messages.
    #[test]
    fn histograms_keep_their_buckets() {
        let text = metrics(None).render().unwrap();
        let bounds = |name: &str| -> Vec<String> {
            lines_starting(&text, &format!("{name}_bucket{{le=\""))
                .iter()
                .map(|l| l.split('"').nth(1).unwrap().to_string())
                .collect()
        };
        assert_eq!(
            bounds("ipex_commit_flush_seconds"),
            [
                "0.0005", "0.001", "0.0025", "0.005", "0.01", "0.025", "0.05", "0.1", "0.25",
                "0.5", "1", "2.5", "5", "10", "+Inf"
            ]
        );
        assert_eq!(
            bounds("ipex_commit_batch_messages"),
            ["1", "2", "4", "8", "16", "32", "64", "128", "256", "512", "1024", "+Inf"]
        );
    }

    /// The store observes its own handles; the registry exposes what they saw.
    #[test]
    fn commit_stats_observed_by_the_store_are_exposed() {
        let commits = CommitStats::default();
        let metrics = Metrics::new(
            &commits,
            Readings {
                store_size_bytes: Box::new(|| None),
                messages_stored: Box::new(|| 0),
                audit_tree_size: Box::new(|| 0),
                more: Vec::new(),
            },
        );
        commits.batch_messages.observe(3.0);
        commits.flush_seconds.observe(0.002);
        let text = metrics.render().unwrap();
        assert!(text.contains("\nipex_commit_batch_messages_bucket{le=\"2\"} 0\n"));
        assert!(text.contains("\nipex_commit_batch_messages_bucket{le=\"4\"} 1\n"));
        assert!(text.contains("\nipex_commit_batch_messages_count 1\n"));
        assert!(text.contains("\nipex_commit_flush_seconds_count 1\n"));
        // A store size that cannot be read leaves its sample out, not the family.
        assert!(text.contains("# TYPE ipex_store_size_bytes gauge\n"));
        assert!(!text.contains("\nipex_store_size_bytes "));
    }

    /// Two gateways in one process keep their own counts.
    #[test]
    fn each_gateway_counts_alone() {
        let (one, two) = (metrics(None), metrics(None));
        one.call("Submit", "OK", Duration::ZERO);
        one.call("Submit", "OK", Duration::ZERO);
        two.call("Submit", "OK", Duration::ZERO);
        let count = |m: &Metrics| {
            lines_starting(&m.render().unwrap(), "ipex_calls_total{")
                .first()
                .cloned()
        };
        assert_eq!(
            count(&one).as_deref(),
            Some(r#"ipex_calls_total{method="Submit",code="OK"} 2"#)
        );
        assert_eq!(
            count(&two).as_deref(),
            Some(r#"ipex_calls_total{method="Submit",code="OK"} 1"#)
        );
    }

    /// Open streams and their lag behind the 7 stored messages are read at each scrape.
    #[test]
    fn streams_are_read_when_scraped() {
        let metrics = metrics(None);
        let behind = metrics.open_stream(3);
        let caught_up = metrics.open_stream(8);
        let text = metrics.render().unwrap();
        assert!(text.contains("\nipex_open_streams 2\n"), "{text}");
        assert!(
            text.contains("\nipex_subscriber_lag_messages 5\n"),
            "{text}"
        );
        behind.at(6);
        let text = metrics.render().unwrap();
        assert!(
            text.contains("\nipex_subscriber_lag_messages 2\n"),
            "{text}"
        );
        drop(behind);
        drop(caught_up);
        let text = metrics.render().unwrap();
        assert!(text.contains("\nipex_open_streams 0\n"), "{text}");
        assert!(
            text.contains("\nipex_subscriber_lag_messages 0\n"),
            "{text}"
        );
    }
}
