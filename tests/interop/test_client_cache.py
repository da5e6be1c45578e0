"""The vsess client SDK's govmomi-compatible session cache, through its examples, against a
real `vsess serve` and a real vcsim, and shared with real govc 0.24.2.

`cached_login` (crates/client/examples/cached_login.rs) logs in through
`vsess_client::cache::Session` and prints one line, `new <key>` or `reused <key>`, where key is
the UserSession key. It reads GOVC_URL, GOVC_INSECURE and GOVMOMI_HOME, like govc.
`list_sessions` lists the server's sessions, logging in through the same cache.

What is checked, against both servers unless noted:
- many processes started at once share one login (the per-endpoint lock file);
- the cache files: govmomi's two names (SHA-256, 64 hex, and SHA-1, 40 hex, of
  "https://<user>@<host:port>/sdk#insecure=true"), mode 0600 in a 0700 directory, and
  never the password;
- govc -> SDK: a session govc cached is reused by the SDK, and SDK -> govc: a session the SDK
  cached is reused by govc. In both cases the server ends up with exactly one session for the
  user, counted with pyVmomi's sessionList as a second user (vsess: a second Admin; vcsim
  accepts any user and password);
- a corrupt cache file is replaced.
Two tests guard bugs found while writing this suite: the corrupt-file warning reaches
stderr, and a newer session govc 0.24 wrote under the SHA-1 name is picked up even when the
SHA-256 file holds a dead one.

Binaries: the examples from $VSESS_EXAMPLES_DIR (default <repo>/target/debug/examples; build
them with `cargo build -p vsess-client --examples`), govc from $GOVC_BIN and vcsim from
$VCSIM_BIN (default ${VSESS_PEERS_DIR:-~/.cache/vsess-peers}/govmomi/bin, built by
scripts/peers/govmomi.sh). A missing binary fails the tests; nothing is skipped. vcsim is started
with `-l 127.0.0.1:0` (the kernel picks a free port) and prints its URL on stdout.
"""

import hashlib
import json
import os
import pathlib
import re
import stat
import subprocess
import urllib.parse

import pytest

REPO = pathlib.Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
RUN_TIMEOUT = 60
CONCURRENT = 20
SCRUB_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "RUST_LOG")
LINE = re.compile(r"^(new|reused) (\S+)$")
SHA256_NAME = re.compile(r"^[0-9a-f]{64}$")
SHA1_NAME = re.compile(r"^[0-9a-f]{40}$")


# ------------------------------------------------------------------ binaries


@pytest.fixture(scope="session")
def examples():
    """{name: path} of the SDK's example binaries; fails (never skips) when one is missing."""
    explicit = os.environ.get("VSESS_EXAMPLES_DIR")
    folder = pathlib.Path(explicit) if explicit else REPO / "target" / "debug" / "examples"
    found = {}
    for name in ("cached_login", "list_sessions"):
        path = folder / name
        if not (path.is_file() and os.access(path, os.X_OK)):
            source = "$VSESS_EXAMPLES_DIR" if explicit else "the default"
            pytest.fail(f"example binary {name} not found or not executable at {path} "
                        f"(from {source}); build the examples with "
                        "`cargo build -p vsess-client --examples` or set VSESS_EXAMPLES_DIR",
                        pytrace=False)
        found[name] = str(path)
    return found


# ------------------------------------------------------------------ vcsim


# ------------------------------------------------------------------ targets


class Target:
    """A server, the user whose sessions are cached, and a second user who counts them."""

    def __init__(self, name, port, user, password, observer):
        self.name = name
        self.host = HOST
        self.port = port
        self.user = user
        self.password = password
        self.observer = observer

    def url(self, password=True):
        userinfo = urllib.parse.quote(self.user, safe="")
        if password:
            userinfo += ":" + urllib.parse.quote(self.password, safe="")
        return f"https://{userinfo}@{self.host}:{self.port}/sdk"

    def key_string(self, path="/sdk"):
        """What govmomi's session/cache hashes to name a file (no password, insecure=true)."""
        user = urllib.parse.quote(self.user, safe="-_.~$&+,;=")  # Go's url.User escaping
        return f"https://{user}@{self.host}:{self.port}{path}#insecure=true"

    def file_names(self, path="/sdk"):
        key = self.key_string(path).encode()
        return hashlib.sha256(key).hexdigest(), hashlib.sha1(key).hexdigest()

    def sessions(self):
        """Sorted keys of the user's sessions in sessionList, read by the observer."""
        from pyVim.connect import Disconnect, SmartConnect

        user, pwd = self.observer
        si = SmartConnect(host=self.host, port=self.port, user=user, pwd=pwd,
                          disableSslCertValidation=True)
        try:
            listed = si.content.sessionManager.sessionList
            return sorted(s.key for s in listed if s.userName == self.user)
        finally:
            Disconnect(si)


def vsess_target(server):
    user, password = server.users["admin"]
    # A second Admin (Sessions.TerminateSession) sees every session in sessionList.
    observer = server.add_user("watcher@vsphere.local", "Admin")
    return Target("vsess", server.port, user, password, observer)


def vcsim_target(sim):
    # vcsim accepts any non-empty user and password.
    return Target("vcsim", sim.port, "user", "pass", ("observer", "observer-pw"))


@pytest.fixture(params=["vsess", "vcsim"])
def target(request):
    if request.param == "vsess":
        return vsess_target(request.getfixturevalue("vsess"))
    return vcsim_target(request.getfixturevalue("vcsim"))


@pytest.fixture
def vsess_only(vsess):
    return vsess_target(vsess)


# ------------------------------------------------------------------ runner


class Runner:
    """Runs the examples and govc against one target; each `home` is its own GOVMOMI_HOME."""

    def __init__(self, examples, govc_bin, target, tmp_path):
        self.examples = examples
        self.govc_bin = govc_bin
        self.target = target
        self.tmp_path = tmp_path

    def home(self, name="default"):
        """The GOVMOMI_HOME path (not created: the SDK and govc create it)."""
        return self.tmp_path / f"govmomi-home-{name}"

    def sessions_dir(self, home="default"):
        return self.home(home) / "sessions"

    def cache_files(self, home="default"):
        new, old = self.target.file_names()
        d = self.sessions_dir(home)
        return d / new, d / old

    def env(self, home, password=True):
        env = {k: v for k, v in os.environ.items()
               if k not in SCRUB_VARS and not k.startswith(("GOVC_", "GOVMOMI_"))}
        env.update(GOVMOMI_HOME=str(self.home(home)), GOVC_INSECURE="1",
                   GOVC_URL=self.target.url(password), GOVC_FORMAT_ERROR="false")
        return env

    @staticmethod
    def shown(cmd, home, proc):
        return (f"$ {cmd}   [home={home}] -> exit {proc.returncode}\n"
                f"--- stdout:\n{proc.stdout}--- stderr:\n{proc.stderr}")

    def start_cached_login(self, home="default"):
        return subprocess.Popen([self.examples["cached_login"]], env=self.env(home),
                                stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)

    def finish_cached_login(self, proc, home="default"):
        try:
            out, err = proc.communicate(timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        done = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        done.shown = self.shown("cached_login", home, done)
        assert done.returncode == 0, f"cached_login failed\n{done.shown}"
        lines = out.splitlines()
        assert len(lines) == 1, f"cached_login must print exactly one line\n{done.shown}"
        m = LINE.match(lines[0])
        assert m, f"cached_login printed neither `new <key>` nor `reused <key>`\n{done.shown}"
        done.kind, done.key = m.group(1), m.group(2)
        return done

    def cached_login(self, home="default"):
        return self.finish_cached_login(self.start_cached_login(home), home)

    def list_sessions(self, home):
        proc = subprocess.run([self.examples["list_sessions"]], env=self.env(home),
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
        proc.shown = self.shown("list_sessions", home, proc)
        assert proc.returncode == 0, f"list_sessions failed\n{proc.shown}"
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert lines and lines[0].split()[:3] == ["Key", "Name", "Idle"], proc.shown
        rows = []
        for line in lines[1:]:
            key, name, idle = line.split()[:3]
            rows.append({"key": key, "name": name, "idle": idle})
        return rows, proc

    def govc(self, *args, home="default", password=True):
        proc = subprocess.run([self.govc_bin, *args], env=self.env(home, password),
                              capture_output=True, text=True, timeout=RUN_TIMEOUT)
        pw = "yes" if password else "none"
        proc.shown = self.shown(f"govc {' '.join(args)}   [password={pw}]", home, proc)
        assert proc.returncode == 0, f"govc failed\n{proc.shown}"
        return proc

    def govc_current_key(self, home="default", password=False):
        proc = self.govc("session.ls", "-json", home=home, password=password)
        assert proc.stdout.strip(), f"session.ls -json printed nothing\n{proc.shown}"
        data = json.loads(proc.stdout)
        assert data.get("CurrentSession"), f"no CurrentSession\n{proc.shown}"
        return data["CurrentSession"]["Key"]


@pytest.fixture
def run(examples, govc_bin, target, tmp_path):
    return Runner(examples, govc_bin, target, tmp_path)


@pytest.fixture
def run_vsess(examples, govc_bin, vsess_only, tmp_path):
    return Runner(examples, govc_bin, vsess_only, tmp_path)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def cookie_of(path):
    doc = json.loads(path.read_text())
    cookies = [c for c in doc["SoapClient"]["Cookies"] if c["Name"] == "vmware_soap_session"]
    assert len(cookies) == 1, f"{path}: {doc['SoapClient']}"
    return cookies[0]["Value"]


# ------------------------------------------------------------------ tests


def test_new_then_reused(run, target):
    first = run.cached_login()
    assert first.kind == "new", first.shown
    second = run.cached_login()
    assert second.kind == "reused", second.shown
    assert second.key == first.key, f"{first.shown}\n{second.shown}"
    assert target.sessions() == [first.key]

    # list_sessions in another GOVMOMI_HOME logs in once more and marks its own session '.'.
    rows, proc = run.list_sessions(home="lister")
    mine = [r for r in rows if r["name"] == target.user]
    assert sorted(r["key"] for r in mine if r["idle"] != ".") == [first.key], proc.shown
    own = [r["key"] for r in mine if r["idle"] == "."]
    assert len(own) == 1 and own[0] != first.key, proc.shown
    assert target.sessions() == sorted([first.key, own[0]])


def test_concurrent_cached_logins_create_one_session(run, target):
    procs = [run.start_cached_login() for _ in range(CONCURRENT)]
    results = [run.finish_cached_login(p) for p in procs]
    shown = "\n".join(r.shown for r in results)
    kinds = sorted(r.kind for r in results)
    assert kinds.count("new") == 1 and kinds.count("reused") == CONCURRENT - 1, (
        f"expected 1 new and {CONCURRENT - 1} reused, got {kinds}\n{shown}")
    keys = {r.key for r in results}
    assert len(keys) == 1, f"all processes must share one session, got {keys}\n{shown}"
    assert target.sessions() == sorted(keys), "the server has exactly one session for the user"
    # The lock and vsess's hint are separate hidden files; no temp file is left behind.
    names = sorted(p.name for p in run.sessions_dir().iterdir())
    new, old = target.file_names()
    assert names == sorted([new, old, f".{new}.lock", f".{new}.vsess.json"]), names


def test_cache_files_are_private_and_hold_no_password(run, target):
    home = run.home()
    assert not home.exists()
    first = run.cached_login()
    assert first.kind == "new", first.shown

    new, old = run.cache_files()
    assert SHA256_NAME.match(new.name) and SHA1_NAME.match(old.name)
    for path in (new, old):
        assert path.is_file(), f"missing cache file {path.name} (govmomi key " \
                               f"{target.key_string()!r}); found {sorted(os.listdir(path.parent))}"
        assert mode(path) == 0o600, f"{path.name}: mode {oct(mode(path))}"
    assert mode(run.sessions_dir()) == 0o700, oct(mode(run.sessions_dir()))
    lock = run.sessions_dir() / f".{new.name}.lock"
    assert lock.is_file() and mode(lock) == 0o600, sorted(os.listdir(run.sessions_dir()))

    assert new.read_bytes() == old.read_bytes(), "both names hold the same session"
    forbidden = {target.password, urllib.parse.quote(target.password, safe="")}
    for path in home.rglob("*"):
        if path.is_file():
            text = path.read_text(errors="replace")
            for s in forbidden:
                assert s not in text, f"{path} contains the password"
    doc = json.loads(new.read_text())
    url = doc["SoapClient"]["URL"]
    assert (url["Scheme"], url["Host"], url["Path"]) == (
        "https", f"{target.host}:{target.port}", "/sdk"), doc["SoapClient"]
    assert doc["ServiceContent"]["sessionManager"] == {
        "Type": "SessionManager", "Value": "SessionManager"}, doc["ServiceContent"]
    cookie = cookie_of(new)
    assert cookie, doc["SoapClient"]
    if target.name == "vsess":
        # vsess keeps the secret cookie distinct from the public UserSession.key.
        assert cookie != first.key

    # vsess's hint beside govc's file: private, and it names the cookie only by its digest.
    hint = run.sessions_dir() / f".{new.name}.vsess.json"
    assert hint.is_file() and mode(hint) == 0o600, sorted(os.listdir(run.sessions_dir()))
    hint_doc = json.loads(hint.read_text())
    assert hint_doc["cookie_sha256"] == hashlib.sha256(cookie.encode()).hexdigest(), hint_doc
    if target.name == "vsess":
        # (vcsim's cookie is the session's key, which the hint's UserSession holds.)
        assert cookie.strip('"') not in hint.read_text(), "the hint holds the session cookie"

    # A sessions directory that exists with lax permissions is tightened to 0700.
    lax = run.sessions_dir("lax")
    lax.mkdir(parents=True)
    os.chmod(lax, 0o755)
    lax_login = run.cached_login(home="lax")
    assert lax_login.kind == "new", lax_login.shown  # another GOVMOMI_HOME, another session
    assert mode(lax) == 0o700, oct(mode(lax))
    for path in run.cache_files("lax"):
        assert mode(path) == 0o600, f"{path}: {oct(mode(path))}"


def test_govc_session_is_reused_by_the_sdk(run, target):
    run.govc("session.login")
    # govc 0.24.2 writes only the SHA-1 name: exactly the one the SDK computes.
    new, old = run.cache_files()
    listing = sorted(os.listdir(run.sessions_dir()))
    assert listing == [old.name], (
        f"govc wrote {listing}; the SDK expects {old.name} for {target.key_string()!r}")
    govc_key = run.govc_current_key(password=False)

    login = run.cached_login()
    assert (login.kind, login.key) == ("reused", govc_key), (
        f"the SDK must reuse govc's session {govc_key}\n{login.shown}")
    assert target.sessions() == [govc_key], "still one session for the user"
    # And govc keeps using it.
    assert run.govc_current_key(password=False) == govc_key


def test_sdk_session_is_reused_by_govc(run, target):
    first = run.cached_login()
    assert first.kind == "new", first.shown

    # Same GOVMOMI_HOME and URL (with the password): govc would log in if it could not use the
    # file the SDK wrote; the session count shows it did not.
    run.govc("session.ls")
    assert target.sessions() == [first.key], "govc logged in instead of reusing the cache"
    # Without a password govc can only use the cached session.
    assert run.govc_current_key(password=False) == first.key
    assert target.sessions() == [first.key]
    # govc did not rewrite the file with another session.
    assert cookie_of(run.cache_files()[1]) == cookie_of(run.cache_files()[0])
    again = run.cached_login()
    assert (again.kind, again.key) == ("reused", first.key), again.shown


def test_corrupt_cache_is_replaced(run, target):
    first = run.cached_login()
    assert first.kind == "new", first.shown
    for path in run.cache_files():
        path.write_text("{not json")

    second = run.cached_login()
    assert second.kind == "new", f"a corrupt cache cannot be reused\n{second.shown}"
    assert second.key != first.key
    for path in run.cache_files():
        json.loads(path.read_text())  # replaced by a good file
        assert mode(path) == 0o600

    third = run.cached_login()
    assert (third.kind, third.key) == ("reused", second.key), third.shown


def test_corrupt_current_name_falls_back_to_the_old_name(run_vsess):
    first = run_vsess.cached_login()
    new, _old = run_vsess.cache_files()
    new.write_text("\x00garbage")
    second = run_vsess.cached_login()
    assert (second.kind, second.key) == ("reused", first.key), (
        f"the SHA-1 file still holds a valid session\n{second.shown}")
    assert run_vsess.target.sessions() == [first.key]


def test_corrupt_cache_warns_on_stderr(run_vsess):
    run_vsess.cached_login()
    for path in run_vsess.cache_files():
        path.write_text("{not json")
    second = run_vsess.cached_login()
    assert second.kind == "new", second.shown
    assert "corrupt" in second.stderr.lower(), (
        f"a corrupt cache file must be reported on stderr\n{second.shown}")


def test_sdk_picks_up_a_newer_govc_session_over_its_own_stale_file(run, target):
    first = run.cached_login()
    assert first.kind == "new", first.shown
    run.govc("session.logout", password=False)     # ends the SDK's session
    run.govc("session.login")                      # govc logs in again, writes only SHA-1
    govc_key = run.govc_current_key(password=False)
    assert govc_key != first.key

    login = run.cached_login()
    sessions = target.sessions()
    assert (login.kind, login.key, sessions) == ("reused", govc_key, [govc_key]), (
        f"expected the SDK to reuse govc's session {govc_key}; the server has {sessions}\n"
        f"{login.shown}")
