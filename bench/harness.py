#!/usr/bin/env python3
"""The bench/run harness (issue 6): every scenario against vsess, vcsim 0.24.2 and the
baseline server, side by side in one run, on 127.0.0.1 only, every load bounded in time.

bench/run builds the binaries and installs wrk/hyperfine, then runs this file. Standard
library only. Results go to a JSON file (see --out); bench/report.py renders BENCHMARKS.md
from it. Exit status: 0 when every scenario ran correctly (no wrk errors or unexpected
statuses, no leaked sessions), 1 otherwise; timings are reported, never asserted.
"""
import argparse
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.dont_write_bytecode = True  # no __pycache__ in bench/
sys.path.insert(0, HERE)
import report  # noqa: E402  (bench/report.py: targets and the Markdown rendering)

LUA = os.path.join(HERE, "lua")
CLK_TCK = os.sysconf("SC_CLK_TCK")
UA = "vsess-bench/1"
BENCH_USER = "bench@vsphere.local"
SCENARIOS = ["S1", "S2", "S3", "S4", "S5", "S6", "S7"]
# S1 at one connection, pinned: (server CPUs, wrk CPUs).
PLACEMENTS = {"one CPU": ("0", "0"), "two CPUs": ("0", "1")}

FULL = dict(duration=4, reps=3, s5_duration=8, s5_pair_duration=4, warmup=1.0, s1_conns=[1, 4, 16], load_conns=16, s3_conns=4,
            cold_users=100, s5_sizes=[10_000, 100_000, 1_000_000], s6_cached=1000,
            s6_fresh=100, s6_rounds=4)
QUICK = dict(duration=2, reps=1, s5_duration=2, s5_pair_duration=2, warmup=0.5, s1_conns=[1, 4, 16], load_conns=16, s3_conns=4,
             cold_users=10, s5_sizes=[10_000, 100_000], s6_cached=100, s6_fresh=20, s6_rounds=2)

ENV_HEAD = ('<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
            'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>')
ENV_TAIL = '</soapenv:Body></soapenv:Envelope>'


def xml_escape(s):
    return s.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def soap_body(inner):
    return (ENV_HEAD + inner + ENV_TAIL).encode()


SM = '<_this type="SessionManager">SessionManager</_this>'
FETCH = soap_body('<Fetch xmlns="urn:vim25">' + SM + '<prop>currentSession</prop></Fetch>')
RSC = soap_body('<RetrieveServiceContent xmlns="urn:vim25">'
                '<_this type="ServiceInstance">ServiceInstance</_this></RetrieveServiceContent>')
LOGOUT = soap_body('<Logout xmlns="urn:vim25">' + SM + '</Logout>')
SESSION_LIST = soap_body(
    '<RetrieveProperties xmlns="urn:vim25"><_this type="PropertyCollector">propertyCollector'
    '</_this><specSet><propSet><type>SessionManager</type><pathSet>sessionList</pathSet>'
    '</propSet><objectSet><obj type="SessionManager">SessionManager</obj></objectSet>'
    '</specSet></RetrieveProperties>')


def login_body(user, password):
    return soap_body('<Login xmlns="urn:vim25">' + SM + '<userName>' + xml_escape(user) +
                     '</userName><password>' + xml_escape(password) + '</password></Login>')


def terminate_body(key):
    return soap_body('<TerminateSession xmlns="urn:vim25">' + SM + '<sessionId>' +
                     xml_escape(key) + '</sessionId></TerminateSession>')


def rpc_get_body(session_id):
    return json.dumps({
        "jsonrpc": "2.0", "method": "invoke", "id": "1",
        "params": {"serviceId": "com.vmware.cis.session", "operationId": "get",
                   "input": {"STRUCTURE": {"operation-input": {}}},
                   "ctx": {"appCtx": {"opId": "vsess-bench"},
                           "securityCtx": {"schemeId": "com.vmware.vapi.std.security.session_id",
                                           "sessionId": session_id}}},
    }, separators=(",", ":")).encode()


SOAP_HEADERS = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:vim25/8.0.3.0"',
                "User-Agent": UA}


class Failed(Exception):
    """A correctness failure (as opposed to a slow result)."""


def log(msg):
    print(msg, flush=True)


# ---- HTTPS client ------------------------------------------------------------------------

def tls_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


class Client:
    """One keep-alive HTTPS/1.1 connection (self-signed certificates accepted)."""

    def __init__(self, port, timeout=30):
        self.port = port
        self.timeout = timeout
        self.conn = None

    def request(self, method, path, body=None, headers=None):
        for attempt in (0, 1):
            if self.conn is None:
                self.conn = http.client.HTTPSConnection("127.0.0.1", self.port, timeout=self.timeout,
                                                        context=tls_context())
            try:
                self.conn.request(method, path, body=body, headers=headers or {})
                r = self.conn.getresponse()
                data = r.read()
                return r.status, r.msg, data
            except (http.client.HTTPException, ConnectionError, ssl.SSLError, socket.timeout):
                self.conn.close()
                self.conn = None
                if attempt:
                    raise

    def soap(self, body, cookie=None, ua=UA):
        h = dict(SOAP_HEADERS, **{"User-Agent": ua})
        if cookie:
            h["Cookie"] = "vmware_soap_session=" + cookie
        return self.request("POST", "/sdk", body, h)

    def close(self):
        if self.conn is not None:
            self.conn.close()
            self.conn = None


COOKIE_RE = re.compile(r'vmware_soap_session=("[^"]*"|[^;\s]+)')


def login(client, user, password, ua=UA):
    status, msg, data = client.soap(login_body(user, password), ua=ua)
    if status != 200:
        raise Failed(f"Login as {user} answered HTTP {status}: {data[:300]!r}")
    for v in msg.get_all("Set-Cookie") or []:
        m = COOKIE_RE.search(v)
        if m:
            return m.group(1), re.search(rb"<key>([^<]*)</key>", data).group(1).decode()
    raise Failed(f"Login as {user} set no vmware_soap_session cookie")


def sessions(port, user, password):
    """(key, userAgent) of every session on the server, not counting the one used to ask."""
    c = Client(port)
    try:
        cookie, mine = login(c, user, password, ua="vsess-bench-count")
        status, _, data = c.soap(SESSION_LIST, cookie)
        if status != 200:
            raise Failed(f"sessionList answered HTTP {status}: {data[:300]!r}")
        out = []
        for block in re.findall(rb"<UserSession[^>]*>(.*?)</UserSession>", data, re.S):
            key = re.search(rb"<key>([^<]*)</key>", block).group(1).decode()
            ua = re.search(rb"<userAgent>([^<]*)</userAgent>", block)
            if key != mine:
                out.append((key, ua.group(1).decode() if ua else ""))
        c.soap(LOGOUT, cookie)
        return out
    finally:
        c.close()


def terminate(port, user, password, keys):
    if not keys:
        return
    c = Client(port)
    try:
        cookie, _ = login(c, user, password, ua="vsess-bench-count")
        for k in keys:
            c.soap(terminate_body(k), cookie)
        c.soap(LOGOUT, cookie)
    finally:
        c.close()


def check_fetch(port, cookie, what):
    c = Client(port)
    try:
        status, _, data = c.soap(FETCH, cookie)
    finally:
        c.close()
    if status != 200 or b"<key>" not in data or b"UserSession" not in data:
        raise Failed(f"{what}: Fetch(currentSession) answered HTTP {status}: {data[:300]!r}")


def shell_quote(s):
    if s and re.fullmatch(r"[A-Za-z0-9_@%+=:,./$-]+", s):
        return s
    if "\n" in s:
        return "$'" + s.replace("\\", "\\\\").replace("'", "\\'").replace("\n", "\\n") + "'"
    return "'" + s.replace("'", "'\\''") + "'"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- processes ----------------------------------------------------------------------------

class Server:
    """A server process we started: its pid, port, CPU time and memory from /proc."""

    def __init__(self, name, argv, log_path, env=None):
        self.name = name
        self.argv = argv
        self.log_path = log_path
        self.logf = open(log_path, "ab")
        self.started = time.monotonic()
        self.proc = subprocess.Popen(argv, stdout=self.logf, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=env)
        self.pid = self.proc.pid
        self.port = None
        self.extra = {}

    def wait_line(self, pattern, timeout=120):
        rx = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with open(self.log_path, "rb") as f:
                m = rx.search(f.read().decode(errors="replace"))
            if m:
                return m
            if self.proc.poll() is not None:
                raise Failed(f"{self.name} exited ({self.proc.returncode}); see {self.log_path}")
            time.sleep(0.01)
        raise Failed(f"{self.name} did not print {pattern!r} within {timeout}s; see {self.log_path}")

    def cpu_seconds(self):
        with open(f"/proc/{self.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def status_kb(self, key):
        with open(f"/proc/{self.pid}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
        return None

    def stop(self, timeout=60):
        """SIGTERM, then wait; returns the seconds it took to exit."""
        t0 = time.monotonic()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.logf.close()
        return time.monotonic() - t0


def cargo_target_dir():
    """Where cargo puts the builds, as `cargo build` decides it (CARGO_TARGET_DIR, cargo's
    config files), not always `<repo>/target`."""
    try:
        out = subprocess.run(["cargo", "metadata", "--format-version", "1", "--no-deps"], cwd=ROOT,
                             capture_output=True, check=True, timeout=120).stdout
        return json.loads(out)["target_directory"]
    except (OSError, subprocess.SubprocessError, ValueError, KeyError):
        return os.path.join(ROOT, "target")


class Env:
    """Paths and the servers of one run."""

    def __init__(self, args, params):
        self.args = args
        self.p = params
        # cargo's dev profile builds into `debug`, every other profile into its own name.
        self.bin = os.path.join(cargo_target_dir(), "debug" if args.profile == "dev" else args.profile)
        self.vsess = os.path.join(self.bin, "vsess")
        self.seed = os.path.join(self.bin, "vsess-bench-seed")
        self.baseline_bin = os.path.join(self.bin, "vsess-bench-baseline")
        self.floor_bin = os.path.join(self.bin, "vsess-bench-floor")
        peers = os.environ.get("VSESS_PEERS_DIR") or os.path.expanduser("~/.cache/vsess-peers")
        self.vcsim_bin = os.path.join(peers, "govmomi", "bin", "vcsim")
        self.work = tempfile.mkdtemp(prefix="vsess-bench-")
        self.servers = []
        self.commands = []
        self.other_shares = []
        self.password = os.urandom(12).hex()

    def record(self, kind, argv, env=None, prefix=""):
        cmd = prefix + " ".join(shell_quote(a) for a in argv)
        if env:
            cmd = " ".join(f"{k}={shell_quote(str(v))}" for k, v in env.items()) + " " + cmd
        cmd = cmd.replace(self.work, "$WORK").replace(ROOT + "/", "")
        cmd = cmd.replace(os.path.dirname(os.path.dirname(os.path.dirname(self.vcsim_bin))),
                          "${VSESS_PEERS_DIR:-~/.cache/vsess-peers}")
        cmd = re.sub(r"127\.0\.0\.1:[1-9][0-9]*", "127.0.0.1:$PORT", cmd)
        if cmd not in [c["command"] for c in self.commands]:
            self.commands.append({"kind": kind, "command": cmd})

    def path(self, *parts):
        p = os.path.join(self.work, *parts)
        os.makedirs(os.path.dirname(p), exist_ok=True)
        return p

    def add_user(self, data_dir, name, role, password, store=None):
        argv = [self.vsess, "user", "add", name, "--role", role, "--password-stdin",
                "--data-dir", data_dir] + (["--store", store] if store else [])
        shown = argv[:3] + ["cold-NNNN@vsphere.local" if name.startswith("cold-") else name] + argv[4:]
        self.record("setup", shown, prefix="printf '%s\\n' \"$PASSWORD\" | ")
        r = subprocess.run(argv, input=(password + "\n").encode(), capture_output=True)
        if r.returncode != 0:
            raise Failed(f"vsess user add {name}: {r.stderr.decode(errors='replace')}")

    def start_vsess(self, name, data_dir, config=None, port=0, store=None):
        argv = [self.vsess, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data_dir]
        if config:
            argv += ["--config", config]
        if store:
            argv += ["--store", store]
        self.record("server", argv)
        s = Server(name, argv, self.path("logs", name + ".log"))
        self.servers.append(s)
        if port == 0:
            s.port = int(s.wait_line(r"listening on https://127\.0\.0\.1:(\d+)").group(1))
        else:
            s.port = port
        return s

    def start_vcsim(self):
        if not os.access(self.vcsim_bin, os.X_OK):
            raise Failed(f"vcsim not found at {self.vcsim_bin} (scripts/peers/govmomi.sh builds it)")
        argv = [self.vcsim_bin, "-l", "127.0.0.1:0"]
        self.record("server", argv)
        tmp = self.path("vcsim-tmp", "x")
        os.makedirs(os.path.dirname(tmp), exist_ok=True)
        # vcsim makes its datastore directories under $TMPDIR: keep them in the work directory.
        s = Server("vcsim", argv, self.path("logs", "vcsim.log"), env=dict(os.environ, TMPDIR=os.path.dirname(tmp)))
        self.servers.append(s)
        s.port = int(s.wait_line(r"GOVC_URL=https://user:pass@127\.0\.0\.1:(\d+)/sdk").group(1))
        return s

    def start_redis(self):
        binary = os.environ.get("VSESS_REDIS_SERVER") or shutil.which("redis-server")
        if not binary:
            raise Failed("redis-server not found (scripts/peers/redis.sh installs Debian's)")
        port = free_port()
        d = self.path("redis", "x")
        argv = [binary, "--bind", "127.0.0.1", "--port", str(port), "--save", "",
                "--appendonly", "yes", "--appendfsync", "everysec", "--dir", os.path.dirname(d)]
        self.record("server", argv)
        s = Server("redis", argv, self.path("logs", "redis.log"))
        self.servers.append(s)
        s.port = port
        s.wait_line(r"Ready to accept connections")
        return s

    def start_baseline(self):
        argv = [self.baseline_bin, "--listen", "127.0.0.1:0", "--sessions", "4"]
        self.record("server", argv)
        s = Server("baseline", argv, self.path("logs", "baseline.log"))
        self.servers.append(s)
        s.port = int(s.wait_line(r"listening on https://127\.0\.0\.1:(\d+)").group(1))
        s.wait_line(r"(?:session [0-9a-f]+\n){4}")
        with open(s.log_path) as f:
            s.extra["ids"] = re.findall(r"^session ([0-9a-f]+)$", f.read(), re.M)
        return s

    def stop(self, server):
        t = server.stop()
        if server in self.servers:
            self.servers.remove(server)
        return t

    def stop_all(self):
        for s in list(self.servers):
            self.stop(s)

    # ---- wrk ------------------------------------------------------------------------------

    def wrk(self, server, script, conns, duration, env, threads=None, label="", pin=None):
        """Runs wrk against `server`; returns its figures plus the server's CPU per request.
        `pin` = (server CPUs, wrk CPUs), e.g. ("0", "1"): both are pinned for this run only."""
        threads = threads or min(conns, 2)
        argv = ["wrk", "-t", str(threads), "-c", str(conns), "-d", f"{duration}s", "--timeout", "10s",
                "-s", os.path.join(LUA, script), f"https://127.0.0.1:{server.port}"]
        if pin:
            argv = ["taskset", "-c", pin[1]] + argv
            set_affinity(server.pid, pin[0])
            self.record("pin", ["taskset", "-a", "-p", "-c", pin[0], "$SERVER_PID"])
        try:
            return self._wrk(server, argv, conns, threads, duration, env, label)
        finally:
            if pin:
                set_affinity(server.pid, f"0-{(os.cpu_count() or 1) - 1}")

    def _wrk(self, server, argv, conns, threads, duration, env, label):
        full_env = dict(os.environ, BENCH_LUA=LUA, **env)
        shown = {k: v for k, v in env.items()}
        for k in list(shown):
            if k == "BENCH_HEADERS":
                shown[k] = re.sub(r'(vmware_soap_session=|vmware-api-session-id: )"?[0-9a-f-]+"?',
                                  r"\1$ID", shown[k])
        self.record("load", argv[:-1] + ["https://127.0.0.1:$PORT"], shown)
        aux = server.extra.get("aux", [])  # processes serving it too (redis-server)
        aux0 = [a.cpu_seconds() for a in aux]
        cpu0 = server.cpu_seconds()
        busy0, t0 = busy_seconds(), time.monotonic()
        ru0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        r = subprocess.run(argv, env=full_env, capture_output=True, timeout=duration + 60)
        ru1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu1 = server.cpu_seconds()
        aux_cpu = sum(a.cpu_seconds() for a in aux) - sum(aux0)
        busy1, t1 = busy_seconds(), time.monotonic()
        out = r.stdout.decode(errors="replace")
        m = re.search(r"^BENCHJSON (\{.*\})$", out, re.M)
        if r.returncode != 0 or not m:
            raise Failed(f"wrk failed ({r.returncode}) {label}: {out[-500:]} {r.stderr.decode()[-500:]}")
        res = json.loads(m.group(1))
        res["conns"] = conns
        res["threads"] = threads
        secs = res["duration_us"] / 1e6
        res["rps"] = res["requests"] / secs if secs else 0.0
        res["server_cpu_s"] = cpu1 - cpu0
        res["server_cpu_us_per_req"] = (cpu1 - cpu0) * 1e6 / res["requests"] if res["requests"] else None
        if aux:
            res["aux_cpu_us_per_req"] = aux_cpu * 1e6 / res["requests"] if res["requests"] else None
        wrk_cpu = (ru1.ru_utime - ru0.ru_utime) + (ru1.ru_stime - ru0.ru_stime)
        res["loadgen_cpu_us_per_req"] = wrk_cpu * 1e6 / res["requests"] if res["requests"] else None
        # CPU that neither the server nor wrk used: other processes on the machine. A high
        # share means the figure was disturbed.
        other = max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - aux_cpu - wrk_cpu)
        res["other_cpu_share"] = other / ((t1 - t0) * (os.cpu_count() or 1))
        self.other_shares.append(res["other_cpu_share"])
        res["_stdout"] = out
        return res

    def warm(self, server, script, env):
        if self.p["warmup"] > 0:
            try:
                self.wrk(server, script, self.p["load_conns"], self.p["warmup"], env, label="warm-up")
            except Failed:
                pass


def set_affinity(pid, cpus):
    """Pins every thread of `pid` (and the threads it starts later) to `cpus`."""
    r = subprocess.run(["taskset", "-a", "-p", "-c", cpus, str(pid)], capture_output=True)
    if r.returncode != 0:
        raise Failed(f"taskset -a -p -c {cpus} {pid}: {r.stderr.decode(errors='replace').strip()}")


def wrk_errors(res):
    e = res["errors"]
    return e["connect"] + e["read"] + e["write"] + e["status"] + e["timeout"]


def clean(res):
    return {k: v for k, v in res.items() if not k.startswith("_")}


def round_floats(o):
    if isinstance(o, float):
        return round(o, 3)
    if isinstance(o, dict):
        return {k: round_floats(v) for k, v in o.items()}
    if isinstance(o, list):
        return [round_floats(v) for v in o]
    return o


class Checks:
    def __init__(self):
        self.items = []

    def add(self, scenario, name, ok, detail=""):
        self.items.append({"scenario": scenario, "check": name, "ok": bool(ok), "detail": detail})
        if not ok:
            log(f"  CHECK FAILED [{scenario}] {name}: {detail}")

    def wrk_clean(self, scenario, name, res):
        n = wrk_errors(res)
        self.add(scenario, f"{name}: no wrk errors or non-2xx", n == 0 and res["requests"] > 0,
                 f"{res['requests']} requests, errors {res['errors']}")


def fmt_res(res):
    lat = res["latency_us"]
    cpu = res.get("server_cpu_us_per_req")
    text = f"{res['rps']:>9.0f} req/s  p50 {lat['p50'] / 1000:.2f} ms  p99 {lat['p99'] / 1000:.2f} ms"
    if cpu is not None:
        text += f"  server CPU {cpu:.1f} us/req"
    return text


# ---- scenarios ----------------------------------------------------------------------------

def main_servers(env, R):
    """vsess (a fresh data directory with the bench user), vcsim and the baseline."""
    if "main" in R:
        return R["main"]
    d = env.path("vsess-main", "data")
    os.makedirs(d, mode=0o700, exist_ok=True)
    env.add_user(d, BENCH_USER, "Admin", env.password)
    vs = env.start_vsess("vsess", d)
    vc = env.start_vcsim()
    bl = env.start_baseline()
    c = Client(vs.port)
    vs.extra["cookie"], _ = login(c, BENCH_USER, env.password)
    c.close()
    c = Client(vc.port)
    vc.extra["cookie"], _ = login(c, "user", "pass")
    c.close()
    bl.extra["cookie"] = '"' + bl.extra["ids"][0] + '"'
    R["main"] = {"vsess": vs, "vcsim": vc, "baseline": bl, "data": d}
    return R["main"]


def soap_env(cookie=None, body_file=None):
    h = "Content-Type: text/xml; charset=utf-8\nSOAPAction: \"urn:vim25/8.0.3.0\"\nUser-Agent: " + UA
    if cookie:
        h += "\nCookie: vmware_soap_session=" + cookie
    return {"BENCH_METHOD": "POST", "BENCH_PATH": "/sdk", "BENCH_BODY_FILE": body_file, "BENCH_HEADERS": h}


def write_file(env, name, data):
    p = env.path("bodies", name)
    with open(p, "wb") as f:
        f.write(data)
    return p


def median_run(runs):
    """The run with the median throughput, with every run's throughput and CPU attached."""
    ordered = sorted(runs, key=lambda r: r["rps"])
    mid = clean(ordered[(len(ordered) - 1) // 2])
    mid["reps"] = len(runs)
    mid["rps_runs"] = [r["rps"] for r in runs]
    mid["cpu_us_per_req_runs"] = [r["server_cpu_us_per_req"] for r in runs]
    return mid


def series(env, checks, scenario, points):
    """Runs every point `reps` times, round-robin, so that drift in the machine's speed
    falls on every server alike; returns each point's median run. A point is
    (key, label, server, script, conns, env, threads, after[, pin]) where `after(res)` runs after
    each run (S3 resolves its sessions there) and `pin` is wrk's (see Env.wrk)."""
    runs = {p[0]: [] for p in points}
    warmed = set()
    for _ in range(env.p["reps"]):
        for key, label, server, script, conns, e, threads, after, *pin in points:
            if (server.name, script, e.get("BENCH_PATH"), e.get("BENCH_BODY_FILE")) not in warmed and script == "request.lua":
                env.warm(server, script, e)
                warmed.add((server.name, script, e.get("BENCH_PATH"), e.get("BENCH_BODY_FILE")))
            res = env.wrk(server, script, conns, env.p["duration"], e, threads=threads, label=label,
                          pin=pin[0] if pin else None)
            if after:
                after(res)
            checks.wrk_clean(scenario, label, res)
            runs[key].append(res)
    return {k: median_run(v) for k, v in runs.items()}


def s1(env, R, checks, out):
    m = main_servers(env, R)
    fetch_file = write_file(env, "fetch.xml", FETCH)
    points = []
    for name in ("vsess", "vcsim", "baseline"):
        s = m[name]
        if name != "baseline":
            check_fetch(s.port, s.extra["cookie"], name)
        e = soap_env(s.extra["cookie"], fetch_file)
        for c in env.p["s1_conns"]:
            points.append(((name, c), f"{name} Fetch c={c}", s, "request.lua", c, e, None, None))
    res = series(env, checks, "S1", points)
    out["servers"] = {}
    for (name, c), r in res.items():
        out["servers"].setdefault(name, {})[str(c)] = r
        log(f"  S1 {name:<8} c={c:<3} {fmt_res(r)}")
    # One connection again, with the scheduler's choice taken away: server and wrk on one
    # CPU, then on two. At one connection each request wakes the server and then wrk; where
    # they run decides what a wake-up costs (on one CPU it is a switch, across two an
    # interrupt to the other, here virtual, CPU).
    if (os.cpu_count() or 1) < 2:
        return
    points = []
    for placement, pin in PLACEMENTS.items():
        for name in ("vsess", "vcsim", "baseline"):
            s = m[name]
            e = soap_env(s.extra["cookie"], fetch_file)
            points.append(((placement, name), f"{name} Fetch c=1 {placement}", s, "request.lua", 1, e, None,
                           None, pin))
    out["placement"] = {}
    for (placement, name), r in series(env, checks, "S1", points).items():
        out["placement"].setdefault(placement, {})[name] = r
        log(f"  S1 {name:<8} c=1  {placement:<8} {fmt_res(r)}")


def s2(env, R, checks, out):
    m = main_servers(env, R)
    rsc_file = write_file(env, "rsc.xml", RSC)
    c = env.p["load_conns"]
    points = []
    for name in ("vsess", "vcsim", "baseline"):
        s = m[name]
        cl = Client(s.port)
        status, _, data = cl.soap(RSC)
        cl.close()
        checks.add("S2", f"{name} RetrieveServiceContent answers", status == 200 and b"sessionManager" in data,
                   f"HTTP {status}")
        points.append((name, f"{name} RetrieveServiceContent c={c}", s, "request.lua", c,
                       soap_env(None, rsc_file), None, None))
    for name, r in series(env, checks, "S2", points).items():
        out[name] = r
        log(f"  S2 {name:<8} c={c:<3} {fmt_res(r)}")


def s4(env, R, checks, out):
    m = main_servers(env, R)
    c = env.p["load_conns"]
    points = []
    for name in ("vsess", "baseline"):
        s = m[name]
        sid = s.extra["cookie"].strip('"')
        cl = Client(s.port)
        st1, _, d1 = cl.request("GET", "/api/session", None, {"vmware-api-session-id": sid, "User-Agent": UA})
        rpc = rpc_get_body(sid)
        st2, _, d2 = cl.request("POST", "/api", rpc, {"Content-Type": "application/json", "User-Agent": UA})
        cl.close()
        checks.add("S4", f"{name} GET /api/session answers the session", st1 == 200 and b'"user"' in d1,
                   f"HTTP {st1} {d1[:200]!r}")
        checks.add("S4", f"{name} JSON-RPC com.vmware.cis.session.get answers the session",
                   st2 == 200 and b"com.vmware.cis.session.info" in d2, f"HTTP {st2} {d2[:200]!r}")
        rest_env = {"BENCH_METHOD": "GET", "BENCH_PATH": "/api/session", "BENCH_BODY_FILE": "",
                    "BENCH_HEADERS": f"vmware-api-session-id: {sid}\nUser-Agent: {UA}"}
        rpc_env = {"BENCH_METHOD": "POST", "BENCH_PATH": "/api",
                   "BENCH_BODY_FILE": write_file(env, f"rpc-{name}.json", rpc),
                   "BENCH_HEADERS": f"Content-Type: application/json\nUser-Agent: {UA}"}
        points.append((("rest", name), f"{name} GET /api/session c={c}", s, "request.lua", c, rest_env, None, None))
        points.append((("rpc", name), f"{name} JSON-RPC session.get c={c}", s, "request.lua", c, rpc_env, None, None))
    out["rest"], out["rpc"] = {}, {}
    for (kind, name), r in series(env, checks, "S4", points).items():
        out[kind][name] = r
        label = "GET /api/session" if kind == "rest" else "JSON-RPC get    "
        log(f"  S4 {name:<8} {label} c={c:<3} {fmt_res(r)}")
    vc = m["vcsim"]
    cl = Client(vc.port)
    st, _, _ = cl.request("GET", "/api/session", None, {"User-Agent": UA})
    cl.close()
    out["vcsim_api_session_status"] = st


def s3(env, R, checks, out):
    m = main_servers(env, R)
    logout_file = write_file(env, "logout.xml", LOGOUT)
    conns = env.p["s3_conns"]
    creds = {"vsess": (BENCH_USER, env.password), "vcsim": ("user", "pass")}
    points, acct = [], {}
    for name in ("vsess", "vcsim"):
        s = m[name]
        user, pw = creds[name]
        ua = f"vsess-bench-s3-{name}"
        acct[name] = a = {"before": len(sessions(s.port, user, pw)), "left": 0, "cut": 0, "open": 0,
                          "final": None}
        e = {"BENCH_LOGIN_FILE": write_file(env, f"login-{name}.xml", login_body(user, pw)),
             "BENCH_LOGOUT_FILE": logout_file,
             "BENCH_HEADERS": "Content-Type: text/xml; charset=utf-8\n"
                              f"SOAPAction: \"urn:vim25/8.0.3.0\"\nUser-Agent: {ua}"}

        def after(res, s=s, user=user, pw=pw, ua=ua, a=a):
            stdout = res["_stdout"]
            open_cookies = (re.search(r"^BENCHOPEN ?(.*)$", stdout, re.M).group(1) or "").split()
            cut = int(re.search(r"^BENCHCUT (\d+)$", stdout, re.M).group(1))
            # Log out what wrk left open when its time was up.
            cl = Client(s.port)
            for ck in open_cookies:
                cl.soap(LOGOUT, ck, ua=ua)
            cl.close()
            mine = [k for k, u in sessions(s.port, user, pw) if u == ua]
            # A Login sent but unanswered when wrk stopped may have created a session
            # nobody saw: at most one per connection. Anything beyond that is a leak.
            a["left"] += max(0, len(mine) - cut)
            a["cut"] += cut
            a["open"] += len(open_cookies)
            terminate(s.port, user, pw, mine)
            a["final"] = len(sessions(s.port, user, pw))
            res["pairs_per_s"] = res["logout_ok"] / (res["duration_us"] / 1e6)
            res["rps"] = res["pairs_per_s"]  # the figure the median is taken on
            checks.add("S3", f"{s.name} Login/Logout: every Login and Logout succeeded",
                       res["login_bad"] == 0 and res["logout_bad"] == 0 and res["no_cookie"] == 0
                       and res["login_ok"] > 0 and wrk_errors(res) == 0,
                       f"login ok {res['login_ok']} bad {res['login_bad']} no cookie {res['no_cookie']}, "
                       f"logout ok {res['logout_ok']} bad {res['logout_bad']}, errors {res['errors']}")

        points.append((name, f"{name} Login/Logout c={conns}", s, "login_logout.lua", conns, e, conns, after))
    for name, r in series(env, checks, "S3", points).items():
        a = acct[name]
        r.update(pairs_per_s=r["rps"], left_behind=a["left"], cut_logins=a["cut"], open_at_end=a["open"],
                 sessions_before=a["before"], sessions_after=a["final"])
        out[name] = r
        checks.add("S3", f"{name} Login/Logout: no sessions left behind", a["left"] == 0,
                   f"{a['left']} beyond the {a['cut']} Logins cut off by wrk's deadline")
        checks.add("S3", f"{name} Login/Logout: session count back to where it was",
                   a["final"] == a["before"], f"before {a['before']}, after {a['final']}")
        log(f"  S3 {name:<8} c={conns:<3} {r['pairs_per_s']:>9.0f} pairs/s  server CPU "
            f"{r['server_cpu_us_per_req']:.1f} us/req  left behind {a['left']} (cut {a['cut']})")
    for name in ("vsess", "vcsim"):
        s = m[name]
        user, pw = creds[name]
        r = out[name]
        before = len(sessions(s.port, user, pw))
        # Cold logins: the first Login of distinct users (argon2id on vsess).
        names = R["cold_users"] if name == "vsess" else [f"cold-{i:04d}" for i in range(env.p["cold_users"])]
        cpw = R["cold_password"] if name == "vsess" else "pass"
        lat, fails = [], 0
        cl = Client(s.port, timeout=60)
        cl.soap(RSC)  # open the connection first: the TLS handshake is not part of a login
        cookies = []
        for u in names:
            t0 = time.perf_counter()
            st, msg, data = cl.soap(login_body(u, cpw), ua="vsess-bench-cold")
            lat.append(time.perf_counter() - t0)
            mck = [COOKIE_RE.search(v) for v in (msg.get_all("Set-Cookie") or [])]
            mck = [x.group(1) for x in mck if x]
            if st != 200 or not mck:
                fails += 1
            else:
                cookies.append(mck[0])
        for ck in cookies:
            cl.soap(LOGOUT, ck)
        cl.close()
        lat.sort()
        r["cold_login"] = {"users": len(names), "failures": fails,
                           "p50_ms": pct(lat, 50) * 1000, "p99_ms": pct(lat, 99) * 1000,
                           "mean_ms": sum(lat) / len(lat) * 1000, "max_ms": lat[-1] * 1000}
        checks.add("S3", f"{name} cold logins of {len(names)} distinct users succeed", fails == 0,
                   f"{fails} failed")
        after = len(sessions(s.port, user, pw))
        checks.add("S3", f"{name} cold logins: all logged out again", after == before,
                   f"before {before}, after {after}")
        log(f"  S3 {name:<8} cold login p50 {r['cold_login']['p50_ms']:.2f} ms  "
            f"p99 {r['cold_login']['p99_ms']:.2f} ms  ({len(names)} users)")


def s7(env, R, checks, out):
    """The cost of an authenticated call on Redis, against the embedded store."""
    m = main_servers(env, R)
    redis = env.start_redis()
    url = f"redis://127.0.0.1:{redis.port}/0"
    d = env.path("vsess-redis", "data")
    os.makedirs(d, mode=0o700, exist_ok=True)
    env.add_user(d, BENCH_USER, "Admin", env.password, store=url)
    vr = env.start_vsess("vsess-redis", d, store=url)
    vr.extra["aux"] = [redis]
    c = Client(vr.port)
    vr.extra["cookie"], _ = login(c, BENCH_USER, env.password)
    c.close()
    fetch_file = write_file(env, "fetch.xml", FETCH)
    points = []
    for name, s in (("embedded", m["vsess"]), ("redis", vr)):
        check_fetch(s.port, s.extra["cookie"], f"vsess on {name}")
        e = soap_env(s.extra["cookie"], fetch_file)
        for conns in (1, env.p["load_conns"]):
            points.append(((name, conns), f"vsess on {name} Fetch c={conns}", s, "request.lua", conns, e,
                           None, None))
    out["servers"] = {}
    for (name, conns), r in series(env, checks, "S7", points).items():
        out["servers"].setdefault(name, {})[str(conns)] = r
        extra = f"  redis-server CPU {r['aux_cpu_us_per_req']:.1f} us/req" if "aux_cpu_us_per_req" in r else ""
        log(f"  S7 {name:<8} c={conns:<3} {fmt_res(r)}{extra}")
    # The load went through Redis: the session's callCount there counts it (flushed each second).
    time.sleep(1.5)
    c = Client(vr.port)
    status, _, data = c.soap(FETCH, vr.extra["cookie"])
    c.close()
    calls = re.search(rb"<callCount>(\d+)</callCount>", data)
    served = sum(r["requests"] for r in out["servers"]["redis"].values())
    checks.add("S7", "the Redis-backed server counted the load in Redis",
               status == 200 and calls is not None and int(calls.group(1)) >= served,
               f"callCount {calls.group(1).decode() if calls else None}, median runs served {served}")
    env.stop(vr)
    env.stop(redis)


def pct(sorted_vals, p):
    if not sorted_vals:
        return 0.0
    k = max(0, min(len(sorted_vals) - 1, int(round(p / 100 * len(sorted_vals) + 0.5)) - 1))
    return sorted_vals[k]


def s6(env, R, checks, out):
    m = main_servers(env, R)
    s = m["vsess"]
    home = env.path("s6", "home")
    os.makedirs(home, exist_ok=True)
    base = {k: v for k, v in os.environ.items() if not k.startswith(("GOVC_", "VSESS_", "GOVMOMI_"))}
    base.update(HOME=home, XDG_CONFIG_HOME=os.path.join(home, ".config"),
                VSESS_URL=f"https://127.0.0.1:{s.port}/sdk", VSESS_USERNAME=BENCH_USER,
                VSESS_PASSWORD=env.password, VSESS_INSECURE="1")
    cached_env = dict(base, GOVMOMI_HOME=os.path.join(home, "cached"))
    fresh_home = os.path.join(home, "fresh")
    fresh_env = dict(base, GOVMOMI_HOME=fresh_home)
    shown = {"VSESS_URL": "https://127.0.0.1:$PORT/sdk", "VSESS_USERNAME": BENCH_USER,
             "VSESS_PASSWORD": "…", "VSESS_INSECURE": "1"}
    # Prime the cache: this run logs in once.
    r = subprocess.run([env.vsess, "ls"], env=cached_env, capture_output=True, timeout=60)
    checks.add("S6", "vsess ls works (first run logs in)", r.returncode == 0,
               r.stderr.decode(errors="replace")[-300:])
    if r.returncode != 0:
        raise Failed("vsess ls failed")

    cookie = cached_cookie(cached_env["GOVMOMI_HOME"])
    url = f"https://127.0.0.1:{s.port}/v2/session?per_page=100&expand=true"
    r = subprocess.run([env.floor_bin, url, cookie], capture_output=True, timeout=60)
    checks.add("S6", "the floor client gets the same list", r.returncode == 0 and b'"data"' in r.stdout,
               r.stderr.decode(errors="replace")[-300:])
    if r.returncode != 0:
        raise Failed("vsess-bench-floor failed")

    def hyperfine(label, runs, e, chunk, prepare=None, command=None, shown_command=None):
        js = env.path("s6", f"{label}-{chunk}.json")
        argv = ["hyperfine", "-N", "--style", "none", "--runs", str(runs), "--export-json", js]
        if prepare:
            argv += ["--prepare", prepare]
        argv += [command or f"{env.vsess} ls"]
        # One line for every round's command: they differ only in the round's JSON file.
        rec = [a.replace(f"{label}-{chunk}.json", f"{label}-$ROUND.json") for a in argv]
        if shown_command:
            env.record("cli", rec[:-1] + [shown_command])
        else:
            env.record("cli", rec, dict(shown, GOVMOMI_HOME=e["GOVMOMI_HOME"].replace(env.work, "$WORK")))
        p = subprocess.run(argv, env=e, capture_output=True, timeout=600)
        ok = p.returncode == 0
        checks.add("S6", f"{label}: every run exits 0", ok,
                   (p.stdout + p.stderr).decode(errors="replace")[-400:])
        if not ok:
            raise Failed(f"hyperfine {label} failed")
        with open(js) as f:
            h = json.load(f)["results"][0]
        return h["times"], h["user"] * runs, h["system"] * runs

    # The three series run in rounds, each round a chunk of each, so that the machine's
    # drift falls on all three alike. The floor is `vsess-bench-floor` (bench/tools): the
    # cached run's one request with the same session, from a program that does nothing
    # else. Each fresh chunk's sessions are ended after it, so every chunk lists the same
    # sessions. hyperfine -N splits a command on white space only: the URL needs no quotes.
    series6 = {
        "cached": dict(runs=env.p["s6_cached"], e=cached_env),
        "floor": dict(runs=env.p["s6_cached"], e=base, command=f"{env.floor_bin} {url} {cookie}",
                      shown_command=f"{os.path.relpath(env.floor_bin, ROOT)} {url} $ID"),
        "fresh": dict(runs=env.p["s6_fresh"], e=fresh_env, prepare=f"rm -rf {fresh_home}"),
    }
    rounds = env.p["s6_rounds"]
    acc = {k: {"times": [], "user": 0.0, "system": 0.0, "created": 0} for k in series6}
    for i in range(rounds):
        for label, spec in series6.items():
            spec = dict(spec)
            runs = spec.pop("runs") // rounds
            before = sessions(s.port, BENCH_USER, env.password)
            times, user, system = hyperfine(label, runs, chunk=i, **spec)
            after = sessions(s.port, BENCH_USER, env.password)
            a = acc[label]
            a["times"] += times
            a["user"] += user
            a["system"] += system
            a["created"] += len(after) - len(before)
            if label == "fresh":
                terminate(s.port, BENCH_USER, env.password, [k for k, _ in after if k not in dict(before)])
    for label, a in acc.items():
        t = sorted(a["times"])
        n = len(t)
        mean = sum(t) / n
        out[label] = {"runs": n, "rounds": rounds, "over_30ms": sum(1 for v in t if v > 0.030),
                      "p90_ms": t[int(0.9 * (n - 1))] * 1000, "mean_ms": mean * 1000,
                      "median_ms": statistics.median(t) * 1000,
                      "stddev_ms": (statistics.stdev(t) if n > 1 else 0.0) * 1000,
                      "min_ms": t[0] * 1000, "max_ms": t[-1] * 1000,
                      "user_ms": a["user"] / n * 1000, "system_ms": a["system"] / n * 1000,
                      "sessions_created": a["created"]}
        log(f"  S6 {label:<7} {out[label]['mean_ms']:.2f} ms/run (median {out[label]['median_ms']:.2f}, "
            f"{out[label]['over_30ms']} runs over 30 ms)  sessions created: {a['created']}")
    checks.add("S6", f"no sessions created over {out['cached']['runs']} cached runs",
               out["cached"]["sessions_created"] == 0, f"{out['cached']['sessions_created']} created")
    checks.add("S6", "the floor client creates no session", out["floor"]["sessions_created"] == 0,
               f"{out['floor']['sessions_created']} created")
    checks.add("S6", "fresh runs really log in (one new session per run)",
               out["fresh"]["sessions_created"] == out["fresh"]["runs"],
               f"{out['fresh']['sessions_created']} new sessions in {out['fresh']['runs']} runs")


def cached_cookie(govmomi_home):
    """The SOAP session cookie in govc's session cache under `govmomi_home`, which holds one
    server's session (its SOAP file, and possibly a REST file beside it)."""
    d = os.path.join(govmomi_home, "sessions")
    found = set()
    for n in os.listdir(d):
        if n.startswith("."):
            continue  # vsess's hints
        with open(os.path.join(d, n)) as f:
            cached = json.load(f)
        for c in (cached.get("SoapClient") or {}).get("Cookies") or []:
            if c.get("Name") == "vmware_soap_session":
                found.add(c["Value"])
    if len(found) != 1:
        raise Failed(f"expected one cached SOAP session in {d}, found {len(found)}")
    return found.pop()


def wait_serving(server, cookie, timeout=300):
    """Seconds from the server's start to its first correct answer to `cookie`'s Fetch."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise Failed(f"{server.name} exited ({server.proc.returncode}); see {server.log_path}")
        c = Client(server.port, timeout=timeout)
        try:
            st, _, data = c.soap(FETCH, cookie)
            if st == 200 and b"<key>" in data:
                return time.monotonic() - server.started
            raise Failed(f"{server.name}: seeded session not served: HTTP {st} {data[:300]!r}")
        except (ConnectionRefusedError, ConnectionResetError, ssl.SSLError, http.client.HTTPException):
            time.sleep(0.005)
        finally:
            c.close()
    raise Failed(f"{server.name} not serving after {timeout}s")


S5_REF = 10_000  # the size S1 at larger sizes is compared with


def s5(env, R, checks, out):
    # The scale servers run alone: stop the others first.
    if "main" in R:
        for k in ("vsess", "vcsim", "baseline"):
            env.stop(R["main"][k])
        del R["main"]
    cfg = env.path("s5", "scale.toml")
    with open(cfg, "w") as f:
        f.write("config.vmacore.soap.sessionTimeout = 86400\n"
                "config.vmacore.soap.maxSessionCount = 2000000\n"
                "vpx.sso.sts.tokenLifetime = 0\n")
    fetch_file = write_file(env, "fetch.xml", FETCH)
    out["sizes"] = []
    # S1 at a size is compared with S1 at 10k in paired runs, alternating between the two
    # servers as S1 alternates between vsess, vcsim and the baseline: one run of each
    # drifts by 10-20% on this machine, as much as the effect being measured.
    ref = None  # (server, env, dir) of the 10k server, kept running for the pairs
    for n in [0] + env.p["s5_sizes"]:
        seeded = max(n, 4)
        d = env.path("s5", f"n{n}", "data")
        os.makedirs(d, mode=0o700, exist_ok=True)
        env.add_user(d, BENCH_USER, "Admin", env.password)
        ids = env.path("s5", f"n{n}", "ids")
        argv = [env.seed, "--data-dir", d, "--count", str(seeded), "--user", BENCH_USER,
                "--ids", ids, "--keep", "4"]
        env.record("seed", argv)
        sp = subprocess.run(argv, capture_output=True, timeout=600)
        if sp.returncode != 0:
            raise Failed(f"vsess-bench-seed: {sp.stderr.decode(errors='replace')}")
        seed = json.loads(sp.stdout.decode().strip().splitlines()[-1])
        with open(ids) as f:
            cookie = '"' + f.readline().strip() + '"'
        row = {"sessions": n, "seeded": seeded, "log_bytes": seed["log_bytes"], "seed_s": seed["seconds"],
               "entry_bytes": seed.get("entry_bytes"), "index_entry_bytes": seed.get("index_entry_bytes")}
        # First start: replays the seeded log and compacts it.
        s = env.start_vsess(f"s5-n{n}-first", d, cfg, port=free_port())
        row["first_start_s"] = wait_serving(s, cookie)
        row["stop_s"] = env.stop(s)
        # Restart: the time to serving that an operator sees.
        s = env.start_vsess(f"s5-n{n}", d, cfg, port=free_port())
        row["restart_s"] = wait_serving(s, cookie)
        row["rss_idle_kb"] = s.status_kb("VmRSS")
        row["hwm_kb"] = s.status_kb("VmHWM")
        with open(os.path.join(d, "sessions.log"), "rb") as f:
            lines = sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(1 << 20), b""))
        row["log_lines"] = lines
        checks.add("S5", f"{n} sessions: the compacted log holds them all", lines >= seeded,
                   f"{lines} lines for {seeded} sessions")
        e = soap_env(cookie, fetch_file)
        env.warm(s, "request.lua", e)
        conns = env.p["load_conns"]
        if ref is None or n <= S5_REF:
            res = env.wrk(s, "request.lua", conns, env.p["s5_duration"], e, label=f"S5 n={n}")
            checks.wrk_clean("S5", f"{n} sessions: S1 Fetch c={conns}", res)
            row["s1"] = clean(res)
        else:
            rs, env_ref = ref[0], ref[1]
            env.warm(rs, "request.lua", env_ref)
            pairs = []
            for i in range(env.p["reps"]):
                a = env.wrk(rs, "request.lua", conns, env.p["s5_pair_duration"], env_ref,
                            label=f"S5 n={S5_REF} (pair {i + 1})")
                b = env.wrk(s, "request.lua", conns, env.p["s5_pair_duration"], e,
                            label=f"S5 n={n} (pair {i + 1})")
                checks.wrk_clean("S5", f"{S5_REF} sessions, paired with {n}: S1 Fetch c={conns}", a)
                checks.wrk_clean("S5", f"{n} sessions: S1 Fetch c={conns}", b)
                pairs.append((b["rps"] / a["rps"] if a["rps"] else 0.0, a, b))
            pairs.sort(key=lambda t: t[0])
            ratio_, a, b = pairs[len(pairs) // 2]
            row["s1"] = clean(b)
            row["s1_ref"] = clean(a)
            row["s1_vs_ref"] = ratio_
            row["s1_vs_ref_all"] = [t[0] for t in pairs]
        row["rss_kb"] = s.status_kb("VmRSS")
        row["hwm_after_kb"] = s.status_kb("VmHWM")
        if n == S5_REF:
            ref = (s, e, d)
        else:
            env.stop(s)
            shutil.rmtree(os.path.dirname(d), ignore_errors=True)
        out["sizes"].append(row)
        log(f"  S5 n={n:<8} restart {row['restart_s']:.2f} s (first open {row['first_start_s']:.2f} s)"
            f"  RSS {row['rss_kb'] / 1024:.0f} MiB  S1 {row['s1']['rps']:.0f} req/s p99 "
            f"{row['s1']['latency_us']['p99'] / 1000:.1f} ms"
            + (f"  vs {S5_REF}: {row['s1_vs_ref']:.2f} (pairs {', '.join(f'{v:.2f}' for v in row['s1_vs_ref_all'])})"
               if "s1_vs_ref" in row else ""))
    if ref is not None:
        env.stop(ref[0])
        shutil.rmtree(os.path.dirname(ref[2]), ignore_errors=True)
    empty = out["sizes"][0]
    for row in out["sizes"][1:]:
        n = row["sessions"]
        row["bytes_per_session"] = (row["rss_kb"] - empty["rss_kb"]) * 1024 / n
        row["bytes_per_session_idle"] = (row["rss_idle_kb"] - empty["rss_idle_kb"]) * 1024 / n


# ---- machine and versions ------------------------------------------------------------------

def sh(argv):
    try:
        r = subprocess.run(argv, capture_output=True, timeout=30)
        return (r.stdout + r.stderr).decode(errors="replace").strip()
    except (OSError, subprocess.TimeoutExpired):
        return ""


def busy_seconds():
    """Non-idle CPU seconds of the whole machine so far, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (sum(v[:8]) - v[3] - v[4]) / CLK_TCK


def cpu_times():
    """(steal, total) jiffies summed over all CPUs, from /proc/stat."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[7] if len(v) > 7 else 0, sum(v[:8])


def machine_info(env):
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    mem = ""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    debian = ""
    if os.path.exists("/etc/debian_version"):
        with open("/etc/debian_version") as f:
            debian = "Debian " + f.read().strip()
    with open("/proc/loadavg") as f:
        load = f.read().split()[:3]
    commit = sh(["git", "-C", ROOT, "rev-parse", "--short", "HEAD"])
    try:
        porcelain = subprocess.run(["git", "-C", ROOT, "status", "--porcelain", "--untracked-files=no"],
                                   capture_output=True, timeout=30).stdout.decode(errors="replace")
    except (OSError, subprocess.TimeoutExpired):
        porcelain = ""
    # The run's own outputs (a previous run's, not yet committed) say nothing of the code.
    outputs = {"BENCHMARKS.md", "bench/results.json"}
    dirty = [line[3:] for line in porcelain.splitlines() if len(line) > 3 and line[3:] not in outputs]
    vcsim_go = sh(["go", "version", env.vcsim_bin]).split(": ", 1)[-1] if shutil.which("go") else ""
    return {
        "cpus": os.cpu_count(), "cpu_model": model, "memory": mem,
        "kernel": platform.release(), "os": debian, "loadavg_at_start": load,
        "versions": {
            "vsess": sh([env.vsess, "--version"]).replace("vsess ", "", 1) + f" (git {commit}"
                     + (f", with uncommitted changes to {', '.join(dirty)})" if dirty else ")"),
            "vcsim": "govmomi 0.24.2 (Debian source 0.24.2-3, scripts/peers/govmomi.sh)"
                     + (f", {vcsim_go}" if vcsim_go else ""),
            "baseline": "vsess-bench-baseline (bench/tools: axum 0.8, axum-server 0.8, rustls/ring)",
            "wrk": (re.findall(r"wrk (\S+)", sh(["wrk", "-v"])) or [""])[0],
            "openssl": sh(["openssl", "version"]).split(" (")[0].replace("OpenSSL ", ""),
            "hyperfine": sh(["hyperfine", "--version"]).replace("hyperfine ", ""),
            "rustc": sh(["rustc", "--version"]).replace("rustc ", ""),
            "python": platform.python_version(),
        },
    }


# ---- main ------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser(prog="bench/run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short loads, smaller sizes: a correctness run")
    ap.add_argument("--only", default="", help="comma-separated scenarios, e.g. S1,S3")
    ap.add_argument("--out", help="results JSON (default target/bench/results-{full,quick}.json)")
    ap.add_argument("--report", action="store_true",
                    help="also write BENCHMARKS.md and bench/results.json (default for a full run of all scenarios)")
    ap.add_argument("--no-report", action="store_true", help="never write BENCHMARKS.md")
    ap.add_argument("--keep", action="store_true", help="keep the work directory (logs, data)")
    ap.add_argument("--profile", default="release", choices=["release", "dev"],
                    help="the cargo profile whose binaries to run (default release). dev only with "
                         "--quick: unoptimized figures mean nothing, but the checks still hold")
    ap.add_argument("--check-args", action="store_true", help=argparse.SUPPRESS)  # bench/run, before building
    args = ap.parse_args()
    if args.profile != "release" and not args.quick:
        ap.error(f"--profile {args.profile} needs --quick: a measuring run uses the release build")
    params = dict(QUICK if args.quick else FULL)
    mode = "quick" if args.quick else "full"
    only = [s.strip().upper() for s in args.only.split(",") if s.strip()] or SCENARIOS
    for s in only:
        if s not in SCENARIOS:
            ap.error(f"unknown scenario {s}")
    if args.check_args:
        return 0
    out_path = args.out or os.path.join(ROOT, "target", "bench", f"results-{mode}.json")
    # A SIGTERM (e.g. a test runner's timeout) still stops the servers this run started.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    env = Env(args, params)
    t_start = time.monotonic()
    started = datetime.datetime.now(datetime.timezone.utc)
    log(f"bench: {mode} run of {', '.join(only)} ({args.profile} build); work directory {env.work}")
    results = {"meta": {"mode": mode, "profile": args.profile, "date": started.strftime("%Y-%m-%d %H:%M UTC"),
                        "params": params, "scenarios": only,
                        "machine": machine_info(env)}}
    checks = Checks()
    R = {}
    steal0, total0 = cpu_times()
    # Users for the cold logins: created before the main server starts.
    runners = {"S1": s1, "S2": s2, "S3": s3, "S4": s4, "S5": s5, "S6": s6, "S7": s7}
    status = {}
    try:
        if "S3" in only:
            R["cold_password"] = os.urandom(8).hex()
            R["cold_users"] = [f"cold-{i:04d}@vsphere.local" for i in range(params["cold_users"])]
        for name in [s for s in ("S1", "S2", "S4", "S7", "S3", "S6", "S5") if s in only]:
            log(f"[{name}] {report.TITLES[name]}")
            if name == "S3" and "main" not in R:
                main_servers(env, R)
            if name == "S3" and not R.get("cold_made"):
                t0 = time.monotonic()
                for u in R["cold_users"]:
                    env.add_user(R["main"]["data"], u, "ReadOnly", R["cold_password"])
                R["cold_made"] = True
                log(f"  created {len(R['cold_users'])} users in {time.monotonic() - t0:.1f} s")
            out = results[name.lower()] = {}
            n_before = len(checks.items)
            t0 = time.monotonic()
            try:
                runners[name](env, R, checks, out)
                ok = all(c["ok"] for c in checks.items[n_before:])
            except Exception as e:  # a scenario that cannot run is a failed scenario
                checks.add(name, "scenario ran to the end", False, f"{type(e).__name__}: {e}")
                if not isinstance(e, Failed):
                    traceback.print_exc()
                ok = False
            out["seconds"] = time.monotonic() - t0
            status[name] = ok
            log(f"[{name}] {'ok' if ok else 'FAILED'} in {out['seconds']:.1f} s")
    finally:
        env.stop_all()
        if not args.keep:
            shutil.rmtree(env.work, ignore_errors=True)
    steal1, total1 = cpu_times()
    results["meta"]["steal_percent"] = 100.0 * (steal1 - steal0) / max(1, total1 - total0)
    if env.other_shares:
        results["meta"]["other_cpu_percent"] = {
            "mean": 100.0 * sum(env.other_shares) / len(env.other_shares),
            "max": 100.0 * max(env.other_shares)}
    with open("/proc/loadavg") as f:
        results["meta"]["machine"]["loadavg_at_end"] = f.read().split()[:3]
    results["meta"]["commands"] = env.commands
    results["meta"]["seconds"] = time.monotonic() - t_start
    results["checks"] = checks.items
    results["status"] = status
    results = round_floats(results)
    os.makedirs(os.path.dirname(out_path), exist_ok=True)
    with open(out_path, "w") as f:
        json.dump(results, f, indent=1)
        f.write("\n")
    log(f"results: {out_path}")
    write = (args.report or (mode == "full" and only == SCENARIOS)) and not args.no_report
    if write:
        shutil.copy(out_path, os.path.join(HERE, "results.json"))
        with open(os.path.join(ROOT, "BENCHMARKS.md"), "w") as f:
            f.write(report.render(results))
        log("wrote BENCHMARKS.md and bench/results.json")
    if args.profile != "release":
        log(f"  (a {args.profile} build: the figures below check nothing and measure nothing)")
    for t in report.targets(results):
        log(f"  target {t['id']:<10} {t['verdict']:<7} {t['summary']}")
    if args.keep:
        log(f"kept {env.work}")
    passed = sum(1 for v in status.values() if v)
    failed = len(status) - passed
    log(f"bench: {mode} run took {results['meta']['seconds']:.0f} s")
    log(f"bench: {passed} passed, {failed} failed")
    return 0 if failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
