#!/usr/bin/env python3
"""The hostile child: run by the tests as the command under `authsome run`,
`exec` and `up`, it tries every way it knows to obtain a secret and writes
whatever it obtains under LOOT (one file per attempt) plus LOOT/results.json
({attempt: true when it succeeded}). The tests then search LOOT for every real
secret and the vault key, and check which attempts the fence stopped.

usage: hostile_child.py LOOT AUTHSOME_HOME AUTHSOME_BIN [PROVIDER...]
"""
import ctypes
import json
import os
import re
import signal
import subprocess
import sys

loot, home, authsome_bin, providers = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4:]
results = {}
counter = [0]


def keep(attempt, ok, data=b""):
    results[attempt] = ok
    if data:
        counter[0] += 1
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", attempt)[:80]
        with open(os.path.join(loot, f"{counter[0]:04d}-{name}"), "wb") as f:
            f.write(data if isinstance(data, bytes) else data.encode())


def read(path, limit=1 << 24):
    with open(path, "rb") as f:
        return f.read(limit)


def attempt_read(attempt, path):
    try:
        keep(attempt, True, read(path))
    except OSError as e:
        keep(attempt, False, f"{path}: {e}")


# Its own environment and arguments.
keep("own-env", True, "\n".join(f"{k}={v}" for k, v in os.environ.items()))
keep("own-argv", True, "\0".join(sys.argv))

# Every authsome process of this test (its command line names the test's
# directory): its parent, exec's proxy helper, the shell's daemon.
scope = os.path.dirname(loot).encode()
pids = {os.getppid()}
for d in os.listdir("/proc"):
    if d.isdigit() and int(d) != os.getpid():
        try:
            cmdline = read(f"/proc/{d}/cmdline")
        except OSError:
            continue
        if os.path.basename(cmdline.split(b"\0")[0]) == b"authsome" and scope in cmdline:
            pids.add(int(d))
keep("authsome-pids", True, " ".join(map(str, sorted(pids))))

libc = ctypes.CDLL(None, use_errno=True)
for pid in sorted(pids):
    for f in ["environ", "cmdline", "maps", "stat"]:
        attempt_read(f"proc-{f}-{pid}", f"/proc/{pid}/{f}")
    # Memory: every readable mapping through /proc/PID/mem.
    try:
        maps = read(f"/proc/{pid}/maps").decode()
        mem = open(f"/proc/{pid}/mem", "rb")
        dump = bytearray()
        for line in maps.splitlines():
            addr, perms = line.split()[:2]
            if not perms.startswith("r"):
                continue
            start, end = (int(x, 16) for x in addr.split("-"))
            if end - start > 1 << 26:
                continue
            try:
                mem.seek(start)
                dump += mem.read(end - start)
            except (OSError, ValueError, OverflowError):
                pass
        keep(f"proc-mem-{pid}", len(dump) > 0, bytes(dump))
    except OSError as e:
        keep(f"proc-mem-{pid}", False, str(e))
    # Its open files (the vault, the key file) through /proc/PID/fd.
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
        got = False
        for fd in fds:
            try:
                # Non-blocking: a pipe must not hang the attack.
                f = os.open(f"/proc/{pid}/fd/{fd}", os.O_RDONLY | os.O_NONBLOCK)
                try:
                    keep(f"proc-fd-{pid}-{fd}", True, os.read(f, 1 << 20))
                    got = True
                finally:
                    os.close(f)
            except OSError:
                pass
        keep(f"proc-fds-{pid}", got)
    except OSError as e:
        keep(f"proc-fds-{pid}", False, str(e))
    # Its view of the file system: /proc/PID/root and cwd.
    attempt_read(f"proc-root-keyfile-{pid}", f"/proc/{pid}/root{home}/vault.key")
    # ptrace.
    r = libc.ptrace(16, pid, 0, 0)  # PTRACE_ATTACH
    keep(f"ptrace-{pid}", r == 0)
    if r == 0:
        libc.ptrace(17, pid, 0, 0)  # PTRACE_DETACH
    # Signals (0 and the harmless SIGCONT: the attempt is what counts).
    for name, sig in [("0", 0), ("cont", signal.SIGCONT)]:
        try:
            os.kill(pid, sig)
            keep(f"signal-{name}-{pid}", True)
        except OSError as e:
            keep(f"signal-{name}-{pid}", False, str(e))

# The home: the key file, the vaults, everything under it.
attempt_read("home-keyfile", os.path.join(home, "vault.key"))
attempt_read("home-vault", os.path.join(home, "vaults", "default.vault"))
try:
    listing = []
    for root, dirs, files in os.walk(home, onerror=lambda e: (_ for _ in ()).throw(e)):
        for f in files:
            p = os.path.join(root, f)
            listing.append(p)
            attempt_read(f"home-file-{p}", p)
    keep("home-list", True, "\n".join(listing))
except OSError as e:
    keep("home-list", False, str(e))
# Writing the home: a provider override would redirect the next injection.
try:
    os.makedirs(os.path.join(home, "providers"), exist_ok=True)
    with open(os.path.join(home, "providers", "evil.json"), "w") as f:
        f.write("{}")
    keep("home-write", True)
except OSError as e:
    keep("home-write", False, str(e))

# authsome itself.
for p in providers:
    for args in (["get", p, "--reveal"], ["get", p, "--reveal", "--json"]):
        r = subprocess.run([authsome_bin, *args], capture_output=True)
        keep(f"authsome-{'-'.join(args)}", r.returncode == 0, r.stdout + r.stderr)
r = subprocess.run([authsome_bin, "doctor"], capture_output=True)
keep("authsome-doctor", r.returncode == 0, r.stdout + r.stderr)

with open(os.path.join(loot, "results.json"), "w") as f:
    json.dump(results, f)
print("hostile child done")
