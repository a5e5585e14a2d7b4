"""Triage open GitHub issues with OpenAI, through the authsome proxy.

Every credential variable holds a placeholder; the proxy replaces it with the
real token on the way to api.github.com / api.openai.com. Standard library only.
"""

import json
import os
import ssl
import urllib.request

context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))


def call(url, token, body=None):
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, context=context) as resp:
        return json.load(resp)


accounts = [("personal", os.environ["GH_TOKEN"])]
if "GH_TOKEN_WORK" in os.environ:
    accounts.append(("work", os.environ["GH_TOKEN_WORK"]))

for label, token in accounts:
    for issue in call("https://api.github.com/issues?filter=assigned&state=open", token)[:5]:
        answer = call(
            "https://api.openai.com/v1/chat/completions",
            os.environ["LLM_API_KEY"],
            {
                "model": os.environ.get("AGENT_MODEL", "gpt-4o-mini"),
                "messages": [{"role": "user", "content": f"One-line triage for: {issue['title']}"}],
            },
        )
        print(f"[{label}] {issue['title']}: {answer['choices'][0]['message']['content']}")
