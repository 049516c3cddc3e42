//! The tonic handlers: each reads as a sentence — identify, act, reply — and logs the outcome
//! with fields. All decisions live in [`crate::app`].

use super::status::{code_name, status};
use crate::app::error::Error;
use crate::app::events::Refusal;
use crate::app::Gateway;
use crate::auth::identity::{Caller, PeerInfo};
use crate::auth::token::Scope;
use crate::pb;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tonic::{Request, Response, Status};

/// A subscription's deliveries as tonic streams them: the application's errors become
/// statuses.
pub type DeliveryStream = futures::stream::Map<
    crate::app::subscribe::DeliveryStream,
    fn(Result<pb::Delivery, Error>) -> Result<pb::Delivery, Status>,
>;

/// `ipex.v1.Exchange`.
#[derive(Clone)]
pub struct ExchangeService {
    /// The gateway.
    pub gateway: Arc<Gateway>,
}

/// `ipex.v1.Participants`.
#[derive(Clone)]
pub struct ParticipantsService {
    /// The gateway.
    pub gateway: Arc<Gateway>,
}

/// `ipex.v1.Audit`.
#[derive(Clone)]
pub struct AuditService {
    /// The gateway.
    pub gateway: Arc<Gateway>,
}

/// The scope an officer token must grant for each method; `None` for the calls any caller
/// may make.
pub fn scope_of(method: &str) -> Option<Scope> {
    match method {
        "Submit" | "SubmitBatch" => Some(Scope::ExchangeSubmit),
        "Get" | "ListInbox" | "Search" | "GetCase" | "GetTakedownTimes" => {
            Some(Scope::ExchangeRead)
        }
        "Subscribe" | "Ack" => Some(Scope::Subscribe),
        "GetCheckpoint" | "GetInclusionProof" | "GetConsistencyProof" | "GetLeaves" | "GetTile" => {
            Some(Scope::AuditRead)
        }
        _ => None,
    }
}

/// The methods of the gateway's own services, as the metrics and the audit log name them.
pub const METHODS: &[&str] = &[
    "Submit",
    "SubmitBatch",
    "Get",
    "ListInbox",
    "Subscribe",
    "Ack",
    "Search",
    "GetCase",
    "WhoAmI",
    "List",
    "GetCheckpoint",
    "GetInclusionProof",
    "GetConsistencyProof",
    "GetLeaves",
    "GetTile",
    "GetTakedownTimes",
];

/// Logs a refused call, records it in the audit log, and turns the error into its status.
pub(crate) fn refuse(
    gateway: &Gateway,
    method: &'static str,
    peer: Option<&PeerInfo>,
    error: Error,
) -> Status {
    let withheld = error.withheld().map(str::to_string);
    let status = status(error);
    record_refusal(gateway, method, peer, &status, withheld.as_deref());
    status
}

/// Logs `status` as the refusal of a call, counts it, and records it in the audit log.
/// `withheld` is what the caller is not told (why a message it may not read was "not
/// found"): it goes to the gateway's log only, never to the audit log the caller can read.
pub(crate) fn record_refusal(
    gateway: &Gateway,
    method: &'static str,
    peer: Option<&PeerInfo>,
    status: &Status,
    withheld: Option<&str>,
) {
    let participant = peer
        .and_then(|p| p.cert.participant.as_ref().ok())
        .map_or("", |id| id.as_str());
    let remote = peer
        .and_then(|p| p.remote_addr)
        .map(|a| a.to_string())
        .unwrap_or_default();
    gateway.metrics.refusal(method, code_name(status.code()));
    tracing::info!(
        method,
        participant,
        remote,
        code = ?status.code(),
        reason = status.message(),
        withheld,
        "refused"
    );
    gateway.record_refusal(Refusal {
        participant: participant.to_string(),
        certificate_sha256: peer.map(|p| p.cert.fingerprint_hex()).unwrap_or_default(),
        peer: remote,
        method: method.to_string(),
        code: code_name(status.code()).to_string(),
        reason: status.message().to_string(),
    });
}

/// Every handler: identify the caller (certificate, token, the method's scope), act, reply; a
/// refusal at any step is logged, audited and mapped to its status in one place, and every
/// answer is counted and timed for the metrics.
async fn handle<Req, Res, Fut>(
    gateway: &Gateway,
    method: &'static str,
    request: Request<Req>,
    act: impl FnOnce(Caller, Req) -> Fut,
) -> Result<Response<Res>, Status>
where
    Fut: Future<Output = Result<Res, Error>>,
{
    let started = Instant::now();
    let peer = request.extensions().get::<PeerInfo>().cloned();
    let authorization = authorization(request.metadata().as_ref());
    let result = match gateway.identify(peer.as_ref(), authorization, scope_of(method)) {
        Ok(caller) => act(caller, request.into_inner()).await,
        Err(e) => Err(e),
    };
    answer(gateway, method, peer.as_ref(), started, result)
}

/// The reply to a call that arrived at `started`: a refusal logged, audited and mapped to its
/// status; every answer counted and timed for the metrics.
fn answer<Res>(
    gateway: &Gateway,
    method: &'static str,
    peer: Option<&PeerInfo>,
    started: Instant,
    result: Result<Res, Error>,
) -> Result<Response<Res>, Status> {
    let answer = result
        .map(Response::new)
        .map_err(|e| refuse(gateway, method, peer, e));
    let code = answer
        .as_ref()
        .map_or_else(|status| code_name(status.code()), |_| "OK");
    gateway.metrics.call(method, code, started.elapsed());
    answer
}

/// The value of a call's `authorization` header. A value that is not visible ASCII cannot be
/// a bearer token: it is refused as one.
pub(crate) fn authorization(headers: &tonic::codegen::http::HeaderMap) -> Option<&str> {
    headers
        .get("authorization")
        .map(|v| v.to_str().unwrap_or("\u{fffd}"))
}

#[tonic::async_trait]
impl pb::exchange_server::Exchange for ExchangeService {
    type SubscribeStream = DeliveryStream;

    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "Submit", request, |caller, r| async move {
            let envelope = r
                .envelope
                .ok_or_else(|| Error::invalid("envelope", "is required"))?;
            let receipt = gw.submit(&caller, vec![envelope], false).await?.remove(0);
            tracing::info!(
                method = "Submit",
                participant = caller.id(),
                id = %receipt.id,
                seq = receipt.seq,
                recipients = receipt.placements.len(),
                duplicate = receipt.duplicate,
                "accepted"
            );
            Ok(pb::SubmitResponse {
                receipt: Some(receipt),
            })
        })
        .await
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "SubmitBatch", request, |caller, r| async move {
            let receipts = gw.submit(&caller, r.envelopes, true).await?;
            tracing::info!(
                method = "SubmitBatch",
                participant = caller.id(),
                messages = receipts.len(),
                first_seq = receipts.first().map_or(0, |r| r.seq),
                "accepted"
            );
            Ok(pb::SubmitBatchResponse { receipts })
        })
        .await
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "Get", request, |caller, r| async move {
            gw.get(&caller, r.key).await
        })
        .await
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "ListInbox", request, |caller, r| async move {
            gw.list_inbox(&caller, r).await
        })
        .await
    }

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let gw = &self.gateway;
        handle(gw, "Subscribe", request, |caller, r| async move {
            let deliveries = gw.subscribe(caller, r).await?;
            let to_status: fn(Result<pb::Delivery, Error>) -> Result<pb::Delivery, Status> =
                |delivery| delivery.map_err(status);
            Ok(futures::StreamExt::map(deliveries, to_status))
        })
        .await
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "Ack", request, |caller, r| async move {
            gw.ack(&caller, r).await
        })
        .await
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "Search", request, |caller, r| async move {
            gw.search(&caller, r).await
        })
        .await
    }

    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::GetCaseResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "GetCase", request, |caller, r| async move {
            gw.case(&caller, r).await
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::participants_server::Participants for ParticipantsService {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        handle(&self.gateway, "WhoAmI", request, |caller, _| async move {
            Ok(pb::WhoAmIResponse {
                participant: Some(caller.participant.to_pb()),
                certificate_sha256: hex::encode(caller.fingerprint),
                officer: caller.officer.clone().unwrap_or_default(),
            })
        })
        .await
    }

    async fn list(
        &self,
        request: Request<pb::ListParticipantsRequest>,
    ) -> Result<Response<pb::ListParticipantsResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "List", request, |_, _| async move {
            // Ours by id, then the peers' as `<id>@<gateway>`.
            let participants = gw
                .registry()
                .iter()
                .map(|p| p.to_pb())
                .chain(gw.peers.all().iter().map(|p| p.to_pb()))
                .collect();
            Ok(pb::ListParticipantsResponse { participants })
        })
        .await
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "GetCheckpoint", request, |_, r| async move {
            gw.checkpoint(r.refresh, r.witnessed).await
        })
        .await
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "GetInclusionProof", request, |_, r| async move {
            gw.inclusion_proof(r).await
        })
        .await
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "GetConsistencyProof", request, |_, r| async move {
            gw.consistency_proof(r).await
        })
        .await
    }

    async fn get_leaves(
        &self,
        request: Request<pb::GetLeavesRequest>,
    ) -> Result<Response<pb::GetLeavesResponse>, Status> {
        let gw = &self.gateway;
        handle(gw, "GetLeaves", request, |caller, r| async move {
            gw.leaves(&caller, r).await
        })
        .await
    }

    async fn get_tile(
        &self,
        request: Request<pb::GetTileRequest>,
    ) -> Result<Response<pb::GetTileResponse>, Status> {
        let gw = &self.gateway;
        handle(
            gw,
            "GetTile",
            request,
            |_, r| async move { gw.tile(r).await },
        )
        .await
    }

    async fn get_takedown_times(
        &self,
        request: Request<pb::GetTakedownTimesRequest>,
    ) -> Result<Response<pb::TakedownTimesReport>, Status> {
        let gw = &self.gateway;
        handle(gw, "GetTakedownTimes", request, |caller, r| async move {
            gw.takedown_times(&caller, r).await
        })
        .await
    }
}

/// `ipex.v1.Federation`, for peer gateways only: the caller is the gateway its gateway
/// certificate names (accepted in the handshake only from that peer's CA).
pub struct FederationService {
    /// The gateway.
    pub gateway: Arc<Gateway>,
}

/// Every federation handler: the calling peer, the act, the status; counted and, when
/// refused, recorded like any refusal.
async fn handle_peer<Req, Res, Fut>(
    gateway: &Gateway,
    method: &'static str,
    request: Request<Req>,
    act: impl FnOnce(String, Option<PeerInfo>, Req) -> Fut,
) -> Result<Response<Res>, Status>
where
    Fut: Future<Output = Result<Res, Error>>,
{
    let started = Instant::now();
    let peer = request.extensions().get::<PeerInfo>().cloned();
    let calling = peer.as_ref().and_then(|p| p.cert.gateway.clone());
    let result = match calling {
        Some(id) if gateway.config().peers.iter().any(|p| p.id == id) => {
            act(id, peer.clone(), request.into_inner()).await
        }
        Some(id) => Err(Error::NotAPeer(id)),
        None => Err(Error::NotAPeer("a participant".into())),
    };
    answer(gateway, method, peer.as_ref(), started, result)
}

#[tonic::async_trait]
impl pb::federation_server::Federation for FederationService {
    async fn directory(
        &self,
        request: Request<pb::DirectoryRequest>,
    ) -> Result<Response<pb::DirectoryResponse>, Status> {
        let gw = &self.gateway;
        handle_peer(gw, "Directory", request, |_, _, _| async move {
            let mut participants = gw.published();
            participants.sort_by(|a, b| a.id.cmp(&b.id));
            Ok(pb::DirectoryResponse {
                gateway: gw.config().gateway_id.clone(),
                participants,
            })
        })
        .await
    }

    async fn forward(
        &self,
        request: Request<pb::ForwardRequest>,
    ) -> Result<Response<pb::ForwardResponse>, Status> {
        let gw = &self.gateway;
        handle_peer(gw, "Forward", request, |from, peer, r| async move {
            let results = gw.receive_forwarded(&from, r.messages).await?;
            let results = results
                .into_iter()
                .map(|result| pb::ForwardResult {
                    result: Some(match result {
                        Ok(receipt) => pb::forward_result::Result::Receipt(receipt),
                        Err(error) => {
                            // Each refused message is a refusal like any other, audited.
                            let status = refuse(gw, "Forward", peer.as_ref(), error);
                            pb::forward_result::Result::Refused(pb::ForwardRefusal {
                                code: code_name(status.code()).to_string(),
                                reason: status.message().to_string(),
                            })
                        }
                    }),
                })
                .collect();
            Ok(pb::ForwardResponse { results })
        })
        .await
    }
}
