#!/usr/bin/env python3
"""BROWSER stand-in that drives real headless Chromium through chromedriver's
WebDriver HTTP API (python3 stdlib only).

Each invocation opens its own Chromium session (fresh profile, JavaScript
disabled to prove the forms need none), loads the URL authsome passed as the
last argument, fills and submits authsome's client-credentials form from
$FAKE_BROWSER_ANSWERS when the page has one, waits for the result page and
appends one JSON line to $FAKE_BROWSER_LOG. $WEBDRIVER_URL names chromedriver.
"""
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request

WD = os.environ["WEBDRIVER_URL"]
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wd(method, path, body=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(WD + path, data=data, method=method, headers={"Content-Type": "application/json"})
    try:
        with OPENER.open(req, timeout=60) as r:
            return json.loads(r.read().decode() or "{}").get("value")
    except urllib.error.HTTPError as e:
        return {"error": json.loads(e.read().decode() or "{}").get("value", {}).get("error", str(e.code))}


def find(sid, css, wait=30.0):
    end = time.time() + wait
    while True:
        v = wd("POST", f"/session/{sid}/element", {"using": "css selector", "value": css})
        if isinstance(v, dict) and ELEMENT in v:
            return v[ELEMENT]
        if time.time() > end:
            return None
        time.sleep(0.1)


def log(entry):
    with open(os.environ["FAKE_BROWSER_LOG"], "a") as f:
        f.write(json.dumps(entry) + "\n")


def main():
    url = sys.argv[-1]
    answers = json.load(open(os.environ["FAKE_BROWSER_ANSWERS"]))
    profile = tempfile.mkdtemp(prefix="authsome-chromium-")
    caps = {
        "capabilities": {
            "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium"),
                    "args": [
                        "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                        "--disable-background-networking", "--disable-component-update", "--disable-sync",
                        "--user-data-dir=" + profile,
                    ],
                    "prefs": {"profile.managed_default_content_settings.javascript": 2},
                },
            }
        }
    }
    session = wd("POST", "/session", caps)
    if not isinstance(session, dict) or "sessionId" not in session:
        log({"kind": "error", "detail": str(session)})
        return
    sid = session["sessionId"]
    try:
        wd("POST", f"/session/{sid}/url", {"url": url})
        kind = "authorize"
        if find(sid, "#client_id", wait=2.0):
            kind = "client_form"
            shown = wd("GET", f"/session/{sid}/element/{find(sid, '#redirect_uri')}/text")
            for css, text in (("#client_id", answers["client_id"]), ("#client_secret", answers.get("client_secret", ""))):
                wd("POST", f"/session/{sid}/element/{find(sid, css)}/value", {"text": text})
            wd("POST", f"/session/{sid}/element/{find(sid, '#submit')}/click", {})
        result = find(sid, "#result")
        heading = wd("GET", f"/session/{sid}/element/{result}/text") if result else None
        entry = {"kind": kind, "heading": heading, "title": wd("GET", f"/session/{sid}/title")}
        if kind == "client_form":
            entry["redirect_uri_shown"] = shown
        log(entry)
    finally:
        wd("DELETE", f"/session/{sid}")
        shutil.rmtree(profile, ignore_errors=True)


if __name__ == "__main__":
    main()
