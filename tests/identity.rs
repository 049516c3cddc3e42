//! Who may connect: certificates chained to the configured CA, naming a registered
//! participant, matching its pins.

mod common;

use common::{registry_toml, Pki, Setup};
use ipex::cli::client::{connect, ClientTls, Clients};
use ipex::pb;
use tonic::Code;

async fn whoami(clients: &mut Clients) -> Result<pb::WhoAmIResponse, tonic::Status> {
    clients
        .participants
        .who_am_i(pb::WhoAmIRequest {})
        .await
        .map(|r| r.into_inner())
}

/// A registered participant is recognised from its certificate.
#[tokio::test]
async fn whoami_names_the_certificate_participant() {
    let gw = Setup::new().start().await;
    let mut c = gw.client("express-b").await;
    let me = whoami(&mut c).await.unwrap();
    let p = me.participant.unwrap();
    assert_eq!(p.id, "express-b");
    assert_eq!(p.role, pb::Role::Carrier as i32);
    assert_eq!(p.country, "BE");
    assert_eq!(me.certificate_sha256.len(), 64);
    let list = c
        .participants
        .list(pb::ListParticipantsRequest {})
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.participants.len(), common::PARTICIPANTS.len());
    gw.stop().await;
}

/// Without a client certificate the handshake fails: the call fails, nothing is served.
#[tokio::test]
async fn no_client_certificate_is_refused_at_handshake() {
    let gw = Setup::new().start().await;
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(
            &gw.pki.ca.issued.cert_pem,
        ))
        .domain_name("localhost");
    let outcome = async {
        let channel = tonic::transport::Endpoint::from_shared(gw.endpoint())?
            .tls_config(tls)?
            .connect()
            .await?;
        let mut c = Clients::new(channel);
        Ok::<_, Box<dyn std::error::Error>>(whoami(&mut c).await?)
    }
    .await;
    assert!(outcome.is_err(), "served without a client certificate");
    gw.stop().await;
}

/// A certificate from another CA fails the handshake, even naming a registered participant.
#[tokio::test]
async fn foreign_ca_is_refused_at_handshake() {
    let gw = Setup::new().start().await;
    let foreign = Pki::generate();
    let tls = ClientTls {
        ca_pem: gw.pki.ca.issued.cert_pem.clone(),
        ..foreign.client_tls(&foreign.participants["customs-nl"])
    };
    let outcome = async {
        let channel = connect(&gw.endpoint(), &tls).await?;
        Ok::<_, Box<dyn std::error::Error>>(whoami(&mut Clients::new(channel)).await?)
    }
    .await;
    assert!(outcome.is_err(), "served a foreign certificate");
    gw.stop().await;
}

/// A valid certificate of a participant the registry does not know: UNAUTHENTICATED.
#[tokio::test]
async fn unregistered_participant_is_unauthenticated() {
    let gw = Setup::new().start().await;
    let stranger = gw.pki.ca.issue_participant("customs-xx").unwrap();
    let mut c = gw.client_with(&gw.pki.client_tls(&stranger)).await;
    let status = whoami(&mut c).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("customs-xx"),
        "{}",
        status.message()
    );
    let status = c
        .exchange
        .submit(pb::SubmitRequest {
            envelope: Some(common::example("takedown-notice.json")),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    // A certificate of our CA that names no participant.
    let anonymous = gw.pki.ca.issue_client("someone", None).unwrap();
    let mut c = gw.client_with(&gw.pki.client_tls(&anonymous)).await;
    let status = whoami(&mut c).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("urn:ipex:participant:"),
        "{}",
        status.message()
    );
    gw.stop().await;
}

/// A participant with pinned fingerprints accepts only those certificates.
#[tokio::test]
async fn pinned_fingerprint_mismatch_is_unauthenticated() {
    // Pin brand-d to a certificate we issue, then present another one for the same id.
    let pki = Pki::generate();
    let pinned = pki.ca.issue_participant("brand-d").unwrap();
    let other = pki.ca.issue_participant("brand-d").unwrap();
    let fingerprint = common::fingerprint(&pinned);
    let registry = registry_toml(&format!(
        "[[participant]]\nid = \"brand-d\"\nrole = \"RIGHT_HOLDER\"\ncountry = \"IT\"\npinned_sha256 = [\"{fingerprint}\"]\nrequire_token = false\n"
    ));
    let setup = Setup::with_registry(&registry);
    // Use this test's CA for the gateway too.
    let tls_dir = setup.path();
    std::fs::write(tls_dir.join("ca.pem"), &pki.ca.issued.cert_pem).unwrap();
    let server = pki.ca.issue_server(&["localhost"]).unwrap();
    std::fs::write(tls_dir.join("server.pem"), &server.cert_pem).unwrap();
    std::fs::write(tls_dir.join("server.key"), &server.key_pem).unwrap();
    let gw = common::Gateway::start(setup.config.clone(), std::sync::Arc::new(pki)).await;
    let _files = setup;

    let mut ok = gw.client_with(&gw.pki.client_tls(&pinned)).await;
    assert_eq!(
        whoami(&mut ok).await.unwrap().participant.unwrap().id,
        "brand-d"
    );
    let mut refused = gw.client_with(&gw.pki.client_tls(&other)).await;
    let status = whoami(&mut refused).await.unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(
        status.message().contains("not pinned"),
        "{}",
        status.message()
    );
    gw.stop().await;
}
