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


def add_user(data_dir, name, role, password):
    """Run `vsess user add NAME --role ROLE --password-stdin --data-dir DIR`."""
    _require_binary()
    proc = subprocess.run(
        [VSESS_BIN, "user", "add", name, "--role", role,
         "--password-stdin", "--data-dir", str(data_dir)],
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

    def __init__(self, data_dir, config_file=None):
        self.host = HOST
        self.port = None
        self.data_dir = pathlib.Path(data_dir)
        self.config_file = config_file
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
        add_user(self.data_dir, name, role, password)
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
        server = VsessServer(data_dir, config_file)
        for key, (name, role) in USERS.items():
            server.users[key] = server.add_user(name, role)
        servers.append(server)
        server.start()
        return server

    yield factory
    errors = []
    for server in servers:
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
