//! Requests whose body does not decode never reach a handler: tonic decodes before it calls
//! one, and answers the codec's status itself ([`crate::pb::codec`]). This wrapper around a
//! generated server treats that answer like every other refusal: the caller is identified
//! first (an unknown caller is `UNAUTHENTICATED`, whatever it sent), then the refusal is
//! logged, counted and recorded in the audit log, and the codec's mark is removed.

use super::services::{authorization, record_refusal, refuse, scope_of, METHODS};
use super::status::code_name;
use crate::app::Gateway;
use crate::auth::identity::PeerInfo;
use crate::pb::codec::UNDECODABLE;
use std::convert::Infallible;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;
use tonic::body::Body;
use tonic::codegen::http;
use tonic::server::NamedService;
use tonic::Status;

/// A generated server whose undecodable requests are refused like any other.
#[derive(Clone)]
pub struct Undecodable<S> {
    /// The generated server.
    inner: S,
    /// The gateway, which identifies callers and records refusals.
    gateway: Arc<Gateway>,
}

impl<S> Undecodable<S> {
    /// Wraps `inner`.
    pub fn new(inner: S, gateway: Arc<Gateway>) -> Self {
        Undecodable { inner, gateway }
    }
}

impl<S: NamedService> NamedService for Undecodable<S> {
    const NAME: &'static str = S::NAME;
}

/// The method of a request path `/ipex.v1.Exchange/Submit`, as [`METHODS`] names it.
fn method_of(path: &str) -> &'static str {
    let name = path.rsplit('/').next().unwrap_or_default();
    METHODS
        .iter()
        .find(|m| **m == name)
        .copied()
        .unwrap_or("unknown")
}

impl<S, B> tonic::codegen::Service<http::Request<B>> for Undecodable<S>
where
    S: tonic::codegen::Service<
            http::Request<B>,
            Response = http::Response<Body>,
            Error = Infallible,
        > + Send,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = futures::future::BoxFuture<'static, Result<http::Response<Body>, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let started = Instant::now();
        let peer = request.extensions().get::<PeerInfo>().cloned();
        let authorization = authorization(request.headers()).map(str::to_string);
        let method = method_of(request.uri().path());
        let gateway = self.gateway.clone();
        let answer = self.inner.call(request);
        Box::pin(async move {
            let mut response = answer.await?;
            if response.headers_mut().remove(UNDECODABLE).is_none() {
                return Ok(response);
            }
            let code =
                match gateway.identify(peer.as_ref(), authorization.as_deref(), scope_of(method)) {
                    Err(error) => {
                        let status = refuse(&gateway, method, peer.as_ref(), error);
                        let code = status.code();
                        response = status.into_http();
                        code
                    }
                    Ok(_) => {
                        let status =
                            Status::from_header_map(response.headers()).unwrap_or_else(|| {
                                Status::invalid_argument("the body does not decode")
                            });
                        record_refusal(&gateway, method, peer.as_ref(), &status, None);
                        status.code()
                    }
                };
            gateway
                .metrics
                .call(method, code_name(code), started.elapsed());
            Ok(response)
        })
    }
}
