//! The documentation page of a provider, generated from its definition in the
//! shape of the Discord page users already know (at a glance, prerequisites,
//! log in, custom scopes, multiple accounts, use the token, override), and the
//! index of every page by category. `docs/providers/` holds the bundled set's
//! pages; `authsome inspect NAME --page` prints any provider's, custom ones
//! included, so a page can never disagree with the definition in effect.

use super::def::{ApiKeyDef, AuthType, BasicPosition, ExportSource, Flow, KeyLocation, KeyPart, ProviderDef};
use std::fmt::Write as _;

const REDIRECT_URI: &str = "http://127.0.0.1:7998/auth/callback/oauth";

fn yes_no(b: bool) -> &'static str {
    if b {
        "Yes"
    } else {
        "No"
    }
}

fn flow_label(f: Flow) -> &'static str {
    match f {
        Flow::Pkce => "pkce, PKCE browser flow",
        Flow::DeviceCode => "device_code, device authorization flow (RFC 8628)",
        Flow::DcrPkce => "dcr_pkce, dynamic client registration (RFC 7591), then PKCE",
        Flow::ApiKey => "api_key, key entered once and stored encrypted",
    }
}

/// Human form of an `api_url` entry (`{shop}` values stay as written).
fn host_label(entry: &str) -> String {
    match entry.strip_prefix("regex:") {
        Some(re) => format!("hosts matching `{re}`"),
        None if super::def::uses_base_url(entry) => format!("`{entry}`"),
        None => entry.trim_start_matches("https://").to_owned(),
    }
}

/// Every host the credential goes to, in words: the default deployment's,
/// then (when they differ) those a connection logged in with `--base-url`
/// gets instead ([`super::def::ApiUrl::for_connection`]).
fn hosts_text(def: &ProviderDef) -> String {
    let label = |entries: Vec<&str>| entries.iter().map(|e| host_label(e)).collect::<Vec<_>>().join(", ");
    let (default, own) = (def.api_url.for_connection(false), def.api_url.for_connection(true));
    if own.is_empty() || own == default {
        label(default)
    } else {
        format!("{} (a connection logged in with `--base-url`: {} only)", label(default), label(own))
    }
}

/// Where a part goes in a request, in words.
fn placement(part: &KeyPart) -> String {
    match part.location {
        KeyLocation::Header => match part.header_prefix.as_deref().filter(|p| !p.is_empty()) {
            Some(p) if p.ends_with('=') => format!("`{}: {p}<{}>`", part.header_name, part.name),
            Some(p) => format!("`{}: {p} <{}>`", part.header_name, part.name),
            None => format!("`{}: <{}>`", part.header_name, part.name),
        },
        KeyLocation::Basic => match part.basic_position {
            BasicPosition::Username => format!("the user name of HTTP Basic authentication (`{}`)", part.name),
            BasicPosition::Password => format!("the password of HTTP Basic authentication (`{}`)", part.name),
        },
        KeyLocation::Query => format!("the query parameter `{}`", part.query_param.as_deref().unwrap_or("key")),
    }
}

fn key_placement(k: &ApiKeyDef) -> String {
    let parts = k.effective_parts();
    parts.iter().map(placement).collect::<Vec<_>>().join(" and ")
}

fn values_flags(def: &ProviderDef) -> String {
    def.connection_values.iter().filter(|(_, v)| v.default.is_none()).map(|(k, _)| format!(" --value {k}=<{k}>")).collect()
}

/// The page of a bundled `def`, as Markdown (what `docs/providers/` holds).
pub fn page(def: &ProviderDef) -> String {
    page_for(def, super::Source::Bundled)
}

/// The page of `def` as `source` provides it (`inspect NAME --page` on an override says "custom").
pub fn page_for(def: &ProviderDef, source: super::Source) -> String {
    let title = def.title();
    let mut s = String::new();
    let kind = match def.auth_type {
        AuthType::Oauth2 => "OAuth2",
        AuthType::ApiKey => "API-key",
    };
    let _ = writeln!(s, "# {title}\n");
    let category = def.category.as_deref().map(|c| format!(" Category: {c}.")).unwrap_or_default();
    let _ = writeln!(s, "{title} is a {} {kind} provider in authsome.{category}\n", source.as_str());

    at_a_glance(&mut s, def);
    prerequisites(&mut s, def);
    log_in(&mut s, def);
    usage(&mut s, def);
    s
}

/// "At a glance": the facts of the definition as a table.
fn at_a_glance(s: &mut String, def: &ProviderDef) {
    let name = &def.name;
    let title = def.title();
    let oauth = def.oauth.as_ref();
    let _ = writeln!(s, "## At a glance\n");
    let _ = writeln!(s, "| | |\n|---|---|");
    let _ = writeln!(s, "| Provider name | `{name}` |");
    let _ = writeln!(s, "| Display name | {title} |");
    let _ = writeln!(s, "| Auth type | {} |", if def.auth_type == AuthType::Oauth2 { "OAuth2" } else { "API key" });
    let _ = writeln!(s, "| Default flow | {} |", flow_label(def.flow));
    if let Some(o) = oauth {
        let _ = writeln!(s, "| PKCE supported | {} |", yes_no(o.pkce));
        let _ = writeln!(s, "| Device code supported | {} |", yes_no(o.supports_device_code));
        let _ = writeln!(s, "| DCR supported | {} |", yes_no(o.supports_dcr));
        let scopes = if o.scopes.is_empty() { "(none)".to_owned() } else { o.scopes.join(", ") };
        let _ = writeln!(s, "| Default scopes | {scopes} |");
    }
    let _ = writeln!(s, "| Proxy host{} | {} |", if def.api_url.entries().len() > 1 { "s" } else { "" }, hosts_text(def));
    for (k, v) in &def.connection_values {
        let default = v.default.as_deref().map(|d| format!(" (default `{d}`)")).unwrap_or_default();
        let _ = writeln!(s, "| Login value `{k}` | {}{default} |", v.prompt);
    }
    for (var, src) in &def.export {
        let what = match src {
            ExportSource::AccessToken => "access_token",
            ExportSource::RefreshToken => "refresh_token",
            ExportSource::ApiKey => "api_key",
        };
        let _ = writeln!(s, "| Env var ({what}) | `{var}` |");
    }
    if let Some(d) = &def.docs_url {
        let _ = writeln!(s, "| Documentation | <{d}> |");
    }
    s.push('\n');
}

/// "Prerequisites": what to register or create before the first login.
fn prerequisites(s: &mut String, def: &ProviderDef) {
    let title = def.title();
    let oauth = def.oauth.as_ref();
    let _ = writeln!(s, "## Prerequisites\n");
    match (def.auth_type, oauth, def.api_key.as_ref()) {
        (AuthType::Oauth2, Some(o), _) if def.flow == Flow::DcrPkce => {
            let _ = writeln!(
                s,
                "Nothing to register: authsome registers itself as a client with {title} (RFC 7591 dynamic client registration) at the first login, with the redirect URI:\n\n```\n{REDIRECT_URI}\n```\n"
            );
            let _ = o;
        }
        (AuthType::Oauth2, Some(o), _) => {
            let at = def.docs_url.as_deref().map(|d| format!(" Dashboard or guide: <{d}>.")).unwrap_or_default();
            let _ = writeln!(
                s,
                "You need to register an OAuth app with {title} once, and add this redirect URI to it:\n\n```\n{REDIRECT_URI}\n```\n\nThis is the only callback URL authsome's browser flow listens on.{at}\n"
            );
            if !o.pkce {
                let _ =
                    writeln!(s, "{title}'s OAuth2 endpoint does not require PKCE. Authsome runs the standard authorization-code flow.\n");
            }
            if o.authorization_method == super::def::ClientAuth::Basic {
                let _ = writeln!(s, "{title} takes the client credentials as HTTP Basic authentication at its token endpoint; authsome sends them that way.\n");
            }
            if !o.authorization_params.is_empty() {
                let params: Vec<String> = o.authorization_params.iter().map(|(k, v)| format!("`{k}={v}`")).collect();
                let _ = writeln!(s, "The authorization request also carries {}.\n", params.join(", "));
            }
        }
        (_, _, Some(k)) => {
            let at = def.docs_url.as_deref().map(|d| format!(" See <{d}>.")).unwrap_or_default();
            let what = if k.parts.is_empty() {
                "an API key".to_owned()
            } else {
                let names: Vec<String> = k.parts.iter().map(|p| p.prompt.clone()).collect();
                format!("a credential of {} parts: {}", names.len(), names.join(", then "))
            };
            let _ = writeln!(s, "Create {what} in your {title} account.{at}");
            if let Some(h) = k.key_pattern_hint.as_deref() {
                let _ = writeln!(s, "{h}.");
            }
            s.push('\n');
        }
        _ => {}
    }
    if !def.connection_values.is_empty() {
        let names: Vec<String> = def.connection_values.keys().map(|k| format!("`{k}`")).collect();
        let _ = writeln!(
            s,
            "Each connection also stores its own {} (asked at login, or `--value NAME=VALUE`); its credential is injected only on the hosts built from it.\n",
            names.join(", ")
        );
    }
}

/// "Log in": the command and what it does.
fn log_in(s: &mut String, def: &ProviderDef) {
    let name = &def.name;
    let oauth = def.oauth.as_ref();
    let _ = writeln!(s, "## Log in\n");
    let flags = values_flags(def);
    match (def.auth_type, oauth, def.api_key.as_ref()) {
        (AuthType::Oauth2, Some(o), _) => {
            let _ = writeln!(s, "```sh\nauthsome login {name}{flags}\n```\n");
            if def.flow != Flow::DcrPkce {
                let _ = write!(
                    s,
                    "The first time, authsome opens a local form at http://127.0.0.1:7998 to collect your client_id and client_secret. They are encrypted under your profile and reused on every subsequent login."
                );
            }
            match (def.flow, o.authorization_url.as_deref()) {
                (Flow::DeviceCode, _) => {
                    let _ =
                        writeln!(s, " authsome then shows a one-time code and the address to enter it at, and waits for your approval.");
                }
                (_, Some(url)) => {
                    let _ = writeln!(s, " A browser window then opens to {url} for the authorization step.");
                }
                _ => s.push('\n'),
            }
            if o.supports_device_code && def.flow != Flow::DeviceCode {
                let _ = writeln!(s, "\nWithout a browser nearby, use the device flow: `authsome login {name} --flow device_code`.");
            }
            let own: Vec<String> = def.api_url.for_connection(true).iter().map(|e| host_label(e)).collect();
            if let (Some(base), false) = (&o.base_url, own.is_empty()) {
                let _ = writeln!(
                    s,
                    "\nFor a deployment other than {base} (an Enterprise server): `authsome login {name} --base-url https://<host>`. That connection's credential goes only to {} on its own host, never to the hosts above.",
                    own.join(", ")
                );
            }
        }
        (_, _, Some(k)) if !k.parts.is_empty() => {
            let lines: Vec<String> = k.parts.iter().map(|p| format!("<{}>", p.name)).collect();
            let _ = writeln!(
                s,
                "```sh\nauthsome login {name}{flags}\n```\n\nauthsome asks for each part at a hidden prompt. From a script, pipe them one per line: `printf '%s\\n' {} | authsome login {name}{flags}`.",
                lines.iter().map(|l| format!("'{l}'")).collect::<Vec<_>>().join(" ")
            );
        }
        _ => {
            let _ = writeln!(
                s,
                "```sh\nauthsome login {name}{flags}\n```\n\nauthsome opens a local form at http://127.0.0.1:7998 for the key (or asks at a hidden prompt without a browser). From a script: `printf '%s' \"$KEY\" | authsome login {name}{flags}`."
            );
        }
    }
    let _ = writeln!(s, "\nVerify:\n\n```sh\nauthsome get {name} --field status\n# → connected\n```\n");
}

/// Custom scopes, several accounts, using the credential, overriding the definition.
fn usage(s: &mut String, def: &ProviderDef) {
    let name = &def.name;
    let oauth = def.oauth.as_ref();
    let flags = values_flags(def);
    if let Some(o) = oauth {
        let _ = writeln!(s, "## Custom scopes\n");
        let scopes = if o.scopes.is_empty() { "no scopes".to_owned() } else { o.scopes.join(", ") };
        let _ = writeln!(
            s,
            "The bundled definition requests {scopes}. Override at login time:\n\n```sh\nauthsome login {name} --scopes \"<comma-separated>\"\n```\n\nThe granted scopes are stored on the connection and visible in `authsome get {name}`.\n"
        );
    }

    let _ = writeln!(s, "## Multiple accounts\n");
    let _ = writeln!(
        s,
        "Pass `--connection <name>` on login and on every read command to keep two or more accounts on the same provider side by side.\n\n```sh\nauthsome login {name} --connection personal{flags}\nauthsome login {name} --connection work{flags}\n```\n"
    );

    let _ = writeln!(s, "## Use the {}\n", if def.auth_type == AuthType::Oauth2 { "token" } else { "key" });
    let vars: Vec<String> = def.exported_vars().map(|v| format!("`{v}=authsome-proxy-managed`")).collect();
    let hosts_text = hosts_text(def);
    let how = match (def.auth_type, def.api_key.as_ref()) {
        (AuthType::ApiKey, Some(k)) => format!("as {}", key_placement(k)),
        _ => "as `Authorization: Bearer <token>`".to_owned(),
    };
    let _ = writeln!(s, "```sh\nauthsome run -- python my_agent.py\n```\n");
    let sets = if vars.is_empty() { "no variable".to_owned() } else { vars.join(", ") };
    let _ = write!(
        s,
        "Under the proxy, authsome sets {sets} in the child's environment and injects the real credential {how} into outbound requests to {hosts_text}. The child process never sees the actual value."
    );
    if def.auth_type == AuthType::Oauth2 {
        let _ = write!(s, " Refresh tokens are never exported.");
    }
    s.push_str("\n\n");

    let _ = writeln!(s, "## Override the bundled definition\n");
    let _ = writeln!(
        s,
        "```sh\nauthsome inspect {name} > ~/.authsome/providers/{name}.json\n# edit scopes, base_url, or anything else\nauthsome list   # source now shows \"custom\" for {name}\n```\n\nUser-registered files always win over bundled definitions. See [the provider schema](../../schema/provider.schema.json)."
    );
}

/// The index of pages, grouped by category (uncategorised ones last).
pub fn index(defs: &[&ProviderDef]) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "# Bundled providers\n");
    let _ = writeln!(
        s,
        "{} providers, generated from `providers/*.json` (do not edit by hand: `UPDATE_PAGES=1 cargo test --test tests catalogue::pages_are_current` rewrites this directory).\n",
        defs.len()
    );
    let mut cats: Vec<&str> = super::def::CATEGORIES.to_vec();
    cats.push("");
    for cat in cats {
        let mut in_cat: Vec<&&ProviderDef> = defs.iter().filter(|d| d.category.as_deref().unwrap_or("") == cat).collect();
        if in_cat.is_empty() {
            continue;
        }
        in_cat.sort_by(|a, b| a.name.cmp(&b.name));
        let _ = writeln!(s, "## {} ({})\n", if cat.is_empty() { "other" } else { cat }, in_cat.len());
        let _ = writeln!(s, "| provider | name | auth |\n|---|---|---|");
        for d in in_cat {
            let auth = if d.auth_type == AuthType::Oauth2 { "OAuth2" } else { "API key" };
            let _ = writeln!(s, "| [{}]({}.md) | `{}` | {auth} |", d.title(), d.name, d.name);
        }
        s.push('\n');
    }
    s
}
