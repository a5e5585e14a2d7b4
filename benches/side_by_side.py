#!/usr/bin/env python3
"""Side-by-side proxy benchmark (run through benches/side_by_side.sh, which installs the tools).

One nginx (TLS, one worker, keep-alive, a 62-byte body and a 1 GiB file) is the
upstream. The same load (oha, keep-alive, HTTPS through a CONNECT proxy) goes
  - direct to nginx (the limit),
  - through authsome's proxy (`authsome run`, injecting an API key),
  - through mitmproxy (`mitmdump` with a header-injecting addon, as the Python
    reference implementation does),
and the script reports req/s, p50/p99 latency and CPU per request (from
/proc/PID/stat of the proxy process) at 1, 10 and 100 connections, RSS per
connection with 1,000 open connections, RSS while streaming 1 GiB, the cost
of a vault with 45 connected providers instead of 1, and `authsome run -- true`
against `/bin/true`. Everything listens on loopback; nothing leaves the machine.
"""

import argparse
import asyncio
import base64
import json
import os
import platform
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time

BODY = b"authsome benchmark upstream: 62 bytes of plain body, no more.\n"
assert len(BODY) == 62, len(BODY)
HOST = "api.acme.test"
VAULT_KEY = "AQIDBAUGBwgJCgsMDQ4PEBESExQVFhcYGRobHB0eHyA="
API_KEY = "acme-bench-key-0123456789abcdef"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, timeout=20.0):
    end = time.time() + timeout
    while time.time() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"nothing listens on port {port}")


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(") ", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def sh(*args, **kw):
    r = subprocess.run(args, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        raise SystemExit(f"{' '.join(args)} failed ({r.returncode}):\n{r.stderr.strip()}\n{r.stdout.strip()[:2000]}")
    return r.stdout


class World:
    def __init__(self, work, authsome, oha, mitmdump):
        self.work, self.authsome, self.oha, self.mitmdump = work, authsome, oha, mitmdump
        self.procs = []

    # --- upstream -------------------------------------------------------
    def start_nginx(self):
        w = self.work
        sh("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", f"{w}/ca.key", "-out", f"{w}/ca.pem", "-days", "2", "-subj", "/CN=bench upstream CA",
           "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign")
        sh("openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
           "-keyout", f"{w}/leaf.key", "-out", f"{w}/leaf.csr", "-subj", f"/CN={HOST}")
        with open(f"{w}/leaf.ext", "w") as f:
            f.write(f"subjectAltName=DNS:{HOST}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n")
        sh("openssl", "x509", "-req", "-in", f"{w}/leaf.csr", "-CA", f"{w}/ca.pem", "-CAkey", f"{w}/ca.key",
           "-CAcreateserial", "-out", f"{w}/leaf.pem", "-days", "2", "-extfile", f"{w}/leaf.ext")
        with open(f"{w}/big.bin", "wb") as f:
            f.truncate(1 << 30)
        os.chmod(w, 0o755)
        self.port = free_port()
        body = BODY.decode().rstrip("\n")
        conf = f"""
worker_processes 1;
daemon off;
error_log {w}/nginx.err warn;
pid {w}/nginx.pid;
worker_rlimit_nofile 16384;
events {{ worker_connections 8192; }}
http {{
  access_log off;
  keepalive_requests 10000000;
  keepalive_timeout 300s;
  client_body_temp_path {w}/nginx-tmp;
  proxy_temp_path {w}/nginx-tmp;
  fastcgi_temp_path {w}/nginx-tmp;
  uwsgi_temp_path {w}/nginx-tmp;
  scgi_temp_path {w}/nginx-tmp;
  server {{
    listen 127.0.0.1:{self.port} ssl;
    ssl_certificate {w}/leaf.pem;
    ssl_certificate_key {w}/leaf.key;
    location = /big {{ default_type application/octet-stream; alias {w}/big.bin; }}
    location / {{ default_type text/plain; return 200 "{body}\\n"; }}
  }}
}}
"""
        with open(f"{w}/nginx.conf", "w") as f:
            f.write(conf)
        os.makedirs(f"{w}/nginx-tmp", exist_ok=True)
        self.procs.append(subprocess.Popen(["nginx", "-c", f"{w}/nginx.conf", "-p", w], stderr=subprocess.DEVNULL))
        wait_port(self.port)

    # --- authsome -------------------------------------------------------
    def authsome_env(self, home):
        env = dict(os.environ)
        for v in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy", "NO_PROXY", "no_proxy"):
            env.pop(v, None)
        env.update(AUTHSOME_HOME=home, AUTHSOME_VAULT_KEY=VAULT_KEY, AUTHSOME_NO_KEYRING="1",
                   AUTHSOME_RESOLVE=f"{HOST}:443:127.0.0.1:{self.port}", AUTHSOME_UPSTREAM_CA=f"{self.work}/ca.pem", NO_COLOR="1")
        return env

    def make_home(self, name, providers):
        """A home with `providers` API-key providers connected (the first is acme, on HOST)."""
        home = f"{self.work}/{name}"
        os.makedirs(f"{home}/providers")
        for i in range(providers):
            pname, host = ("acme", HOST) if i == 0 else (f"bench{i:02d}", f"api.bench{i:02d}.test")
            definition = {"name": pname, "auth_type": "api_key", "flow": "api_key", "api_url": host,
                          "api_key": {"header_name": "Authorization", "header_prefix": "Bearer"}}
            with open(f"{home}/providers/{pname}.json", "w") as f:
                json.dump(definition, f)
            key = API_KEY if i == 0 else f"{pname}-key-0123456789abcdef"
            subprocess.run([self.authsome, "login", pname], input=key, text=True, check=True,
                           env=self.authsome_env(home), capture_output=True)
        # A vault written long ago, as on a machine in use (a vault written
        # within the last seconds is re-read until it settles).
        old = time.time() - 3600
        for root, _, files in os.walk(home):
            for fn in files:
                os.utime(os.path.join(root, fn), (old, old))
        return home

    def start_authsome(self, home):
        # Neither in the home nor directly in a directory above it: the fenced child may write there.
        os.makedirs(f"{self.work}/urls", exist_ok=True)
        url_file = f"{self.work}/urls/{os.path.basename(home)}"
        script = f'printf "%s\\n" "$HTTPS_PROXY" > {url_file}.tmp && mv {url_file}.tmp {url_file}; exec sleep 100000'
        p = subprocess.Popen([self.authsome, "run", "--", "sh", "-c", script], env=self.authsome_env(home),
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        end = time.time() + 20
        while not os.path.exists(url_file):
            if time.time() > end:
                raise SystemExit("authsome run did not start")
            time.sleep(0.05)
        url = open(url_file).read().strip()
        cred, addr = url[len("http://"):].split("@")
        return Proxy("authsome", p.pid, int(addr.rsplit(":", 1)[1]), base64.b64encode(cred.encode()).decode(), p)

    # --- mitmproxy ------------------------------------------------------
    def start_mitmdump(self):
        addon = f"""
from mitmproxy import http

class Inject:
    def server_connect(self, data):
        if data.server.address and data.server.address[0] == "{HOST}":
            data.server.address = ("127.0.0.1", {self.port})

    def request(self, flow: http.HTTPFlow):
        if flow.request.pretty_host == "{HOST}":
            flow.request.headers["authorization"] = "Bearer {API_KEY}"

addons = [Inject()]
"""
        with open(f"{self.work}/inject.py", "w") as f:
            f.write(addon)
        port = free_port()
        p = subprocess.Popen([self.mitmdump, "-q", "--listen-host", "127.0.0.1", "--listen-port", str(port),
                              "-s", f"{self.work}/inject.py", "--set", f"confdir={self.work}/mitm",
                              "--set", f"ssl_verify_upstream_trusted_ca={self.work}/ca.pem"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        wait_port(port, 60)
        return Proxy("mitmproxy", p.pid, port, None, p)

    def stop(self):
        for p in reversed(self.procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()


class LoadSampler:
    """The 1-minute load average every 2 s while the benchmark runs (other
    work on the machine skews every wall-clock figure: the report says how much)."""

    def __init__(self):
        import threading
        self.samples, self.done = [], threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while not self.done.is_set():
            self.samples.append(float(open("/proc/loadavg").read().split()[0]))
            self.done.wait(2)

    def stop(self):
        self.done.set()
        self.thread.join()
        return {"min": min(self.samples), "max": max(self.samples), "mean": sum(self.samples) / len(self.samples)}


class Proxy:
    def __init__(self, name, pid, port, basic, proc):
        self.name, self.pid, self.port, self.basic, self.proc = name, pid, port, basic, proc

    def oha_args(self):
        # --no-pre-lookup: the proxy resolves the target, oha must not (it is not in DNS).
        args = ["--no-pre-lookup", "-x", f"http://127.0.0.1:{self.port}"]
        if self.basic:
            args += ["--proxy-header", f"Proxy-Authorization: Basic {self.basic}"]
        return args

    def curl_args(self):
        args = ["--proxy", f"http://127.0.0.1:{self.port}"]
        if self.basic:
            args += ["--proxy-header", f"Proxy-Authorization: Basic {self.basic}"]
        return args


def oha(world, proxy, conns, duration):
    """One oha run; returns req/s, p50 and p99 in ms, CPU µs per request of the proxy process."""
    if proxy is None:
        target = ["--connect-to", f"{HOST}:443:127.0.0.1:{world.port}"]
    else:
        target = proxy.oha_args()
    cmd = [world.oha, "--no-tui", "--output-format", "json", "--insecure", "-z", duration, "-c", str(conns),
           "--http-version", "1.1", *target, f"https://{HOST}/"]
    before = cpu_seconds(proxy.pid) if proxy else 0.0
    out = json.loads(sh(*cmd))
    used = (cpu_seconds(proxy.pid) - before) if proxy else 0.0
    summary = out["summary"]
    ok = sum(v for k, v in out.get("statusCodeDistribution", {}).items() if k == "200")
    total = sum(out.get("statusCodeDistribution", {}).values())
    if total == 0 or ok < total:
        raise SystemExit(f"{proxy.name if proxy else 'direct'}: {total - ok} of {total} requests failed: {out.get('errorDistribution')}")
    pct = out["latencyPercentiles"]
    return {
        "rps": summary["requestsPerSec"],
        "p50_ms": pct["p50"] * 1e3,
        "p99_ms": pct["p99"] * 1e3,
        "cpu_us": used * 1e6 / ok if proxy else None,
        "requests": ok,
    }


async def open_connections(proxy, n):
    """n keep-alive connections through the proxy, one request done on each."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    auth = f"Proxy-Authorization: Basic {proxy.basic}\r\n" if proxy.basic else ""
    sem = asyncio.Semaphore(50)

    async def one():
        async with sem:
            r, w = await asyncio.open_connection("127.0.0.1", proxy.port)
            w.write(f"CONNECT {HOST}:443 HTTP/1.1\r\nHost: {HOST}:443\r\n{auth}\r\n".encode())
            head = await r.readuntil(b"\r\n\r\n")
            assert b" 200" in head.split(b"\r\n")[0], head
            await w.start_tls(ctx, server_hostname=HOST)
            w.write(f"GET / HTTP/1.1\r\nHost: {HOST}\r\n\r\n".encode())
            head = await r.readuntil(b"\r\n\r\n")
            assert b" 200" in head.split(b"\r\n")[0], head
            await r.readexactly(len(BODY))
            return w

    return await asyncio.gather(*(one() for _ in range(n)))


def rss_at_connections(proxy, n=1000):
    base = rss_kib(proxy.pid)

    async def run():
        writers = await open_connections(proxy, n)
        await asyncio.sleep(1)
        held = rss_kib(proxy.pid)
        for w in writers:
            w.close()
        return held

    held = asyncio.run(run())
    return {"base_mib": base / 1024, "held_mib": held / 1024, "per_conn_kib": (held - base) / n}


def rss_streaming(world, proxy):
    base = rss_kib(proxy.pid)
    p = subprocess.Popen(["curl", "-sS", "-k", "-o", "/dev/null", "-w", "%{size_download} %{time_total}", *proxy.curl_args(),
                          f"https://{HOST}/big"], stdout=subprocess.PIPE, text=True)
    peak = base
    while p.poll() is None:
        peak = max(peak, rss_kib(proxy.pid))
        time.sleep(0.05)
    size, secs = p.stdout.read().split()
    if int(size) != 1 << 30:
        raise SystemExit(f"{proxy.name}: streamed {size} bytes instead of 1 GiB")
    return {"base_mib": base / 1024, "peak_mib": peak / 1024, "mib_per_s": 1024 / float(secs)}


def run_true(world, home, runs):
    env = world.authsome_env(home)
    out = f"{world.work}/hyperfine.json"
    subprocess.run(["hyperfine", "-N", "--warmup", "10", "--runs", str(runs), "--export-json", out, "--style", "none",
                    "-n", "authsome run -- true", f"{world.authsome} run -- true", "-n", "/bin/true", "/bin/true"],
                   env=env, check=True, capture_output=True)
    r = json.load(open(out))["results"]
    return {"authsome_ms": r[0]["median"] * 1e3, "true_ms": r[1]["median"] * 1e3,
            "authsome_mean_ms": r[0]["mean"] * 1e3, "authsome_sd_ms": r[0]["stddev"] * 1e3}


def versions(world):
    def first(cmd):
        try:
            return subprocess.run(cmd, capture_output=True, text=True).stdout.strip().splitlines()[0]
        except (OSError, IndexError):
            return "?"
    nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr.strip()
    return {
        "authsome": first([world.authsome, "--version"]) + " (" + first(["git", "-C", os.path.dirname(os.path.abspath(__file__)), "rev-parse", "--short", "HEAD"]) + ")",
        "mitmproxy": first([world.mitmdump, "--version"]),
        "nginx": nginx,
        "oha": first([world.oha, "--version"]),
        "hyperfine": first(["hyperfine", "--version"]),
        "machine": f"{os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}",
        "load": open("/proc/loadavg").read().split()[0:3],
        "cpu": next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?"),
    }


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--authsome", required=True)
    ap.add_argument("--oha", default="oha")
    ap.add_argument("--mitmdump", required=True)
    ap.add_argument("--duration", default="5s")
    ap.add_argument("--json", help="also write the raw results here")
    ap.add_argument("--skip-load", action="store_true", help="skip the oha runs (RSS, streaming and run -- true only)")
    a = ap.parse_args()
    work = tempfile.mkdtemp(prefix="authsome-bench-")
    loads = LoadSampler()
    world = World(work, a.authsome, a.oha, a.mitmdump)
    res = {}
    try:
        world.start_nginx()
        home1 = world.make_home("home1", 1)
        home45 = world.make_home("home45", 45)
        res["versions"] = versions(world)
        authsome = world.start_authsome(home1)
        mitm = world.start_mitmdump()
        load = {}
        for conns in () if a.skip_load else (1, 10, 100):
            for name, proxy in (("direct", None), ("authsome", authsome), ("mitmproxy", mitm)):
                load[f"{name}/{conns}"] = oha(world, proxy, conns, a.duration)
                print(f"{name:9} c={conns:<3} {load[f'{name}/{conns}']}", file=sys.stderr)
        res["load"] = load
        res["rss_1000"] = {p.name: rss_at_connections(p) for p in (authsome, mitm)}
        print(f"rss at 1000 connections: {res['rss_1000']}", file=sys.stderr)
        res["stream"] = {p.name: rss_streaming(world, p) for p in (authsome, mitm)}
        print(f"streaming 1 GiB: {res['stream']}", file=sys.stderr)
        if not a.skip_load:
            authsome45 = world.start_authsome(home45)
            res["providers"] = {}
            for label, proxy in (("1", authsome), ("45", authsome45)):
                res["providers"][label] = {c: oha(world, proxy, c, a.duration) for c in (1, 10)}
            print(f"1 vs 45 providers: {res['providers']}", file=sys.stderr)
        res["run_true"] = run_true(world, home1, 100)
        print(f"run -- true: {res['run_true']}", file=sys.stderr)
    finally:
        world.stop()
        shutil.rmtree(work, ignore_errors=True)
        res["load_during"] = loads.stop()
    if a.json:
        with open(a.json, "w") as f:
            json.dump(res, f, indent=2)
    report(res)


def report(r):
    v = r["versions"]
    L = r["load"]
    print(f"Versions: {v['authsome']}; {v['mitmproxy']}; {v['nginx']}; {v['oha']}; {v['hyperfine']}.")
    ld = r["load_during"]
    print(f"Machine: {v['machine']}, {v['cpu']}; load average at start {' '.join(v['load'])}, "
          f"during the run {ld['min']:.1f}–{ld['max']:.1f} (mean {ld['mean']:.1f}).\n")
    if L:
        load_table(L)
    report_rest(r)


def load_table(L):
    print("| connections | direct req/s | authsome req/s (× direct) | mitmproxy req/s (× direct) | authsome ÷ mitmproxy | p50 / p99 ms: direct · authsome · mitmproxy | CPU µs/request: authsome · mitmproxy |")
    print("|---|---|---|---|---|---|---|")
    for c in (1, 10, 100):
        d, s, m = L[f"direct/{c}"], L[f"authsome/{c}"], L[f"mitmproxy/{c}"]
        print(f"| {c} | {d['rps']:.0f} | {s['rps']:.0f} ({s['rps'] / d['rps']:.2f}×) | {m['rps']:.0f} ({m['rps'] / d['rps']:.2f}×) | "
              f"{s['rps'] / m['rps']:.1f}× | {d['p50_ms']:.2f}/{d['p99_ms']:.2f} · {s['p50_ms']:.2f}/{s['p99_ms']:.2f} · "
              f"{m['p50_ms']:.2f}/{m['p99_ms']:.2f} | {s['cpu_us']:.0f} · {m['cpu_us']:.0f} |")


def report_rest(r):
    a, m = r["rss_1000"]["authsome"], r["rss_1000"]["mitmproxy"]
    print(f"\nRSS with 1,000 open connections: authsome {a['held_mib']:.1f} MiB ({a['per_conn_kib']:.1f} KiB per connection), "
          f"mitmproxy {m['held_mib']:.1f} MiB ({m['per_conn_kib']:.1f} KiB per connection): {a['per_conn_kib'] / m['per_conn_kib']:.2f}×.")
    a, m = r["stream"]["authsome"], r["stream"]["mitmproxy"]
    print(f"Streaming 1 GiB: authsome RSS {a['base_mib']:.1f} → peak {a['peak_mib']:.1f} MiB at {a['mib_per_s']:.0f} MiB/s; "
          f"mitmproxy {m['base_mib']:.1f} → {m['peak_mib']:.1f} MiB at {m['mib_per_s']:.0f} MiB/s.")
    p = r.get("providers", {})
    for c in (1, 10) if p else ():
        one, many = p["1"][c], p["45"][c]
        print(f"45 connected providers instead of 1, {c} connection(s): {many['rps'] / one['rps']:.2f}× the throughput, "
              f"CPU {one['cpu_us']:.0f} → {many['cpu_us']:.0f} µs per request.")
    t = r["run_true"]
    print(f"`authsome run -- true`: {t['authsome_ms']:.2f} ms median ({t['authsome_mean_ms']:.2f} ± {t['authsome_sd_ms']:.2f} mean); "
          f"`/bin/true`: {t['true_ms']:.2f} ms.")


if __name__ == "__main__":
    main()
