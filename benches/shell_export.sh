#!/usr/bin/env bash
# Benchmark of the prompt hook's no-op path: `authsome export bash` against
# `direnv export bash` (Debian's direnv), same machine, same run, same
# directories. Fails when authsome's no-op takes more than 60% of direnv's
# (compared on medians, which other jobs on a shared machine disturb least).
#
# Cases:
#   outside  - a directory with no project file above it, no state;
#   inside   - a subdirectory of an activated project whose files did not
#              change (authsome: an allowed authsome.toml, its proxy running,
#              the shell's state handed over as the hook does; direnv: an
#              allowed .envrc exporting the same variables, already loaded).
#
# Needs cargo; installs hyperfine, direnv and python3 with apt when missing.
# Usage: benches/shell_export.sh [--runs N]
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${2:-500}

need_apt=()
for tool in hyperfine direnv python3; do
  command -v "$tool" >/dev/null 2>&1 || need_apt+=("$tool")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${need_apt[@]}" >/dev/null
fi

cargo build --release --quiet
AUTHSOME="$PWD/target/release/authsome"
DIRENV="$(command -v direnv)"

WORK="$(mktemp -d)"
mkdir -p "$WORK/outside" "$WORK/proj/sub" "$WORK/home" "$WORK/authsome-home" "$WORK/xdg-config" "$WORK/xdg-data"
export HOME="$WORK/home" XDG_CONFIG_HOME="$WORK/xdg-config" XDG_DATA_HOME="$WORK/xdg-data" AUTHSOME_HOME="$WORK/authsome-home"
export AUTHSOME_VAULT_KEY="AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA=" AUTHSOME_NO_KEYRING=1
trap '"$AUTHSOME" daemon stop --all >/dev/null 2>&1 || true; rm -rf "$WORK"' EXIT
unset AUTHSOME_SHELL_STATE DIRENV_DIFF DIRENV_DIR DIRENV_FILE DIRENV_WATCHES

# A real, allowed project (its background proxy starts at the first export).
printf '[providers.discord]\n\n[providers.github]\n' > "$WORK/proj/authsome.toml"
"$AUTHSOME" --quiet allow "$WORK/proj" >/dev/null
cd "$WORK/proj/sub"
# `--pid $$` registers this script (alive for the whole run) as the shell, as
# the hooks do: without it the registered shell is the command substitution,
# which exits at once, and the project proxy would stop after its linger.
ACTIVATION="$("$AUTHSOME" export json --pid $$ 2>/dev/null)"
# direnv's .envrc exports exactly the same variables and values.
python3 -c 'import json,sys,shlex
for k, v in json.loads(sys.argv[1]).items():
    if k != "AUTHSOME_SHELL_STATE":
        print(f"export {k}={shlex.quote(v)}" if v is not None else f"unset {k}")' "$ACTIVATION" > "$WORK/proj/.envrc"
(cd "$WORK/proj" && "$DIRENV" allow . 2>/dev/null)

# Activate both tools once in proj/sub, the way their hooks do, and keep the result.
eval "$("$AUTHSOME" export bash --pid $$ 2>/dev/null)"
export AUTHSOME_SHELL_STATE="$__authsome_state"   # what the hook hands to `export`
eval "$("$DIRENV" export bash 2>/dev/null)"
[ -n "${AUTHSOME_SHELL_STATE:-}" ] && [ -n "${DIRENV_DIFF:-}" ] || { echo "activation failed" >&2; exit 1; }
# Sanity: both are no-ops now.
[ -z "$("$AUTHSOME" export bash --pid $$ 2>&1)" ] && [ -z "$("$DIRENV" export bash 2>&1)" ] || { echo "not a no-op" >&2; exit 1; }

# Every timed call must print nothing: a call that prints is a re-activation
# (the project proxy went away, a file changed), not the no-op being measured.
# hyperfine appends every run's standard output to one file per case.
run_case() {
  local name=$1 dir=$2
  (cd "$dir" && hyperfine --shell=none --warmup 50 --runs "$RUNS" --style basic \
    --export-json "$WORK/$name.json" --output "$WORK/$name.out" \
    -n "authsome export bash ($name)" "$AUTHSOME export bash --pid $$" \
    -n "direnv export bash ($name)" "$DIRENV export bash" \
    -n "true ($name)" "$(command -v true)" >&2)
  if [ -s "$WORK/$name.out" ]; then
    echo "FAIL: a timed call in case '$name' printed something (not a no-op):" >&2
    head -5 "$WORK/$name.out" >&2
    exit 1
  fi
}
run_case inside "$WORK/proj/sub"
# The project proxy must have outlived the timed runs (else they timed something else).
"$AUTHSOME" --json daemon status 2>/dev/null | grep -q '"pid"' || { echo "FAIL: the project proxy stopped during the benchmark" >&2; exit 1; }
(unset AUTHSOME_SHELL_STATE DIRENV_DIFF DIRENV_DIR DIRENV_FILE DIRENV_WATCHES
 run_case outside "$WORK/outside")

AUTHSOME="$AUTHSOME" DIRENV="$DIRENV" python3 - "$WORK" <<'PY'
import json, sys, platform, os
work = sys.argv[1]
ok = True
print("| case | authsome export bash: median (mean ± σ) | direnv export bash: median (mean ± σ) | ratio of medians | ratio of means | `true` (process start floor) |")
print("|---|---|---|---|---|---|")
for case in ("inside", "outside"):
    r = json.load(open(f"{work}/{case}.json"))["results"]
    a, d, t = r[0], r[1], r[2]
    ratio = a["median"] / d["median"]
    ok &= ratio <= 0.60
    f = lambda x: f'{x["median"]*1e3:.2f} ms ({x["mean"]*1e3:.2f} ± {x["stddev"]*1e3:.2f})'
    print(f"| {case} (no-op) | {f(a)} | {f(d)} | {ratio:.0%} | {a['mean'] / d['mean']:.0%} | {t['median']*1e3:.2f} ms |")
load = " ".join(open("/proc/loadavg").read().split()[:3])
import subprocess
ver = lambda *c: subprocess.run(c, capture_output=True, text=True).stdout.strip()
print(f"\n{ver(os.environ['AUTHSOME'], '--version')}, direnv {ver(os.environ['DIRENV'], 'version')}, {ver('hyperfine', '--version')}.", end="")
print(f"\n{os.cpu_count()} CPUs, {platform.platform()}; hyperfine --shell=none, {len(r[0]['times'])} runs each, 50 warm-up runs; "
      f"load average at the end {load}.")
if not ok:
    print("FAIL: authsome's no-op takes more than 60% of direnv's (median)", file=sys.stderr)
    sys.exit(1)
PY
