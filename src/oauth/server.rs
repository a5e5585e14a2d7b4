//! The local login server on `127.0.0.1:7998` (or `AUTHSOME_CALLBACK_ADDR`):
//! serves the client-credentials and API-key forms, receives the provider's
//! redirect at `/auth/callback/oauth`, checks `state`, and answers with a
//! clear success or error page once the login has actually finished.
//!
//! The server only reports what arrived (as [`Event`]s); the flow decides.
//! Forms carry a per-run nonce and requests must name the server's own
//! address in `Host`, so other web pages cannot post into a login.

use super::pages;
use crate::error::{Error, Result};
use crate::vault::{ClientCredentials, Secret};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, oneshot, watch};

/// Checks a typed API key; `Err` is a secret-free explanation shown on the form.
pub type KeyValidator = Arc<dyn Fn(&str) -> std::result::Result<Secret, String> + Send + Sync>;

/// What the server shows at `/` and accepts right now.
#[derive(Clone)]
pub enum Page {
    /// Nothing to do.
    Idle,
    /// Collect client_id / client_secret for a provider.
    ClientForm {
        /// Provider display name.
        provider: String,
        /// Where to create the OAuth app.
        docs_url: Option<String>,
    },
    /// Collect an API key.
    ApiKeyForm {
        /// Provider display name.
        provider: String,
        /// Where to create a key.
        docs_url: Option<String>,
        /// The provider's `key_pattern_hint`.
        hint: Option<String>,
        /// Pattern check run before accepting the key.
        validate: KeyValidator,
    },
    /// Waiting for the provider to redirect back with this `state`.
    Authorizing {
        /// Provider display name.
        provider: String,
        /// The `state` sent in the authorization request.
        state: String,
    },
}

/// Something the browser delivered.
pub enum Event {
    /// The client-credentials form was submitted.
    Client(ClientCredentials),
    /// The API-key form was submitted with a key that passed validation.
    ApiKey(Secret),
    /// The provider redirected back. `result` is the code when `state` matched
    /// and no error was reported; the flow answers on `reply` (Ok: success
    /// detail, Err: failure detail) and the browser then gets its final page.
    Callback {
        /// The authorization code, or why there is none.
        result: std::result::Result<Secret, String>,
        /// Outcome shown to the browser.
        reply: oneshot::Sender<std::result::Result<String, String>>,
    },
}

struct Shared {
    page: Mutex<Page>,
    nonce: String,
    addr: SocketAddr,
    events: mpsc::UnboundedSender<Event>,
}

/// A running login server; dropped or [`LoginServer::shutdown`] to stop it.
pub struct LoginServer {
    shared: Arc<Shared>,
    events: mpsc::UnboundedReceiver<Event>,
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl LoginServer {
    /// Listen on `addr`. A busy port is an error naming what holds it and how to proceed.
    pub async fn bind(addr: SocketAddr) -> Result<LoginServer> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| bind_error(addr, &e))?;
        let addr = listener.local_addr()?;
        let (tx, rx) = mpsc::unbounded_channel();
        let shared = Arc::new(Shared { page: Mutex::new(Page::Idle), nonce: random_token(16), addr, events: tx });
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(accept_loop(listener, shared.clone(), stop_rx));
        Ok(LoginServer { shared, events: rx, stop, task: Some(task) })
    }

    /// `http://ADDR/`, where the forms are.
    pub fn url(&self) -> String {
        format!("http://{}/", self.shared.addr)
    }

    /// The redirect URI this server receives.
    pub fn redirect_uri(&self) -> String {
        super::redirect_uri(self.shared.addr)
    }

    /// Change what `/` shows and what the server accepts.
    pub fn set_page(&self, page: Page) {
        *self.shared.page.lock().expect("page lock") = page;
    }

    /// The next browser event; `None` only if the server stopped.
    pub async fn next_event(&mut self) -> Option<Event> {
        self.events.recv().await
    }

    /// Stop accepting, let in-flight responses (the final page) finish, close idle connections.
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        if let Some(task) = self.task.take() {
            let _ = tokio::time::timeout(Duration::from_secs(3), task).await;
        }
    }
}

impl Drop for LoginServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// A random URL-safe token (`state`, form nonces) from the system RNG.
pub fn random_token(bytes: usize) -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut buf = vec![0u8; bytes];
    ring::rand::SystemRandom::new().fill(&mut buf).expect("system RNG works");
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(buf)
}

fn bind_error(addr: SocketAddr, e: &std::io::Error) -> Error {
    if e.kind() != std::io::ErrorKind::AddrInUse {
        return Error::login(format!("cannot listen on {addr} for the login callback: {e}"));
    }
    let who = port_owner(addr.port()).map(|w| format!(" by {w}")).unwrap_or_default();
    Error::login(format!(
        "{addr} is already in use{who}. The login callback must arrive there: if it is another `authsome login`, finish or \
         cancel it and retry; otherwise stop that program (`ss -ltnp 'sport = :{port}'` shows it), or set \
         AUTHSOME_CALLBACK_ADDR=127.0.0.1:PORT and register http://127.0.0.1:PORT/auth/callback/oauth at the provider",
        port = addr.port()
    ))
}

/// Best effort on Linux: "process 123 (name)" listening on TCP `port`.
fn port_owner(port: u16) -> Option<String> {
    let mut inodes = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() > 9 && cols[3] == "0A" && cols[1].rsplit(':').next().and_then(|p| u16::from_str_radix(p, 16).ok()) == Some(port) {
                inodes.push(format!("socket:[{}]", cols[9]));
            }
        }
    }
    if inodes.is_empty() {
        return None;
    }
    for proc_entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let pid = proc_entry.file_name().to_string_lossy().into_owned();
        if !pid.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else { continue };
        for fd in fds.flatten() {
            if let Ok(target) = std::fs::read_link(fd.path()) {
                if inodes.iter().any(|i| target.as_os_str() == i.as_str()) {
                    let comm = std::fs::read_to_string(proc_entry.path().join("comm")).unwrap_or_default();
                    return Some(format!("process {pid} ({})", comm.trim()));
                }
            }
        }
    }
    Some("another program".into())
}

async fn accept_loop(listener: tokio::net::TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut conns = tokio::task::JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.changed() => break,
            accepted = listener.accept() => {
                let Ok((tcp, _)) = accepted else { continue };
                let shared = shared.clone();
                let mut stop = stop.clone();
                conns.spawn(async move {
                    let svc = hyper::service::service_fn(move |req| handle(shared.clone(), req));
                    let conn = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(tcp), svc);
                    tokio::pin!(conn);
                    tokio::select! {
                        _ = conn.as_mut() => {}
                        _ = stop.changed() => {
                            conn.as_mut().graceful_shutdown();
                            let _ = conn.await;
                        }
                    }
                });
            }
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

type Resp = http::Response<Full<Bytes>>;

fn html(status: u16, body: String) -> Resp {
    http::Response::builder()
        .status(status)
        .header("content-type", "text/html; charset=utf-8")
        .header("cache-control", "no-store")
        .header("referrer-policy", "no-referrer")
        .header("x-frame-options", "DENY")
        .body(Full::new(Bytes::from(body)))
        .expect("valid response")
}

async fn handle(shared: Arc<Shared>, req: http::Request<Incoming>) -> std::result::Result<Resp, std::convert::Infallible> {
    let host = req.headers().get(http::header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("");
    let port = shared.addr.port();
    if host != shared.addr.to_string() && host != format!("localhost:{port}") {
        return Ok(html(421, pages::message(false, "Wrong address", "Open this page through the address authsome printed.")));
    }
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().unwrap_or("").to_owned();
    let page = shared.page.lock().expect("page lock").clone();
    let resp = match (method.as_str(), path.as_str()) {
        ("GET", "/") => show(&shared, &page, None),
        ("POST", "/client") | ("POST", "/apikey") => {
            let body = match Limited::new(req.into_body(), 64 * 1024).collect().await {
                Ok(b) => b.to_bytes(),
                Err(_) => return Ok(html(413, pages::message(false, "Form too large", "Go back and try again."))),
            };
            let form: std::collections::HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
            submit(&shared, &page, &path, form)
        }
        ("GET", super::CALLBACK_PATH) => return Ok(callback(&shared, &page, &query).await),
        _ => html(404, pages::message(false, "Not found", "Nothing here.")),
    };
    Ok(resp)
}

fn show(shared: &Shared, page: &Page, error: Option<&str>) -> Resp {
    match page {
        Page::ClientForm { provider, docs_url, .. } => {
            html(200, pages::client_form(provider, docs_url.as_deref(), &super::redirect_uri(shared.addr), &shared.nonce, error))
        }
        Page::ApiKeyForm { provider, docs_url, hint, .. } => {
            html(200, pages::api_key_form(provider, docs_url.as_deref(), hint.as_deref(), &shared.nonce, error))
        }
        Page::Authorizing { provider, .. } => {
            html(200, pages::message(true, &format!("Waiting for {provider}"), "Finish the authorization in the window that opened."))
        }
        Page::Idle => html(200, pages::message(true, "authsome", "No login form is open right now; see your terminal.")),
    }
}

fn submit(shared: &Shared, page: &Page, path: &str, form: std::collections::HashMap<String, String>) -> Resp {
    if form.get("nonce").map(String::as_str) != Some(shared.nonce.as_str()) {
        return html(403, pages::message(false, "Form expired", "This form belongs to another login. Reload the page and try again."));
    }
    let field = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    match (page, path) {
        (Page::ClientForm { provider, .. }, "/client") => {
            let client_id = field("client_id");
            if client_id.is_empty() || client_id.chars().any(char::is_control) {
                return show(shared, page, Some("Enter the client ID."));
            }
            let secret = field("client_secret");
            let creds =
                ClientCredentials { client_id, client_secret: (!secret.is_empty()).then(|| Secret::new(secret)), registered_at: None };
            *shared.page.lock().expect("page lock") = Page::Idle;
            let _ = shared.events.send(Event::Client(creds));
            html(
                200,
                pages::message(
                    true,
                    "Client credentials saved",
                    &format!("A new browser window opens at {provider} for the authorization step. You can close this tab."),
                ),
            )
        }
        (Page::ApiKeyForm { provider, validate, .. }, "/apikey") => match validate(&field("api_key")) {
            Ok(key) => {
                *shared.page.lock().expect("page lock") = Page::Idle;
                let _ = shared.events.send(Event::ApiKey(key));
                html(200, pages::message(true, &format!("{provider} API key saved"), "You can close this tab and return to the terminal."))
            }
            Err(e) => show(shared, page, Some(&e)),
        },
        _ => html(409, pages::message(false, "Nothing to submit", "This form is no longer open; see your terminal.")),
    }
}

async fn callback(shared: &Shared, page: &Page, query: &str) -> Resp {
    let Page::Authorizing { provider, state } = page else {
        return html(409, pages::message(false, "No login in progress", "This redirect does not belong to a running `authsome login`."));
    };
    let result = parse_callback(query, state);
    *shared.page.lock().expect("page lock") = Page::Idle;
    let (reply, outcome) = oneshot::channel();
    let _ = shared.events.send(Event::Callback { result, reply });
    match outcome.await {
        Ok(Ok(detail)) => html(200, pages::message(true, &format!("Connected to {provider}"), &detail)),
        Ok(Err(detail)) => html(400, pages::message(false, &format!("{provider} login failed"), &detail)),
        Err(_) => html(500, pages::message(false, &format!("{provider} login failed"), "authsome stopped; see your terminal.")),
    }
}

/// Interpret a redirect's query string: the code when `state` matches and the
/// provider reported no error; otherwise a secret-free reason.
pub fn parse_callback(query: &str, expected_state: &str) -> std::result::Result<Secret, String> {
    let params: std::collections::HashMap<String, String> = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    if params.get("state").map(String::as_str) != Some(expected_state) {
        return Err("the redirect's state does not match this login (a stale tab or a forged request); nothing was accepted".into());
    }
    if let Some(err) = params.get("error") {
        let mut detail = match params.get("error_description") {
            Some(d) => format!("the provider answered {err}: {d}"),
            None => format!("the provider answered {err}"),
        };
        if err == "access_denied" {
            detail.push_str(" (consent was denied)");
        }
        detail.truncate(300);
        return Err(detail);
    }
    match params.get("code") {
        Some(c) if !c.is_empty() => Ok(Secret::new(c.clone())),
        _ => Err("the redirect carried no authorization code".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_checks_state_before_anything_else() {
        assert!(parse_callback("code=abc&state=s1", "s2").unwrap_err().contains("state does not match"));
        assert_eq!(parse_callback("code=abc&state=s1", "s1").unwrap().expose(), "abc");
        assert!(parse_callback("error=access_denied&state=s1", "s1").unwrap_err().contains("denied"));
        assert!(parse_callback("state=s1", "s1").is_err());
    }
}
