//! The tonic handlers: each reads as a sentence — identify, act, reply — and logs the outcome
//! with fields. All decisions live in [`crate::gateway`].

use crate::error::Error;
use crate::gateway::Gateway;
use crate::identity::PeerInfo;
use crate::pb;
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

/// Logs a refused call and turns the error into its status.
fn refuse(method: &'static str, peer: Option<&PeerInfo>, error: Error) -> Status {
    let participant = peer
        .and_then(|p| p.cert.participant.as_ref().ok())
        .map_or("-", |id| id.as_str());
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
    status
}

#[tonic::async_trait]
impl pb::exchange_server::Exchange for ExchangeService {
    async fn submit(
        &self,
        request: Request<pb::SubmitRequest>,
    ) -> Result<Response<pb::SubmitResponse>, Status> {
        const METHOD: &str = "Submit";
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller = self.gateway.identify(peer.as_ref())?;
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
            Err(e) => Err(refuse(METHOD, peer.as_ref(), e)),
        }
    }

    async fn submit_batch(
        &self,
        request: Request<pb::SubmitBatchRequest>,
    ) -> Result<Response<pb::SubmitBatchResponse>, Status> {
        const METHOD: &str = "SubmitBatch";
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let result = async {
            let caller = self.gateway.identify(peer.as_ref())?;
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
            Err(e) => Err(refuse(METHOD, peer.as_ref(), e)),
        }
    }

    async fn get(
        &self,
        request: Request<pb::GetRequest>,
    ) -> Result<Response<pb::GetResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        self.gateway
            .identify(peer.as_ref())
            .and_then(|caller| self.gateway.get(&caller, request.into_inner().key))
            .map(|message| {
                Response::new(pb::GetResponse {
                    message: Some(message),
                })
            })
            .map_err(|e| refuse("Get", peer.as_ref(), e))
    }

    async fn list_inbox(
        &self,
        request: Request<pb::ListInboxRequest>,
    ) -> Result<Response<pb::ListInboxResponse>, Status> {
        let peer = request.extensions().get::<PeerInfo>().cloned();
        self.gateway
            .identify(peer.as_ref())
            .and_then(|caller| self.gateway.list_inbox(&caller, request.into_inner()))
            .map(Response::new)
            .map_err(|e| refuse("ListInbox", peer.as_ref(), e))
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
            .identify(peer.as_ref())
            .map_err(|e| refuse("WhoAmI", peer.as_ref(), e))?;
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
            .identify(peer.as_ref())
            .map_err(|e| refuse("List", peer.as_ref(), e))?;
        let participants = self.gateway.registry().iter().map(|p| p.to_pb()).collect();
        Ok(Response::new(pb::ListParticipantsResponse { participants }))
    }
}
