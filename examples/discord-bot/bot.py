"""Print the Discord user and guilds behind the authsome connection.

DISCORD_ACCESS_TOKEN holds only the placeholder `authsome-proxy-managed`; the
authsome proxy (HTTPS_PROXY, with its CA in SSL_CERT_FILE) swaps in the real
token on the way to discord.com. Standard library only.
"""

import json
import os
import ssl
import urllib.request

API = "https://discord.com/api/v10"
token = os.environ["DISCORD_ACCESS_TOKEN"]  # "authsome-proxy-managed"
context = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE"))


def get(path):
    req = urllib.request.Request(API + path, headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req, context=context) as resp:
        return json.load(resp)


me = get("/users/@me")
print(f"logged in as {me['username']}")
for guild in get("/users/@me/guilds"):
    print(f"- {guild['name']}")
