//! The login server's HTML: plain forms that work without JavaScript, and the
//! success / error pages a browser lands on. Every interpolated value is escaped.

/// Escape text for HTML element content and attribute values.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

const STYLE: &str = "body{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#222}\
label{display:block;margin-top:1rem;font-weight:600}input[type=text],input[type=password]{width:100%;padding:.5rem;font:inherit;box-sizing:border-box}\
code{background:#f2f2f2;padding:.1rem .3rem;border-radius:3px}button{margin-top:1.5rem;padding:.6rem 1.2rem;font:inherit}\
.err{color:#a00;font-weight:600}.ok{color:#070}.hint{color:#555;font-size:.9rem}";

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title>\
         <meta name=\"viewport\" content=\"width=device-width,initial-scale=1\"><style>{STYLE}</style></head><body>{body}</body></html>",
        esc(title)
    )
}

fn error_line(error: Option<&str>) -> String {
    error.map(|e| format!("<p class=\"err\" id=\"error\">{}</p>", esc(e))).unwrap_or_default()
}

/// The client-credentials form: names the provider, shows the redirect URI to
/// register and links the provider's developer docs.
pub fn client_form(provider: &str, docs_url: Option<&str>, redirect_uri: &str, nonce: &str, error: Option<&str>) -> String {
    let docs = docs_url
        .map(|d| format!("<p>Create an OAuth app at <a href=\"{0}\" target=\"_blank\" rel=\"noopener\">{0}</a>.</p>", esc(d)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Connect {p}</h1>{err}\
         <p>authsome needs the client ID and client secret of <strong>your own {p} OAuth app</strong>. \
         They are encrypted in your local vault and reused on every later login.</p>{docs}\
         <p>Register this redirect URI in the app's OAuth settings:<br><code id=\"redirect_uri\">{r}</code></p>\
         <form method=\"post\" action=\"client\">\
         <input type=\"hidden\" name=\"nonce\" value=\"{n}\">\
         <label for=\"client_id\">{p} client ID</label><input type=\"text\" id=\"client_id\" name=\"client_id\" required autocomplete=\"off\" spellcheck=\"false\">\
         <label for=\"client_secret\">{p} client secret</label><input type=\"password\" id=\"client_secret\" name=\"client_secret\" autocomplete=\"off\">\
         <p class=\"hint\">Leave the secret empty for a public client.</p>\
         <button type=\"submit\" id=\"submit\">Save and continue</button></form>",
        p = esc(provider),
        err = error_line(error),
        r = esc(redirect_uri),
        n = esc(nonce),
    );
    layout(&format!("Connect {provider} — authsome"), &body)
}

/// The API-key form: masked input and the provider's pattern hint.
pub fn api_key_form(provider: &str, docs_url: Option<&str>, hint: Option<&str>, nonce: &str, error: Option<&str>) -> String {
    let docs = docs_url
        .map(|d| format!("<p>Create a key at <a href=\"{0}\" target=\"_blank\" rel=\"noopener\">{0}</a>.</p>", esc(d)))
        .unwrap_or_default();
    let hint = hint.map(|h| format!("<p class=\"hint\" id=\"hint\">{}</p>", esc(h))).unwrap_or_default();
    let body = format!(
        "<h1>{p} API key</h1>{err}{docs}\
         <form method=\"post\" action=\"apikey\">\
         <input type=\"hidden\" name=\"nonce\" value=\"{n}\">\
         <label for=\"api_key\">{p} API key</label><input type=\"password\" id=\"api_key\" name=\"api_key\" required autocomplete=\"off\">{hint}\
         <p class=\"hint\">The key is encrypted in your local vault; programs only ever see a placeholder.</p>\
         <button type=\"submit\" id=\"submit\">Save</button></form>",
        p = esc(provider),
        err = error_line(error),
        n = esc(nonce),
    );
    layout(&format!("{provider} API key — authsome"), &body)
}

/// A final page: success in green, failure in red, with what to do next.
pub fn message(ok: bool, heading: &str, detail: &str) -> String {
    let class = if ok { "ok" } else { "err" };
    let body = format!("<h1 class=\"{class}\" id=\"result\">{}</h1><p id=\"detail\">{}</p>", esc(heading), esc(detail));
    layout(&format!("{heading} — authsome"), &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_escaped() {
        let html = client_form("<x>", Some("https://a/?q=\"1\""), "http://127.0.0.1:7998/auth/callback/oauth", "n", Some("<b>"));
        assert!(!html.contains("<x>") && html.contains("&lt;x&gt;"));
        assert!(html.contains("&quot;1&quot;") && html.contains("&lt;b&gt;"));
        assert!(!html.contains("<script"));
    }
}
