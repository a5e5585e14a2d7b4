//! A provider's OAuth client credentials: reused from the vault, or collected
//! once — in the browser form when a browser is available, at the terminal
//! (secret hidden) otherwise. They are stored after the login unless the
//! provider rejected them, so a mistyped secret is never kept.

use super::browser::Opener;
use super::server::{Event, LoginServer, Page};
use crate::error::{Error, Result};
use crate::providers::Provider;
use crate::ui::Ui;
use crate::vault::{ClientCredentials, Secret};

/// Collect credentials in the browser form served by `server`; `None` when
/// the browser could not be opened (the caller asks at the terminal instead).
pub async fn from_form(ui: &Ui, provider: &Provider, opener: &Opener, server: &mut LoginServer) -> Result<Option<ClientCredentials>> {
    server.set_page(Page::ClientForm { provider: provider.def.title().to_owned(), docs_url: provider.def.docs_url.clone() });
    let url = server.url();
    ui.info(format_args!(
        "{} needs your OAuth app's client ID and secret; opening the form at {url}\n  (register the redirect URI {} at the provider)",
        provider.def.title(),
        server.redirect_uri()
    ));
    if let Err(e) = opener.open_async(&url).await {
        eprintln!("Could not open a browser ({e}); asking here instead.");
        return Ok(None);
    }
    loop {
        match server.next_event().await {
            Some(Event::Client(c)) => return Ok(Some(c)),
            Some(Event::Callback { reply, .. }) => {
                let _ = reply.send(Err("authsome is still waiting for the client credentials form".into()));
            }
            Some(Event::ApiKey(_)) => {}
            None => return Err(Error::login("the login server stopped before the form was submitted")),
        }
    }
}

/// Ask at the terminal (or read two lines from piped input): client ID, then
/// the hidden secret. `redirect_uri` is shown for flows that use one (not the
/// device flow, whose clients are often public: the secret may be left empty).
pub async fn from_terminal(provider: &Provider, redirect_uri: Option<&str>) -> Result<ClientCredentials> {
    let title = provider.def.title().to_owned();
    let docs = provider.def.docs_url.clone().map(|d| format!(" (create one at {d})")).unwrap_or_default();
    eprintln!("{title} needs your OAuth app's client ID and secret{docs}.");
    if let Some(uri) = redirect_uri {
        eprintln!("Register this redirect URI there: {uri}");
    }
    let secret_prompt = if redirect_uri.is_some() {
        format!("{title} client secret (input hidden, empty for a public client): ")
    } else {
        format!("{title} client secret (input hidden; press Enter if the device flow needs none): ")
    };
    let answers = tokio::task::spawn_blocking(move || -> std::io::Result<(Option<String>, Option<String>)> {
        let id = super::input::ask(&format!("{title} client ID: "), false)?;
        if id.is_none() {
            return Ok((None, None));
        }
        let secret = super::input::ask(&secret_prompt, true)?;
        Ok((id, secret))
    })
    .await
    .map_err(|e| Error::other(e.to_string()))?
    .map_err(|e| Error::login(format!("cannot ask for client credentials at the terminal: {e}")))?;
    let client_id = answers.0.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty()).ok_or_else(|| {
        Error::login(format!(
            "no client ID given for {}; {} in a terminal",
            provider.def.title(),
            crate::fix::LoginFix::new(provider.name(), None).hint()
        ))
    })?;
    let secret = answers.1.map(|s| s.trim().to_owned()).unwrap_or_default();
    Ok(ClientCredentials { client_id, client_secret: (!secret.is_empty()).then(|| Secret::new(secret)), registered_at: None })
}
