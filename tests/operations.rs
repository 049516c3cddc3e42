//! The services generic gRPC tools rely on, over the gateway's mutual TLS: health
//! (`grpc.health.v1`) and server reflection (`grpc.reflection.v1` and `v1alpha`), answered to
//! any certificate the participants' CA issued, registered or not.

mod common;

use common::Setup;
use ipex::cli::client::ClientTls;
use std::time::Duration;
use tonic::transport::Channel;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A channel presenting a certificate of the participants' CA that names no participant, as a
/// load balancer or a probe would.
async fn probe_channel(gw: &common::Gateway) -> Channel {
    let probe = gw.pki.ca.issue_client("load balancer", None).unwrap();
    let tls: ClientTls = gw.pki.client_tls(&probe);
    ipex::cli::client::connect(&gw.endpoint(), &tls)
        .await
        .unwrap()
}

async fn check(channel: &Channel, service: &str) -> Result<ServingStatus, tonic::Status> {
    let response = HealthClient::new(channel.clone())
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await?;
    Ok(ServingStatus::try_from(response.into_inner().status).unwrap())
}

/// The whole gateway and each ipex service report SERVING to a certificate that is in no
/// registry; the same certificate is still refused by the ipex services themselves.
#[tokio::test]
async fn health_answers_any_certificate_of_the_ca() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let channel = probe_channel(&gw).await;

    for service in [
        "",
        "ipex.v1.Exchange",
        "ipex.v1.Participants",
        "ipex.v1.Audit",
    ] {
        assert_eq!(
            check(&channel, service).await.unwrap(),
            ServingStatus::Serving,
            "{service:?}"
        );
    }
    let unknown = check(&channel, "ipex.v1.Nothing").await.unwrap_err();
    assert_eq!(unknown.code(), tonic::Code::NotFound, "{unknown:?}");

    let refused = ipex::cli::client::Clients::new(channel)
        .participants
        .who_am_i(ipex::pb::WhoAmIRequest {})
        .await
        .unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated, "{refused:?}");
    gw.stop().await;
}

/// A health Watch sees SERVING, then NOT_SERVING when shutdown begins, then ends with
/// UNAVAILABLE, so that an open watch does not hold the drain up: the gateway stops at once.
#[tokio::test]
async fn health_watch_turns_not_serving_and_ends_when_the_gateway_drains() {
    let setup = Setup::new();
    let gw = setup.start().await;
    let channel = probe_channel(&gw).await;
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "ipex.v1.Exchange".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);

    let stopping = tokio::spawn(gw.stop());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("no health update within 5 s of the shutdown")
        .unwrap()
        .unwrap();
    assert_eq!(next.status(), ServingStatus::NotServing);
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the watch did not end within 5 s of the shutdown")
        .unwrap_err();
    assert_eq!(end.code(), tonic::Code::Unavailable, "{end:?}");
    // Well within the default 10 s grace period: the watch did not hold the drain up.
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("the gateway took longer than 5 s to stop")
        .unwrap();
}

mod reflection {
    //! One reflection client per protocol version, with the same questions.

    use prost::Message;
    use std::collections::BTreeMap;
    use tonic::transport::Channel;

    /// What a test asks, independent of the protocol version.
    pub enum Ask {
        ListServices,
        FileContainingSymbol(String),
        FileByFilename(String),
    }

    /// The services listed, or the files (encoded `FileDescriptorProto`s) returned.
    pub enum Answer {
        Services(Vec<String>),
        Files(Vec<Vec<u8>>),
    }

    pub async fn ask_v1(channel: &Channel, ask: Ask) -> Answer {
        use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1::ServerReflectionRequest;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(match ask {
                Ask::ListServices => MessageRequest::ListServices(String::new()),
                Ask::FileContainingSymbol(s) => MessageRequest::FileContainingSymbol(s),
                Ask::FileByFilename(f) => MessageRequest::FileByFilename(f),
            }),
        };
        let mut answers = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match answers.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                Answer::Services(list.service.into_iter().map(|s| s.name).collect())
            }
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                Answer::Files(files.file_descriptor_proto)
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }

    pub async fn ask_v1alpha(channel: &Channel, ask: Ask) -> Answer {
        use tonic_reflection::pb::v1alpha::server_reflection_client::ServerReflectionClient;
        use tonic_reflection::pb::v1alpha::server_reflection_request::MessageRequest;
        use tonic_reflection::pb::v1alpha::server_reflection_response::MessageResponse;
        use tonic_reflection::pb::v1alpha::ServerReflectionRequest;
        let request = ServerReflectionRequest {
            host: String::new(),
            message_request: Some(match ask {
                Ask::ListServices => MessageRequest::ListServices(String::new()),
                Ask::FileContainingSymbol(s) => MessageRequest::FileContainingSymbol(s),
                Ask::FileByFilename(f) => MessageRequest::FileByFilename(f),
            }),
        };
        let mut answers = ServerReflectionClient::new(channel.clone())
            .server_reflection_info(tokio_stream::iter([request]))
            .await
            .unwrap()
            .into_inner();
        match answers.message().await.unwrap().unwrap().message_response {
            Some(MessageResponse::ListServicesResponse(list)) => {
                Answer::Services(list.service.into_iter().map(|s| s.name).collect())
            }
            Some(MessageResponse::FileDescriptorResponse(files)) => {
                Answer::Files(files.file_descriptor_proto)
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    }

    /// What grpcurl does to describe a service: the file declaring it, then every file it
    /// imports, transitively, by name. Returns the files by name.
    pub async fn resolve<F, Fut>(
        channel: &Channel,
        symbol: &str,
        ask: F,
    ) -> BTreeMap<String, prost_types::FileDescriptorProto>
    where
        F: Fn(Channel, Ask) -> Fut,
        Fut: std::future::Future<Output = Answer>,
    {
        let mut files = BTreeMap::new();
        let mut pending = Vec::new();
        let Answer::Files(first) =
            ask(channel.clone(), Ask::FileContainingSymbol(symbol.into())).await
        else {
            panic!("no file for {symbol}")
        };
        pending.extend(first);
        while let Some(bytes) = pending.pop() {
            let file = prost_types::FileDescriptorProto::decode(bytes.as_slice()).unwrap();
            for import in &file.dependency {
                if !files.contains_key(import) {
                    let Answer::Files(more) =
                        ask(channel.clone(), Ask::FileByFilename(import.clone())).await
                    else {
                        panic!("no file {import}")
                    };
                    pending.extend(more);
                }
            }
            files.insert(file.name().to_string(), file);
        }
        files
    }
}

/// grpcurl-style discovery works with both reflection versions: the services are listed, and
/// `ipex.v1.Exchange` resolves with every file it imports — the well-known types included —
/// into a complete descriptor pool from which its methods can be called.
#[tokio::test]
async fn reflection_lists_and_resolves_every_service() {
    use reflection::{ask_v1, ask_v1alpha, resolve, Answer, Ask};
    let setup = Setup::new();
    let gw = setup.start().await;
    let channel = probe_channel(&gw).await;

    for version in ["v1", "v1alpha"] {
        let listed = match version {
            "v1" => ask_v1(&channel, Ask::ListServices).await,
            _ => ask_v1alpha(&channel, Ask::ListServices).await,
        };
        let Answer::Services(services) = listed else {
            panic!("{version}: no service list")
        };
        for service in [
            "ipex.v1.Exchange",
            "ipex.v1.Participants",
            "ipex.v1.Audit",
            "grpc.health.v1.Health",
        ] {
            assert!(
                services.iter().any(|s| s == service),
                "{version}: {service} not listed in {services:?}"
            );
        }

        let files = match version {
            "v1" => {
                resolve(&channel, "ipex.v1.Exchange", |c, a| async move {
                    ask_v1(&c, a).await
                })
                .await
            }
            _ => {
                resolve(&channel, "ipex.v1.Exchange", |c, a| async move {
                    ask_v1alpha(&c, a).await
                })
                .await
            }
        };
        assert!(
            files.contains_key("google/protobuf/timestamp.proto"),
            "{version}: the well-known types are missing: {:?}",
            files.keys().collect::<Vec<_>>()
        );
        let pool = prost_reflect::DescriptorPool::from_file_descriptor_set(
            prost_types::FileDescriptorSet {
                file: files.into_values().collect(),
            },
        )
        .unwrap_or_else(|e| panic!("{version}: the files do not form a complete pool: {e}"));
        let exchange = pool.get_service_by_name("ipex.v1.Exchange").unwrap();
        let submit = exchange.methods().find(|m| m.name() == "Submit").unwrap();
        assert_eq!(submit.input().full_name(), "ipex.v1.SubmitRequest");
        assert!(pool.get_message_by_name("ipex.v1.Envelope").is_some());
    }

    gw.stop().await;
}
