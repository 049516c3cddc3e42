//! Shutting out a compromised certificate: CRLs at the handshake, the registry's deny list on
//! every call (even on a connection already open), and reloads that never leave the gateway
//! without a valid configuration.

mod common;

use common::{eventually, fingerprint, registry_toml, Setup};
use ipex::cli::client::Clients;
use ipex::pb;
use tonic::Code;

async fn whoami(c: &mut Clients) -> Result<pb::WhoAmIResponse, tonic::Status> {
    c.participants
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map(|r| r.into_inner())
}

/// Connects and calls as `participant`; Err when the handshake or the call fails.
async fn try_call(gw: &common::Gateway, participant: &str) -> Result<(), String> {
    let tls = gw.pki.client_tls(&gw.pki.participants[participant]);
    let channel = ipex::cli::client::connect(&gw.endpoint(), &tls)
        .await
        .map_err(|e| e.to_string())?;
    whoami(&mut Clients::new(channel))
        .await
        .map(|_| ())
        .map_err(|s| format!("{s:?}"))
}

/// A certificate listed in a configured CRL fails the handshake; others connect.
#[tokio::test]
async fn crl_revokes_at_handshake() {
    let mut setup = Setup::new();
    let revoked = &setup.pki.participants["market-a"].serial;
    let crl = setup.pki.ca.revoke(&[revoked]).unwrap();
    let crl_path = setup.path().join("revoked.crl.pem");
    std::fs::write(&crl_path, crl).unwrap();
    setup.config.tls.crls = vec![crl_path];
    let gw = setup.start().await;
    assert!(
        try_call(&gw, "market-a").await.is_err(),
        "revoked certificate served"
    );
    try_call(&gw, "customs-nl").await.unwrap();
    gw.stop().await;
}

/// A CRL updated while the gateway runs applies to new connections after the reload.
#[tokio::test]
async fn crl_reload_applies_to_new_connections() {
    let mut setup = Setup::new();
    let crl_path = setup.path().join("revoked.crl.pem");
    std::fs::write(&crl_path, setup.pki.ca.revoke(&[]).unwrap()).unwrap();
    setup.config.tls.crls = vec![crl_path.clone()];
    setup.config.reload_check_ms = 50;
    let gw = setup.start().await;
    try_call(&gw, "express-b").await.unwrap();
    let serial = setup.pki.participants["express-b"].serial.clone();
    std::fs::write(&crl_path, setup.pki.ca.revoke(&[&serial]).unwrap()).unwrap();
    assert!(
        eventually(10, || async { try_call(&gw, "express-b").await.is_err() }).await,
        "the new CRL never took effect"
    );
    try_call(&gw, "customs-nl").await.unwrap();
    gw.stop().await;
}

/// A certificate put on the registry's deny list is refused on its next call, on the
/// connection it already has open.
#[tokio::test]
async fn deny_list_revokes_on_an_open_connection() {
    let mut setup = Setup::new();
    setup.config.reload_check_ms = 50;
    let gw = setup.start().await;
    let mut market = gw.client("market-a").await;
    whoami(&mut market).await.unwrap();

    let denied = fingerprint(&setup.pki.participants["market-a"]);
    let registry = format!("denied_sha256 = [\"{denied}\"]\n\n{}", registry_toml(""));
    std::fs::write(setup.path().join("registry.toml"), registry).unwrap();
    let refused = std::sync::Arc::new(std::sync::Mutex::new(None));
    let took_effect = eventually(10, || {
        let mut market = market.clone();
        let refused = refused.clone();
        async move {
            match whoami(&mut market).await {
                Err(status) => {
                    *refused.lock().unwrap() = Some(status);
                    true
                }
                Ok(_) => false,
            }
        }
    })
    .await;
    assert!(
        took_effect,
        "deny list never took effect on the open connection"
    );
    let status = refused.lock().unwrap().take().unwrap();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("revoked"), "{}", status.message());
    assert!(status.message().contains(&denied), "{}", status.message());
    // Others are unaffected.
    whoami(&mut gw.client("customs-nl").await).await.unwrap();
    gw.stop().await;
}

/// A broken registry file is refused on reload and the registry in force stays; the next good
/// file is taken.
#[tokio::test]
async fn bad_reload_keeps_the_configuration_in_force() {
    let mut setup = Setup::new();
    setup.config.reload_check_ms = 50;
    let gw = setup.start().await;
    let mut market = gw.client("market-a").await;
    whoami(&mut market).await.unwrap();
    let registry_path = setup.path().join("registry.toml");

    for broken in [
        "[[participant]]\nid = \"market-a\"\nrole = \"WIZARD\"\n".to_string(),
        "this is not toml".to_string(),
        registry_toml("[[participant]]\nid = \"Bad Id\"\nrole = \"CUSTOMS\"\n"),
    ] {
        std::fs::write(&registry_path, &broken).unwrap();
        // Several check intervals pass; the old registry still recognises market-a.
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let me = whoami(&mut market).await.unwrap();
        assert_eq!(me.participant.unwrap().id, "market-a");
        let listed = market
            .participants
            .list(pb::ListParticipantsRequest {})
            .await
            .unwrap()
            .into_inner();
        assert_eq!(listed.participants.len(), common::PARTICIPANTS.len());
    }

    // A good registry without market-a is taken.
    let without: String = registry_toml("")
        .split("\n\n")
        .filter(|block| !block.contains("\"market-a\""))
        .collect::<Vec<_>>()
        .join("\n\n");
    std::fs::write(&registry_path, without).unwrap();
    assert!(
        eventually(10, || {
            let mut market = market.clone();
            async move {
                matches!(whoami(&mut market).await, Err(s) if s.code() == Code::Unauthenticated)
            }
        })
        .await,
        "the good registry was never taken"
    );
    gw.stop().await;
}

/// Registry TOML for the test participants named in `ids` only.
fn registry_of(ids: &[&str]) -> String {
    registry_toml("")
        .split("\n\n")
        .filter(|block| ids.iter().any(|id| block.contains(&format!("\"{id}\""))))
        .collect::<Vec<_>>()
        .join("\n\n")
}

/// An override from the environment holds across reloads. The gateway reads a file whose
/// registry lacks express-b, with `IPEX_REGISTRY` (given as data, as captured at start)
/// naming another registry, of customs-nl and express-b only. The file changes and is
/// reloaded: its new CRL takes effect, its new `data_dir` and `[commit]` wait for a restart,
/// and the registry in force is still the environment's — whose own changes are then watched
/// and taken.
#[tokio::test]
async fn environment_overrides_hold_across_reloads() {
    let mut setup = Setup::with_registry(&registry_of(&[
        "customs-nl",
        "customs-fr",
        "market-a",
        "market-b",
        "brand-c",
    ]));
    let dir = setup.path().to_path_buf();
    let overriding = dir.join("overriding-registry.toml");
    std::fs::write(&overriding, registry_of(&["customs-nl", "express-b"])).unwrap();
    setup.config.reload_check_ms = 50;
    let file = dir.join("ipexd.toml");
    std::fs::write(&file, toml::to_string(&setup.config).unwrap()).unwrap();
    let env = vec![(
        "IPEX_REGISTRY".to_string(),
        overriding.display().to_string(),
    )];
    let sources = ipex::ops::config::Sources::file(&file, env, Default::default());
    let gw = setup.start_from(sources).await;
    assert_eq!(gw.config.registry, overriding);
    try_call(&gw, "express-b").await.unwrap();
    let refused = try_call(&gw, "market-a").await.unwrap_err();
    assert!(refused.contains("Unauthenticated"), "{refused}");

    // The file changes: a CRL revoking customs-nl (reloaded), a store elsewhere and another
    // batch size (both for the next start).
    let crl = dir.join("revoked.crl.pem");
    let serial = setup.pki.participants["customs-nl"].serial.clone();
    std::fs::write(&crl, setup.pki.ca.revoke(&[&serial]).unwrap()).unwrap();
    let mut changed = setup.config.clone();
    changed.tls.crls = vec![crl];
    changed.data_dir = dir.join("elsewhere");
    changed.commit.max_batch = 7;
    std::fs::write(&file, toml::to_string(&changed).unwrap()).unwrap();
    assert!(
        eventually(10, || async { try_call(&gw, "customs-nl").await.is_err() }).await,
        "the changed file was never reloaded"
    );
    // The environment's registry is still in force, not the file's.
    try_call(&gw, "express-b").await.unwrap();
    let refused = try_call(&gw, "market-a").await.unwrap_err();
    assert!(refused.contains("Unauthenticated"), "{refused}");
    assert!(
        !dir.join("elsewhere").exists(),
        "data_dir changed on reload"
    );

    // The watched registry is the one in force: a participant added to it may call.
    std::fs::write(
        &overriding,
        registry_of(&["customs-nl", "express-b", "market-b"]),
    )
    .unwrap();
    assert!(
        eventually(10, || async { try_call(&gw, "market-b").await.is_ok() }).await,
        "the overriding registry was not watched"
    );
    try_call(&gw, "express-b").await.unwrap();
    assert!(try_call(&gw, "market-a").await.is_err());
    gw.stop().await;
}
