//! The tonic handlers: each reads as a sentence — identify, act, reply — and logs the outcome
//! with fields. All decisions live in [`crate::gateway`].

use crate::error::Error;
use crate::gateway::Gateway;
use crate::identity::PeerInfo;
use crate::pb;
use crate::token::Scope;
use std::sync::Arc;
use tonic::{Request, Response, Status};

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

/// Logs a refused call, records it in the audit log, and turns the error into its status.
fn refuse(
    gateway: &Gateway,
    method: &'static str,
    peer: Option<&PeerInfo>,
    error: Error,
) -> Status {
    let participant = peer
        .and_then(|p| p.cert.participant.as_ref().ok())
        .map_or("", |id| id.as_str());
    let remote = peer
        .and_then(|p| p.remote_addr)
        .map(|a| a.to_string())
        .unwrap_or_default();
    let status = Status::from(error);
    tracing::info!(
        method,
        participant,
        remote,
        code = ?status.code(),
        reason = status.message(),
        "refused"
    );
    gateway.record_refusal(pb::CallRefused {
        participant: participant.to_string(),
        certificate_sha256: peer.map(|p| p.cert.fingerprint_hex()).unwrap_or_default(),
        peer: remote,
        method: method.to_string(),
        code: code_name(status.code()).to_string(),
        reason: status.message().to_string(),
    });
    status
}

/// The canonical name of a gRPC code, as in `google.rpc.Code`.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code::*;
    match code {
        Ok => "OK",
        Cancelled => "CANCELLED",
        Unknown => "UNKNOWN",
        InvalidArgument => "INVALID_ARGUMENT",
        DeadlineExceeded => "DEADLINE_EXCEEDED",
        NotFound => "NOT_FOUND",
        AlreadyExists => "ALREADY_EXISTS",
        PermissionDenied => "PERMISSION_DENIED",
        ResourceExhausted => "RESOURCE_EXHAUSTED",
        FailedPrecondition => "FAILED_PRECONDITION",
        Aborted => "ABORTED",
        OutOfRange => "OUT_OF_RANGE",
        Unimplemented => "UNIMPLEMENTED",
        Internal => "INTERNAL",
        Unavailable => "UNAVAILABLE",
        DataLoss => "DATA_LOSS",
        Unauthenticated => "UNAUTHENTICATED",
    }
}

#[tonic::async_trait]
impl pb::exchange_server::Exchange for ExchangeService {
    type SubscribeStream = crate::fanout::DeliveryStream;

    async fn subscribe(
        &self,
        request: Request<pb::SubscribeRequest>,
    ) -> Result<Response<Self::SubscribeStream>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller =
                self.gateway
                    .identify(peer.as_ref(), request.metadata(), Some(Scope::Subscribe))?;
            self.gateway.subscribe(caller, request.into_inner()).await
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "Subscribe", peer.as_ref(), e))
    }

    async fn ack(
        &self,
        request: Request<pb::AckRequest>,
    ) -> Result<Response<pb::AckResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller =
                self.gateway
                    .identify(peer.as_ref(), request.metadata(), Some(Scope::Subscribe))?;
            self.gateway.ack(&caller, request.into_inner()).await
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "Ack", peer.as_ref(), e))
    }

    async fn search(
        &self,
        request: Request<pb::SearchRequest>,
    ) -> Result<Response<pb::SearchResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller = self.gateway.identify(
                peer.as_ref(),
                request.metadata(),
                Some(Scope::ExchangeRead),
            )?;
            self.gateway.search(&caller, request.into_inner()).await
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "Search", peer.as_ref(), e))
    }

    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        const METHOD: &str = "Submit";
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller = self.gateway.identify(
                peer.as_ref(),
                request.metadata(),
                Some(Scope::ExchangeSubmit),
            )?;
            let envelope = request.into_inner().envelope.ok_or_else(|| {
                let mut v = crate::model::Violations::default();
                v.add("envelope", "is required");
                Error::Invalid(v)
            })?;
            let mut receipts = self.gateway.submit(&caller, vec![envelope], false).await?;
            Ok::<_, Error>((caller, receipts.remove(0)))
        }
        .await;
        match result {
            Ok((caller, receipt)) => {
                tracing::info!(
                    method = METHOD,
                    participant = caller.id(),
                    id = %receipt.id,
                    seq = receipt.seq,
                    recipients = receipt.placements.len(),
                    duplicate = receipt.duplicate,
                    "accepted"
                );
                Ok(Response::new(pb::SubmitResponse {
                    receipt: Some(receipt),
                }))
            }
            Err(e) => Err(refuse(&self.gateway, METHOD, peer.as_ref(), e)),
        }
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        const METHOD: &str = "SubmitBatch";
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller = self.gateway.identify(
                peer.as_ref(),
                request.metadata(),
                Some(Scope::ExchangeSubmit),
            )?;
            let envelopes = request.into_inner().envelopes;
            let receipts = self.gateway.submit(&caller, envelopes, true).await?;
            Ok::<_, Error>((caller, receipts))
        }
        .await;
        match result {
            Ok((caller, receipts)) => {
                tracing::info!(
                    method = METHOD,
                    participant = caller.id(),
                    messages = receipts.len(),
                    first_seq = receipts.first().map_or(0, |r| r.seq),
                    "accepted"
                );
                Ok(Response::new(pb::SubmitBatchResponse { receipts }))
            }
            Err(e) => Err(refuse(&self.gateway, METHOD, peer.as_ref(), e)),
        }
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller = self.gateway.identify(
                peer.as_ref(),
                request.metadata(),
                Some(Scope::ExchangeRead),
            )?;
            self.gateway.get(&caller, request.into_inner().key).await
        }
        .await;
        result
            .map(|message| {
                Response::new(pb::GetResponse {
                    message: Some(message),
                })
            })
            .map_err(|e| refuse(&self.gateway, "Get", peer.as_ref(), e))
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller = self.gateway.identify(
                peer.as_ref(),
                request.metadata(),
                Some(Scope::ExchangeRead),
            )?;
            self.gateway.list_inbox(&caller, request.into_inner()).await
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "ListInbox", peer.as_ref(), e))
    }
}

#[tonic::async_trait]
impl pb::participants_server::Participants for ParticipantsService {
    async fn who_am_i(
        &self,
        request: Request<pb::WhoAmIRequest>,
    ) -> Result<Response<pb::WhoAmIResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let caller = self
            .gateway
            .identify(peer.as_ref(), request.metadata(), None)
            .map_err(|e| refuse(&self.gateway, "WhoAmI", peer.as_ref(), e))?;
        Ok(Response::new(pb::WhoAmIResponse {
            participant: Some(caller.participant.to_pb()),
            certificate_sha256: hex::encode(caller.fingerprint),
            officer: caller.officer.clone().unwrap_or_default(),
        }))
    }

    async fn list(
        &self,
        request: Request<pb::ListParticipantsRequest>,
    ) -> Result<Response<pb::ListParticipantsResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        self.gateway
            .identify(peer.as_ref(), request.metadata(), None)
            .map_err(|e| refuse(&self.gateway, "List", peer.as_ref(), e))?;
        let participants = self.gateway.registry().iter().map(|p| p.to_pb()).collect();
        Ok(Response::new(pb::ListParticipantsResponse { participants }))
    }
}

#[tonic::async_trait]
impl pb::audit_server::Audit for AuditService {
    async fn get_checkpoint(
        &self,
        request: Request<pb::GetCheckpointRequest>,
    ) -> Result<Response<pb::GetCheckpointResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            self.gateway
                .identify(peer.as_ref(), request.metadata(), Some(Scope::AuditRead))?;
            self.gateway.checkpoint(request.get_ref().refresh).await
        }
        .await;
        result
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "GetCheckpoint", peer.as_ref(), e))
    }

    async fn get_inclusion_proof(
        &self,
        request: Request<pb::GetInclusionProofRequest>,
    ) -> Result<Response<pb::GetInclusionProofResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        self.gateway
            .identify(peer.as_ref(), request.metadata(), Some(Scope::AuditRead))
            .and_then(|_| self.gateway.inclusion_proof(request.into_inner()))
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "GetInclusionProof", peer.as_ref(), e))
    }

    async fn get_consistency_proof(
        &self,
        request: Request<pb::GetConsistencyProofRequest>,
    ) -> Result<Response<pb::GetConsistencyProofResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        self.gateway
            .identify(peer.as_ref(), request.metadata(), Some(Scope::AuditRead))
            .and_then(|_| self.gateway.consistency_proof(request.into_inner()))
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "GetConsistencyProof", peer.as_ref(), e))
    }

    async fn get_leaves(
        &self,
        request: Request<pb::GetLeavesRequest>,
    ) -> Result<Response<pb::GetLeavesResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        self.gateway
            .identify(peer.as_ref(), request.metadata(), Some(Scope::AuditRead))
            .and_then(|caller| self.gateway.leaves(&caller, request.into_inner()))
            .map(Response::new)
            .map_err(|e| refuse(&self.gateway, "GetLeaves", peer.as_ref(), e))
    }
}
