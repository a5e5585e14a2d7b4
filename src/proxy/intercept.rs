//! TLS interception of a CONNECT to a declared host: terminate TLS with a leaf
//! from the covering run CA (ALPN h2 and http/1.1), check that CONNECT
//! authority, SNI and Host agree (else 421), apply the injection rule, and
//! forward to the real upstream over a pooled connection. Bodies are streamed;
//! WebSocket upgrades are spliced through; redirects are passed back to the
//! client, never followed.

use super::idle::{Activity, InFlight};
use super::inject::{self, Decision};
use super::scrub::{ScrubBody, Scrubber};
use super::server::{label, local, stream, Body};
use super::{Route, Shared};
use crate::audit::{Action, Event};
use http::header::{HeaderName, CONNECTION, HOST, PROXY_AUTHENTICATE, PROXY_AUTHORIZATION, TE, TRAILER, TRANSFER_ENCODING, UPGRADE};
use http::{HeaderMap, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::upgrade::{OnUpgrade, Upgraded};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::watch;

/// What the connection agreed on before any request.
struct ConnCtx {
    connect_host: String,
    port: u16,
    sni: Option<String>,
}

/// Serve one intercepted CONNECT tunnel until it closes, idles out or the proxy stops.
pub(crate) async fn run(shared: Arc<Shared>, upgraded: Upgraded, connect_host: String, port: u16, mut stop: watch::Receiver<bool>) {
    let limits = shared.limits.clone();
    let Ok(Some((tls, sni))) = tokio::time::timeout(limits.tls_handshake, handshake(&shared, upgraded, &connect_host, port)).await else {
        return;
    };
    let ctx = Arc::new(ConnCtx { connect_host, port, sni });
    let activity = Activity::new();
    let activity2 = activity.clone();
    let svc = service_fn(move |req| {
        let in_flight = activity2.begin();
        let response = handle(shared.clone(), ctx.clone(), req);
        async move { Ok::<_, Infallible>(response.await.map(|body| body_until_done(body, in_flight))) }
    });
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.idle);
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(tls), svc);
    tokio::select! {
        _ = conn => {}
        _ = activity.idle(limits.idle) => {}
        _ = stop.changed() => {}
    }
}

/// The TLS handshake with the client, presenting a leaf for the name it asked
/// for when that name is itself interceptable (so a mismatch reaches the 421
/// check instead of a handshake failure), otherwise for the CONNECT host.
async fn handshake(
    shared: &Shared,
    upgraded: Upgraded,
    connect_host: &str,
    port: u16,
) -> Option<(tokio_rustls::server::TlsStream<TokioIo<Upgraded>>, Option<String>)> {
    let acceptor = tokio_rustls::LazyConfigAcceptor::new(rustls::server::Acceptor::default(), TokioIo::new(upgraded));
    let start = acceptor.await.ok()?;
    let sni = start.client_hello().server_name().map(|s| s.trim_end_matches('.').to_ascii_lowercase());
    let cert_host = match &sni {
        Some(s) if shared.cas.covers(s) && shared.routes().iter().any(|r| r.provider.matches_host(s, port)) => s.clone(),
        _ => connect_host.to_owned(),
    };
    let config = shared.cas.server_config(&cert_host).ok()?;
    let tls = start.into_stream(config).await.ok()?;
    Some((tls, sni))
}

/// The response body, keeping its request counted as in flight until the
/// body is finished or dropped.
fn body_until_done(body: Body, in_flight: InFlight) -> Body {
    body.map_frame(move |frame| {
        let _still_in_flight = &in_flight;
        frame
    })
    .boxed_unsync()
}

/// Host and port the request itself names (`:authority` / absolute URI and
/// `Host`); `None` when they disagree with each other or are missing.
fn request_target(req: &Request<Incoming>) -> Option<(String, u16)> {
    let parse = |s: &str| -> Option<(String, u16)> {
        let a: http::uri::Authority = s.parse().ok()?;
        Some((
            a.host().trim_start_matches('[').trim_end_matches(']').trim_end_matches('.').to_ascii_lowercase(),
            a.port_u16().unwrap_or(443),
        ))
    };
    let from_uri = req.uri().authority().and_then(|a| parse(a.as_str()));
    let hosts: Vec<_> = req.headers().get_all(HOST).iter().collect();
    if hosts.len() > 1 {
        return None;
    }
    let from_host = match hosts.first() {
        Some(v) => Some(parse(v.to_str().ok()?)?),
        None => None,
    };
    match (from_uri, from_host) {
        (Some(a), Some(b)) if a != b => None,
        (Some(a), _) | (None, Some(a)) => Some(a),
        (None, None) => None,
    }
}

async fn handle(shared: Arc<Shared>, ctx: Arc<ConnCtx>, req: Request<Incoming>) -> Response<Body> {
    let method = req.method().as_str().to_owned();
    let path = req.uri().path().to_owned();
    let target = request_target(&req);
    let agrees = target.as_ref().is_some_and(|(h, p)| *h == ctx.connect_host && *p == ctx.port && ctx.sni.as_deref() == Some(h.as_str()));
    let Some((host, port)) = target.filter(|_| agrees) else {
        let shown = label(&ctx.connect_host, ctx.port, 443);
        shared.record(
            Event::new(&shared.run_id, Action::Refuse, &method, &shown, &path, 421)
                .reason("CONNECT authority, SNI and Host do not name the same host"),
        );
        return local(StatusCode::MISDIRECTED_REQUEST, "CONNECT authority, TLS server name and Host header must name the same host");
    };
    let shown = label(&host, port, 443);
    let routes = shared.routes();
    let (mut parts, body) = req.into_parts();
    let event = Event::new(&shared.run_id, Action::Refuse, &method, &shown, &path, 0);
    let mut scrubber = None;
    let event = match inject::decide(&routes, &host, port, &path, &parts) {
        Decision::NoRoute => event.reason("path outside every declared api_url; forwarded without a credential"),
        Decision::Skip { route, reason } => event.route(route.provider.name(), &route.connection).reason(reason),
        Decision::Inject { route } => match inject_into(&shared, &routes, route, &mut parts).await {
            Ok(s) => {
                scrubber = s.map(Arc::new);
                Event { action: Action::Inject, ..event.route(route.provider.name(), &route.connection) }
            }
            Err((status, reason)) => {
                shared.record(Event { status: status.as_u16(), ..event.route(route.provider.name(), &route.connection).reason(&reason) });
                return local(status, &reason);
            }
        },
    };
    if event.action == Action::Refuse {
        let placeholders = Shared::placeholders(&routes);
        inject::strip_placeholder_headers(&mut parts.headers, None, &placeholders);
    }
    if scrubber.is_some() {
        // A compressed body could hide an echoed credential from the scrubber.
        parts.headers.insert(http::header::ACCEPT_ENCODING, http::HeaderValue::from_static("identity"));
    }
    let resp = match forward(&shared, parts, body, &host, port).await {
        Ok(resp) => resp,
        Err(why) => {
            // No answer came back: the request failed; it was not an injection.
            shared.record(Event { action: Action::Failed, status: StatusCode::BAD_GATEWAY.as_u16(), ..event }.reason(&why));
            return local(StatusCode::BAD_GATEWAY, &why);
        }
    };
    let resp = match scrubber {
        Some(s) => scrubbed(resp, s),
        None => resp,
    };
    shared.record(Event { status: resp.status().as_u16(), ..event });
    resp
}

/// The response to an injected request, with every injected value replaced by
/// the placeholder in its headers and body. A body still encoded (the upstream
/// ignored `Accept-Encoding: identity`) cannot be checked and is refused.
fn scrubbed(mut resp: Response<Body>, scrubber: Arc<Scrubber>) -> Response<Body> {
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        // The handshake's headers are checked; the frames after it are not
        // (a limit SECURITY.md states).
        scrubber.headers(resp.headers_mut());
        return resp;
    }
    let encoded = resp.headers().get_all(http::header::CONTENT_ENCODING).iter().any(|v| !v.as_bytes().eq_ignore_ascii_case(b"identity"));
    if encoded {
        return local(
            StatusCode::BAD_GATEWAY,
            "the upstream sent a compressed response to an injected request; it cannot be checked for the credential",
        );
    }
    scrubber.headers(resp.headers_mut());
    resp.headers_mut().remove(http::header::CONTENT_LENGTH);
    resp.map(|b| ScrubBody::new(b, scrubber).boxed_unsync())
}

/// Fetch the credential and write it into the request; returns the scrubber
/// for the response (the values sent, to be replaced by the placeholder).
async fn inject_into(
    shared: &Shared,
    routes: &[Route],
    route: &Route,
    parts: &mut http::request::Parts,
) -> Result<Option<Scrubber>, (StatusCode, String)> {
    // 511 (the status for "the network wants you to authenticate") rather
    // than a 502 that reads as an upstream failure; the body names the fix.
    let secret = shared
        .credentials
        .credential(&route.provider, &route.connection)
        .await
        .map_err(|e| (StatusCode::NETWORK_AUTHENTICATION_REQUIRED, format!("no credential to inject: {e}")))?;
    let placeholders = Shared::placeholders(routes);
    inject::apply(&route.provider, parts, &secret, &placeholders).map_err(|e| (StatusCode::BAD_GATEWAY, e.message))?;
    Ok(Scrubber::new(injected_values(&inject::injected_secrets(&route.provider, &secret), &parts.headers), &route.placeholder))
}

/// Every form in which an injected secret (each part of a multi-part one)
/// can come back: as is, URL-encoded (a query-string key), and the Basic
/// credentials it was packed into.
fn injected_values(secrets: &[String], headers: &HeaderMap) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for secret in secrets {
        out.push(secret.as_bytes().to_vec());
        out.push(url::form_urlencoded::byte_serialize(secret.as_bytes()).collect::<String>().into_bytes());
    }
    for v in headers.get_all(http::header::AUTHORIZATION) {
        if let Some(b64) = v.to_str().ok().and_then(|v| v.strip_prefix("Basic ")) {
            out.push(b64.trim().as_bytes().to_vec());
        }
    }
    out
}

/// Send the request to `https://host:port` and stream the response back.
/// Send the request upstream. `Err` says why no response came back (an
/// unreachable host, a failed TLS handshake), so the caller logs a failure
/// rather than the injection or refusal it had decided on.
async fn forward(
    shared: &Shared,
    mut parts: http::request::Parts,
    body: Incoming,
    host: &str,
    port: u16,
) -> Result<Response<Body>, String> {
    let upgrade = parts.version != http::Version::HTTP_2 && is_upgrade(&parts.headers);
    let pq = parts.uri.path_and_query().map_or("/", |p| p.as_str()).to_owned();
    let authority = label(host, port, 443);
    parts.uri = match format!("https://{authority}{pq}").parse() {
        Ok(u) => u,
        Err(_) => return Ok(local(StatusCode::BAD_REQUEST, "invalid request target")),
    };
    parts.version = http::Version::HTTP_11;
    parts.headers.remove(HOST);
    strip_hop_by_hop(&mut parts.headers, upgrade);
    let client_upgrade = if upgrade { parts.extensions.remove::<OnUpgrade>() } else { None };
    let client = if upgrade { &shared.upstream.h1 } else { &shared.upstream.pooled };
    let mut resp = match super::upstream::send(client, Request::from_parts(parts, body)).await {
        Ok(r) => r,
        Err(e) => return Err(format!("cannot reach {authority}: {}", error_chain(&e))),
    };
    if resp.status() == StatusCode::SWITCHING_PROTOCOLS {
        if let Some(client_side) = client_upgrade {
            let upstream_side = hyper::upgrade::on(&mut resp);
            let mut stop = shared.stopped.clone();
            tokio::spawn(async move {
                if let (Ok(a), Ok(b)) = (client_side.await, upstream_side.await) {
                    let (mut a, mut b) = (TokioIo::new(a), TokioIo::new(b));
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = stop.changed() => {}
                    }
                }
            });
        }
    } else {
        strip_hop_by_hop(resp.headers_mut(), false);
    }
    Ok(resp.map(stream))
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(c) = cur {
        s.push_str(": ");
        s.push_str(&c.to_string());
        cur = c.source();
    }
    s
}

fn is_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(UPGRADE)
        && headers
            .get_all(CONNECTION)
            .iter()
            .any(|v| v.to_str().is_ok_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case("upgrade"))))
}

/// Hop-by-hop headers removed whatever `Connection` names.
const HOP_BY_HOP: [HeaderName; 6] = [
    HeaderName::from_static("proxy-connection"),
    HeaderName::from_static("keep-alive"),
    PROXY_AUTHENTICATE,
    PROXY_AUTHORIZATION,
    TRAILER,
    TRANSFER_ENCODING,
];

/// Remove hop-by-hop headers (RFC 9110 §7.6.1), including those the
/// `Connection` header names. `keep_upgrade` keeps `Connection: upgrade` and
/// `Upgrade` for a WebSocket handshake; `TE: trailers` survives (gRPC needs it).
pub fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Runs twice per request, and most messages carry none of these: one
    // pass over the names instead of a lookup per hop-by-hop name.
    let hop = |n: &HeaderName| *n == CONNECTION || *n == UPGRADE || *n == TE || HOP_BY_HOP.contains(n);
    if !keep_upgrade && !headers.keys().any(hop) {
        return;
    }
    // The names `Connection` lists, but for `keep-alive` (removed below
    // anyway) and `upgrade` (handled below): the common `Connection:
    // keep-alive` costs no allocation.
    let named: Vec<HeaderName> = headers
        .get_all(CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|t| !t.eq_ignore_ascii_case("keep-alive") && !t.eq_ignore_ascii_case("upgrade"))
        .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for n in &HOP_BY_HOP {
        headers.remove(n);
    }
    if keep_upgrade {
        headers.insert(CONNECTION, http::HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(CONNECTION);
        headers.remove(UPGRADE);
    }
    let te_trailers = headers.get(TE).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"trailers"));
    if !te_trailers {
        headers.remove(TE);
    }
}
