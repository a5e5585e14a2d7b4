//! The HTTP client the `oauth2` crate talks through: authsome's own
//! redirect-free [`HttpClient`] (timeouts, `AUTHSOME_RESOLVE`,
//! `AUTHSOME_UPSTREAM_CA`, no proxy variables), plus small JSON helpers for
//! the endpoints the crate does not cover (RFC 7591 registration, RFC 8414
//! metadata). Errors name hosts and statuses, never request or response bodies.

use crate::error::{Error, Result};
use crate::net::http::HttpClient;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A transport failure (connect, TLS, timeout), secret-free by construction.
#[derive(Debug, Clone)]
pub struct HttpError(pub String);

impl std::fmt::Display for HttpError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HttpError {}

/// The OAuth client's transport. Cheap to clone; remembers the status of the
/// last response so error messages can say "HTTP 500" when the body was junk.
#[derive(Clone)]
pub struct OAuthHttp {
    inner: HttpClient,
    last_status: Arc<Mutex<Option<u16>>>,
    json_form_to: Option<String>,
}

impl OAuthHttp {
    /// Client configured from the environment, 30 s per exchange.
    pub fn from_env() -> Result<OAuthHttp> {
        let inner = HttpClient::from_env()?;
        Ok(OAuthHttp { inner, last_status: Arc::default(), json_form_to: None })
    }

    /// Change the per-exchange timeout (tests use short ones to exercise slow servers).
    pub fn with_timeout(mut self, timeout: Duration) -> OAuthHttp {
        self.inner = self.inner.with_timeout(timeout);
        self
    }

    /// A client that sends form bodies posted to `url` as the equivalent JSON
    /// object instead: the device-flow poll of providers whose definition says
    /// `"device_token_request": "json"` (Postiz).
    pub fn json_bodies_to(&self, url: &str) -> OAuthHttp {
        OAuthHttp { json_form_to: Some(url.to_owned()), ..self.clone() }
    }

    /// The per-exchange timeout.
    pub fn timeout(&self) -> Duration {
        self.inner.timeout()
    }

    /// HTTP status of the most recent response, if any arrived.
    pub fn last_status(&self) -> Option<u16> {
        *self.last_status.lock().expect("status lock")
    }

    /// Send one request, recording the response status.
    pub async fn send(&self, req: http::Request<Vec<u8>>) -> std::result::Result<http::Response<Vec<u8>>, HttpError> {
        *self.last_status.lock().expect("status lock") = None;
        let resp = self.inner.send(req).await.map_err(|e| HttpError(e.message))?;
        *self.last_status.lock().expect("status lock") = Some(resp.status().as_u16());
        Ok(resp)
    }

    /// GET `url` asking for JSON; returns the status and the parsed body (`Null` when not JSON).
    pub async fn get_json(&self, url: &str) -> Result<(u16, serde_json::Value)> {
        let req = http::Request::get(url)
            .header(http::header::ACCEPT, "application/json")
            .body(Vec::new())
            .map_err(|e| Error::bad_input(format!("invalid URL {url}: {e}")))?;
        self.json_exchange(req).await
    }

    /// POST a JSON document to `url`; returns the status and the parsed body.
    pub async fn post_json(&self, url: &str, body: &serde_json::Value) -> Result<(u16, serde_json::Value)> {
        let req = http::Request::post(url)
            .header(http::header::ACCEPT, "application/json")
            .header(http::header::CONTENT_TYPE, "application/json")
            .body(serde_json::to_vec(body).expect("JSON serializes"))
            .map_err(|e| Error::bad_input(format!("invalid URL {url}: {e}")))?;
        self.json_exchange(req).await
    }

    async fn json_exchange(&self, req: http::Request<Vec<u8>>) -> Result<(u16, serde_json::Value)> {
        let resp = self.send(req).await.map_err(|e| Error::login(e.0))?;
        let status = resp.status().as_u16();
        let body = serde_json::from_slice(resp.body()).unwrap_or(serde_json::Value::Null);
        Ok((status, body))
    }
}

impl<'c> oauth2::AsyncHttpClient<'c> for OAuthHttp {
    type Error = HttpError;
    type Future = Pin<Box<dyn Future<Output = std::result::Result<oauth2::HttpResponse, HttpError>> + Send + 'c>>;

    fn call(&'c self, request: oauth2::HttpRequest) -> Self::Future {
        let request = match &self.json_form_to {
            Some(url) if request.uri().to_string() == *url => form_to_json(request),
            _ => request,
        };
        Box::pin(async move { self.send(request).await.map(error_status) })
    }
}

/// Re-encode an urlencoded body as a JSON object of the same fields.
fn form_to_json(mut request: oauth2::HttpRequest) -> oauth2::HttpRequest {
    let is_form =
        request.headers().get(http::header::CONTENT_TYPE).is_some_and(|v| v.as_bytes().starts_with(b"application/x-www-form-urlencoded"));
    if !is_form {
        return request;
    }
    let fields: serde_json::Map<String, serde_json::Value> =
        url::form_urlencoded::parse(request.body()).map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned()))).collect();
    *request.body_mut() = serde_json::to_vec(&fields).expect("JSON serializes");
    request.headers_mut().insert(http::header::CONTENT_TYPE, http::HeaderValue::from_static("application/json"));
    request.headers_mut().remove(http::header::CONTENT_LENGTH);
    request
}

/// Give an OAuth error sent with `200 OK` the 400 status RFC 6749 §5.2 calls
/// for. GitHub answers token requests this way (`200 {"error":
/// "authorization_pending"}`), which the `oauth2` crate would otherwise take
/// for a malformed token: device polling would stop at the first pending
/// answer and an expired code would read as "unexpected response". Only the
/// `error` and `access_token` members are looked at.
fn error_status(mut resp: oauth2::HttpResponse) -> oauth2::HttpResponse {
    if resp.status() == http::StatusCode::OK {
        #[derive(serde::Deserialize)]
        struct Probe {
            error: Option<String>,
            access_token: Option<serde::de::IgnoredAny>,
        }
        if let Ok(Probe { error: Some(_), access_token: None }) = serde_json::from_slice::<Probe>(resp.body()) {
            *resp.status_mut() = http::StatusCode::BAD_REQUEST;
        }
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::{error_status, form_to_json};

    #[test]
    fn form_bodies_become_json_objects() {
        let req = http::Request::post("https://cli-auth.example/device/token")
            .header(http::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .body(b"grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Adevice_code&device_code=d%201".to_vec())
            .unwrap();
        let out = form_to_json(req);
        assert_eq!(out.headers()[http::header::CONTENT_TYPE], "application/json");
        let v: serde_json::Value = serde_json::from_slice(out.body()).unwrap();
        assert_eq!(v, serde_json::json!({"grant_type": "urn:ietf:params:oauth:grant-type:device_code", "device_code": "d 1"}));
    }

    fn resp(status: u16, body: &str) -> oauth2::HttpResponse {
        http::Response::builder().status(status).body(body.as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn oauth_errors_sent_with_200_get_400() {
        assert_eq!(error_status(resp(200, r#"{"error":"authorization_pending"}"#)).status(), 400);
        assert_eq!(error_status(resp(200, r#"{"access_token":"t","token_type":"bearer"}"#)).status(), 200);
        assert_eq!(error_status(resp(200, r#"{"access_token":"t","error":"x"}"#)).status(), 200);
        assert_eq!(error_status(resp(200, "not json")).status(), 200);
        assert_eq!(error_status(resp(500, r#"{"error":"server_error"}"#)).status(), 500);
    }
}
