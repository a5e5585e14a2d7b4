#!/usr/bin/env python3
"""BROWSER stand-in for tests (python3 stdlib only).

Called by authsome with a URL as its last argument. For authsome's local forms
it fills in the answers from $FAKE_BROWSER_ANSWERS (JSON: client_id,
client_secret, api_key) and submits them; for any other URL (an authorization
endpoint) it follows redirects like a browser until it lands on the callback.
Each visit appends one JSON line to $FAKE_BROWSER_LOG (no secret values).
"""
import json
import os
import re
import ssl
import sys
import urllib.error
import urllib.parse
import urllib.request


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


CONTEXT = ssl.create_default_context(cafile=os.environ.get("FAKE_BROWSER_CA") or None)
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}), NoRedirect(), urllib.request.HTTPSHandler(context=CONTEXT))


def resolve(url):
    """Apply $FAKE_BROWSER_RESOLVE (host:port:addr:port2, like AUTHSOME_RESOLVE) to a URL."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    for entry in filter(None, os.environ.get("FAKE_BROWSER_RESOLVE", "").split(",")):
        host, p, addr, p2 = entry.split(":")
        if parts.hostname == host and port == int(p):
            return urllib.parse.urlunsplit(parts._replace(netloc=f"{addr}:{p2}")), parts.netloc
    return url, None


def fetch(url, data=None):
    url, host = resolve(url)
    req = urllib.request.Request(url, data=data)
    if host:
        req.add_header("Host", host)
    try:
        with OPENER.open(req, timeout=30) as r:
            return r.status, dict(r.headers), r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read().decode()


def log(entry):
    with open(os.environ["FAKE_BROWSER_LOG"], "a") as f:
        f.write(json.dumps(entry) + "\n")


def heading(html):
    m = re.search(r"<h1[^>]*>(.*?)</h1>", html, re.S)
    return m.group(1) if m else ""


def main():
    url = sys.argv[-1]
    answers = json.load(open(os.environ["FAKE_BROWSER_ANSWERS"]))
    parts = urllib.parse.urlsplit(url)
    callback_host = os.environ.get("AUTHSOME_CALLBACK_ADDR", "127.0.0.1:7998")
    if parts.netloc == callback_host and parts.path != "/auth/callback/oauth":
        status, _, html = fetch(url)
        nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)
        if 'name="client_id"' in html:
            action = "client"
            fields = {"nonce": nonce, "client_id": answers["client_id"], "client_secret": answers.get("client_secret", "")}
            kind = "client_form"
        else:
            action = "apikey"
            if "bad_api_key" in answers:
                # A key that fails the pattern: the form comes back with the hint and an error.
                st, _, again = fetch(urllib.parse.urljoin(url, action),
                                     urllib.parse.urlencode({"nonce": nonce, "api_key": answers["bad_api_key"]}).encode())
                err = re.search(r'id="error">(.*?)</p>', again, re.S)
                log({"kind": "api_key_rejected", "status": st, "error": err.group(1) if err else None,
                     "hint": 'id="hint"' in again, "echoed": answers["bad_api_key"] in again})
            fields = {"nonce": nonce, "api_key": answers["api_key"]}
            kind = "api_key_form"
        shown = {"redirect_uri": "/auth/callback/oauth" in html, "docs": "developers" in html or "href=" in html,
                 "masked": 'type="password"' in html, "vault_key_in_env": "AUTHSOME_VAULT_KEY" in os.environ}
        status, _, html = fetch(urllib.parse.urljoin(url, action), urllib.parse.urlencode(fields).encode())
        log({"kind": kind, "status": status, "heading": heading(html), "shown": shown})
        return
    hops = 0
    while hops < 5:
        status, headers, html = fetch(url)
        loc = headers.get("Location") or headers.get("location")
        if status in (301, 302, 303, 307) and loc:
            url = urllib.parse.urljoin(url, loc)
            hops += 1
            continue
        break
    log({"kind": "authorize", "status": status, "heading": heading(html), "final_path": urllib.parse.urlsplit(url).path})


if __name__ == "__main__":
    main()
