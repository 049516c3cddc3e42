//! `POST /add-checkpoint` (C2SP tlog-witness) over the gateway's mutual-TLS port: the body
//! is handed to [`Gateway::add_checkpoint`] with the peer gateway the client certificate
//! names, and its answer becomes the HTTP status and body the specification gives.

use super::ADD_CHECKPOINT_PATH;
use crate::app::Gateway;
use crate::auth::identity::PeerInfo;
use crate::log::cosign::MAX_ADD_CHECKPOINT_BODY;
use axum::response::{IntoResponse, Response};
use http::{header, StatusCode};
use std::sync::Arc;

/// The witness endpoint as a router to serve beside the gRPC services.
pub fn router(gateway: Arc<Gateway>) -> axum::Router {
    axum::Router::new().route(
        ADD_CHECKPOINT_PATH,
        axum::routing::post(move |request: axum::extract::Request| {
            add_checkpoint(gateway.clone(), request)
        }),
    )
}

async fn add_checkpoint(gateway: Arc<Gateway>, request: axum::extract::Request) -> Response {
    let caller = request
        .extensions()
        .get::<PeerInfo>()
        .and_then(|peer| peer.cert.gateway.clone());
    let Ok(body) = axum::body::to_bytes(request.into_body(), MAX_ADD_CHECKPOINT_BODY).await else {
        return (
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("the request body is over {MAX_ADD_CHECKPOINT_BODY} bytes\n"),
        )
            .into_response();
    };
    match gateway.add_checkpoint(caller.as_deref(), &body).await {
        Ok(lines) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            lines,
        )
            .into_response(),
        Err(refusal) => {
            let status =
                StatusCode::from_u16(refusal.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let content_type = if refusal.cosigned_size.is_some() {
                "text/x.tlog.size"
            } else {
                "text/plain; charset=utf-8"
            };
            (
                status,
                [(header::CONTENT_TYPE, content_type)],
                refusal.body(),
            )
                .into_response()
        }
    }
}
