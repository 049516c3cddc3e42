//! Refused TLS handshakes leave evidence without amplification, against a real `ipexd` over
//! real mutual TLS: they are counted by (reason, source address, certificate) and written as a
//! few summary leaves, not one leaf each; a participant whose certificate was presented can
//! read the summary that names it; and each source address may hold only so many handshakes
//! and connections, the rest closed at once and counted in the metrics.

mod common;

use common::process::Ipexd;
use common::Setup;
use ipex::cli::client::{ClientTls, Clients};
use ipex::dev::pki::Issued;
use ipex::pb;
use prost::Message;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Handshakes without a certificate in the first run.
const CERTIFICATE_LESS: usize = 200;
/// Handshakes with market-a's expired certificate.
const EXPIRED: usize = 3;
/// Handshakes with a certificate of another CA naming customs-nl.
const FOREIGN: usize = 2;

/// Writes the configuration file of `setup` with `limits` and a handshake timeout of
/// `handshake_timeout_ms`, for `ipexd --config`.
fn write_config(
    setup: &Setup,
    limits: ipex::ops::config::LimitsConfig,
    handshake_timeout_ms: u64,
) -> String {
    let mut config = setup.config.clone();
    config.limits = limits;
    config.handshake_timeout_ms = handshake_timeout_ms;
    let path = setup.path().join("ipexd.toml");
    std::fs::write(&path, toml::to_string(&config).unwrap()).unwrap();
    path.display().to_string()
}

fn start(setup: &Setup, config: &str) -> Ipexd {
    Ipexd::start_with(
        setup.path(),
        &["--config", config, "--metrics-listen", "127.0.0.1:0"],
    )
}

async fn client(gw: &Ipexd, tls: &ClientTls) -> Result<Clients, String> {
    let channel = ipex::cli::client::connect(&gw.endpoint(), tls)
        .await
        .map_err(|e| e.to_string())?;
    let mut clients = Clients::new(channel);
    // A refused certificate shows as a failed first call, not a failed connect.
    clients
        .participants
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map_err(|e| e.to_string())?;
    Ok(clients)
}

/// One TLS 1.3 handshake presenting `certificate` (or none, when `None`); returns once the
/// gateway has refused it (an alert or the connection closed). One handshake exactly, where a
/// gRPC channel may try again.
async fn refused_handshake(addr: &str, ca_pem: &str, certificate: Option<&Issued>) {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(ca_pem.as_bytes()).unwrap())
        .unwrap();
    let builder = rustls::ClientConfig::builder_with_provider(ipex::auth::tls::provider())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots);
    let mut config = match certificate {
        Some(issued) => builder
            .with_client_auth_cert(
                vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()],
                PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    // The client finishes its side before the gateway has checked it: the refusal arrives as
    // the answer to the first read.
    if let Ok(mut tls) = connector.connect(name, tcp).await {
        let _ = tls.write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n").await;
        let mut byte = [0u8; 1];
        let read = tokio::time::timeout(Duration::from_secs(10), tls.read(&mut byte)).await;
        assert!(
            !matches!(read, Ok(Ok(n)) if n > 0),
            "a refused certificate was served"
        );
    }
}

/// Every audit leaf in the log of the stopped gateway's data directory, with its index.
fn leaves_in_store(data_dir: &Path) -> Vec<(u64, pb::AuditLeaf)> {
    use ipex::log::record::{self, Body, Frames};
    let log = data_dir.join("log");
    let mut leaves = Vec::new();
    for segment in ipex::storage::segments::list(&log).unwrap() {
        let bytes = std::fs::read(log.join(format!("{segment:08}.seg"))).unwrap();
        let start = ipex::storage::segments::FIRST_OFFSET;
        for frame in Frames::new(&bytes[start as usize..], start) {
            let (offset, payload) = frame.unwrap();
            if let Some(Body::Leaf(leaf)) = record::decode(payload, offset).unwrap().body {
                leaves.push((
                    leaf.index,
                    pb::AuditLeaf::decode(leaf.data.as_slice()).unwrap(),
                ));
            }
        }
    }
    leaves.sort_by_key(|(index, _)| *index);
    leaves
}

fn summaries(leaves: &[(u64, pb::AuditLeaf)]) -> Vec<(u64, pb::HandshakesRefused)> {
    leaves
        .iter()
        .filter_map(|(index, leaf)| match &leaf.event {
            Some(pb::audit_leaf::Event::HandshakesRefused(h)) => Some((*index, h.clone())),
            _ => None,
        })
        .collect()
}

/// The sum of the counts of the entries of `summaries` with `reason`.
fn counted(summaries: &[(u64, pb::HandshakesRefused)], reason: &str) -> u64 {
    summaries
        .iter()
        .flat_map(|(_, s)| &s.entries)
        .filter(|e| e.reason == reason)
        .map(|e| e.count)
        .sum()
}

/// 200 certificate-less handshakes, 3 with an expired certificate and 2 with a foreign CA's
/// certificate write three leaves in all — one summary for the certificate-less ones and one
/// for each registered participant named — at the shutdown that ends an interval, and no leaf
/// per handshake; the summaries carry the counts; market-a, whose expired certificate was
/// used, reads its summary after a restart, and customs-nl the one naming it, while another
/// participant sees their hashes only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_handshakes_are_summarised_and_readable_by_the_participant_named() {
    let setup = Setup::new();
    // An interval longer than the test: the summary is written at shutdown.
    let config = write_config(
        &setup,
        ipex::ops::config::LimitsConfig {
            handshake_summary_interval_ms: 3_600_000,
            ..Default::default()
        },
        10_000,
    );
    let mut gw = start(&setup, &config);
    let addr = gw.endpoint().trim_start_matches("https://").to_string();
    let ca_pem = setup.pki.ca.issued.cert_pem.clone();

    let deadline = Instant::now() + Duration::from_secs(120);
    for _ in 0..CERTIFICATE_LESS {
        assert!(Instant::now() < deadline, "the handshakes took too long");
        refused_handshake(&addr, &ca_pem, None).await;
    }
    let now = time::OffsetDateTime::now_utc();
    let expired = setup
        .pki
        .ca
        .issue_participant_valid(
            "market-a",
            now - time::Duration::days(30),
            now - time::Duration::days(1),
        )
        .unwrap();
    for _ in 0..EXPIRED {
        refused_handshake(&addr, &ca_pem, Some(&expired)).await;
    }
    let foreign_ca = ipex::dev::pki::Ca::generate("another CA").unwrap();
    let foreign = foreign_ca.issue_participant("customs-nl").unwrap();
    for _ in 0..FOREIGN {
        refused_handshake(&addr, &ca_pem, Some(&foreign)).await;
    }
    let metrics = gw.metrics_addr();
    let handshakes = r#"ipex_refusals_total{method="handshake",code="UNAUTHENTICATED"}"#;
    let total = (CERTIFICATE_LESS + EXPIRED + FOREIGN) as f64;
    assert!(
        common::eventually(10, || async {
            common::metric(&metrics, handshakes).await.unwrap_or(0.0) >= total
        })
        .await,
        "every refused handshake is counted in the metrics"
    );
    gw.sigterm();
    assert!(gw.wait().success());

    let leaves = leaves_in_store(&setup.config.data_dir);
    let refused_one_by_one = leaves
        .iter()
        .filter(|(_, l)| matches!(&l.event, Some(pb::audit_leaf::Event::Refused(r)) if r.method == "handshake"))
        .count();
    assert_eq!(refused_one_by_one, 0, "no leaf per refused handshake");
    let written = summaries(&leaves);
    assert_eq!(
        written.len(),
        3,
        "one summary for the certificate-less handshakes, one per participant named: {written:?}"
    );
    assert_eq!(leaves.len(), 3, "nothing else was written: {leaves:?}");
    println!(
        "{} refused handshakes wrote {} leaves",
        CERTIFICATE_LESS + EXPIRED + FOREIGN,
        leaves.len()
    );
    let anonymous = &written
        .iter()
        .find(|(_, s)| s.participant.is_empty())
        .unwrap()
        .1;
    assert_eq!(anonymous.entries.len(), 1, "{anonymous:?}");
    let entry = &anonymous.entries[0];
    assert_eq!(entry.reason, "no client certificate");
    assert_eq!(entry.peer, "127.0.0.1");
    assert_eq!(entry.certificate_sha256, "");
    assert_eq!(entry.count, CERTIFICATE_LESS as u64);
    assert_eq!(anonymous.untallied, 0);
    assert!(anonymous.since.is_some());

    // Restarted on the same store, the participants named read their summaries.
    let gw = start(&setup, &config);
    let read = |participant: &'static str| {
        let tls = setup.pki.client_tls(&setup.pki.participants[participant]);
        let gw = &gw;
        async move {
            let mut clients = client(gw, &tls).await.unwrap();
            clients
                .audit
                .get_leaves(pb::GetLeavesRequest { start: 0, end: 3 })
                .await
                .unwrap()
                .into_inner()
                .leaves
        }
    };
    let visible = |leaves: &[pb::LogLeaf]| -> Vec<pb::HandshakesRefused> {
        leaves
            .iter()
            .filter(|l| !l.data.is_empty())
            .filter_map(
                |l| match pb::AuditLeaf::decode(l.data.as_slice()).unwrap().event {
                    Some(pb::audit_leaf::Event::HandshakesRefused(h)) => Some(h),
                    _ => None,
                },
            )
            .collect()
    };
    let market = visible(&read("market-a").await);
    assert_eq!(
        market.len(),
        1,
        "market-a reads its summary only: {market:?}"
    );
    assert_eq!(market[0].participant, "market-a");
    assert_eq!(market[0].entries.len(), 1);
    let entry = &market[0].entries[0];
    assert_eq!(entry.reason, "certificate expired");
    assert_eq!(entry.peer, "127.0.0.1");
    assert_eq!(entry.participant, "market-a");
    assert_eq!(entry.certificate_sha256, common::fingerprint(&expired));
    assert_eq!(entry.count, EXPIRED as u64);

    let customs = visible(&read("customs-nl").await);
    assert_eq!(customs.len(), 1, "{customs:?}");
    let entry = &customs[0].entries[0];
    assert_eq!(
        entry.reason,
        "certificate not issued by a CA of tls.client_ca"
    );
    assert_eq!(entry.certificate_sha256, common::fingerprint(&foreign));
    assert_eq!(entry.count, FOREIGN as u64);

    let brand = read("brand-c").await;
    assert_eq!(brand.len(), 3);
    assert!(visible(&brand).is_empty(), "brand-c sees the hashes only");
    drop(gw);
}

/// With two handshakes and four connections per source address, a third stalled socket and a
/// fifth connection are closed at once, before the handshake timeout, and counted in
/// `ipex_connections_refused_total`; once the others close, the address is served again. A
/// socket that never begins its handshake is closed at the timeout (1 s here). The summaries
/// of an interval of 500 ms count every refusal.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_source_address_may_hold_only_so_many_handshakes_and_connections() {
    let setup = Setup::new();
    let config = write_config(
        &setup,
        ipex::ops::config::LimitsConfig {
            handshake_summary_interval_ms: 500,
            max_connections_per_source: 4,
            max_handshakes_per_source: 2,
        },
        1000,
    );
    let mut gw = start(&setup, &config);
    let began = Instant::now();
    let addr = gw.endpoint().trim_start_matches("https://").to_string();
    let metrics = gw.metrics_addr();

    // Two sockets that never begin their handshake hold both handshake slots.
    let stalled = [
        TcpStream::connect(&addr).await.unwrap(),
        TcpStream::connect(&addr).await.unwrap(),
    ];
    let handshakes = r#"ipex_connections_refused_total{limit="handshakes_per_source"}"#;
    let mut third = TcpStream::connect(&addr).await.unwrap();
    let started = Instant::now();
    let mut byte = [0u8; 1];
    let read = tokio::time::timeout(Duration::from_secs(5), third.read(&mut byte))
        .await
        .expect("the third socket is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() < Duration::from_millis(500),
        "closed before the handshake timeout (1 s)"
    );
    assert!(
        common::eventually(5, || async {
            common::metric(&metrics, handshakes).await.unwrap_or(0.0) == 1.0
        })
        .await,
        "the refusal is counted"
    );
    drop(stalled);

    let participant = setup.pki.client_tls(&setup.pki.participants["customs-nl"]);
    let mut open = Vec::new();
    for _ in 0..4 {
        let mut served = None;
        // The stalled sockets' slots are freed as the gateway notices them closed.
        for _ in 0..100 {
            if let Ok(clients) = client(&gw, &participant).await {
                served = Some(clients);
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        open.push(served.expect("served within the limits"));
    }
    // Connections that the gateway had yet to see closed may have been refused already.
    let connections = r#"ipex_connections_refused_total{limit="connections_per_source"}"#;
    let refused_before = common::metric(&metrics, connections).await.unwrap_or(0.0);
    let mut fifth = TcpStream::connect(&addr).await.unwrap();
    let read = tokio::time::timeout(Duration::from_secs(5), fifth.read(&mut byte))
        .await
        .expect("the fifth connection is closed at once");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        common::eventually(5, || async {
            common::metric(&metrics, connections).await.unwrap_or(0.0) == refused_before + 1.0
        })
        .await,
        "the refusal is counted"
    );
    open.pop();
    let mut again = None;
    for _ in 0..100 {
        if let Ok(clients) = client(&gw, &participant).await {
            again = Some(clients);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(again.is_some(), "served again once a connection closed");
    drop(again);
    drop(open);

    // A socket that stays silent is closed at the handshake timeout (once the gateway has
    // seen the connections above closed: until then it is closed at once, over the limit).
    let mut waited = Duration::ZERO;
    for _ in 0..50 {
        let mut silent = TcpStream::connect(&addr).await.unwrap();
        let started = Instant::now();
        let read = tokio::time::timeout(Duration::from_secs(10), silent.read(&mut byte))
            .await
            .expect("the silent socket is closed at the handshake timeout");
        assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
        waited = started.elapsed();
        if waited > Duration::from_millis(200) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(5)).contains(&waited),
        "closed after {waited:?}"
    );

    // Summaries are written while the gateway runs, every interval that had refusals.
    let tree = r#"ipex_audit_tree_size"#;
    assert!(
        common::eventually(5, || async {
            common::metric(&metrics, tree).await.unwrap_or(0.0) >= 1.0
        })
        .await,
        "a summary is written before the shutdown"
    );
    // Connecting again while the gateway had yet to notice the stalled sockets closed may
    // have been refused too: the summaries count what the metrics counted.
    let (refused_handshakes, refused_connections) = (
        common::metric(&metrics, handshakes).await.unwrap_or(0.0),
        common::metric(&metrics, connections).await.unwrap_or(0.0),
    );
    assert!(refused_handshakes >= 1.0);
    assert!(refused_connections >= 1.0);
    gw.sigterm();
    assert!(gw.wait().success());
    let leaves = leaves_in_store(&setup.config.data_dir);
    let written = summaries(&leaves);
    // At most one summary (nobody named a participant) per interval, plus the last one.
    let intervals = began.elapsed().as_millis() as usize / 500 + 2;
    assert!(
        (1..=intervals).contains(&written.len()),
        "a summary per interval with refusals, at most {intervals}: {written:?}"
    );
    assert_eq!(
        counted(
            &written,
            "too many handshakes in progress from this address"
        ) as f64,
        refused_handshakes
    );
    assert_eq!(
        counted(&written, "too many connections from this address") as f64,
        refused_connections
    );
    assert_eq!(
        counted(&written, "connection closed during the handshake"),
        2
    );
    assert_eq!(counted(&written, "no handshake within 1s"), 1);
}
