//! Prometheus metrics on their own plain-HTTP listener (`metrics_listen`): what a scrape shows
//! after real calls over mutual TLS, in a text exposition Prometheus can parse.

mod common;

use common::{example, submit, Setup};
use ipex::cli::client::{connect, ClientTls, Clients};
use ipex::pb;
use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tonic::Code;

/// A loopback address with a port that was free a moment ago: the metrics listener is bound
/// by `server::run` from the configuration, so a test cannot hand it a bound socket.
fn free_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// A setup whose gateway serves metrics on a free port.
fn setup_with_metrics() -> (Setup, SocketAddr) {
    let mut setup = Setup::new();
    let addr = free_addr();
    setup.config.metrics_listen = Some(addr);
    (setup, addr)
}

/// A plain HTTP/1.1 request; the status line, the headers (lower-cased names) and the body.
async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> (String, HashMap<String, String>, String) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines.next().unwrap().to_string();
    let headers = lines
        .map(|l| {
            let (name, value) = l.split_once(':').unwrap();
            (name.trim().to_ascii_lowercase(), value.trim().to_string())
        })
        .collect();
    (status, headers, body.to_string())
}

/// Scrapes `/metrics`, checks the exposition line by line and returns its samples, keyed by
/// the sample as written up to its value (`name{labels}`).
async fn scrape(addr: SocketAddr) -> HashMap<String, f64> {
    let (status, headers, body) = http(addr, "GET", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 200 OK", "{body}");
    assert!(
        headers["content-type"].starts_with("text/plain; version=0.0.4"),
        "{headers:?}"
    );
    parse_exposition(&body)
}

/// Parses the text exposition format 0.0.4 strictly enough to catch what Prometheus would
/// refuse: every line a `# HELP`, a `# TYPE` or a sample; each family's HELP and TYPE once,
/// before its samples; names and label names valid; values numbers; histogram buckets
/// cumulative and ending with `+Inf` equal to `_count`.
fn parse_exposition(text: &str) -> HashMap<String, f64> {
    let valid_name = |n: &str| {
        !n.is_empty()
            && !n.starts_with(|c: char| c.is_ascii_digit())
            && n.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    };
    let mut helped = HashSet::new();
    let mut types: HashMap<String, String> = HashMap::new();
    let mut samples = HashMap::new();
    assert!(
        text.ends_with('\n'),
        "the exposition must end with a newline"
    );
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(!help.is_empty(), "{line}");
            assert!(helped.insert(name.to_string()), "HELP twice: {line}");
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap();
            assert!(valid_name(name), "{line}");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "{line}"
            );
            assert!(
                types.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
        } else {
            assert!(!line.starts_with('#') && !line.is_empty(), "{line:?}");
            let (series, value) = line.rsplit_once(' ').unwrap();
            let value: f64 = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("not a number: {line}")),
            };
            let name = match series.split_once('{') {
                Some((name, labels)) => {
                    let labels = labels.strip_suffix('}').unwrap_or_else(|| panic!("{line}"));
                    for pair in labels.split(',') {
                        let (label, quoted) = pair.split_once('=').unwrap();
                        assert!(valid_name(label) && !label.starts_with("__"), "{line}");
                        assert!(
                            quoted.len() >= 2 && quoted.starts_with('"') && quoted.ends_with('"'),
                            "{line}"
                        );
                    }
                    name
                }
                None => series,
            };
            assert!(valid_name(name), "{line}");
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    (types.get(base).map(String::as_str) == Some("histogram")).then_some(base)
                })
                .unwrap_or(name);
            assert!(types.contains_key(family), "no TYPE before {line}");
            assert!(helped.contains(family), "no HELP before {line}");
            assert!(
                samples.insert(series.to_string(), value).is_none(),
                "sample twice: {line}"
            );
        }
    }
    // Histograms: buckets never decrease, and +Inf equals _count.
    for (family, _) in types.iter().filter(|(_, kind)| *kind == "histogram") {
        let mut series: HashMap<String, Vec<(f64, f64)>> = HashMap::new();
        for (sample, value) in &samples {
            let Some(labels) = sample.strip_prefix(&format!("{family}_bucket{{")) else {
                continue;
            };
            let (rest, le) = labels.rsplit_once("le=\"").unwrap();
            let le = le.trim_end_matches("\"}");
            let le = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().unwrap()
            };
            series
                .entry(rest.to_string())
                .or_default()
                .push((le, *value));
        }
        for (rest, mut buckets) in series {
            buckets.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap());
            assert!(
                buckets.windows(2).all(|w| w[0].1 <= w[1].1),
                "{family}{{{rest}: buckets decrease"
            );
            let inf = buckets.last().unwrap();
            assert_eq!(inf.0, f64::INFINITY, "{family}{{{rest}: no +Inf bucket");
            let labels = rest.trim_end_matches(',');
            let count = if labels.is_empty() {
                format!("{family}_count")
            } else {
                format!("{family}_count{{{labels}}}")
            };
            assert_eq!(samples.get(&count), Some(&inf.1), "{count}");
        }
    }
    samples
}

/// After an accepted Submit, a refused Submit and a handshake with a foreign certificate, a
/// scrape counts each by method and code, has timed the calls and the group commit, and reads
/// the store: one message, its audit leaves, a size on disk; the exposition parses.
#[tokio::test]
async fn a_scrape_counts_calls_refusals_and_commits() {
    let (setup, metrics) = setup_with_metrics();
    let gw = setup.start().await;

    let mut nl = gw.client("customs-nl").await;
    submit(&mut nl, example("seizure-notification.json"))
        .await
        .unwrap();
    // A platform may not notify seizures.
    let mut market = gw.client("market-a").await;
    let mut seizure = example("seizure-notification.json");
    seizure.recipients = vec!["customs-nl".into()];
    seizure.tlp = pb::Tlp::Amber as i32;
    let status = submit(&mut market, seizure).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let foreign = common::Pki::generate();
    let tls = ClientTls {
        ca_pem: gw.pki.ca.issued.cert_pem.clone(),
        ..foreign.client_tls(&foreign.participants["customs-nl"])
    };
    if let Ok(channel) = connect(&gw.endpoint(), &tls).await {
        let refused = Clients::new(channel)
            .participants
            .who_am_i(pb::WhoAmIRequest {})
            .await;
        assert!(refused.is_err(), "served a foreign certificate");
    }
    // The accept loop counts a failed handshake once it has given up on it.
    let handshake = r#"ipex_refusals_total{method="handshake",code="UNAUTHENTICATED"}"#;
    let counted = common::eventually(5, || async {
        scrape(metrics).await.get(handshake) >= Some(&1.0)
    })
    .await;
    assert!(counted, "the foreign handshake was not counted");

    let samples = scrape(metrics).await;
    let value = |series: &str| samples.get(series).copied();
    assert_eq!(
        value(r#"ipex_calls_total{method="Submit",code="OK"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"ipex_calls_total{method="Submit",code="PERMISSION_DENIED"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"ipex_refusals_total{method="Submit",code="PERMISSION_DENIED"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"ipex_call_duration_seconds_count{method="Submit"}"#),
        Some(2.0)
    );
    assert!(value(r#"ipex_call_duration_seconds_sum{method="Submit"}"#).unwrap() > 0.0);
    assert!(value("ipex_commit_batch_messages_count") >= Some(1.0));
    assert_eq!(value("ipex_commit_batch_messages_sum"), Some(1.0));
    assert!(value("ipex_commit_flush_seconds_count") >= Some(1.0));
    assert_eq!(value("ipex_messages_stored"), Some(1.0));
    assert!(value("ipex_audit_tree_size") >= Some(1.0));
    assert!(value("ipex_store_size_bytes") > Some(0.0));
    assert_eq!(value("ipex_open_streams"), Some(0.0));
    assert_eq!(
        value(&format!(
            "ipex_build_info{{version=\"{}\"}}",
            env!("CARGO_PKG_VERSION")
        )),
        Some(1.0)
    );
    gw.stop().await;
}

/// A subscription stream is counted open while the client holds it, with no lag once it has
/// received what is stored, and no longer once the client drops it.
#[tokio::test]
async fn open_streams_follow_subscribers() {
    let (setup, metrics) = setup_with_metrics();
    let gw = setup.start().await;
    let mut nl = gw.client("customs-nl").await;
    submit(&mut nl, example("seizure-notification.json"))
        .await
        .unwrap();
    let mut brand = gw.client("brand-c").await;
    let mut stream = brand
        .exchange
        .subscribe(pb::SubscribeRequest {
            start: Some(pb::subscribe_request::Start::FromSeq(1)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let delivery = stream.message().await.unwrap().unwrap();
    assert_eq!(delivery.seq, 1);

    let caught_up = common::eventually(5, || async {
        let samples = scrape(metrics).await;
        samples.get("ipex_open_streams") == Some(&1.0)
            && samples.get("ipex_subscriber_lag_messages") == Some(&0.0)
    })
    .await;
    assert!(caught_up, "{:?}", scrape(metrics).await);

    drop(stream);
    let closed = common::eventually(5, || async {
        scrape(metrics).await.get("ipex_open_streams") == Some(&0.0)
    })
    .await;
    assert!(
        closed,
        "the stream is still counted open after the client left"
    );
    gw.stop().await;
}

/// The metrics listener answers only `/metrics`, and stops with the gateway.
#[tokio::test]
async fn other_paths_are_not_found_and_the_listener_stops_with_the_gateway() {
    let (setup, metrics) = setup_with_metrics();
    let gw = setup.start().await;
    // The listener is bound before the store opens; wait until it answers.
    assert!(
        common::eventually(5, || async {
            tokio::net::TcpStream::connect(metrics).await.is_ok()
        })
        .await
    );
    let (status, _, _) = http(metrics, "GET", "/").await;
    assert_eq!(status, "HTTP/1.1 404 Not Found");
    let (status, headers, _) = http(metrics, "POST", "/metrics").await;
    assert_eq!(status, "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(headers["allow"], "GET, HEAD");
    gw.stop().await;
    assert!(
        tokio::net::TcpStream::connect(metrics).await.is_err(),
        "the metrics listener outlived the gateway"
    );
}

/// A metrics address already taken stops the start with an error naming `metrics_listen`,
/// before the store is opened.
#[tokio::test]
async fn a_taken_metrics_address_stops_the_start() {
    let mut setup = Setup::new();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    setup.config.metrics_listen = Some(taken.local_addr().unwrap());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let error = ipex::server::run(listener, setup.config.clone(), std::future::pending::<()>())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("metrics_listen"), "{error}");
    assert!(!setup.config.data_dir.exists(), "the store was opened");
}
