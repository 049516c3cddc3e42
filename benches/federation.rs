//! Forwarding between two peered gateways on one machine (development mode, temporary stores,
//! mutual TLS on 127.0.0.1, the load generator in the same process):
//!
//! 1. throughput: IPEX_BENCH_FORWARDED takedown notices (default 2000) from customs-nl@gw-a
//!    to market-a@gw-b, 64 Submits in flight, from the first Submit until the last is in
//!    market-a's inbox at gw-b: forwarded messages per second, against the same notices to
//!    market-a at gw-a (the local baseline, same run);
//! 2. latency per hop: one notice at a time (IPEX_BENCH_HOPS, default 200), from the Submit
//!    call at gw-a until market-a's subscription delivers it at gw-b, against the same to
//!    market-a's subscription at gw-a; the difference of the medians is what a hop adds.
//!
//! Each figure is the median of three runs. `cargo bench --bench federation`.

use ipex::cli::client::{ClientTls, Clients};
use ipex::pb;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio_stream::StreamExt;

mod common;

use common::{env_number, median, percentile};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const NOTICE: &str = include_str!("../examples/messages/takedown-notice.json");

/// One gateway: its directory, PKI, address, and what its peers need to know of it.
struct Gateway {
    id: &'static str,
    _dir: tempfile::TempDir,
    certs: PathBuf,
    port: u16,
    checkpoint_key: String,
    witness_key: String,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    server: Option<tokio::task::JoinHandle<Result<(), ipex::server::ServeError>>>,
}

impl Gateway {
    fn prepare(id: &'static str) -> Gateway {
        let dir = tempfile::tempdir().unwrap();
        let certs = dir.path().join("certs/dev");
        ipex::dev::pki::ensure_dev_pki(&certs).unwrap();
        let origin = format!("ipex.local/{id}");
        let paths = ipex::dev::paths::DevPaths { dir: certs.clone() };
        ipex::dev::ensure_signing_key(&paths.audit_key(), &origin).unwrap();
        ipex::dev::ensure_federation(&certs, id, &origin).unwrap();
        let registry = std::fs::read_to_string(paths.registry()).unwrap();
        let registry = registry
            .replace(
                "id = \"market-a\"\n",
                "id = \"market-a\"\nopen_to_peers = true\n",
            )
            .replace(
                "id = \"customs-nl\"\n",
                "id = \"customs-nl\"\nopen_to_peers = true\n",
            );
        std::fs::write(paths.registry(), registry).unwrap();
        let key = std::fs::read_to_string(paths.audit_key()).unwrap();
        let checkpoint_key = ipex::log::note::NoteSigner::from_private_key(key.trim())
            .unwrap()
            .verifier_key();
        let witness_key = std::fs::read_to_string(paths.witness_vkey())
            .unwrap()
            .trim()
            .to_string();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        Gateway {
            id,
            _dir: dir,
            certs,
            port,
            checkpoint_key,
            witness_key,
            stop: None,
            server: None,
        }
    }

    fn endpoint(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    async fn start(&mut self, peer: &Gateway) {
        let mut config = ipex::dev::config(&self.certs);
        config.gateway_id = self.id.to_string();
        config.metrics_listen = None;
        config.data_dir = self._dir.path().join("data");
        config.federation.cosign_interval_ms = 1000;
        config.peers = vec![ipex::ops::config::PeerConfig {
            id: peer.id.to_string(),
            address: peer.endpoint(),
            ca: peer.certs.join("ca.pem"),
            checkpoint_key: peer.checkpoint_key.clone(),
            witness_key: Some(peer.witness_key.clone()),
            server_name: None,
            broadcasts: false,
        }];
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", self.port))
            .await
            .unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        self.server = Some(tokio::spawn(ipex::server::run(listener, config, async {
            let _ = stopped.await;
        })));
    }

    async fn clients(&self, participant: &str) -> Clients {
        let tls = ClientTls::dev(&self.certs, participant).unwrap();
        Clients::new(
            ipex::cli::client::connect(&self.endpoint(), &tls)
                .await
                .unwrap(),
        )
    }

    async fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.unwrap().unwrap();
        }
    }
}

/// The sample notice as `id`, to `platform` (an address).
fn notice(id: String, platform: &str) -> pb::Envelope {
    let mut e = ipex::pb::json::envelope_from_json(NOTICE).unwrap();
    e.id = id;
    e.recipients = vec![platform.to_string()];
    if let Some(pb::envelope::Payload::TakedownNotice(n)) = &mut e.payload {
        n.platform = platform.to_string();
        if let Some(seller) = &mut n.seller {
            seller.platform = platform.to_string();
        }
    }
    e
}

/// How many messages are in market-a's inbox.
async fn inbox_head(market: &mut Clients) -> u64 {
    let mut after = 0;
    loop {
        let page = market
            .exchange
            .list_inbox(pb::ListInboxRequest {
                after,
                limit: 1000,
                kinds: vec![],
            })
            .await
            .unwrap()
            .into_inner();
        match page.messages.last() {
            Some(last) => after = last.inbox_no,
            None => return after,
        }
    }
}

/// Submits `n` notices to `platform` at 64 in flight; returns the seconds until market-a
/// (`market`, at the gateway that delivers them) has them all.
async fn throughput(
    customs: &Clients,
    market: &mut Clients,
    run: &str,
    n: u64,
    platform: &str,
) -> f64 {
    let before = inbox_head(market).await;
    let started = Instant::now();
    let mut tasks = Vec::new();
    let per = n / 64;
    for w in 0..64 {
        let mut c = customs.clone();
        let (run, platform) = (run.to_string(), platform.to_string());
        tasks.push(tokio::spawn(async move {
            for i in 0..per {
                let envelope = notice(format!("{run}-{w}-{i}"), &platform);
                c.exchange
                    .submit(pb::SubmitRequest {
                        envelope: Some(envelope),
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    while inbox_head(market).await < before + per * 64 {
        assert!(Instant::now() < deadline, "not delivered within 300 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    (per * 64) as f64 / started.elapsed().as_secs_f64()
}

/// One notice at a time to `platform`: the time from each Submit until `market`'s live
/// subscription delivers it; the median and p99 in milliseconds.
async fn hops(
    customs: &mut Clients,
    market: &mut Clients,
    run: &str,
    n: u64,
    platform: &str,
) -> (f64, f64) {
    let mut stream = market
        .exchange
        .subscribe(pb::SubscribeRequest {
            filter: Some(pb::Filter {
                kinds: vec![pb::Kind::TakedownNotice as i32],
                ..Default::default()
            }),
            start: Some(pb::subscribe_request::Start::Latest(true)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut took = Vec::new();
    for i in 0..n {
        let id = format!("{run}-hop-{i}");
        let started = Instant::now();
        customs
            .exchange
            .submit(pb::SubmitRequest {
                envelope: Some(notice(id.clone(), platform)),
            })
            .await
            .unwrap();
        loop {
            let delivery = stream.next().await.unwrap().unwrap();
            if delivery
                .message
                .as_ref()
                .and_then(|m| m.envelope.as_ref())
                .is_some_and(|e| e.id == id)
            {
                break;
            }
        }
        took.push(started.elapsed());
    }
    took.sort();
    (
        percentile(&took, 0.5).as_secs_f64() * 1e3,
        percentile(&took, 0.99).as_secs_f64() * 1e3,
    )
}

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let forwarded = env_number("IPEX_BENCH_FORWARDED", 2000);
    let hop_count = env_number("IPEX_BENCH_HOPS", 200);
    let mut a = Gateway::prepare("gw-a");
    let mut b = Gateway::prepare("gw-b");
    a.start(&b).await;
    b.start(&a).await;
    let mut customs = a.clients("customs-nl").await;
    let mut market_b = b.clients("market-a").await;
    let mut market_a = a.clients("market-a").await;
    // Until gw-a knows what gw-b publishes.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let list = customs
            .participants
            .list(pb::ListParticipantsRequest {})
            .await
            .unwrap()
            .into_inner();
        if list.participants.iter().any(|p| p.id == "market-a@gw-b") {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "gw-a never learnt gw-b's directory"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let (mut local, mut remote) = (Vec::new(), Vec::new());
    let (mut local_p50, mut remote_p50, mut local_p99, mut remote_p99) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for run in 0..3 {
        local.push(
            throughput(
                &customs,
                &mut market_a,
                &format!("l{run}"),
                forwarded,
                "market-a",
            )
            .await,
        );
        remote.push(
            throughput(
                &customs,
                &mut market_b,
                &format!("r{run}"),
                forwarded,
                "market-a@gw-b",
            )
            .await,
        );
        let (p50, p99) = hops(
            &mut customs,
            &mut market_a,
            &format!("l{run}"),
            hop_count,
            "market-a",
        )
        .await;
        local_p50.push(p50);
        local_p99.push(p99);
        let (p50, p99) = hops(
            &mut customs,
            &mut market_b,
            &format!("r{run}"),
            hop_count,
            "market-a@gw-b",
        )
        .await;
        remote_p50.push(p50);
        remote_p99.push(p99);
        eprintln!(
            "run {run}: local {:.0}/s, forwarded {:.0}/s; latency local p50 {:.2} ms, forwarded p50 {:.2} ms",
            local[run], remote[run], local_p50[run], remote_p50[run]
        );
    }
    let (local, remote) = (median(local), median(remote));
    let (lp50, rp50) = (median(local_p50), median(remote_p50));
    let (lp99, rp99) = (median(local_p99), median(remote_p99));
    println!("forwarding between two gateways on one machine (medians of 3 runs)");
    println!(
        "  throughput, 64 in flight, {forwarded} notices: local delivery {local:.0} msg/s, forwarded to the peer {remote:.0} msg/s ({:.2}x local)",
        remote / local
    );
    println!(
        "  latency from Submit to the recipient's subscription: local p50 {lp50:.2} ms (p99 {lp99:.2}), across one hop p50 {rp50:.2} ms (p99 {rp99:.2}): a hop adds {:.2} ms at p50",
        rp50 - lp50
    );
    a.stop().await;
    b.stop().await;
}
