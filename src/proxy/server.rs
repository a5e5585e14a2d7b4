//! The proxy listener: per-run credential (407 + `Proxy-Authenticate` for
//! clients that only authenticate when challenged, like git), CONNECT handling
//! (interception for declared hosts, blind tunnels or refusal for the rest)
//! and plain-http forwarding (never injected).

use super::admission::{Admission, Pending};
use super::{intercept, Shared};
use crate::audit::{Action, Event};
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};

/// Error type of response bodies.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body: streamed upstream bodies or short local messages.
pub type Body = UnsyncBoxBody<Bytes, BoxError>;

/// A short local response (errors, refusals).
pub fn local(status: StatusCode, text: &str) -> Response<Body> {
    let mut resp = Response::new(Full::new(Bytes::from(format!("authsome: {text}\n"))).map_err(|e: Infallible| match e {}).boxed_unsync());
    *resp.status_mut() = status;
    resp.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("text/plain; charset=utf-8"));
    resp
}

/// Wrap a streamed body.
pub fn stream(body: Incoming) -> Body {
    body.map_err(|e| Box::new(e) as BoxError).boxed_unsync()
}

/// Accept connections until `stop` turns true.
///
/// When the process runs out of descriptors (`EMFILE`), the listener stays
/// readable and `accept` fails at once; retrying in a loop would burn a core
/// while clients hang. Instead the oldest unauthenticated connection is closed
/// and the loop waits, backing off, so what is already open keeps being served.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let admission = Admission::new(shared.limits.max_unauthenticated);
    let mut backoff = ACCEPT_BACKOFF_MIN;
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => {
                    backoff = ACCEPT_BACKOFF_MIN;
                    let _ = tcp.set_nodelay(true);
                    let (pending, evicted) = admission.admit();
                    tokio::spawn(connection(shared.clone(), tcp, stop.clone(), pending, evicted));
                }
                Err(e) if out_of_descriptors(&e) => {
                    admission.evict_oldest();
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.changed() => break,
                    }
                    backoff = (backoff * 2).min(ACCEPT_BACKOFF_MAX);
                }
                Err(_) => {}
            },
            _ = stop.changed() => break,
        }
    }
}

/// First and longest wait after `accept` failed for lack of descriptors.
const ACCEPT_BACKOFF_MIN: Duration = Duration::from_millis(10);
const ACCEPT_BACKOFF_MAX: Duration = Duration::from_millis(500);

/// `accept` errors that mean "no descriptor or memory left" (retrying at once cannot help).
fn out_of_descriptors(e: &std::io::Error) -> bool {
    use nix::errno::Errno;
    e.raw_os_error().map(Errno::from_raw).is_some_and(|n| matches!(n, Errno::EMFILE | Errno::ENFILE | Errno::ENOBUFS | Errno::ENOMEM))
}

/// Serve one proxy connection: a request head must arrive within
/// `limits.header_read` (also the keep-alive idle time of plain-http
/// forwarding), and the connection is closed early if it is evicted while
/// still unauthenticated.
async fn connection(
    shared: Arc<Shared>,
    tcp: tokio::net::TcpStream,
    mut stop: watch::Receiver<bool>,
    pending: Arc<Pending>,
    mut evicted: oneshot::Receiver<()>,
) {
    let stop2 = stop.clone();
    let header_read = shared.limits.header_read;
    let pending2 = pending.clone();
    let svc = service_fn(move |req| proxy_request(shared.clone(), req, stop2.clone(), pending2.clone()));
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(header_read)
        .serve_connection(TokioIo::new(tcp), svc)
        .with_upgrades();
    tokio::pin!(conn);
    let mut watching = true;
    loop {
        tokio::select! {
            _ = &mut conn => break,
            _ = stop.changed() => break,
            closed = &mut evicted, if watching => match closed {
                Ok(()) => break,
                Err(_) => watching = false,
            },
        }
    }
    drop(pending);
}

/// Host and port of a CONNECT target or absolute URI, lower-cased.
fn target(uri: &http::Uri, default_port: u16) -> Option<(String, u16)> {
    let a = uri.authority()?;
    let host = a.host().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase();
    (!host.is_empty()).then(|| (host, a.port_u16().unwrap_or(default_port)))
}

/// `host` or `host:port` for logs.
pub fn label(host: &str, port: u16, default_port: u16) -> String {
    if port == default_port {
        host.to_owned()
    } else {
        format!("{host}:{port}")
    }
}

/// How a CONNECT target is treated.
enum Class {
    /// Declared and coverable: decrypt and inject.
    Intercept,
    /// Declared, but no CA may vouch for it (regex without a domain suffix).
    Uncovered(String),
    /// Not declared by any route.
    Undeclared,
}

fn classify(shared: &Shared, host: &str, port: u16) -> Class {
    let routes = shared.routes();
    match routes.iter().find(|r| r.provider.matches_host(host, port)) {
        Some(_) if shared.cas.covers(host) => Class::Intercept,
        Some(r) => Class::Uncovered(r.provider.name().to_owned()),
        None => Class::Undeclared,
    }
}

async fn proxy_request(
    shared: Arc<Shared>,
    req: Request<Incoming>,
    stop: watch::Receiver<bool>,
    pending: Arc<Pending>,
) -> Result<Response<Body>, Infallible> {
    let is_connect = req.method() == Method::CONNECT;
    let default_port = if is_connect || req.uri().scheme_str() == Some("https") { 443 } else { 80 };
    let Some((host, port)) = target(req.uri(), default_port) else {
        return Ok(local(StatusCode::BAD_REQUEST, "this is a proxy: send CONNECT host:port or an absolute http:// URL"));
    };
    let host_label = label(&host, port, default_port);
    let path = if is_connect { String::new() } else { req.uri().path().to_owned() };
    if !shared.auth.check(req.headers()) {
        let reason = if req.headers().contains_key(http::header::PROXY_AUTHORIZATION) {
            "wrong proxy credential"
        } else {
            "proxy credential missing"
        };
        shared.record(Event::new(&shared.run_id, Action::Refuse, req.method().as_str(), &host_label, &path, 407).reason(reason));
        let mut resp = local(StatusCode::PROXY_AUTHENTICATION_REQUIRED, "proxy authentication required");
        resp.headers_mut().insert(http::header::PROXY_AUTHENTICATE, http::HeaderValue::from_static("Basic realm=\"authsome\""));
        return Ok(resp);
    }
    pending.authenticated();
    let class = classify(&shared, &host, port);
    if let Class::Undeclared = class {
        if shared.deny_undeclared {
            shared.record(
                Event::new(&shared.run_id, Action::Refuse, req.method().as_str(), &host_label, &path, 403)
                    .reason("host not declared by the project (deny_undeclared)"),
            );
            return Ok(local(StatusCode::FORBIDDEN, &format!("{host} is not declared; this proxy refuses undeclared hosts")));
        }
    }
    if !is_connect {
        return Ok(plain_http(&shared, req, &host_label, matches!(class, Class::Undeclared)).await);
    }
    match class {
        Class::Intercept => {
            tokio::spawn(async move {
                if let Ok(upgraded) = hyper::upgrade::on(req).await {
                    intercept::run(shared, upgraded, host, port, stop).await;
                }
            });
            Ok(Response::new(Full::new(Bytes::new()).map_err(|e: Infallible| match e {}).boxed_unsync()))
        }
        Class::Uncovered(provider) => {
            shared.record(
                Event::new(&shared.run_id, Action::Refuse, "CONNECT", &host_label, "", 200)
                    .reason(format!("{provider} host matches a regex no CA name constraint can cover; tunnelled without injection")),
            );
            Ok(tunnel(&shared, req, &host, port, stop).await)
        }
        Class::Undeclared => Ok(tunnel(&shared, req, &host, port, stop).await),
    }
}

/// Connect to the target, answer 200, then copy bytes both ways untouched.
async fn tunnel(shared: &Shared, req: Request<Incoming>, host: &str, port: u16, mut stop: watch::Receiver<bool>) -> Response<Body> {
    let upstream = match crate::net::connect(&shared.resolver, host, port).await {
        Ok(s) => s,
        Err(e) => return local(StatusCode::BAD_GATEWAY, &format!("cannot connect to {host}:{port}: {e}")),
    };
    tokio::spawn(async move {
        if let Ok(upgraded) = hyper::upgrade::on(req).await {
            let mut client = TokioIo::new(upgraded);
            let mut upstream = upstream;
            tokio::select! {
                _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                _ = stop.changed() => {}
            }
        }
    });
    Response::new(Full::new(Bytes::new()).map_err(|e: Infallible| match e {}).boxed_unsync())
}

/// Forward an absolute-form `http://` request. Plain http never carries a
/// credential; a declared host reached this way is logged as a refusal.
async fn plain_http(shared: &Shared, req: Request<Incoming>, host_label: &str, undeclared: bool) -> Response<Body> {
    if req.uri().scheme_str() != Some("http") {
        return local(StatusCode::BAD_REQUEST, "only http:// URLs may be sent to the proxy directly; use CONNECT for https");
    }
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let (mut parts, body) = req.into_parts();
    let placeholders: Vec<String> = shared.routes().iter().map(|r| r.placeholder.clone()).collect();
    let placeholders: Vec<&str> = placeholders.iter().map(String::as_str).collect();
    intercept::strip_hop_by_hop(&mut parts.headers, false);
    super::inject::strip_placeholder_headers(&mut parts.headers, None, &placeholders);
    parts.version = http::Version::HTTP_11;
    let result = super::upstream::send(&shared.upstream.pooled, Request::from_parts(parts, body)).await;
    let resp = match result {
        Ok(mut r) => {
            intercept::strip_hop_by_hop(r.headers_mut(), false);
            r.map(stream)
        }
        Err(e) => local(StatusCode::BAD_GATEWAY, &format!("cannot reach {host_label}: {e}")),
    };
    if !undeclared {
        shared.record(
            Event::new(&shared.run_id, Action::Refuse, &method, host_label, &path, resp.status().as_u16())
                .reason("plain http never carries a credential"),
        );
    }
    resp
}
