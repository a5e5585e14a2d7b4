//! `authsome login` for OAuth providers and the interactive API-key entry:
//! picks the flow, gets client credentials (stored, form, terminal or
//! dynamic registration), runs the grant and returns the new connection.
//! New client credentials are stored unless the provider rejected them.

use super::browser::Opener;
use super::client::OAuthHttp;
use super::creds;
use super::server::{Event, KeyValidator, LoginServer, Page};
use super::tokens::{new_connection, Endpoints};
use crate::error::{Error, Result};
use crate::paths::Home;
use crate::providers::{Flow, Provider};
use crate::store::Store;
use crate::ui::Ui;
use crate::vault::{ClientCredentials, Connection, Secret};

/// What the user asked for on the command line.
#[derive(Debug, Clone)]
pub struct LoginOptions {
    /// Connection name to create or replace.
    pub connection: String,
    /// Scopes instead of the provider's defaults.
    pub scopes: Option<Vec<String>>,
    /// Flow to run.
    pub flow: Flow,
    /// Ask for client credentials again (or register a new client).
    pub force: bool,
    /// Print URLs instead of opening a browser.
    pub no_browser: bool,
    /// Value for `{base_url}`.
    pub base_url: Option<String>,
    /// The provider's `connection_values`, already checked.
    pub values: std::collections::BTreeMap<String, String>,
    /// Embedders and tests: the command that opens URLs and the login
    /// server's address, instead of `BROWSER` and `AUTHSOME_CALLBACK_ADDR`
    /// (which a process shared by many logins cannot vary).
    pub seams: Option<(Opener, std::net::SocketAddr)>,
}

/// Log in to an OAuth provider; returns the connected record (not yet stored).
pub fn run_oauth(home: &Home, ui: &Ui, provider: &Provider, opts: &LoginOptions) -> Result<Connection> {
    crate::runtime()?.block_on(oauth_login(home, ui, provider, opts, &OAuthHttp::from_env()?))
}

/// The async body of [`run_oauth`], with the HTTP client supplied (tests pass short timeouts).
pub async fn oauth_login(home: &Home, ui: &Ui, provider: &Provider, opts: &LoginOptions, http: &OAuthHttp) -> Result<Connection> {
    let title = provider.def.title().to_owned();
    let oauth = provider.def.oauth.clone().ok_or_else(|| Error::bad_input(format!("{title} is not an OAuth provider")))?;
    let ep = Endpoints::bound(provider, opts.base_url.as_deref(), &opts.values)?;
    let scopes = opts.scopes.clone().unwrap_or_else(|| oauth.scopes.clone());
    let (opener, callback) = match &opts.seams {
        Some((o, addr)) => (o.clone(), *addr),
        None => (Opener::detect(opts.no_browser), super::callback_addr()?),
    };
    if let Opener::Print(why) = &opener {
        ui.info(format_args!("Not opening a browser ({why}); URLs are printed instead."));
    }
    let vault = Store::open(home)?;
    let stored = if opts.force { None } else { vault.load()?.clients.get(provider.name()).cloned() };

    let (resp, creds, fresh) = match opts.flow {
        Flow::Pkce | Flow::DcrPkce => {
            if ep.authorization.is_none() {
                return Err(Error::bad_input(format!("{title} has no authorization_url, so flow {} is not possible", opts.flow.as_str())));
            }
            let mut server = LoginServer::bind(callback).await?;
            let outcome = async {
                let (creds, fresh) = match stored {
                    Some(c) => (c, false),
                    None if opts.flow == Flow::DcrPkce => {
                        ui.info(format_args!("Registering authsome as a client at {title}…"));
                        (super::dcr::register(http, provider, &ep, opts.base_url.as_deref(), &server.redirect_uri()).await?, true)
                    }
                    None => {
                        let form = if opener.available() { creds::from_form(ui, provider, &opener, &mut server).await? } else { None };
                        match form {
                            Some(c) => (c, true),
                            None => (creds::from_terminal(provider, Some(&server.redirect_uri())).await?, true),
                        }
                    }
                };
                let pkce = opts.flow == Flow::DcrPkce || oauth.pkce;
                let req = super::authcode::AuthCodeRequest { provider, endpoints: &ep, creds: &creds, scopes: &scopes, pkce };
                let resp = super::authcode::run(http, &mut server, &opener, ui, req).await;
                Ok::<_, Error>((resp, creds, fresh))
            }
            .await;
            server.shutdown().await;
            outcome?
        }
        Flow::DeviceCode => {
            if ep.device.is_none() {
                return Err(Error::bad_input(format!("{title} has no device_authorization_url, so flow device_code is not possible")));
            }
            let (creds, fresh) = match stored {
                Some(c) => (c, false),
                None => {
                    let form = if opener.available() {
                        let mut server = LoginServer::bind(callback).await?;
                        let c = creds::from_form(ui, provider, &opener, &mut server).await;
                        server.shutdown().await;
                        c?
                    } else {
                        None
                    };
                    match form {
                        Some(c) => (c, true),
                        None => (creds::from_terminal(provider, None).await?, true),
                    }
                }
            };
            let resp = super::device::run(http, &opener, ui, provider, &ep, &creds, &scopes).await;
            (resp, creds, fresh)
        }
        Flow::ApiKey => return Err(Error::bad_input(format!("{title} is an OAuth provider; use --flow pkce, device_code or dcr_pkce"))),
    };
    // New client credentials are kept unless the provider rejected them: a
    // login that failed for another reason (network, a stale tab) must not
    // make the user type them again.
    // A login aborted because someone else used its form keeps nothing.
    if fresh && resp.as_ref().err().is_none_or(|e| !rejects_client(&e.message) && !e.message.contains("login aborted")) {
        store_client(&vault, provider.name(), creds)?;
    }
    let mut conn = new_connection(provider.name(), &opts.connection, &resp?, &scopes, opts.base_url.as_deref());
    conn.values = opts.values.clone();
    Ok(conn)
}

/// Whether a login error says the client credentials themselves are wrong (RFC 6749 §5.2).
fn rejects_client(message: &str) -> bool {
    message.contains("invalid_client") || message.contains("unauthorized_client")
}

fn store_client(vault: &Store, provider: &str, creds: ClientCredentials) -> Result<()> {
    vault.update(|d| {
        d.clients.insert(provider.to_owned(), creds);
        Ok(())
    })
}

/// Ask for an API key interactively: the local form when a browser is
/// available, else a hidden terminal prompt. `validate` checks the pattern.
pub fn api_key_interactive(ui: &Ui, provider: &Provider, no_browser: bool, validate: KeyValidator) -> Result<Secret> {
    let opener = Opener::detect(no_browser);
    if opener.available() {
        let rt = crate::runtime()?;
        let got = rt.block_on(async {
            let mut server = match LoginServer::bind(super::callback_addr()?).await {
                Ok(s) => s,
                Err(e) => {
                    ui.warn(format_args!("{}; asking at the terminal instead", e.message));
                    return Ok(None);
                }
            };
            let spec = provider.def.api_key.as_ref();
            server.set_page(Page::ApiKeyForm {
                provider: provider.def.title().to_owned(),
                docs_url: provider.def.docs_url.clone(),
                hint: spec.and_then(|k| k.key_pattern_hint.clone()),
                validate: validate.clone(),
            });
            let url = server.url();
            ui.info(format_args!("Enter your {} API key in the form at {url}", provider.def.title()));
            if let Err(e) = opener.open_async(&url).await {
                crate::ui::say(format_args!("Could not open a browser ({e}); open {url} yourself."));
            }
            let key = loop {
                match server.next_event().await {
                    Some(Event::ApiKey(k)) => break Ok(Some(k)),
                    Some(Event::Callback { reply, .. }) => {
                        let _ = reply.send(Err("authsome is waiting for an API key, not an OAuth redirect".into()));
                    }
                    Some(Event::Client(_)) => {}
                    Some(Event::Intrusion(why)) => break Err(Error::login(format!("{} login aborted: {why}", provider.def.title()))),
                    None => break Err(Error::login("the login server stopped before the key was entered")),
                }
            };
            server.shutdown().await;
            key
        })?;
        if let Some(k) = got {
            return Ok(k);
        }
    }
    let title = provider.def.title();
    if let Some(docs) = &provider.def.docs_url {
        eprintln!("Create {} API key at {docs}", crate::ui::with_article(title));
    }
    // A mistyped paste is asked again (three tries) rather than aborting the login.
    let mut tries = 0;
    loop {
        let key = super::input::ask(&format!("Paste your {title} API key (input hidden): "), true)
            .map_err(|e| Error::login(format!("cannot read the key from the terminal: {e}")))?
            .ok_or_else(|| Error::login(format!("no {title} API key given")))?;
        match validate(key.trim()) {
            Ok(k) => return Ok(k),
            Err(why) if tries < 2 && !super::input::piped() => eprintln!("{why}; try again."),
            Err(why) => return Err(Error::bad_input(why)),
        }
        tries += 1;
    }
}
