//! A deliberately small HTTPS client for authsome's own calls (token, device,
//! registration, revocation, metadata endpoints). It never follows redirects,
//! bounds every exchange with a timeout and every body with a size limit, and
//! honours `AUTHSOME_RESOLVE`, the user's egress proxy and
//! `AUTHSOME_UPSTREAM_CA` through [`super::connect`] and [`super::tls`].

use super::{connect, tls, Resolver};
use crate::error::{Error, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use std::sync::Arc;
use std::time::Duration;

/// Largest response body accepted from an authorization server.
pub const MAX_BODY: usize = 1 << 20;

/// Client for HTTP/1.1 request/response exchanges with authorization servers.
#[derive(Clone)]
pub struct HttpClient {
    resolver: Resolver,
    tls: Arc<rustls::ClientConfig>,
    timeout: Duration,
}

impl HttpClient {
    /// Client with the environment's overrides and trust, and a 30 s timeout.
    pub fn from_env() -> Result<HttpClient> {
        let roots = tls::upstream_roots()?;
        Ok(HttpClient { resolver: Resolver::from_env()?, tls: tls::client_config(roots, &[b"http/1.1"]), timeout: Duration::from_secs(30) })
    }

    /// The per-exchange timeout.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Change the per-exchange timeout.
    pub fn with_timeout(mut self, timeout: Duration) -> HttpClient {
        self.timeout = timeout;
        self
    }

    /// Send one request and read the whole (bounded) response. Errors are
    /// one-line descriptions naming the host, never the request body.
    pub async fn send(&self, req: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>> {
        let host = req.uri().host().unwrap_or("?").to_owned();
        tokio::time::timeout(self.timeout, self.exchange(req))
            .await
            .map_err(|_| Error::other(format!("{host} did not answer within {:?}", self.timeout)))?
    }

    async fn exchange(&self, req: http::Request<Vec<u8>>) -> Result<http::Response<Vec<u8>>> {
        let uri = req.uri().clone();
        let host = uri.host().ok_or_else(|| Error::other("URL has no host"))?.to_owned();
        let https = match uri.scheme_str() {
            Some("https") => true,
            Some("http") if crate::text::is_loopback_host(&host) => false,
            _ => return Err(Error::other(format!("refusing non-https URL for {host}"))),
        };
        let port = uri.port_u16().unwrap_or(if https { 443 } else { 80 });
        let tcp = connect(&self.resolver, &host, port).await.map_err(|e| Error::other(format!("cannot connect to {host}:{port}: {e}")))?;
        let (parts, body) = req.into_parts();
        let mut req = http::Request::from_parts(parts, Full::new(Bytes::from(body)));
        // HTTP/1.1 wants origin-form targets and a Host header.
        let path = uri.path_and_query().map_or("/", |p| p.as_str()).parse().map_err(|_| Error::other("invalid request path"))?;
        *req.uri_mut() = path;
        let authority = uri.authority().map(|a| a.as_str().to_owned()).unwrap_or(host.clone());
        req.headers_mut().insert(http::header::HOST, authority.parse().map_err(|_| Error::other("invalid host"))?);
        let resp = if https {
            let name = ServerName::try_from(host.clone()).map_err(|_| Error::other(format!("invalid server name {host}")))?;
            let stream = tokio_rustls::TlsConnector::from(self.tls.clone())
                .connect(name, tcp)
                .await
                .map_err(|e| Error::other(format!("TLS handshake with {host} failed: {e}")))?;
            send_on(TokioIo::new(stream), req, &host).await?
        } else {
            send_on(TokioIo::new(tcp), req, &host).await?
        };
        let (parts, body) = resp.into_parts();
        let body = Limited::new(body, MAX_BODY)
            .collect()
            .await
            .map_err(|e| Error::other(format!("reading the response from {host} failed: {e}")))?
            .to_bytes()
            .to_vec();
        Ok(http::Response::from_parts(parts, body))
    }
}

async fn send_on<T>(io: T, req: http::Request<Full<Bytes>>, host: &str) -> Result<http::Response<hyper::body::Incoming>>
where
    T: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, conn) =
        hyper::client::conn::http1::handshake(io).await.map_err(|e| Error::other(format!("HTTP handshake with {host} failed: {e}")))?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    sender.send_request(req).await.map_err(|e| Error::other(format!("request to {host} failed: {e}")))
}
