"""Shared fixtures for the interop suites: start a real ``vsess serve`` process.

Fixtures
  vsess           a fresh server (function scope) with three users:
                  admin@vsphere.local (Admin), reader@vsphere.local (ReadOnly),
                  noaccess@vsphere.local (NoAccess), each with a random password.
  vsess_factory   callable ``vsess_factory(config_toml=None)`` starting another
                  fresh server, optionally with a TOML config file.
  connect         callable ``connect(server, role="admin")`` -> ServiceInstance
                  obtained through pyVmomi's SmartConnect.

Everything listens on 127.0.0.1 only.  The server binary is $VSESS_BIN, or
<repo>/target/debug/vsess by default.

Replica mode (issue 7): with VSESS_REPLICAS=N (N >= 2), every "server" the fixtures start
is N `vsess serve --store redis://…` replicas sharing one fresh redis-server (Debian's,
$VSESS_REDIS_SERVER or redis-server on PATH; append-only file on), behind nginx
($VSESS_NGINX or nginx on PATH) balancing every request round-robin over them.  The
replicas share one certificate, which nginx also presents, so the tests see one server;
`.data_dir` is the first replica's.  Restarts restart every replica; Redis keeps the state.
"""

import os
import pathlib
import re
import secrets
import signal
import socket
import subprocess
import threading
import time

import pytest

# In this environment these variables point at a system CA bundle and make
# requests/urllib ignore verify=False; the server uses a self-signed cert.
for _var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
    os.environ.pop(_var, None)

REPO = pathlib.Path(__file__).resolve().parents[2]
VSESS_BIN = os.environ.get("VSESS_BIN", str(REPO / "target" / "debug" / "vsess"))
HOST = "127.0.0.1"
READY_RE = re.compile(r"https://127\.0\.0\.1:(\d+)")
START_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
LOG_TAIL_LINES = 80

USERS = {
    "admin": ("admin@vsphere.local", "Admin"),
    "reader": ("reader@vsphere.local", "ReadOnly"),
    "noaccess": ("noaccess@vsphere.local", "NoAccess"),
}


def _require_binary():
    if not os.access(VSESS_BIN, os.X_OK):
        pytest.fail(
            f"vsess binary not found or not executable: {VSESS_BIN} "
            "(build it with `cargo build` or set VSESS_BIN)",
            pytrace=False,
        )


def add_user(data_dir, name, role, password, store=None):
    """Run `vsess user add NAME --role ROLE --password-stdin --data-dir DIR [--store URL]`."""
    _require_binary()
    proc = subprocess.run(
        [VSESS_BIN, "user", "add", name, "--role", role,
         "--password-stdin", "--data-dir", str(data_dir)]
        + (["--store", store] if store else []),
        input=password + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    if proc.returncode != 0:
        pytest.fail(
            f"`vsess user add {name} --role {role}` exited {proc.returncode}\n"
            f"stdout: {proc.stdout}\nstderr: {proc.stderr}",
            pytrace=False,
        )


class VsessServer:
    """One `vsess serve` process (restartable on the same port and data dir)."""

    def __init__(self, data_dir, config_file=None, store=None):
        self.host = HOST
        self.port = None
        self.data_dir = pathlib.Path(data_dir)
        self.config_file = config_file
        self.store = store
        self.users = {}
        self.proc = None
        self._lines = []
        self._lines_lock = threading.Lock()

    # -- properties -----------------------------------------------------
    @property
    def url(self):
        return f"https://{self.host}:{self.port}/sdk"

    @property
    def log(self):
        with self._lines_lock:
            return "".join(self._lines)

    def log_tail(self, n=LOG_TAIL_LINES):
        with self._lines_lock:
            return "".join(self._lines[-n:])

    # -- users ----------------------------------------------------------
    def add_user(self, name, role, password=None):
        password = password or secrets.token_urlsafe(18)
        add_user(self.data_dir, name, role, password, store=self.store)
        return name, password

    def connect(self, role="admin", **kwargs):
        """SmartConnect as users[role] (or a (user, pwd) tuple)."""
        return connect(self, role, **kwargs)

    # -- lifecycle ------------------------------------------------------
    def start(self):
        _require_binary()
        assert self.proc is None or self.proc.poll() is not None, "already running"
        listen = f"{HOST}:{self.port or 0}"
        cmd = [VSESS_BIN, "serve", "--listen", listen, "--data-dir", str(self.data_dir)]
        if self.config_file:
            cmd += ["--config", str(self.config_file)]
        if self.store:
            cmd += ["--store", self.store]
        self._append(f"----- starting: {' '.join(cmd)}\n")
        ready = threading.Event()
        found = {}
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            bufsize=1,
        )
        self.proc = proc

        def reader():
            for line in proc.stdout:
                self._append(line)
                if not ready.is_set():
                    m = READY_RE.search(line)
                    if m:
                        found["port"] = int(m.group(1))
                        ready.set()
            ready.set()  # EOF: the process is gone

        threading.Thread(target=reader, name=f"vsess-log-{proc.pid}", daemon=True).start()

        if not ready.wait(START_TIMEOUT) or "port" not in found:
            exited = proc.poll()
            self._kill()
            pytest.fail(
                f"vsess serve did not report https://127.0.0.1:PORT within "
                f"{START_TIMEOUT}s (exit code {exited})\n{self.log_tail()}",
                pytrace=False,
            )
        if self.port is not None and found["port"] != self.port:
            self._kill()
            pytest.fail(f"vsess restarted on port {found['port']}, expected {self.port}",
                        pytrace=False)
        self.port = found["port"]
        self._wait_accepting()
        return self

    def stop(self):
        """SIGTERM and wait for a graceful exit (SIGKILL if it hangs)."""
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._append(f"----- did not exit {STOP_TIMEOUT}s after SIGTERM; SIGKILL\n")
            self._kill()
            raise AssertionError("vsess did not stop within %ss of SIGTERM" % STOP_TIMEOUT)
        self._append(f"----- exited with {proc.returncode}\n")

    def restart(self):
        """Graceful restart on the same port and data dir."""
        self.stop()
        return self.start()

    def kill9_and_restart(self):
        """Crash (SIGKILL) then start again on the same port and data dir."""
        self._append("----- SIGKILL\n")
        self._kill()
        return self.start()

    # -- internals ------------------------------------------------------
    def _append(self, line):
        with self._lines_lock:
            self._lines.append(line)

    def _kill(self):
        proc = self.proc
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(STOP_TIMEOUT)

    def _wait_accepting(self):
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            try:
                with socket.create_connection((HOST, self.port), timeout=1):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"vsess port {self.port} not accepting\n{self.log_tail()}",
                                pytrace=False)
                time.sleep(0.05)


def connect(server, role="admin", **kwargs):
    """SmartConnect as one of the server's users (role key or (user, pwd) tuple)."""
    from pyVim.connect import SmartConnect

    user, pwd = server.users[role] if isinstance(role, str) else role
    return SmartConnect(host=server.host, port=server.port, user=user, pwd=pwd,
                        disableSslCertValidation=True, **kwargs)


# ---------------------------------------------------------------- fixtures


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if report.failed:
        for i, server in enumerate(getattr(item, "_vsess_servers", [])):
            report.sections.append(
                (f"vsess server #{i} log (tail, port {server.port})", server.log_tail()))


REPLICAS = int(os.environ.get("VSESS_REPLICAS", "0") or 0)


def _free_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def _wait_port(port, proc, what, log=lambda: ""):
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            with socket.create_connection((HOST, port), timeout=1):
                return
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} not accepting on {port}\n{log()}", pytrace=False)
            time.sleep(0.05)


class RedisServer:
    """redis-server on a free loopback port, with an append-only file."""

    def __init__(self, workdir):
        self.dir = pathlib.Path(workdir)
        self.port = _free_port()
        self.proc = None

    @property
    def url(self):
        return f"redis://{HOST}:{self.port}/0"

    def start(self):
        binary = os.environ.get("VSESS_REDIS_SERVER", "redis-server")
        self.proc = subprocess.Popen(
            [binary, "--bind", HOST, "--port", str(self.port), "--save", "",
             "--appendonly", "yes", "--dir", str(self.dir)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.proc, "redis-server")
        return self

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(STOP_TIMEOUT)


NGINX_CONF = """
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
events {{ worker_connections 1024; }}
http {{
  log_format upstream '$upstream_addr';
  access_log {dir}/access.log upstream;   # which replica served each request
  client_body_temp_path {dir}/body;
  proxy_temp_path {dir}/proxy;
  fastcgi_temp_path {dir}/fastcgi;
  uwsgi_temp_path {dir}/uwsgi;
  scgi_temp_path {dir}/scgi;
  upstream vsess {{
{servers}
    keepalive 16;
  }}
  server {{
    listen {host}:{port} ssl;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    client_max_body_size 0;          # vsess answers oversized bodies itself
    location / {{
      proxy_pass https://vsess;       # round-robin: each request to the next replica
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $http_host;
      proxy_ssl_verify off;           # loopback, and the replicas' certificate is nginx's own
      proxy_buffering off;
      proxy_request_buffering off;
    }}
  }}
}}
"""


class ReplicaSet:
    """N vsess replicas on one Redis behind nginx; looks like one VsessServer."""

    def __init__(self, root, n, config_file=None):
        self.root = pathlib.Path(root)
        self.host = HOST
        self.port = None
        self.users = {}
        self.config_file = config_file
        (self.root / "redis").mkdir()
        self.redis = RedisServer(self.root / "redis").start()
        self.replicas = []
        for i in range(n):
            d = self.root / f"replica-{i}"
            d.mkdir()
            self.replicas.append(VsessServer(d, config_file, store=self.redis.url))
        self.nginx = None

    @property
    def url(self):
        return f"https://{self.host}:{self.port}/sdk"

    @property
    def data_dir(self):
        return self.replicas[0].data_dir

    @property
    def log(self):
        return "".join(r.log for r in self.replicas)

    def log_tail(self, n=LOG_TAIL_LINES):
        return "".join(f"--- replica {i}\n{r.log_tail(n // len(self.replicas))}"
                       for i, r in enumerate(self.replicas))

    def add_user(self, name, role, password=None):
        password = password or secrets.token_urlsafe(18)
        add_user(self.data_dir, name, role, password, store=self.redis.url)
        return name, password

    def connect(self, role="admin", **kwargs):
        return connect(self, role, **kwargs)

    def start(self):
        # The first replica makes the certificate; the others and nginx use it too.
        first = self.replicas[0]
        first.start()
        for r in self.replicas[1:]:
            for f in ("server.crt", "server.key"):
                src, dst = first.data_dir / f, r.data_dir / f
                dst.write_bytes(src.read_bytes())
                dst.chmod(0o600)
            r.start()
        if self.nginx is None or self.nginx.poll() is not None:
            self._start_nginx()
        return self

    def _start_nginx(self):
        ndir = self.root / "nginx"
        ndir.mkdir(exist_ok=True)
        self.port = self.port or _free_port()
        conf = ndir / "nginx.conf"
        conf.write_text(NGINX_CONF.format(
            dir=ndir, host=HOST, port=self.port,
            servers="\n".join(f"    server {HOST}:{r.port};" for r in self.replicas),
            cert=self.data_dir / "server.crt", key=self.data_dir / "server.key"))
        binary = os.environ.get("VSESS_NGINX", "nginx")
        self.nginx = subprocess.Popen(
            [binary, "-p", str(ndir), "-c", str(conf), "-g", "daemon off;"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        _wait_port(self.port, self.nginx, "nginx",
                   lambda: (ndir / "error.log").read_text(errors="replace")
                   if (ndir / "error.log").exists() else "")

    def served(self):
        """Requests served so far, by replica port (from nginx's access log)."""
        log = self.root / "nginx" / "access.log"
        counts = {r.port: 0 for r in self.replicas}
        if log.exists():
            for line in log.read_text().split():
                port = line.rstrip(",").rsplit(":", 1)[-1]
                if port.isdigit() and int(port) in counts:
                    counts[int(port)] += 1
        return counts

    def stop(self):
        for r in self.replicas:
            r.stop()

    def restart(self):
        for r in self.replicas:
            r.restart()
        return self

    def kill9_and_restart(self):
        for r in self.replicas:
            r.kill9_and_restart()
        return self

    def _kill(self):
        for r in self.replicas:
            r._kill()
        if self.nginx is not None and self.nginx.poll() is None:
            self.nginx.terminate()
            self.nginx.wait(STOP_TIMEOUT)
        self.redis.stop()


@pytest.fixture
def vsess_factory(request, tmp_path_factory):
    """Start fresh servers: ``vsess_factory(config_toml=None)``."""
    servers = []
    request.node._vsess_servers = servers

    def factory(config_toml=None):
        data_dir = tmp_path_factory.mktemp("vsess-data")
        config_file = None
        if config_toml is not None:
            config_file = data_dir.parent / f"{data_dir.name}.toml"
            config_file.write_text(config_toml)
        if REPLICAS >= 2:
            server = ReplicaSet(data_dir, REPLICAS, config_file)
        else:
            server = VsessServer(data_dir, config_file)
        for key, (name, role) in USERS.items():
            server.users[key] = server.add_user(name, role)
        servers.append(server)
        server.start()
        return server

    yield factory
    errors = []
    for server in servers:
        if isinstance(server, ReplicaSet) and server.nginx is not None:
            counts = server.served()
            if sum(counts.values()) >= 3 * len(counts) and 0 in counts.values():
                errors.append(f"requests were not spread over the replicas: {counts}")
        try:
            server.stop()
        except AssertionError as e:
            errors.append(str(e))
        finally:
            server._kill()
    if errors:
        pytest.fail("; ".join(errors), pytrace=False)


@pytest.fixture
def vsess(vsess_factory):
    """A fresh server with admin/reader/noaccess users."""
    return vsess_factory()


@pytest.fixture(name="connect")
def connect_fixture():
    """``connect(server, role="admin")`` -> SmartConnect ServiceInstance."""
    return connect


# ------------------------------------------------------------------ govmomi peers (govc, vcsim)

VCSIM_URL = re.compile(r"GOVC_URL=(https://\S*@127\.0\.0\.1:(\d+)/sdk)")


def _peer(env_var, name):
    explicit = os.environ.get(env_var)
    if explicit:
        path = pathlib.Path(explicit)
    else:
        peers = os.environ.get("VSESS_PEERS_DIR") or os.path.expanduser("~/.cache/vsess-peers")
        path = pathlib.Path(peers) / "govmomi" / "bin" / name
    if not (path.is_file() and os.access(path, os.X_OK)):
        source = f"${env_var}" if explicit else "${VSESS_PEERS_DIR:-~/.cache/vsess-peers}"
        pytest.fail(f"{name} not found or not executable at {path} (from {source}); "
                    "build it with scripts/peers/govmomi.sh (scripts/test does this first) "
                    f"or set {env_var}", pytrace=False)
    return str(path)


@pytest.fixture(scope="session")
def govc_bin():
    return _peer("GOVC_BIN", "govc")


@pytest.fixture(scope="session")
def vcsim_bin():
    return _peer("VCSIM_BIN", "vcsim")


class Vcsim:
    """One `vcsim -l 127.0.0.1:0` process."""

    def __init__(self, binary, log_path):
        self.binary = binary
        self.log_path = log_path
        self.proc = None
        self.port = None
        self.host = HOST

    def start(self):
        cmd = [self.binary, "-l", f"{HOST}:0"]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=log, text=True, errors="replace", bufsize=1)
        found = {}
        ready = threading.Event()
        lines = []
        proc = self.proc

        def reader():
            for line in proc.stdout:
                lines.append(line)
                m = VCSIM_URL.search(line)
                if m and not ready.is_set():
                    found["port"] = int(m.group(2))
                    ready.set()
            ready.set()  # EOF: vcsim is gone

        threading.Thread(target=reader, name=f"vcsim-{proc.pid}", daemon=True).start()
        if not ready.wait(START_TIMEOUT) or "port" not in found:
            self.stop()
            pytest.fail(f"`{' '.join(cmd)}` printed no GOVC_URL on 127.0.0.1 within "
                        f"{START_TIMEOUT}s (exit {proc.returncode})\nstdout: {''.join(lines)}\n"
                        f"stderr: {self.log_path.read_text(errors='replace')[-4000:]}",
                        pytrace=False)
        self.port = found["port"]
        return self

    def stop(self):
        proc = self.proc
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(STOP_TIMEOUT)


@pytest.fixture
def vcsim(vcsim_bin, tmp_path):
    sim = Vcsim(vcsim_bin, tmp_path / "vcsim.log").start()
    yield sim
    sim.stop()
