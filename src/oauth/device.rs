//! The device authorization grant (RFC 8628): show the user code and the
//! verification URI prominently, offer to open the browser on Enter, then poll
//! the token endpoint honouring `interval`, `slow_down` (+5 s),
//! `authorization_pending`, `access_denied` and `expired_token`, with a
//! progress indicator while waiting.

use super::browser::Opener;
use super::client::OAuthHttp;
use super::tokens::{describe, oauth_client, Endpoints};
use crate::error::{Error, Result};
use crate::providers::Provider;
use crate::ui::Ui;
use crate::vault::ClientCredentials;
use oauth2::basic::BasicTokenResponse;
use oauth2::{DeviceCodeErrorResponseType, RequestTokenError, StandardDeviceAuthorizationResponse};
use std::io::{IsTerminal, Write};
use std::time::{Duration, Instant};

/// Run the device flow and return the token response.
pub async fn run(
    http: &OAuthHttp,
    opener: &Opener,
    ui: &Ui,
    provider: &Provider,
    ep: &Endpoints,
    creds: &ClientCredentials,
    scopes: &[String],
) -> Result<BasicTokenResponse> {
    let title = provider.def.title().to_owned();
    let client = oauth_client(ep, creds, None)?;
    let device_host = ep.device.as_deref().map(super::tokens::host_of).unwrap_or_default();
    let details: StandardDeviceAuthorizationResponse = client
        .exchange_device_code()
        .map_err(|_| Error::bad_input(format!("{title} has no device_authorization_url")))?
        .add_scopes(scopes.iter().map(|s| oauth2::Scope::new(s.clone())))
        .request_async(http)
        .await
        .map_err(|e| Error::login(format!("{title} login failed: {}", describe(&e, "starting the device login", &device_host, http))))?;

    let code = details.user_code().secret().clone();
    let uri = details.verification_uri().to_string();
    let open_uri = details.verification_uri_complete().map(|u| u.secret().clone()).unwrap_or_else(|| uri.clone());
    eprintln!();
    eprintln!("  Your one-time code:  {}", ui.paint(&code, "1"));
    eprintln!("  Enter it at:         {}", ui.paint(&uri, "4"));
    eprintln!();
    if opener.available() && !super::input::piped() {
        eprintln!("  Press Enter to open the browser (or open the address yourself).");
        let opener = opener.clone();
        std::thread::spawn(move || {
            if let Ok(Some(_)) = super::input::read_line() {
                if let Err(e) = opener.open(&open_uri) {
                    eprintln!("Could not open a browser ({e}); open {open_uri} yourself.");
                }
            }
        });
    }

    let deadline = Instant::now() + details.expires_in();
    let spinner = std::io::stderr().is_terminal() && !ui.quiet;
    let sleep = move |d: Duration| async move { wait(d, deadline, spinner).await };
    let poll_http = if ep.device_json { http.json_bodies_to(&ep.token) } else { http.clone() };
    let result = client
        .exchange_device_access_token(&details)
        .map_err(|_| Error::bad_input(format!("{title} has no token_url")))?
        .request_async(&poll_http, sleep, None)
        .await;
    if spinner {
        eprint!("\r\x1b[2K");
    }
    result.map_err(|e| {
        let why = match &e {
            RequestTokenError::ServerResponse(r) if *r.error() == DeviceCodeErrorResponseType::AccessDenied => {
                format!("access was denied at {title}")
            }
            RequestTokenError::ServerResponse(r) if *r.error() == DeviceCodeErrorResponseType::ExpiredToken => {
                format!("the code {code} expired before it was approved; {} again", crate::fix::LoginFix::new(provider.name(), None).hint())
            }
            _ => describe(&e, "waiting for approval", &ep.token_host(), http),
        };
        Error::login(format!("{title} login failed: {why}"))
    })
}

/// Sleep `d` between polls, animating a spinner with the time left when stderr is a terminal.
async fn wait(d: Duration, deadline: Instant, spinner: bool) {
    if !spinner {
        tokio::time::sleep(d).await;
        return;
    }
    const FRAMES: [&str; 10] = ["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];
    let end = Instant::now() + d;
    let mut i = 0;
    while Instant::now() < end {
        let left = deadline.saturating_duration_since(Instant::now()).as_secs();
        eprint!("\r\x1b[2K{} Waiting for approval… (code expires in {}:{:02})", FRAMES[i % FRAMES.len()], left / 60, left % 60);
        let _ = std::io::stderr().flush();
        i += 1;
        tokio::time::sleep(Duration::from_millis(120).min(end.saturating_duration_since(Instant::now()))).await;
    }
}
