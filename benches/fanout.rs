//! Subscription and search benchmark, on a gateway of its own (development mode, temporary
//! store, mutual TLS on 127.0.0.1, load generator in the same process):
//!
//! 1. replay: 100 subscribers reading IPEX_BENCH_REPLAY_MESSAGES (default 2×10^4) stored
//!    messages from the start, without acknowledgements and with an `Ack` every 200;
//! 2. live: deliveries per second to 1, 10, 100 and 1000 subscribers at the head while
//!    `Submit` runs, and the latency from the Submit reply to the delivery (p50, p99);
//! 3. peak memory with 100 subscribers of which 10 never read;
//! 4. Search latency over a store of IPEX_BENCH_SEARCH_MESSAGES messages (default 10^6),
//!    written through the store's group commit.
//!
//! `cargo bench --bench fanout`. IPEX_BENCH_MESSAGES sets the messages per fan-out step
//! (default 1000).

use ipex::cli::client::{ClientTls, Clients};
use ipex::pb;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;
use tokio_stream::StreamExt;

mod common;

use common::{env_number, median, peak_rss_kib, percentile, rss_kib, SEIZURE};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Local {
    _dir: tempfile::TempDir,
    certs: std::path::PathBuf,
    endpoint: String,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<Result<(), ipex::server::ServeError>>,
}

async fn start(live_buffer: usize) -> Local {
    let (dir, certs, mut config) = common::dev_setup();
    config.subscriptions.live_buffer = live_buffer;
    config.metrics_listen = None;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("https://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(ipex::server::run(listener, config, async {
        let _ = stopped.await;
    }));
    Local {
        _dir: dir,
        certs,
        endpoint,
        stop,
        server,
    }
}

impl Local {
    async fn clients(&self, participant: &str, connections: usize) -> Vec<Clients> {
        let tls = ClientTls::dev(&self.certs, participant).unwrap();
        let mut out = Vec::new();
        for _ in 0..connections.max(1) {
            out.push(Clients::new(
                ipex::cli::client::connect(&self.endpoint, &tls)
                    .await
                    .unwrap(),
            ));
        }
        out
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        self.server.await.unwrap().unwrap();
    }
}

/// Submits `n` GREEN seizure notifications, `in_flight` at a time; returns each message's
/// reply time by sequence number.
async fn submit_many(
    senders: &[Clients],
    n: u64,
    tag: &str,
    in_flight: usize,
) -> Arc<Mutex<Vec<(u64, Instant)>>> {
    let template = ipex::pb::json::envelope_from_json(SEIZURE).unwrap();
    let replies = Arc::new(Mutex::new(Vec::with_capacity(n as usize)));
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut workers = Vec::new();
    for w in 0..in_flight {
        let mut c = senders[w % senders.len()].clone();
        let template = template.clone();
        let replies = replies.clone();
        let next = next.clone();
        let tag = tag.to_string();
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let mut e = template.clone();
                e.id = format!("bench-{tag}-{i}");
                let r = c
                    .exchange
                    .submit(pb::SubmitRequest { envelope: Some(e) })
                    .await
                    .unwrap()
                    .into_inner()
                    .receipt
                    .unwrap();
                replies.lock().await.push((r.seq, Instant::now()));
            }
        }));
    }
    for w in workers {
        w.await.unwrap();
    }
    replies
}

async fn open_subscriptions(conns: &[Clients], n: usize) -> Vec<tonic::Streaming<pb::Delivery>> {
    let mut streams = Vec::with_capacity(n);
    for i in 0..n {
        let mut c = conns[i % conns.len()].clone();
        streams.push(
            c.exchange
                .subscribe(pb::SubscribeRequest::default())
                .await
                .unwrap()
                .into_inner(),
        );
    }
    streams
}

async fn fan_out_step(local: &Local, subscribers: usize, messages: u64) {
    // hyper allows 200 concurrent streams per connection: 100 subscribers a connection.
    let conns = local.clients("rilo-we", subscribers.div_ceil(100)).await;
    let streams = open_subscriptions(&conns, subscribers).await;
    let senders = local.clients("customs-nl", 4).await;
    let mut readers = Vec::new();
    for mut s in streams {
        readers.push(tokio::spawn(async move {
            let mut got = Vec::with_capacity(messages as usize);
            while (got.len() as u64) < messages {
                match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
                    Ok(Some(Ok(d))) => got.push((d.seq, Instant::now())),
                    _ => break,
                }
            }
            got
        }));
    }
    let started = Instant::now();
    let replies = submit_many(&senders, messages, &format!("f{subscribers}"), 64).await;
    let submitted_in = started.elapsed();
    let replies: std::collections::HashMap<u64, Instant> =
        replies.lock().await.iter().copied().collect();
    let mut latencies = Vec::new();
    let mut delivered = 0u64;
    let mut last = started;
    for r in readers {
        for (seq, at) in r.await.unwrap() {
            delivered += 1;
            last = last.max(at);
            if let Some(reply) = replies.get(&seq) {
                latencies.push(at.saturating_duration_since(*reply));
            }
        }
    }
    latencies.sort_unstable();
    let elapsed = last.duration_since(started);
    let ingest = replies.len() as f64 / submitted_in.as_secs_f64().max(1e-9);
    println!(
        "{subscribers:>5} subscribers  (submits {ingest:>6.0}/s)  {delivered:>8} deliveries in {:>6.2} s  {:>9.0} deliveries/s  submit-reply→delivery p50 {:>7.2} ms  p99 {:>7.2} ms",
        elapsed.as_secs_f64(),
        delivered as f64 / elapsed.as_secs_f64(),
        percentile(&latencies, 0.5).as_secs_f64() * 1e3,
        percentile(&latencies, 0.99).as_secs_f64() * 1e3,
    );
}

/// 100 subscribers replay `stored` messages from sequence number 1; with `ack_every`, each is a
/// durable subscription that acknowledges every `ack_every` deliveries (and waits for the
/// answer before it reads on, as a careful consumer does).
async fn replay_step(local: &Local, stored: u64, ack_every: Option<u64>, tag: &str) -> f64 {
    const SUBSCRIBERS: usize = 100;
    let conns = local.clients("rilo-we", 4).await;
    let started = Instant::now();
    let mut readers = Vec::new();
    for i in 0..SUBSCRIBERS {
        let mut c = conns[i % conns.len()].clone();
        let name = ack_every.map(|_| format!("replay-{tag}-{i}"));
        readers.push(tokio::spawn(async move {
            let mut s = c
                .exchange
                .subscribe(pb::SubscribeRequest {
                    durable_name: name.clone().unwrap_or_default(),
                    start: Some(pb::subscribe_request::Start::FromSeq(1)),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let mut n = 0u64;
            while n < stored {
                match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
                    Ok(Some(Ok(d))) => {
                        n += 1;
                        if let (Some(every), Some(name)) = (ack_every, name.as_ref()) {
                            if n % every == 0 || n == stored {
                                c.exchange
                                    .ack(pb::AckRequest {
                                        name: name.clone(),
                                        up_to_seq: d.seq,
                                    })
                                    .await
                                    .unwrap();
                            }
                        }
                    }
                    _ => break,
                }
            }
            n
        }));
    }
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.unwrap();
    }
    let elapsed = started.elapsed().as_secs_f64();
    let rate = delivered as f64 / elapsed;
    println!(
        "replay {tag:<10} {SUBSCRIBERS} subscribers × {stored} stored messages: {delivered} deliveries in {elapsed:.2} s  {rate:>9.0} deliveries/s"
    );
    rate
}

async fn memory_step(local: &Local, messages: u64) {
    // The ten that never read have a connection of their own, as a deployment would give a
    // consumer that may stall; the client's connection window is wide enough that they would
    // not stall the others on a shared one either (`cli::client::connect`).
    let idle_conn = local.clients("rilo-we", 1).await;
    let idle = open_subscriptions(&idle_conn, 10).await;
    let conns = local.clients("rilo-we", 1).await;
    let streams = open_subscriptions(&conns, 90).await;
    let senders = local.clients("customs-nl", 4).await;
    let before = rss_kib();
    let mut readers = Vec::new();
    for mut s in streams {
        readers.push(tokio::spawn(async move {
            let mut n = 0u64;
            while n < messages {
                match tokio::time::timeout(Duration::from_secs(60), s.next()).await {
                    Ok(Some(Ok(_))) => n += 1,
                    _ => break,
                }
            }
            n
        }));
    }
    submit_many(&senders, messages, "mem", 64).await;
    let mut delivered = 0;
    for r in readers {
        delivered += r.await.unwrap();
    }
    println!(
        "  100 subscribers, 10 never read: {messages} messages, {delivered} deliveries to the 90 readers; RSS {} MiB before, {} MiB after, peak {} MiB (whole process: gateway and clients)",
        before / 1024,
        rss_kib() / 1024,
        peak_rss_kib() / 1024
    );
    drop(idle);
}

async fn search_step(total: u64) {
    let (_dir, certs, mut config) = common::dev_setup();
    config.audit.verify_on_start = false;
    let filled = common::fill(&config, total).await;
    println!(
        "search store: {total} messages written in {:.1} s ({:.0} messages/s through group commit)",
        filled.seconds,
        total as f64 / filled.seconds
    );

    let gateway = ipex::app::Gateway::open(config.clone().into(), config).unwrap();
    let caller = gateway
        .identify(
            Some(&ipex::auth::identity::PeerInfo {
                remote_addr: None,
                cert: Arc::new(ipex::auth::identity::PeerCert::from_der(
                    &rustls::pki_types::pem::PemObject::from_pem_slice(
                        std::fs::read(certs.join("rilo-we.pem")).unwrap().as_slice(),
                    )
                    .map(|c: rustls::pki_types::CertificateDer<'static>| c.to_vec())
                    .unwrap(),
                )),
            }),
            None,
            None,
        )
        .unwrap();
    let queries: Vec<(&str, pb::SearchRequest)> = vec![
        (
            "seller (1 in 1000), page of 100",
            pb::SearchRequest {
                seller: "S-417".into(),
                ..Default::default()
            },
        ),
        (
            "HS heading (1 in 50), page of 100",
            pb::SearchRequest {
                filter: Some(pb::Filter {
                    hs_prefixes: vec!["3403".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        (
            "seller + heading (none match)",
            pb::SearchRequest {
                seller: "S-417".into(),
                filter: Some(pb::Filter {
                    hs_prefixes: vec!["1103".into()],
                    ..Default::default()
                }),
                ..Default::default()
            },
        ),
        ("no criterion, newest 100", pb::SearchRequest::default()),
    ];
    for (name, request) in queries {
        let mut times = Vec::new();
        let mut found = 0;
        for _ in 0..30 {
            let t = Instant::now();
            let page = gateway.search(&caller, request.clone()).await.unwrap();
            times.push(t.elapsed());
            found = page.messages.len();
        }
        times.sort_unstable();
        println!(
            "search over {total}: {name:<36} {found:>4} results  p50 {:>7.2} ms  p99 {:>7.2} ms (includes the durable audit leaf of the read)",
            percentile(&times, 0.5).as_secs_f64() * 1e3,
            percentile(&times, 0.99).as_secs_f64() * 1e3,
        );
    }
    gateway.store.close().unwrap();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let replay = env_number("IPEX_BENCH_REPLAY_MESSAGES", 20_000);
        if replay > 0 {
            let local = start(1024).await;
            let senders = local.clients("customs-nl", 4).await;
            let t = Instant::now();
            submit_many(&senders, replay, "replay", 64).await;
            println!(
                "replay: {replay} GREEN seizure notifications stored in {:.1} s",
                t.elapsed().as_secs_f64()
            );
            let mut plain = Vec::new();
            let mut acked = Vec::new();
            for round in 0..3 {
                plain.push(replay_step(&local, replay, None, &format!("plain-{round}")).await);
                acked.push(replay_step(&local, replay, Some(200), &format!("ack200-{round}")).await);
            }
            println!(
                "replay medians of 3: {:.0} deliveries/s without acks, {:.0} deliveries/s with an Ack every 200",
                median(plain),
                median(acked)
            );
            local.stop().await;
        }
        let messages = env_number("IPEX_BENCH_MESSAGES", 1000);
        if messages > 0 {
            let local = start(1024).await;
            println!(
                "fan-out: {messages} GREEN seizure notifications per step, 64 submits in flight"
            );
            for subscribers in [1usize, 10, 100, 1000] {
                fan_out_step(&local, subscribers, messages).await;
            }
            memory_step(&local, messages * 10).await;
            local.stop().await;
        }
        let searched = env_number("IPEX_BENCH_SEARCH_MESSAGES", 1_000_000);
        if searched > 0 {
            search_step(searched).await;
        }
    });
}
