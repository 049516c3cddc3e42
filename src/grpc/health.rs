//! The services generic gRPC tooling expects: `grpc.health.v1.Health` and server reflection
//! (`grpc.reflection.v1` and `v1alpha`), so load balancers, probes, grpcurl and grpcui work
//! with ipex like with any other gRPC service.
//!
//! They are served on the same mutual-TLS listener as the ipex services, so a caller still
//! needs a client certificate issued by the participants' CA; but they need no entry in the
//! participant registry: any certificate the CA issued gets an answer. That is deliberate — a
//! load balancer or a probe is not a participant — and harmless: health reveals whether the
//! gateway serves, reflection the public `.proto` schema, and neither touches messages.

use crate::pb;
use futures::StreamExt;
use std::pin::Pin;
use tokio::sync::watch;
use tonic::{Request, Response, Status};
use tonic_health::pb::health_check_response::ServingStatus as WireStatus;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::pb::{HealthCheckRequest, HealthCheckResponse};
use tonic_health::server::{HealthReporter, HealthService};
use tonic_health::ServingStatus;
use tonic_reflection::server::{v1, v1alpha};

/// The services whose status health reports, besides the whole server (`""`).
pub const SERVICES: [&str; 3] = [
    pb::exchange_server::SERVICE_NAME,
    pb::participants_server::SERVICE_NAME,
    pb::audit_server::SERVICE_NAME,
];

/// The gateway's health: every service SERVING from the start, all NOT_SERVING once
/// [`GatewayHealth::drain`] is called.
#[derive(Clone, Debug)]
pub struct GatewayHealth {
    /// The statuses tonic-health serves.
    reporter: HealthReporter,
    /// Becomes true when the gateway starts draining; ends the `Watch` streams.
    draining: watch::Sender<bool>,
}

impl GatewayHealth {
    /// Health with `""` and every service of [`SERVICES`] SERVING.
    pub async fn serving() -> GatewayHealth {
        let reporter = HealthReporter::new();
        reporter
            .set_service_status("", ServingStatus::Serving)
            .await;
        for service in SERVICES {
            reporter
                .set_service_status(service, ServingStatus::Serving)
                .await;
        }
        GatewayHealth {
            reporter,
            draining: watch::channel(false).0,
        }
    }

    /// The `grpc.health.v1.Health` service.
    pub fn service(&self) -> HealthServer<DrainingHealth> {
        HealthServer::new(DrainingHealth {
            inner: HealthService::from_health_reporter(self.reporter.clone()),
            draining: self.draining.subscribe(),
        })
    }

    /// Turns `""` and every service NOT_SERVING, then ends every `Watch` stream with
    /// UNAVAILABLE so that watchers move to another instance rather than hold the drain up.
    pub async fn drain(&self) {
        self.reporter
            .set_service_status("", ServingStatus::NotServing)
            .await;
        for service in SERVICES {
            self.reporter
                .set_service_status(service, ServingStatus::NotServing)
                .await;
        }
        self.draining.send_replace(true);
    }

    /// Completes once [`GatewayHealth::drain`] has been called.
    pub async fn drained(&self) {
        let mut draining = self.draining.subscribe();
        // The sender lives in `self`, so waiting cannot fail while we borrow it.
        let _ = draining.wait_for(|draining| *draining).await;
    }
}

/// tonic-health's service, with `Watch` streams that end when the gateway drains (the stock
/// ones never end, and a connection with an open stream would hold the shutdown up until the
/// grace period runs out).
#[derive(Debug)]
pub struct DrainingHealth {
    /// The stock service.
    inner: HealthService,
    /// True once the gateway drains.
    draining: watch::Receiver<bool>,
}

/// A `Watch` answer stream.
pub type WatchStream =
    Pin<Box<dyn futures::Stream<Item = Result<HealthCheckResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Health for DrainingHealth {
    async fn check(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<HealthCheckResponse>, Status> {
        self.inner.check(request).await
    }

    type WatchStream = WatchStream;

    async fn watch(
        &self,
        request: Request<HealthCheckRequest>,
    ) -> Result<Response<WatchStream>, Status> {
        let statuses = self.inner.watch(request).await?.into_inner();
        let mut draining = self.draining.clone();
        let drained = async move {
            let _ = draining.wait_for(|draining| *draining).await;
        };
        let farewell = futures::stream::iter([
            Ok(HealthCheckResponse {
                status: WireStatus::NotServing as i32,
            }),
            Err(Status::unavailable(
                "the gateway is shutting down; reconnect to another instance",
            )),
        ]);
        // The NOT_SERVING of the farewell may already have come through the stock stream:
        // a watcher is told of changes only, so repeats are dropped.
        let mut last = None;
        let stream = statuses
            .take_until(drained)
            .chain(farewell)
            .filter(move |item| {
                let new = match item {
                    Ok(response) => last.replace(response.status) != Some(response.status),
                    Err(_) => true,
                };
                std::future::ready(new)
            });
        Ok(Response::new(Box::pin(stream)))
    }
}

/// Errors building the reflection services.
pub type ReflectionError = tonic_reflection::server::Error;

/// `grpc.reflection.v1.ServerReflection` over the `ipex.v1` descriptors (with the well-known
/// types they import) and `grpc.health.v1`.
pub fn reflection_v1(
) -> Result<v1::ServerReflectionServer<impl v1::ServerReflection>, ReflectionError> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
}

/// `grpc.reflection.v1alpha.ServerReflection`, for older tools; same content as
/// [`reflection_v1`].
pub fn reflection_v1alpha(
) -> Result<v1alpha::ServerReflectionServer<impl v1alpha::ServerReflection>, ReflectionError> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pb::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1alpha()
}
