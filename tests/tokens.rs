//! Officer tokens: a JWT in `authorization: Bearer …`, issued by the calling participant,
//! bound to its client certificate, limited in time and scope. Each refusal is its own case
//! with its exact status and a message that says which check failed.

mod common;

use base64::Engine;
use common::{example, fingerprint, registry_toml, submit, Setup};
use ipex::auth::token::{now_unix, Scope};
use ipex::cli::client::{Bearer, Clients};
use ipex::dev::token::DevSigner;
use ipex::pb;
use serde_json::json;
use tonic::Code;

/// A gateway where customs-nl must present tokens, signed by its registered EdDSA key, and
/// market-a has an RSA key registered.
struct Fixture {
    gw: common::Gateway,
    customs: DevSigner,
    /// SHA-256 of customs-nl's certificate.
    customs_cert: [u8; 32],
    /// SHA-256 of market-a's certificate.
    market_cert: [u8; 32],
    rsa_pem: String,
    _setup: Setup,
}

fn thumbprint(issued: &ipex::dev::pki::Issued) -> [u8; 32] {
    let mut out = [0u8; 32];
    hex::decode_to_slice(fingerprint(issued), &mut out).unwrap();
    out
}

async fn fixture() -> Fixture {
    use rsa::pkcs8::{EncodePrivateKey, EncodePublicKey};
    let customs = DevSigner::generate().unwrap();
    let rsa_key = rsa::RsaPrivateKey::new(&mut rand_core::OsRng, 2048).unwrap();
    let rsa_public = rsa_key
        .to_public_key()
        .to_public_key_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap();
    let rsa_pem = rsa_key
        .to_pkcs8_pem(rsa::pkcs8::LineEnding::LF)
        .unwrap()
        .to_string();
    // The registry gains token settings for customs-nl and market-a.
    let registry = registry_toml("")
        .replace(
            "id = \"customs-nl\"\n",
            "id = \"customs-nl\"\ntoken_keys = [\"customs-nl.token.pub.pem\"]\n",
        )
        .replace(
            "display_name = \"customs-nl\"\nrequire_token = false",
            "display_name = \"customs-nl\"\nrequire_token = true",
        )
        .replace(
            "id = \"market-a\"\n",
            "id = \"market-a\"\ntoken_keys = [\"market-a.rsa.pub.pem\"]\n",
        );
    let setup = Setup::with_registry(&registry);
    std::fs::write(
        setup.path().join("customs-nl.token.pub.pem"),
        customs.public_key_pem().unwrap(),
    )
    .unwrap();
    std::fs::write(setup.path().join("market-a.rsa.pub.pem"), rsa_public).unwrap();
    let gw = setup.start().await;
    Fixture {
        customs_cert: thumbprint(&setup.pki.participants["customs-nl"]),
        market_cert: thumbprint(&setup.pki.participants["market-a"]),
        gw,
        customs,
        rsa_pem,
        _setup: setup,
    }
}

impl Fixture {
    async fn customs_with(&self, token: Option<&str>) -> Clients {
        let tls = self
            .gw
            .pki
            .client_tls(&self.gw.pki.participants["customs-nl"]);
        let channel = ipex::cli::client::connect(&self.gw.endpoint(), &tls)
            .await
            .unwrap();
        Clients::with_bearer(channel, Bearer::new(token).unwrap())
    }

    /// Claims of a good token of customs-nl; tests change one thing.
    fn claims(&self) -> serde_json::Value {
        let now = now_unix();
        json!({
            "iss": "customs-nl",
            "sub": "officer-17",
            "aud": "ipex-dev",
            "iat": now,
            "exp": now + 600,
            "scope": "exchange:submit exchange:read",
            "cnf": { "x5t#S256": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.customs_cert) },
        })
    }

    /// Submits a takedown notice as customs-nl with `token`; the refusal, if any.
    async fn submit_with(&self, token: Option<&str>) -> Result<pb::Receipt, tonic::Status> {
        let mut c = self.customs_with(token).await;
        submit(&mut c, example("takedown-notice.json")).await
    }

    async fn refused(&self, token: &str, code: Code, says: &str) {
        let status = self.submit_with(Some(token)).await.unwrap_err();
        assert_eq!(status.code(), code, "{status:?}");
        assert!(
            status.message().contains(says),
            "expected {says:?} in {:?}",
            status.message()
        );
    }
}

fn unsigned(claims: &serde_json::Value, header: serde_json::Value) -> String {
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    format!(
        "{}.{}.",
        b64.encode(header.to_string()),
        b64.encode(claims.to_string())
    )
}

/// A valid token: accepted, and the officer is on the receipt.
#[tokio::test]
async fn valid_token_names_the_officer() {
    let f = fixture().await;
    let token = f.customs.sign_claims(&f.claims()).unwrap();
    let receipt = f.submit_with(Some(&token)).await.unwrap();
    assert_eq!(receipt.officer, "officer-17");
    // The token minted by the development signer works the same.
    let minted = f
        .customs
        .mint(
            "customs-nl",
            "officer-18",
            "ipex-dev",
            &[Scope::ExchangeRead],
            std::time::Duration::from_secs(300),
            &f.customs_cert,
            now_unix(),
        )
        .unwrap();
    let mut c = f.customs_with(Some(&minted)).await;
    let me = c
        .participants
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(me.officer, "officer-18");
    f.gw.stop().await;
}

/// A participant that must present a token and does not: UNAUTHENTICATED.
#[tokio::test]
async fn missing_token() {
    let f = fixture().await;
    let status = f.submit_with(None).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("must present an officer token"),
        "{}",
        status.message()
    );
    f.gw.stop().await;
}

/// alg none.
#[tokio::test]
async fn alg_none() {
    let f = fixture().await;
    let token = unsigned(&f.claims(), json!({"alg": "none", "typ": "JWT"}));
    f.refused(&token, Code::Unauthenticated, "alg \"none\"")
        .await;
    f.gw.stop().await;
}

/// HS256 "signed" with the bytes of the registered public key.
#[tokio::test]
async fn hs256_with_the_public_key_as_secret() {
    let f = fixture().await;
    let secret = f.customs.public_key_pem().unwrap();
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &f.claims(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap();
    f.refused(&token, Code::Unauthenticated, "symmetric").await;
    f.gw.stop().await;
}

/// RS256 signed with the key registered for market-a, presented by customs-nl.
#[tokio::test]
async fn rs256_key_of_another_participant() {
    let f = fixture().await;
    let token = jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::RS256),
        &f.claims(),
        &jsonwebtoken::EncodingKey::from_rsa_pem(f.rsa_pem.as_bytes()).unwrap(),
    )
    .unwrap();
    f.refused(
        &token,
        Code::Unauthenticated,
        "no verification key usable with RS256",
    )
    .await;
    f.gw.stop().await;
}

/// Expired.
#[tokio::test]
async fn expired() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["iat"] = json!(now_unix() - 7200);
    claims["exp"] = json!(now_unix() - 3600);
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::Unauthenticated, "expired").await;
    f.gw.stop().await;
}

/// Not yet valid.
#[tokio::test]
async fn not_yet_valid() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["nbf"] = json!(now_unix() + 300);
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::Unauthenticated, "not valid yet")
        .await;
    f.gw.stop().await;
}

/// A lifetime longer than tokens.max_lifetime_secs (1 h).
#[tokio::test]
async fn lifetime_too_long() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["exp"] = json!(now_unix() + 3 * 3600);
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::Unauthenticated, "lifetime is too long")
        .await;
    f.gw.stop().await;
}

/// Meant for another gateway.
#[tokio::test]
async fn wrong_audience() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["aud"] = json!("ipex-other");
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::Unauthenticated, "audience").await;
    f.gw.stop().await;
}

/// Issued by another participant.
#[tokio::test]
async fn wrong_issuer() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["iss"] = json!("market-a");
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::Unauthenticated, "issued by \"market-a\"")
        .await;
    f.gw.stop().await;
}

/// Bound to another participant's certificate: a stolen token is useless elsewhere.
#[tokio::test]
async fn bound_to_another_certificate() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["cnf"] = json!({ "x5t#S256": base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(f.market_cert) });
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::Unauthenticated, "bound to client certificate")
        .await;
    // And without any binding, since binding is required by default.
    let mut claims = f.claims();
    claims.as_object_mut().unwrap().remove("cnf");
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::Unauthenticated, "not bound").await;
    f.gw.stop().await;
}

/// A valid token without the scope the call needs: PERMISSION_DENIED.
#[tokio::test]
async fn missing_scope() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["scope"] = json!("exchange:read audit:read");
    let token = f.customs.sign_claims(&claims).unwrap();
    f.refused(&token, Code::PermissionDenied, "exchange:submit")
        .await;
    // The same token reads.
    let mut c = f.customs_with(Some(&token)).await;
    assert!(common::inbox(&mut c).await.is_empty());
    f.gw.stop().await;
}

/// Refusals of tokens are audited like every other refusal.
#[tokio::test]
async fn token_refusals_are_audited() {
    let f = fixture().await;
    let mut claims = f.claims();
    claims["aud"] = json!("ipex-other");
    let bad = f.customs.sign_claims(&claims).unwrap();
    assert!(f.submit_with(Some(&bad)).await.is_err());
    let mut claims = f.claims();
    claims["scope"] = json!("audit:read");
    let auditor = f.customs.sign_claims(&claims).unwrap();
    let c = f.customs_with(Some(&auditor)).await;
    let found = common::eventually(10, || {
        let mut c = c.clone();
        async move {
            let cp = c
                .audit
                .get_checkpoint(pb::GetCheckpointRequest { refresh: true, ..Default::default() })
                .await
                .unwrap()
                .into_inner();
            let leaves = c
                .audit
                .get_leaves(pb::GetLeavesRequest { start: 0, end: cp.tree_size.max(1) })
                .await
                .map(|r| r.into_inner().leaves)
                .unwrap_or_default();
            leaves.iter().any(|l| {
                use prost::Message;
                matches!(
                    pb::AuditLeaf::decode(l.data.as_slice()).ok().and_then(|a| a.event),
                    Some(pb::audit_leaf::Event::Refused(r)) if r.participant == "customs-nl" && r.code == "UNAUTHENTICATED" && r.reason.contains("audience")
                )
            })
        }
    })
    .await;
    assert!(found, "token refusal not in the audit log");
    f.gw.stop().await;
}
