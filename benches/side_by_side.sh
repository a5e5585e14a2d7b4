#!/usr/bin/env bash
# Side-by-side proxy benchmark in one command: authsome's proxy against
# mitmproxy (mitmdump with a header-injecting addon, the engine of the Python
# reference) and direct access, with nginx (TLS) as the upstream and oha as the
# load generator. Installs what it needs (apt: nginx-light, hyperfine, curl,
# openssl, and libssl-dev + pkg-config to build oha; cargo: oha with native-tls;
# pip, in a private venv: mitmproxy), builds authsome in
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
for tool in nginx:nginx-light hyperfine:hyperfine curl:curl openssl:openssl pkg-config:pkg-config python3:python3-venv; do
  command -v "${tool%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${tool%%:*}" ] || need_apt+=("${tool#*:}")
done
[ -e /usr/include/openssl/ssl.h ] || need_apt+=(libssl-dev)
python3 -c 'import ensurepip' >/dev/null 2>&1 || need_apt+=(python3-venv)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi
export PATH="$PATH:/usr/sbin:$HOME/.cargo/bin"

# oha's default TLS backend (rustls with aws-lc-rs) compiles aws-lc-sys, which
# needs cmake and a long build (and once filled the disk); its native-tls
# backend links the system OpenSSL instead. Built in the cache so an
# interrupted build resumes, its build directory removed afterwards.
OHA="$(command -v oha || true)"
if [ -z "$OHA" ]; then
  OHA="$CACHE/bin/oha"
  if [ ! -x "$OHA" ]; then
    CARGO_TARGET_DIR="$CACHE/oha-build" cargo install --locked --quiet --root "$CACHE" \
      --no-default-features --features native-tls oha@1.16.0
    rm -rf "$CACHE/oha-build"
  fi
fi

if [ ! -x "$CACHE/venv/bin/mitmdump" ]; then
  python3 -m venv "$CACHE/venv"
  "$CACHE/venv/bin/pip" install --quiet --disable-pip-version-check mitmproxy
fi

cargo build --release --quiet
exec python3 benches/side_by_side.py --authsome "$PWD/target/release/authsome" --oha "$OHA" \
  --mitmdump "$CACHE/venv/bin/mitmdump" "$@"
