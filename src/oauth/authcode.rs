//! The authorization-code flow: PKCE S256 when the provider's `pkce` is true,
//! and no `code_challenge` at all when it is false (Discord). The browser is
//! sent to the authorization URL; the code arrives at the login server or is
//! pasted at the terminal; `state` is checked before the code is used.

use super::browser::Opener;
use super::client::OAuthHttp;
use super::server::{parse_callback, random_token, Event, LoginServer, Page};
use super::tokens::{describe, oauth_client, Endpoints};
use crate::error::{Error, Result};
use crate::providers::Provider;
use crate::ui::Ui;
use crate::vault::{ClientCredentials, Secret};
use oauth2::basic::{BasicErrorResponseType, BasicTokenResponse};
use std::time::Duration;

/// How long a user may take in the browser.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(15 * 60);

/// One authorization-code login.
pub struct AuthCodeRequest<'a> {
    /// The provider.
    pub provider: &'a Provider,
    /// Its endpoints after templating.
    pub endpoints: &'a Endpoints,
    /// The client.
    pub creds: &'a ClientCredentials,
    /// Scopes to request.
    pub scopes: &'a [String],
    /// Send a PKCE S256 challenge.
    pub pkce: bool,
}

/// Run the flow and return the token response.
pub async fn run(
    http: &OAuthHttp,
    server: &mut LoginServer,
    opener: &Opener,
    ui: &Ui,
    req: AuthCodeRequest<'_>,
) -> Result<BasicTokenResponse> {
    let title = req.provider.def.title().to_owned();
    let client = oauth_client(req.endpoints, req.creds, Some(&server.redirect_uri()))?;
    let state = random_token(32);
    let mut auth = client
        .authorize_url(|| oauth2::CsrfToken::new(state.clone()))
        .map_err(|_| Error::bad_input(format!("{title} has no authorization_url")))?
        .add_scopes(req.scopes.iter().map(|s| oauth2::Scope::new(s.clone())));
    for (k, v) in &req.endpoints.authorize_params {
        auth = auth.add_extra_param(k.as_str(), v.as_str());
    }
    let verifier = if req.pkce {
        let (challenge, verifier) = oauth2::PkceCodeChallenge::new_random_sha256();
        auth = auth.set_pkce_challenge(challenge);
        Some(verifier)
    } else {
        None
    };
    let (url, _) = auth.url();
    server.set_page(Page::Authorizing { provider: title.clone(), state: state.clone() });

    let mut pasted = None;
    match opener.open_async(url.as_str()).await {
        Ok(()) => {
            // Printed too, as gh does: the browser may have opened somewhere the user is not.
            ui.info(format_args!("Opened {title} in your browser; if nothing appeared, open this URL:\n\n  {url}\n"));
            ui.info("Waiting for you to approve…");
        }
        Err(why) => {
            eprintln!("Open this URL in a browser to log in to {title} ({why}):\n\n  {url}\n");
            eprintln!(
                "After approving, paste the full URL the browser ended on (it starts with {}) and press Enter:",
                server.redirect_uri()
            );
            pasted = Some(paste_reader());
        }
    }

    let (result, reply) = wait_for_code(server, &mut pasted, &state, &title).await?;
    let finish = |reply: Option<tokio::sync::oneshot::Sender<std::result::Result<String, String>>>, outcome| {
        if let Some(r) = reply {
            let _ = r.send(outcome);
        }
    };
    let code = match result {
        Ok(code) => code,
        Err(why) => {
            finish(reply, Err(why.clone()));
            return Err(Error::login(format!("{title} login failed: {why}")));
        }
    };
    let mut exchange = client
        .exchange_code(oauth2::AuthorizationCode::new(code.expose().to_owned()))
        .map_err(|_| Error::bad_input(format!("{title} has no token_url")))?;
    if let Some(v) = verifier {
        exchange = exchange.set_pkce_verifier(v);
    }
    match exchange.request_async(http).await {
        Ok(resp) => {
            finish(reply, Ok("You can close this tab and return to the terminal.".into()));
            Ok(resp)
        }
        Err(e) => {
            let why = describe(&e, "exchanging the authorization code", &req.endpoints.token_host(), http);
            finish(reply, Err(why.clone()));
            let bad_client =
                matches!(&e, oauth2::RequestTokenError::ServerResponse(r) if *r.error() == BasicErrorResponseType::InvalidClient);
            let hint = if bad_client { "; if the client credentials are wrong, run login again with --force" } else { "" };
            Err(Error::login(format!("{title} login failed: {why}{hint}")))
        }
    }
}

type Reply = Option<tokio::sync::oneshot::Sender<std::result::Result<String, String>>>;

async fn wait_for_code(
    server: &mut LoginServer,
    pasted: &mut Option<tokio::sync::mpsc::UnboundedReceiver<String>>,
    state: &str,
    title: &str,
) -> Result<(std::result::Result<Secret, String>, Reply)> {
    let deadline = tokio::time::sleep(CONSENT_TIMEOUT);
    tokio::pin!(deadline);
    loop {
        let paste = async {
            match pasted.as_mut() {
                Some(rx) => rx.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            ev = server.next_event() => match ev {
                Some(Event::Callback { result, reply }) => return Ok((result, Some(reply))),
                Some(_) => {}
                None => return Err(Error::login("the login server stopped unexpectedly")),
            },
            line = paste => match line {
                Some(line) => match pasted_query(&line) {
                    Some(query) => return Ok((parse_callback(&query, state), None)),
                    None => eprintln!("That is not the redirect URL (it starts with http://…{}); paste it again:", super::CALLBACK_PATH),
                },
                None => *pasted = None,
            },
            _ = &mut deadline => {
                return Err(Error::login(format!("timed out waiting for the {title} authorization after {} minutes", CONSENT_TIMEOUT.as_secs() / 60)));
            }
        }
    }
}

/// The query string of a pasted redirect URL, if it is one.
fn pasted_query(line: &str) -> Option<String> {
    let u = url::Url::parse(line.trim()).ok()?;
    (u.path() == super::CALLBACK_PATH).then(|| u.query().unwrap_or("").to_owned())
}

/// Lines typed or piped in, read on a blocking thread.
fn paste_reader() -> tokio::sync::mpsc::UnboundedReceiver<String> {
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    std::thread::spawn(move || {
        while let Ok(Some(line)) = super::input::read_line() {
            if !line.is_empty() && tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}
