//! Development mode as a developer meets it, with the real `ipexd`: two development gateways
//! on one machine both start, the second serving its metrics on a free port when the
//! development default (127.0.0.1:9464) is taken, and saying where; and the officer-token keys
//! it creates are PKCS#8 v1, which every common reader takes (Python's `cryptography` refuses
//! v2 with "extra data").

mod common;

use common::process::Ipexd;
use std::path::Path;
use std::process::Command;

/// The message of the warning a development gateway logs when the metrics port is taken.
const TAKEN: &str =
    "metrics_listen is taken; development mode listens for metrics on a free port instead";

/// Two development gateways with different `--listen` and the default metrics address both
/// start and serve their own metrics; the one that found 127.0.0.1:9464 taken logs a warning
/// naming it and the free port it took instead, which is where it serves.
// Several threads, so that the clients' connections close while the test waits for ipexd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_development_gateways_share_a_machine() {
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    // No metrics flag: the development default, 127.0.0.1:9464.
    let first = Ipexd::start_with(one.path(), &[]);
    let first_metrics = first.metrics_addr();
    let second = Ipexd::start_with(two.path(), &[]);
    let second_metrics = second.metrics_addr();
    assert_ne!(first.endpoint(), second.endpoint());
    assert_ne!(first_metrics, second_metrics);
    // The first took the default unless something else on the machine holds it.
    if first_metrics != "127.0.0.1:9464" {
        let warning = first
            .logged(TAKEN)
            .expect("the first says the port was taken");
        assert_eq!(warning["fields"]["addr"], first_metrics.as_str());
    }
    let warning = second
        .logged(TAKEN)
        .expect("the second says the port was taken");
    assert_eq!(warning["level"], "WARN");
    assert_eq!(warning["fields"]["taken"], "127.0.0.1:9464");
    assert_eq!(warning["fields"]["addr"], second_metrics.as_str());
    assert!(second_metrics.starts_with("127.0.0.1:"));
    for addr in [&first_metrics, &second_metrics] {
        let response = common::metrics_page(addr).await;
        assert!(
            response.starts_with("HTTP/1.0 200 OK") || response.starts_with("HTTP/1.1 200 OK"),
            "{response}"
        );
        assert!(response.contains("\nipex_build_info{"), "{response}");
    }
    // Both serve participants too.
    for (gw, dir) in [(&first, one.path()), (&second, two.path())] {
        let mut clients = common::process::connect(gw, dir).await;
        let me = clients
            .participants
            .who_am_i(ipex::pb::WhoAmIRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(me.participant.unwrap().id, "customs-nl");
    }
    for mut gw in [first, second] {
        gw.sigterm();
        assert!(gw.wait().success());
    }
}

/// The DER of an Ed25519 PKCS#8 v1 key (RFC 8410): SEQUENCE { INTEGER 0, AlgorithmIdentifier
/// { id-Ed25519 }, OCTET STRING { OCTET STRING (32 bytes) } }, nothing after; v2 has version 1
/// and the public key appended.
const V1_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// Runs `program` with `args`; `None` when it cannot be run at all.
fn run(program: &str, args: &[&str]) -> Option<std::process::Output> {
    Command::new(program).args(args).output().ok()
}

/// Python's `cryptography` reads `key` and derives the public key of `public` from it; false
/// when python3 or its `cryptography` package is missing here.
fn python_reads(key: &Path, public: &Path) -> bool {
    const SCRIPT: &str = "
import sys
try:
    from cryptography.hazmat.primitives import serialization
except ImportError:
    sys.exit(3)
key = serialization.load_pem_private_key(open(sys.argv[1], 'rb').read(), password=None)
print(type(key).__name__)
sys.stdout.write(key.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode())
";
    let Some(out) = run(
        "python3",
        &[
            "-c",
            SCRIPT,
            key.to_str().unwrap(),
            public.to_str().unwrap(),
        ],
    ) else {
        return false;
    };
    if out.status.code() == Some(3) {
        return false;
    }
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "Python's cryptography refuses {}: {}",
        key.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let (kind, derived) = stdout.split_once('\n').unwrap();
    assert_eq!(kind, "Ed25519PrivateKey");
    assert_eq!(derived, std::fs::read_to_string(public).unwrap());
    true
}

/// Every development token key that `ipexd` creates is an Ed25519 PKCS#8 v1 key, in its DER
/// structure and as Python's `cryptography` (and OpenSSL, where installed) reads it, and its
/// public key is the registered `<id>.token.pub.pem`.
// Several threads, so that the clients' connections close while the test waits for ipexd.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn development_token_keys_are_pkcs8_v1() {
    use rustls::pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    let mut gw = Ipexd::start(dir.path());
    // Serving, so its signal handlers are in place.
    let mut clients = common::process::connect(&gw, dir.path()).await;
    clients
        .participants
        .who_am_i(ipex::pb::WhoAmIRequest {})
        .await
        .unwrap();
    drop(clients);
    gw.sigterm();
    assert!(gw.wait().success());
    let certs = dir.path().join("certs/dev");
    let mut checked_by_python = 0;
    for participant in ipex::dev::pki::DEV_PARTICIPANTS {
        let key = certs.join(format!("{}.token.key", participant.id));
        let public = certs.join(format!("{}.token.pub.pem", participant.id));
        let pem = std::fs::read_to_string(&key).unwrap();
        // Only a PKCS#8 ("PRIVATE KEY") section parses as `PrivatePkcs8KeyDer`.
        let der = rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(pem.as_bytes())
            .unwrap_or_else(|e| panic!("{} is not one PKCS#8 PEM section: {e:?}", key.display()));
        let der = der.secret_pkcs8_der();
        assert_eq!(der.len(), 48, "{}: {der:02x?}", key.display());
        assert_eq!(der[..16], V1_PREFIX, "{}: {der:02x?}", key.display());
        if python_reads(&key, &public) {
            checked_by_python += 1;
        }
        if let Some(out) = run("openssl", &["pkey", "-in", key.to_str().unwrap(), "-noout"]) {
            assert!(
                out.status.success(),
                "OpenSSL refuses {}: {}",
                key.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    if checked_by_python == 0 {
        println!(
            "note: python3 with the cryptography package is not installed here; the keys' DER \
             structure was checked, Python's reading of them was not"
        );
    } else {
        assert_eq!(checked_by_python, ipex::dev::pki::DEV_PARTICIPANTS.len());
    }
}

/// A development PKI made by an earlier release — without market-b and without envelope
/// signing keys — is brought up to date at the next start: market-b gets a certificate from
/// the PKI's own CA and its registry entry, every participant a registered signing key; what
/// was there stays as it was.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_older_development_pki_is_brought_up_to_date() {
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path().join("certs/dev");
    ipex::dev::pki::ensure_dev_pki(&certs).unwrap();
    // Make it look like an earlier release's.
    let registry = std::fs::read_to_string(certs.join("registry.toml")).unwrap();
    let (before, after) = registry.split_once("id = \"market-b\"").unwrap();
    let before = before.trim_end_matches("[[participant]]\n");
    let rest = after.split_once("\n\n").map_or("", |(_, rest)| rest);
    let old: String = format!("{before}{rest}")
        .lines()
        .filter(|l| !l.starts_with("signing_keys"))
        .map(|l| format!("{l}\n"))
        .collect();
    assert!(!old.contains("market-b") && !old.contains("signing_keys"));
    std::fs::write(certs.join("registry.toml"), &old).unwrap();
    for entry in std::fs::read_dir(&certs).unwrap() {
        let name = entry.unwrap().file_name().to_string_lossy().into_owned();
        if name.starts_with("market-b.") || name.contains(".sign.") {
            std::fs::remove_file(certs.join(&name)).unwrap();
        }
    }
    let customs_cert = std::fs::read_to_string(certs.join("customs-nl.pem")).unwrap();

    let gw = Ipexd::start_with(dir.path(), &[]);
    let registry = std::fs::read_to_string(certs.join("registry.toml")).unwrap();
    assert!(registry.contains("id = \"market-b\""), "{registry}");
    assert!(
        registry.contains("domains = [\"market-b.example\"]"),
        "{registry}"
    );
    assert!(
        registry.contains("signing_keys = [\"customs-nl.sign.pub\"]"),
        "{registry}"
    );
    assert!(
        registry.contains("signing_keys = [\"market-b.sign.pub\"]"),
        "{registry}"
    );
    assert!(certs.join("market-b.sign.key").is_file());
    assert_eq!(
        std::fs::read_to_string(certs.join("customs-nl.pem")).unwrap(),
        customs_cert,
        "an existing certificate was replaced"
    );
    // market-b connects with its new certificate.
    let tls = ipex::cli::client::ClientTls::dev(&certs, "market-b").unwrap();
    let mut market_b = ipex::cli::client::Clients::new(
        ipex::cli::client::connect(&gw.endpoint(), &tls)
            .await
            .unwrap(),
    );
    let me = market_b
        .participants
        .who_am_i(ipex::pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.participant.unwrap().id, "market-b");
    let mut gw = gw;
    gw.sigterm();
    assert!(gw.wait().success());
}
