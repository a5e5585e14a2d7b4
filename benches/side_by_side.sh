#!/usr/bin/env bash
# Side-by-side proxy benchmark in one command: authsome's proxy against
# mitmproxy (mitmdump with a header-injecting addon, the engine of the Python
# reference) and direct access, with nginx (TLS) as the upstream and oha as the
# load generator. Installs what it needs (apt: nginx-light, hyperfine, curl,
# openssl; cargo: oha; pip, in a private venv: mitmproxy), builds authsome in
# release mode, runs benches/side_by_side.py and prints a Markdown report (the
# figures in BENCHMARKS.md come from it). Not part of CI: it takes a few minutes
# and its figures depend on the machine.
#
# Usage: benches/side_by_side.sh [--duration 5s] [--json results.json]
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE="${XDG_CACHE_HOME:-$HOME/.cache}/authsome-bench"
mkdir -p "$CACHE"

need_apt=()
for tool in nginx:nginx-light hyperfine:hyperfine curl:curl openssl:openssl; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || need_apt+=("${tool#*:}")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"

OHA="$(command -v oha || true)"
if [ -z "$OHA" ]; then
  cargo install --locked --quiet --root "$CACHE" oha
  OHA="$CACHE/bin/oha"
fi

if [ ! -x "$CACHE/venv/bin/mitmdump" ]; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install --quiet --disable-pip-version-check mitmproxy
fi

cargo build --release --quiet
exec python3 benches/side_by_side.py --authsome "$PWD/target/release/authsome" --oha "$OHA" \
  --mitmdump "$CACHE/venv/bin/mitmdump" "$@"
