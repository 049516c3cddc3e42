//! `ipex bench`: how fast is a gateway, and what does durability cost? In one run, over the
//! same mutual-TLS connections, it measures the cheapest call there is — the
//! `grpc.health.v1.Health/Check` baseline, which touches neither store nor identity — and the
//! real work — `Submit` of a realistic seizure notification, identified, authorized,
//! validated, written with its audit leaves and flushed to disk before the answer — at several
//! numbers of calls in flight, and reports Submit as a ratio of the baseline.
//!
//! Without `--gateway` it starts a gateway in this process, on a temporary store with a
//! generated development PKI, bound on 127.0.0.1:0: the load generator and the gateway then
//! share the machine's cores, as the figures in the README say.

use super::args::{BenchArgs, IdentityArgs};
use super::client::{self, Bearer, ClientTls, Transport};
use super::error::CliError;
use crate::pb;
use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tonic::transport::Channel;
use tonic_health::pb::health_client::HealthClient;

/// The envelope every Submit sends, with a fresh id each time.
const SEIZURE_NOTIFICATION: &str =
    include_str!("../../examples/messages/seizure-notification.json");

/// The seller flag market-a submits before the run, so that linked seizures match it.
const SELLER_FLAG: &str = include_str!("../../examples/messages/seller-flag.json");

/// The participant a local gateway's Submit calls come from: customs notify seizures.
const LOCAL_SENDER: &str = "customs-nl";

/// The target: at this many calls in flight, Submit reaches at least
/// [`TARGET_RATE_RATIO`] of the baseline's calls per second and at most [`TARGET_P99_RATIO`]
/// times its p99 latency.
pub const TARGET_CONCURRENCY: usize = 64;
/// See [`TARGET_CONCURRENCY`].
pub const TARGET_RATE_RATIO: f64 = 0.6;
/// See [`TARGET_CONCURRENCY`].
pub const TARGET_P99_RATIO: f64 = 2.0;

/// The pseudonym of the seller the linked seizures name, flagged by market-a before the run
/// on a local gateway.
const LINKED_PSEUDONYM: &str = "932bc9782374eb69ef956432384a3fb1d971cb0b9b70b3a604b65600f52797dd";

/// The calls measured.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Call {
    /// `grpc.health.v1.Health/Check` of the whole gateway.
    Health,
    /// `ipex.v1.Exchange/Submit` of a seizure notification that concerns no platform: nothing
    /// to alert, no seller to match.
    Submit,
    /// `ipex.v1.Exchange/Submit` of the sample seizure notification with a seller pseudonym:
    /// it names market-a's listing (a listing alert, stored in its commit) and a seller
    /// market-a flagged, which it looks up (a seller match the first time; after that the
    /// sender's own last seizure of the seller is newer than the flag: no news).
    Linked,
    /// The `linked` seizures sent to a second local gateway on which seller matching is off
    /// and no administration raises listing alerts: the same Submit without the enforcement
    /// loop, the baseline of `linked`.
    Unlinked,
    /// `ipex.v1.Exchange/Submit` of the `submit` seizure notification signed by the sender
    /// (`--sign`): the client signs each, the gateway verifies each before storing it.
    Signed,
    /// The `submit` seizures sent to a third local gateway with one peer configured that never
    /// answers (a closed loopback port): its forwarder, its requests for cosignatures and its
    /// directory fetches keep failing in the background. Local traffic with a peer down,
    /// against `submit`.
    PeerDown,
}

impl Call {
    /// Its name in the report.
    pub fn name(self) -> &'static str {
        match self {
            Call::Health => "health",
            Call::Submit => "submit",
            Call::Linked => "linked",
            Call::Signed => "signed",
            Call::Unlinked => "unlinked",
            Call::PeerDown => "peer-down",
        }
    }

    /// Every call, in the order each step measures them.
    const ALL: [Call; 6] = [
        Call::Health,
        Call::Submit,
        Call::Linked,
        Call::Unlinked,
        Call::Signed,
        Call::PeerDown,
    ];
}

/// When a step ends.
#[derive(Clone, Copy, Debug)]
enum Length {
    /// After this long.
    Time(Duration),
    /// After this many calls.
    Calls(u64),
}

/// What one step measured.
#[derive(Clone, Debug)]
pub struct Step {
    /// Which call.
    pub call: Call,
    /// Calls in flight.
    pub concurrency: usize,
    /// Calls answered with success.
    pub calls: u64,
    /// Calls that failed.
    pub errors: u64,
    /// The first failure, as the CLI prints it.
    pub first_error: Option<String>,
    /// From the first call to the last answer.
    pub elapsed: Duration,
    /// Successful calls per second.
    pub calls_per_sec: f64,
    /// Latency percentiles of successful calls, in milliseconds.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// See `p50_ms`.
    pub p999_ms: f64,
    /// The slowest successful call, in milliseconds.
    pub max_ms: f64,
}

/// The clients of one connection.
#[derive(Clone)]
struct Conn {
    /// For the baseline.
    health: HealthClient<Transport>,
    /// For Submit.
    exchange: pb::exchange_client::ExchangeClient<Transport>,
    /// For Submit to the gateway without the enforcement loop, when there is one.
    unlinked: Option<pb::exchange_client::ExchangeClient<Transport>>,
    /// For Submit to the gateway whose peer is down, when there is one.
    peer_down: Option<pb::exchange_client::ExchangeClient<Transport>>,
}

/// What every worker shares.
struct Load {
    /// One per connection.
    conns: Vec<Conn>,
    /// The envelope `submit` sends, its id replaced per call.
    template: pb::Envelope,
    /// The envelope `linked` sends, its id replaced per call.
    linked: pb::Envelope,
    /// Who signs the envelopes of `signed`, and with which key; `None` leaves the step out.
    signer: Option<(String, crate::domain::signature::SigningKey)>,
    /// Distinguishes this run's ids from earlier runs' against the same gateway.
    run_id: String,
    /// Ids used so far.
    next_id: AtomicU64,
}

impl Load {
    /// Makes one call; the error as the CLI prints it.
    async fn call(&self, call: Call, conn: &mut Conn) -> Result<(), String> {
        let result = match call {
            Call::Health => conn
                .health
                .check(tonic_health::pb::HealthCheckRequest::default())
                .await
                .map(|_| ()),
            Call::Submit | Call::Linked | Call::Unlinked | Call::Signed | Call::PeerDown => {
                let n = self.next_id.fetch_add(1, Ordering::Relaxed);
                let mut envelope = if matches!(call, Call::Linked | Call::Unlinked) {
                    self.linked.clone()
                } else {
                    self.template.clone()
                };
                envelope.id = format!("bench-{}-{n}", self.run_id);
                if let (Call::Signed, Some((sender, key))) = (call, &self.signer) {
                    super::message::sign_all(std::slice::from_mut(&mut envelope), sender, key);
                }
                let exchange = match (call, &mut conn.unlinked, &mut conn.peer_down) {
                    (Call::Unlinked, Some(unlinked), _) => unlinked,
                    (Call::PeerDown, _, Some(peer_down)) => peer_down,
                    _ => &mut conn.exchange,
                };
                exchange
                    .submit(pb::SubmitRequest {
                        envelope: Some(envelope),
                    })
                    .await
                    .map(|_| ())
            }
        };
        result.map_err(|status| super::error::describe_status(&status))
    }
}

/// Runs `ipex bench`: against `gateway` with the identity flags, or against a gateway of its
/// own. Progress on stderr, the report on `out`.
pub async fn run(
    gateway: Option<&str>,
    identity: &IdentityArgs,
    args: &BenchArgs,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let length = match args.requests {
        Some(0) => return Err(CliError::Input("--requests: must be at least 1".into())),
        Some(n) => Length::Calls(n),
        None => Length::Time(parse_duration("--duration", &args.duration)?),
    };
    let warmup = parse_duration("--warmup", &args.warmup)?;
    if args.concurrency.is_empty() || args.concurrency.contains(&0) {
        return Err(CliError::Input(
            "--concurrency: give numbers of calls in flight, each at least 1".into(),
        ));
    }
    if args.connections == 0 {
        return Err(CliError::Input("--connections: must be at least 1".into()));
    }

    let dev_key = |certs: &std::path::Path, id: &str| {
        Some(crate::dev::paths::DevPaths {
            dir: certs.to_path_buf(),
        })
        .map(|p| p.sign_key(id))
        .filter(|p| p.is_file())
    };
    let (local, target, tls, bearer, sign, unlinked, peer_down) = match gateway {
        Some(url) => (
            None,
            url.to_string(),
            identity.tls()?,
            Bearer::new(identity.token.as_deref())?,
            args.sign.clone().or_else(|| {
                identity
                    .as_participant
                    .as_deref()
                    .and_then(|id| dev_key(&identity.certs_dir, id))
            }),
            None,
            None,
        ),
        None => {
            progress_line("starting a gateway on a temporary store", true);
            let local = LocalGateway::start(true, false).await?;
            if let Err(error) = local.flag_linked_seller().await {
                local.stop().await?;
                return Err(error);
            }
            // The same seizures without the enforcement loop, on a gateway of their own.
            let plain = match LocalGateway::start(false, false).await {
                Ok(plain) => plain,
                Err(error) => {
                    local.stop().await?;
                    return Err(error);
                }
            };
            if let Err(error) = plain.flag_linked_seller().await {
                local.stop().await?;
                plain.stop().await?;
                return Err(error);
            }
            // The `submit` seizures on a gateway like the first, with a peer that is down.
            let lonely = match LocalGateway::start(true, true).await {
                Ok(lonely) => lonely,
                Err(error) => {
                    local.stop().await?;
                    plain.stop().await?;
                    return Err(error);
                }
            };
            let target = local.endpoint();
            let tls = local.tls.clone();
            let sign = args
                .sign
                .clone()
                .or_else(|| dev_key(&local.certs, LOCAL_SENDER));
            let unlinked = Some((plain.endpoint(), plain.tls.clone()));
            let peer_down = Some((lonely.endpoint(), lonely.tls.clone()));
            (
                Some((local, plain, lonely)),
                target,
                tls,
                Bearer::default(),
                sign,
                unlinked,
                peer_down,
            )
        }
    };
    let variants = Variants {
        sign,
        unlinked,
        peer_down,
    };
    let result = measure(&target, &tls, bearer, args, length, warmup, variants).await;
    if let Some((local, plain, lonely)) = local {
        local.stop().await?;
        plain.stop().await?;
        lonely.stop().await?;
    }
    let steps = result?;
    let report = Report {
        gateway: gateway.map_or_else(|| "local".to_string(), str::to_string),
        connections: args.connections,
        length,
        steps,
    };
    if args.json {
        let text = serde_json::to_string_pretty(&report.to_json())
            .map_err(|e| CliError::Input(e.to_string()))?;
        writeln!(out, "{text}")
    } else {
        write!(out, "{}", report.table())
    }
    .map_err(|e| CliError::Input(format!("cannot write output: {e}")))
}

/// What the steps beside `health`, `submit` and `linked` need.
struct Variants {
    /// The key that signs the seizures of `signed`.
    sign: Option<std::path::PathBuf>,
    /// The gateway without the enforcement loop that `unlinked` sends to.
    unlinked: Option<(String, ClientTls)>,
    /// The gateway with a peer down that `peer-down` sends to.
    peer_down: Option<(String, ClientTls)>,
}

/// Connects, checks both calls once, warms up, then runs every step.
async fn measure(
    target: &str,
    tls: &ClientTls,
    bearer: Bearer,
    args: &BenchArgs,
    length: Length,
    warmup: Duration,
    variants: Variants,
) -> Result<Vec<Step>, CliError> {
    let Variants {
        sign,
        unlinked,
        peer_down,
    } = variants;
    let mut conns = Vec::with_capacity(args.connections);
    for _ in 0..args.connections {
        let channel: Channel = client::connect(target, tls).await?;
        let transport =
            tonic::service::interceptor::InterceptedService::new(channel, bearer.clone());
        let unlinked = match &unlinked {
            Some((target, tls)) => {
                let channel: Channel = client::connect(target, tls).await?;
                Some(pb::exchange_client::ExchangeClient::new(
                    tonic::service::interceptor::InterceptedService::new(channel, bearer.clone()),
                ))
            }
            None => None,
        };
        let down = match &peer_down {
            Some((target, tls)) => {
                let channel: Channel = client::connect(target, tls).await?;
                Some(pb::exchange_client::ExchangeClient::new(
                    tonic::service::interceptor::InterceptedService::new(channel, bearer.clone()),
                ))
            }
            None => None,
        };
        conns.push(Conn {
            health: HealthClient::new(transport.clone()),
            exchange: pb::exchange_client::ExchangeClient::new(transport),
            unlinked,
            peer_down: down,
        });
    }
    let signer = match sign {
        None => None,
        Some(path) => {
            let key = super::message::signing_key(&path)?;
            let channel: Channel = client::connect(target, tls).await?;
            let mut participants = pb::participants_client::ParticipantsClient::new(
                tonic::service::interceptor::InterceptedService::new(channel, bearer.clone()),
            );
            let me = participants.who_am_i(pb::WhoAmIRequest {}).await?;
            let sender = me
                .into_inner()
                .participant
                .map(|p| p.id)
                .unwrap_or_default();
            Some((sender, key))
        }
    };
    let calls: Vec<Call> = Call::ALL
        .into_iter()
        .filter(|c| *c != Call::Signed || signer.is_some())
        .filter(|c| *c != Call::Unlinked || unlinked.is_some())
        .filter(|c| *c != Call::PeerDown || peer_down.is_some())
        .collect();
    let (template, linked) = templates()?;
    let run_id = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| format!("{:x}", d.as_millis()))
        .unwrap_or_default();
    let load = Arc::new(Load {
        conns,
        template,
        linked,
        signer,
        run_id,
        next_id: AtomicU64::new(0),
    });

    // One call of each first, so that a wrong identity or a refusing gateway is reported
    // plainly instead of as a table of errors.
    for &call in &calls {
        let mut conn = load.conns[0].clone();
        load.call(call, &mut conn).await.map_err(|error| {
            CliError::Input(format!("the first {} call failed: {error}", call.name()))
        })?;
    }
    if !warmup.is_zero() {
        let in_flight = args.concurrency.iter().copied().max().unwrap_or(1);
        for &call in &calls {
            progress_line(&format!("warming up: {}", call.name()), true);
            step(&load, call, in_flight, Length::Time(warmup / 2), false).await;
        }
    }
    let mut steps = Vec::new();
    for &in_flight in &args.concurrency {
        for &call in &calls {
            steps.push(step(&load, call, in_flight, length, true).await);
        }
    }
    progress_line("", false);
    Ok(steps)
}

/// The envelopes of `submit` and `linked`: the sample seizure notification without its seller
/// reference, and with a seller pseudonym.
fn templates() -> Result<(pb::Envelope, pb::Envelope), CliError> {
    let sample = crate::pb::json::envelope_from_json(SEIZURE_NOTIFICATION)
        .map_err(|e| CliError::Input(format!("the built-in seizure notification: {e}")))?;
    let mut plain = sample.clone();
    let mut linked = sample;
    if let Some(pb::envelope::Payload::SeizureNotification(s)) = &mut plain.payload {
        s.seller = None;
    }
    if let Some(pb::envelope::Payload::SeizureNotification(s)) = &mut linked.payload {
        if let Some(seller) = &mut s.seller {
            seller.seller_pseudonym = LINKED_PSEUDONYM.into();
        }
    }
    Ok((plain, linked))
}

/// Runs `call` with `in_flight` calls at all times until `length` is reached.
async fn step(
    load: &Arc<Load>,
    call: Call,
    in_flight: usize,
    length: Length,
    report_progress: bool,
) -> Step {
    let stop = Arc::new(AtomicBool::new(false));
    let budget = Arc::new(AtomicI64::new(match length {
        Length::Calls(n) => i64::try_from(n).unwrap_or(i64::MAX),
        Length::Time(_) => i64::MAX,
    }));
    let answered = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..in_flight)
        .map(|worker| {
            let load = load.clone();
            let stop = stop.clone();
            let budget = budget.clone();
            let answered = answered.clone();
            tokio::spawn(async move {
                let mut conn = load.conns[worker % load.conns.len()].clone();
                let mut latencies = Vec::new();
                let mut errors = 0u64;
                let mut first_error = None;
                while !stop.load(Ordering::Relaxed) && budget.fetch_sub(1, Ordering::Relaxed) > 0 {
                    let sent = Instant::now();
                    match load.call(call, &mut conn).await {
                        Ok(()) => latencies.push(sent.elapsed().as_nanos() as u64),
                        Err(error) => {
                            errors += 1;
                            first_error.get_or_insert(error);
                        }
                    }
                    answered.fetch_add(1, Ordering::Relaxed);
                }
                (latencies, errors, first_error)
            })
        })
        .collect();

    let mut reported = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        let elapsed = started.elapsed();
        if let Length::Time(limit) = length {
            if elapsed >= limit {
                stop.store(true, Ordering::Relaxed);
            }
        }
        if workers.iter().all(|w| w.is_finished()) {
            break;
        }
        if report_progress && reported.elapsed() >= Duration::from_millis(200) {
            reported = Instant::now();
            let done = answered.load(Ordering::Relaxed);
            let of = match length {
                Length::Time(limit) => format!("{:.1} s of {:.1} s", secs(elapsed), secs(limit)),
                Length::Calls(n) => format!("{done} of {n} calls"),
            };
            progress_line(
                &format!(
                    "{:<6} {in_flight:>4} in flight  {of}  {:>8.0} calls/s",
                    call.name(),
                    done as f64 / secs(elapsed).max(1e-9)
                ),
                true,
            );
        }
    }
    let elapsed = started.elapsed();
    let mut latencies = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for worker in workers {
        // A worker only ends by returning; a panic would be a bug in this module.
        let (mut samples, worker_errors, worker_first) =
            worker.await.expect("a bench worker panicked");
        latencies.append(&mut samples);
        errors += worker_errors;
        if first_error.is_none() {
            first_error = worker_first;
        }
    }
    latencies.sort_unstable();
    let calls = latencies.len() as u64;
    let percentile = |p: f64| -> f64 {
        if latencies.is_empty() {
            return 0.0;
        }
        // Nearest rank: the smallest sample with at least p of the samples at or below it.
        let rank = ((p * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len());
        latencies[rank - 1] as f64 / 1e6
    };
    let result = Step {
        call,
        concurrency: in_flight,
        calls,
        errors,
        first_error,
        elapsed,
        calls_per_sec: calls as f64 / secs(elapsed).max(1e-9),
        p50_ms: percentile(0.50),
        p99_ms: percentile(0.99),
        p999_ms: percentile(0.999),
        max_ms: latencies.last().map_or(0.0, |&n| n as f64 / 1e6),
    };
    if report_progress {
        progress_line(
            &format!(
                "{:<6} {in_flight:>4} in flight  {calls} calls in {:.1} s  {:>8.0} calls/s  p99 {:.2} ms  {errors} errors",
                call.name(),
                secs(elapsed),
                result.calls_per_sec,
                result.p99_ms
            ),
            false,
        );
    }
    result
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

/// Writes a progress line on stderr. On a terminal a `transient` line is overwritten by the
/// next; elsewhere transient lines are left out and only the others written, one per line.
fn progress_line(text: &str, transient: bool) {
    let mut err = std::io::stderr().lock();
    if err.is_terminal() {
        let end = if transient || text.is_empty() {
            ""
        } else {
            "\n"
        };
        let _ = write!(err, "\r\x1b[K{text}{end}");
    } else if !transient && !text.is_empty() {
        let _ = writeln!(err, "{text}");
    }
    let _ = err.flush();
}

/// Parses `5s`, `500ms`, `2m`, or a number of seconds.
pub fn parse_duration(flag: &str, text: &str) -> Result<Duration, CliError> {
    let text = text.trim();
    let at = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(at);
    let value: f64 = number
        .parse()
        .map_err(|_| CliError::Input(format!("{flag} {text:?}: expected e.g. 5s, 500ms or 1m")))?;
    let seconds = match unit.trim() {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        _ => {
            return Err(CliError::Input(format!(
                "{flag} {text:?}: the unit is ms, s or m"
            )))
        }
    };
    Duration::try_from_secs_f64(seconds)
        .map_err(|_| CliError::Input(format!("{flag} {text:?}: out of range")))
}

/// What a run measured, for the table and the JSON.
struct Report {
    /// `local`, or the address given.
    gateway: String,
    /// Connections used.
    connections: usize,
    /// How long each step ran.
    length: Length,
    /// Health then Submit at each concurrency, in order.
    steps: Vec<Step>,
}

/// Submit against the baseline at one concurrency.
struct Ratio {
    /// Calls in flight.
    concurrency: usize,
    /// Submit calls/s over health calls/s.
    rate: f64,
    /// Submit p99 over health p99.
    p99: f64,
    /// Linked Submit calls/s and p99 over plain Submit's, when measured.
    linked: Option<(f64, f64)>,
    /// Signed Submit calls/s and p99 over plain Submit's, when measured.
    signed: Option<(f64, f64)>,
    /// Linked Submit calls/s and p99 over the same seizures' without the enforcement loop.
    loop_cost: Option<(f64, f64)>,
    /// Submit calls/s and p99 on the gateway with a peer down over plain Submit's.
    peer_down: Option<(f64, f64)>,
}

impl Report {
    fn ratios(&self) -> Vec<Ratio> {
        let find = |call, concurrency| {
            self.steps
                .iter()
                .find(|s| s.call == call && s.concurrency == concurrency)
        };
        let mut out: Vec<Ratio> = Vec::new();
        for step in &self.steps {
            if out.iter().any(|r| r.concurrency == step.concurrency) {
                continue;
            }
            if let (Some(health), Some(submit)) = (
                find(Call::Health, step.concurrency),
                find(Call::Submit, step.concurrency),
            ) {
                out.push(Ratio {
                    concurrency: step.concurrency,
                    rate: submit.calls_per_sec / health.calls_per_sec.max(1e-9),
                    p99: submit.p99_ms / health.p99_ms.max(1e-9),
                    linked: find(Call::Linked, step.concurrency).map(|linked| {
                        (
                            linked.calls_per_sec / submit.calls_per_sec.max(1e-9),
                            linked.p99_ms / submit.p99_ms.max(1e-9),
                        )
                    }),
                    loop_cost: find(Call::Linked, step.concurrency)
                        .zip(find(Call::Unlinked, step.concurrency))
                        .map(|(linked, unlinked)| {
                            (
                                linked.calls_per_sec / unlinked.calls_per_sec.max(1e-9),
                                linked.p99_ms / unlinked.p99_ms.max(1e-9),
                            )
                        }),
                    peer_down: find(Call::PeerDown, step.concurrency).map(|down| {
                        (
                            down.calls_per_sec / submit.calls_per_sec.max(1e-9),
                            down.p99_ms / submit.p99_ms.max(1e-9),
                        )
                    }),
                    signed: find(Call::Signed, step.concurrency).map(|signed| {
                        (
                            signed.calls_per_sec / submit.calls_per_sec.max(1e-9),
                            signed.p99_ms / submit.p99_ms.max(1e-9),
                        )
                    }),
                });
            }
        }
        out
    }

    /// The target's verdict, when its concurrency was measured.
    fn target(&self) -> Option<(f64, f64, bool)> {
        let errors = self.steps.iter().any(|s| s.errors > 0);
        self.ratios()
            .into_iter()
            .find(|r| r.concurrency == TARGET_CONCURRENCY)
            .map(|r| {
                let met = !errors && r.rate >= TARGET_RATE_RATIO && r.p99 <= TARGET_P99_RATIO;
                (r.rate, r.p99, met)
            })
    }

    fn to_json(&self) -> serde_json::Value {
        let round = |x: f64, digits: i32| {
            let scale = 10f64.powi(digits);
            (x * scale).round() / scale
        };
        let steps: Vec<_> = self
            .steps
            .iter()
            .map(|s| {
                serde_json::json!({
                    "call": s.call.name(),
                    "concurrency": s.concurrency,
                    "calls": s.calls,
                    "errors": s.errors,
                    "first_error": s.first_error,
                    "seconds": round(secs(s.elapsed), 3),
                    "calls_per_sec": round(s.calls_per_sec, 1),
                    "p50_ms": round(s.p50_ms, 3),
                    "p99_ms": round(s.p99_ms, 3),
                    "p999_ms": round(s.p999_ms, 3),
                    "max_ms": round(s.max_ms, 3),
                })
            })
            .collect();
        let ratios: Vec<_> = self
            .ratios()
            .iter()
            .map(|r| {
                serde_json::json!({
                    "concurrency": r.concurrency,
                    "calls_per_sec_ratio": round(r.rate, 3),
                    "p99_ratio": round(r.p99, 3),
                    "linked_calls_per_sec_ratio": r.linked.map(|(rate, _)| round(rate, 3)),
                    "linked_p99_ratio": r.linked.map(|(_, p99)| round(p99, 3)),
                    "linked_unlinked_calls_per_sec_ratio": r.loop_cost.map(|(rate, _)| round(rate, 3)),
                    "linked_unlinked_p99_ratio": r.loop_cost.map(|(_, p99)| round(p99, 3)),
                    "signed_calls_per_sec_ratio": r.signed.map(|(rate, _)| round(rate, 3)),
                    "signed_p99_ratio": r.signed.map(|(_, p99)| round(p99, 3)),
                    "peer_down_calls_per_sec_ratio": r.peer_down.map(|(rate, _)| round(rate, 3)),
                    "peer_down_p99_ratio": r.peer_down.map(|(_, p99)| round(p99, 3)),
                })
            })
            .collect();
        let target = self.target().map(|(rate, p99, met)| {
            serde_json::json!({
                "concurrency": TARGET_CONCURRENCY,
                "min_calls_per_sec_ratio": TARGET_RATE_RATIO,
                "max_p99_ratio": TARGET_P99_RATIO,
                "calls_per_sec_ratio": round(rate, 3),
                "p99_ratio": round(p99, 3),
                "met": met,
            })
        });
        let (duration_ms, requests) = match self.length {
            Length::Time(d) => (Some(d.as_millis() as u64), None),
            Length::Calls(n) => (None, Some(n)),
        };
        serde_json::json!({
            "gateway": self.gateway,
            "connections": self.connections,
            "duration_ms": duration_ms,
            "requests": requests,
            "cpus": std::thread::available_parallelism().map_or(0, |n| n.get()),
            "steps": steps,
            "ratios": ratios,
            "target": target,
        })
    }

    fn table(&self) -> String {
        let mut t = String::new();
        let length = match self.length {
            Length::Time(d) => format!("{:.1} s per step", secs(d)),
            Length::Calls(n) => format!("{n} calls per step"),
        };
        let gateway = if self.gateway == "local" {
            "a local gateway (temporary store, generated PKI)".to_string()
        } else {
            self.gateway.clone()
        };
        t.push_str(&format!(
            "ipex bench: {gateway}, {} connections, {length}, {} CPUs\n\n",
            self.connections,
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ));
        t.push_str("in flight  call         calls/s    p50 ms    p99 ms   p999 ms  errors\n");
        for s in &self.steps {
            t.push_str(&format!(
                "{:>9}  {:<9} {:>10.0} {:>9.2} {:>9.2} {:>9.2} {:>7}\n",
                s.concurrency,
                s.call.name(),
                s.calls_per_sec,
                s.p50_ms,
                s.p99_ms,
                s.p999_ms,
                s.errors
            ));
        }
        t.push_str(
            "\nSubmit against the health baseline; linked Submit (each seizure stored with a listing\nalert, its seller looked up for a match) against Submit and against the same seizures on\na gateway without the enforcement loop (unlinked); signed Submit (signed by the client,\nverified by the gateway) against Submit; Submit on a gateway whose one peer is down against\nSubmit:\nin flight  calls/s    p99   linked/submit    p99  linked/unlinked    p99   signed/submit    p99  peer-down/submit    p99\n",
        );
        for r in self.ratios() {
            let nan = (f64::NAN, f64::NAN);
            let (linked_rate, linked_p99) = r.linked.unwrap_or(nan);
            let (loop_rate, loop_p99) = r.loop_cost.unwrap_or(nan);
            let (signed_rate, signed_p99) = r.signed.unwrap_or(nan);
            let (down_rate, down_p99) = r.peer_down.unwrap_or(nan);
            t.push_str(&format!(
                "{:>9}  {:>6.1} %  {:>5.2}×  {:>11.1} %  {:>5.2}×  {:>13.1} %  {:>5.2}×  {:>11.1} %  {:>5.2}×  {:>14.1} %  {:>5.2}×\n",
                r.concurrency,
                r.rate * 100.0,
                r.p99,
                linked_rate * 100.0,
                linked_p99,
                loop_rate * 100.0,
                loop_p99,
                signed_rate * 100.0,
                signed_p99,
                down_rate * 100.0,
                down_p99
            ));
        }
        if let Some((rate, p99, met)) = self.target() {
            t.push_str(&format!(
                "\ntarget at {TARGET_CONCURRENCY} in flight: Submit ≥ {:.0} % of the baseline's calls/s and p99 ≤ {TARGET_P99_RATIO}× the baseline's: {} ({:.1} %, {:.2}×)\n",
                TARGET_RATE_RATIO * 100.0,
                if met { "met" } else { "NOT met" },
                rate * 100.0,
                p99
            ));
        }
        for s in self.steps.iter().filter(|s| s.errors > 0) {
            t.push_str(&format!(
                "{} at {} in flight: {} errors, first: {}\n",
                s.call.name(),
                s.concurrency,
                s.errors,
                s.first_error.as_deref().unwrap_or("?")
            ));
        }
        t
    }
}

/// A peer gateway nothing answers for: a loopback port bound and let go, the PKI's own CA and
/// fresh keys.
fn unreachable_peer(certs: &std::path::Path) -> Result<crate::ops::config::PeerConfig, CliError> {
    let input = |e: String| CliError::Input(e);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| input(e.to_string()))?
        .port();
    let log = crate::log::note::NoteSigner::generate("ipex.local/gw-down")
        .map_err(|e| input(e.to_string()))?;
    let witness = crate::log::cosign::CosignerKey::generate("ipex.local/gw-down/witness")
        .map_err(|e| input(e.to_string()))?;
    Ok(crate::ops::config::PeerConfig {
        id: "gw-down".into(),
        address: format!("https://127.0.0.1:{port}"),
        ca: crate::dev::paths::DevPaths {
            dir: certs.to_path_buf(),
        }
        .ca(),
        checkpoint_key: log.verifier_key(),
        witness_key: Some(witness.verifier_key()),
        server_name: None,
        broadcasts: false,
    })
}

/// A gateway of the bench's own: development PKI and store in a temporary directory, removed
/// when it stops.
struct LocalGateway {
    /// Holds the PKI and the store.
    _dir: tempfile::TempDir,
    /// Where it listens.
    addr: std::net::SocketAddr,
    /// Ends it.
    shutdown: tokio::sync::oneshot::Sender<()>,
    /// The server task.
    server: tokio::task::JoinHandle<Result<(), crate::server::ServeError>>,
    /// The sender's client certificate.
    tls: ClientTls,
    /// The development PKI.
    certs: std::path::PathBuf,
}

impl LocalGateway {
    /// A local gateway; `enforcing` false turns the enforcement loop off (no seller matching,
    /// no administration raising listing alerts); `peer_down` gives it one peer gateway that
    /// never answers (a loopback port nothing listens on).
    async fn start(enforcing: bool, peer_down: bool) -> Result<LocalGateway, CliError> {
        let dir = tempfile::Builder::new()
            .prefix("ipex-bench-")
            .tempdir()
            .map_err(|e| CliError::Input(format!("cannot create a temporary directory: {e}")))?;
        let certs = dir.path().join("certs");
        crate::dev::pki::ensure_dev_pki(&certs).map_err(|e| CliError::Input(e.to_string()))?;
        if !enforcing {
            let paths = crate::dev::paths::DevPaths { dir: certs.clone() };
            let registry = std::fs::read_to_string(paths.registry())
                .map_err(|e| CliError::Input(e.to_string()))?
                .replace(
                    "role = \"CUSTOMS\"\n",
                    "role = \"CUSTOMS\"\nlisting_alerts = false\n",
                );
            std::fs::write(paths.registry(), registry)
                .map_err(|e| CliError::Input(e.to_string()))?;
        }
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| CliError::Input(format!("cannot listen on 127.0.0.1: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::Input(e.to_string()))?;
        let mut config = crate::dev::config(&certs);
        config.listen = addr;
        // Not on the development port: a development ipexd may be running beside it.
        config.metrics_listen = None;
        config.data_dir = dir.path().join("data");
        config.matching.enabled = enforcing;
        if peer_down {
            config.peers = vec![unreachable_peer(&certs)?];
        }
        let (shutdown, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(crate::server::run(listener, config, async {
            let _ = stopped.await;
        }));
        let tls = ClientTls::dev(&certs, LOCAL_SENDER)?;
        Ok(LocalGateway {
            _dir: dir,
            addr,
            shutdown,
            server,
            tls,
            certs,
        })
    }

    /// Has market-a flag the seller the linked seizures name (GREEN, for every customs
    /// administration), so that the linked seizures find a seller another sender flagged.
    async fn flag_linked_seller(&self) -> Result<(), CliError> {
        let tls = ClientTls::dev(&self.certs, "market-a")?;
        let mut market = pb::exchange_client::ExchangeClient::new(
            client::connect(&self.endpoint(), &tls).await?,
        );
        let mut flag = crate::pb::json::envelope_from_json(SELLER_FLAG)
            .map_err(|e| CliError::Input(format!("the built-in seller flag: {e}")))?;
        flag.id = "bench-linked-seller".into();
        flag.tlp = pb::Tlp::Green as i32;
        flag.recipients.clear();
        if let Some(pb::envelope::Payload::SellerFlag(f)) = &mut flag.payload {
            f.pseudonyms.truncate(1);
            f.pseudonyms[0].hmac_sha256 = LINKED_PSEUDONYM.into();
        }
        market
            .submit(pb::SubmitRequest {
                envelope: Some(flag),
            })
            .await
            .map_err(|s| {
                CliError::Input(format!(
                    "the local gateway refused market-a's seller flag: {}",
                    super::error::describe_status(&s)
                ))
            })?;
        Ok(())
    }

    fn endpoint(&self) -> String {
        format!("https://{}", self.addr)
    }

    async fn stop(self) -> Result<(), CliError> {
        let _ = self.shutdown.send(());
        match self.server.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(error)) => Err(CliError::Input(format!(
                "the local gateway failed: {error}"
            ))),
            Err(error) => Err(CliError::Input(format!(
                "the local gateway failed: {error}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let d = |t| parse_duration("--duration", t).unwrap();
        assert_eq!(d("5s"), Duration::from_secs(5));
        assert_eq!(d("5"), Duration::from_secs(5));
        assert_eq!(d("250ms"), Duration::from_millis(250));
        assert_eq!(d("1m"), Duration::from_secs(60));
        assert_eq!(d("0.5s"), Duration::from_millis(500));
        assert!(parse_duration("--duration", "5h").is_err());
        assert!(parse_duration("--duration", "fast").is_err());
    }

    #[test]
    fn the_seizure_notification_parses() {
        crate::pb::json::envelope_from_json(SEIZURE_NOTIFICATION).unwrap();
    }
}
