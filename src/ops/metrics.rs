//! Prometheus metrics: counters, gauges and fixed-bucket histograms made of atomics, and the
//! plain HTTP/1.1 listener (`metrics_listen`) that serves them as `GET /metrics` in the text
//! exposition format 0.0.4. A separate listener, because a Prometheus server is not a
//! participant and has no client certificate; it reveals counts and sizes, never a message.
//!
//! Each gateway has its own [`Metrics`] (several run in one test process). What the store
//! measures of its group commits lives in the store ([`CommitStats`]); store size, messages
//! stored and audit tree size are read from the store when scraped, so they cost nothing
//! between scrapes.

use crate::app::Gateway;
use crate::storage::Store;
use std::collections::{BTreeMap, HashMap};
use std::convert::Infallible;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;
use tokio::net::TcpListener;

/// The `Content-Type` of the text exposition format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Upper bounds of the latency histograms, in nanoseconds: 0.5 ms to 10 s.
const SECONDS_BOUNDS: &[u64] = &[
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// Upper bounds of the batch-size histogram, in messages (`commit.max_batch` defaults to 512).
const MESSAGES_BOUNDS: &[u64] = &[1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024];

/// How long a client may take to send its request headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// A histogram with fixed buckets. Values are counted in a whole base unit (nanoseconds,
/// messages) so that the sum stays exact; they are exposed divided by `per_unit`.
pub struct Histogram {
    /// Inclusive upper bounds of the buckets, ascending, in the base unit.
    bounds: &'static [u64],
    /// Base units per exposed unit (1e9 for seconds counted in nanoseconds).
    per_unit: f64,
    /// Observations per bucket (not cumulative); the last one is above every bound.
    counts: Box<[AtomicU64]>,
    /// Sum of the observations, in the base unit.
    sum: AtomicU64,
}

impl Histogram {
    fn new(bounds: &'static [u64], per_unit: f64) -> Histogram {
        Histogram {
            bounds,
            per_unit,
            counts: (0..=bounds.len()).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0),
        }
    }

    /// Durations, 0.5 ms to 10 s, exposed in seconds.
    pub fn seconds() -> Histogram {
        Histogram::new(SECONDS_BOUNDS, 1e9)
    }

    /// Message counts, 1 to 1024.
    pub fn messages() -> Histogram {
        Histogram::new(MESSAGES_BOUNDS, 1.0)
    }

    /// Counts one observation, in the base unit.
    pub fn observe(&self, value: u64) {
        let bucket = self.bounds.partition_point(|&bound| bound < value);
        self.counts[bucket].fetch_add(1, Ordering::Relaxed);
        self.sum.fetch_add(value, Ordering::Relaxed);
    }

    /// Counts one duration (of a [`Histogram::seconds`]).
    pub fn observe_duration(&self, duration: Duration) {
        self.observe(u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX));
    }

    /// Observations so far.
    pub fn count(&self) -> u64 {
        self.counts.iter().map(|c| c.load(Ordering::Relaxed)).sum()
    }

    /// Writes the `_bucket`, `_sum` and `_count` samples. `_count` is the `+Inf` bucket as
    /// read, so the two agree even while observations arrive.
    fn write(&self, out: &mut String, name: &str, labels: &[(&str, &str)]) {
        let mut cumulative = 0;
        for (i, count) in self.counts.iter().enumerate() {
            cumulative += count.load(Ordering::Relaxed);
            let le = match self.bounds.get(i) {
                Some(&bound) => (bound as f64 / self.per_unit).to_string(),
                None => "+Inf".to_string(),
            };
            let mut with_le = labels.to_vec();
            with_le.push(("le", &le));
            sample(out, &format!("{name}_bucket"), &with_le, cumulative);
        }
        let sum = self.sum.load(Ordering::Relaxed) as f64 / self.per_unit;
        sample(out, &format!("{name}_sum"), labels, sum);
        sample(out, &format!("{name}_count"), labels, cumulative);
    }
}

/// What the store's committer measures of each group commit.
pub struct CommitStats {
    /// Messages stored per group commit that stored any.
    pub batch_messages: Histogram,
    /// Time to apply and flush (fdatasync) a group commit's writes.
    pub flush_seconds: Histogram,
}

impl Default for CommitStats {
    fn default() -> Self {
        CommitStats {
            batch_messages: Histogram::messages(),
            flush_seconds: Histogram::seconds(),
        }
    }
}

/// Metrics of one label set each, created on first use.
struct Family<K, V> {
    members: RwLock<BTreeMap<K, V>>,
    make: fn() -> V,
}

impl<K: Ord, V> Family<K, V> {
    fn new(make: fn() -> V) -> Self {
        Family {
            members: RwLock::new(BTreeMap::new()),
            make,
        }
    }

    /// Runs `f` on the member for `key`; only its first use takes the write lock.
    fn with(&self, key: K, f: impl FnOnce(&V)) {
        if let Some(member) = self
            .members
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
        {
            return f(member);
        }
        let mut members = self.members.write().unwrap_or_else(PoisonError::into_inner);
        f(members.entry(key).or_insert_with(self.make));
    }
}

/// (method, canonical gRPC code name).
type MethodCode = (&'static str, &'static str);

/// The metrics one gateway records as it works.
pub struct Metrics {
    /// Calls answered, by method and code.
    calls: Family<MethodCode, AtomicU64>,
    /// Time to answer, by method.
    call_seconds: Family<&'static str, Histogram>,
    /// Refused calls and handshakes, by method and code.
    refusals: Family<MethodCode, AtomicU64>,
    /// Subscription streams open.
    streams: Mutex<Streams>,
}

/// The subscription streams open, each with the next sequence number it will consider.
#[derive(Default)]
struct Streams {
    next_id: u64,
    open: HashMap<u64, Arc<AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics {
            calls: Family::new(|| AtomicU64::new(0)),
            call_seconds: Family::new(Histogram::seconds),
            refusals: Family::new(|| AtomicU64::new(0)),
            streams: Mutex::new(Streams::default()),
        }
    }
}

impl Metrics {
    /// Counts one answered call of `method` with `code` (`OK` on success), which took `took`.
    pub fn call(&self, method: &'static str, code: &'static str, took: Duration) {
        self.calls.with((method, code), |c| {
            c.fetch_add(1, Ordering::Relaxed);
        });
        self.call_seconds.with(method, |h| h.observe_duration(took));
    }

    /// Counts one refusal: a call refused with `code`, or a failed TLS handshake (`method`
    /// `handshake`).
    pub fn refusal(&self, method: &'static str, code: &'static str) {
        self.refusals.with((method, code), |c| {
            c.fetch_add(1, Ordering::Relaxed);
        });
    }

    /// Counts a subscription stream as open until the returned guard is dropped; `next` is the
    /// first sequence number it will consider.
    pub fn open_stream(self: &Arc<Self>, next: u64) -> OpenStream {
        let position = Arc::new(AtomicU64::new(next));
        let mut streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
        let id = streams.next_id;
        streams.next_id += 1;
        streams.open.insert(id, position.clone());
        OpenStream {
            metrics: self.clone(),
            id,
            position,
        }
    }

    /// The exposition of every metric, with the gauges read from `store` now.
    pub fn render(&self, store: &Store) -> String {
        let mut out = String::with_capacity(8 * 1024);
        let last_seq = store.last_seq();

        header(
            &mut out,
            "ipex_calls_total",
            "counter",
            "Calls answered, by method and canonical gRPC status code (OK on success).",
        );
        for ((method, code), count) in read(&self.calls.members).iter() {
            let count = count.load(Ordering::Relaxed);
            sample(
                &mut out,
                "ipex_calls_total",
                &[("method", method), ("code", code)],
                count,
            );
        }

        header(
            &mut out,
            "ipex_call_duration_seconds",
            "histogram",
            "Time from a call's arrival to its answer, by method; for Subscribe, until the stream starts.",
        );
        for (method, histogram) in read(&self.call_seconds.members).iter() {
            histogram.write(
                &mut out,
                "ipex_call_duration_seconds",
                &[("method", method)],
            );
        }

        header(
            &mut out,
            "ipex_refusals_total",
            "counter",
            "Calls refused, by method and code; failed TLS handshakes as method \"handshake\".",
        );
        for ((method, code), count) in read(&self.refusals.members).iter() {
            let count = count.load(Ordering::Relaxed);
            sample(
                &mut out,
                "ipex_refusals_total",
                &[("method", method), ("code", code)],
                count,
            );
        }

        let commits = store.commit_stats();
        header(
            &mut out,
            "ipex_commit_batch_messages",
            "histogram",
            "Messages stored per group commit (commits that stored at least one).",
        );
        commits
            .batch_messages
            .write(&mut out, "ipex_commit_batch_messages", &[]);
        header(
            &mut out,
            "ipex_commit_flush_seconds",
            "histogram",
            "Time to apply and flush (fdatasync) the writes of a group commit.",
        );
        commits
            .flush_seconds
            .write(&mut out, "ipex_commit_flush_seconds", &[]);

        header(
            &mut out,
            "ipex_store_size_bytes",
            "gauge",
            "Bytes the store occupies on disk.",
        );
        match store.size_on_disk() {
            Ok(bytes) => sample(&mut out, "ipex_store_size_bytes", &[], bytes),
            Err(error) => tracing::warn!(%error, "metrics: cannot read the store's size"),
        }
        header(
            &mut out,
            "ipex_messages_stored",
            "gauge",
            "Messages durably stored (the highest sequence number).",
        );
        sample(&mut out, "ipex_messages_stored", &[], last_seq);
        header(
            &mut out,
            "ipex_audit_tree_size",
            "gauge",
            "Leaves in the durable exchange log.",
        );
        sample(&mut out, "ipex_audit_tree_size", &[], store.tree_size());

        let (open, lag) = {
            let streams = self.streams.lock().unwrap_or_else(PoisonError::into_inner);
            let lag = streams
                .open
                .values()
                .map(|next| (last_seq + 1).saturating_sub(next.load(Ordering::Relaxed)))
                .max()
                .unwrap_or(0);
            (streams.open.len(), lag)
        };
        header(
            &mut out,
            "ipex_open_streams",
            "gauge",
            "Subscription streams open.",
        );
        sample(&mut out, "ipex_open_streams", &[], open);
        header(
            &mut out,
            "ipex_subscriber_lag_messages",
            "gauge",
            "Largest number of stored messages an open subscription stream has yet to consider.",
        );
        sample(&mut out, "ipex_subscriber_lag_messages", &[], lag);

        header(
            &mut out,
            "ipex_build_info",
            "gauge",
            "Always 1; the version of ipexd in a label.",
        );
        sample(
            &mut out,
            "ipex_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            1,
        );
        out
    }
}

/// One subscription stream, counted as open while this lives.
pub struct OpenStream {
    metrics: Arc<Metrics>,
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
        self.metrics
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .open
            .remove(&self.id);
    }
}

fn read<T>(lock: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    lock.read().unwrap_or_else(PoisonError::into_inner)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    // HELP text escapes only backslash and newline.
    let help = help.replace('\\', r"\\").replace('\n', r"\n");
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
    out.push_str(name);
    if !labels.is_empty() {
        out.push('{');
        for (i, (label, value)) in labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            let value = value
                .replace('\\', r"\\")
                .replace('"', "\\\"")
                .replace('\n', r"\n");
            let _ = write!(out, "{label}=\"{value}\"");
        }
        out.push('}');
    }
    let _ = writeln!(out, " {value}");
}

/// Serves `GET /metrics` on `listener` until the returned future is dropped; dropping it also
/// ends every connection it accepted.
pub async fn serve(listener: TcpListener, gateway: Arc<Gateway>) {
    let mut connections = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => {
                    let gateway = gateway.clone();
                    connections.spawn(async move {
                        let service = hyper::service::service_fn(move |request| {
                            answer(gateway.clone(), request)
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
    gateway: Arc<Gateway>,
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
    let body = tokio::task::spawn_blocking(move || gateway.metrics.render(&gateway.store)).await;
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
