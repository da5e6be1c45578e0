"""The `vsess` command line's session commands (login, whoami, ls, rm, logout) against a real
`vsess serve` and a real vcsim (govmomi 0.24.2), checked with pyVmomi, govc and plain HTTP.

What is checked:
- against vsess (users admin, reader, noaccess from conftest.py):
  - login prints the UserSession key, and a second login reuses the cached session;
  - whoami (text and --json), ls (the table and --json; the current session's Idle is '.');
  - rm KEY of another own session (it is gone from ls, and pyVmomi's next call on it raises
    NotAuthenticated), of an unknown key (exit 1 with a message) and of the current session
    (refused, exit 2); logout, after which ls exits 5 with "not logged in";
  - credentials from VSESS_URL/VSESS_USERNAME/VSESS_PASSWORD/VSESS_INSECURE, from GOVC_URL with
    user:password in it and GOVC_INSECURE=1, and from --password-stdin; no password is ever
    written to current.json or to the govmomi cache;
  - failures and their exit codes: a wrong password (5), a closed port (3), the self-signed
    certificate without -k (4, with a hint at the thumbprint and the insecure flag), a wrong
    thumbprint (4), no URL at all (2); the right --thumbprint (as `vsess serve` prints it, and
    computed from <data_dir>/server.crt) works without -k and is remembered;
  - the leak scenario: reader leaks 50 sessions (25 SOAP logins through pyVmomi, 25
    POST /api/session) while admin holds 3. As reader, `ls --json` shows the 50 and the current
    one and none of admin's; `rm --idle 0s` ends exactly the 50; every leaked id is then dead on
    SOAP (NotAuthenticated) and on GET /api/session (401); admin's 3 sessions are untouched
    (pyVmomi sessionList as admin, before and after);
  - `ls --all` and `rm --idle 0s --all` are refused for reader; `ls --all` as admin shows
    everyone's sessions, plain `ls` only admin's;
- against vcsim (which accepts any user and password; ls and rm use sessionList and
  TerminateSession there): login, whoami, ls, rm KEY of a pyVmomi session, rm --idle 0s of a
  govc and a pyVmomi session (never the current one, never another user's), rm of an unknown
  key and of the current session, logout, and TLS without -k.

Every test runs the CLI with its own GOVMOMI_HOME, XDG_CONFIG_HOME and HOME under tmp_path, and
with no inherited GOVC_*, GOVMOMI_*, VSESS_* or CA-bundle variables. Binaries: vsess is
$VSESS_BIN (default <repo>/target/debug/vsess; `cargo build -p vsess-cli`), govc $GOVC_BIN and
vcsim $VCSIM_BIN (default ${VSESS_PEERS_DIR:-~/.cache/vsess-peers}/govmomi/bin, built by
scripts/peers/govmomi.sh). A missing binary fails the tests; nothing is skipped. Everything
listens on and talks to 127.0.0.1 only. There are no sleeps.
"""

import hashlib
import json
import os
import pathlib
import re
import socket
import ssl
import subprocess
import urllib.parse

import pytest
import requests
import urllib3
from pyVim.connect import SmartConnect
from pyVmomi import vim

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

REPO = pathlib.Path(__file__).resolve().parents[2]
VSESS_BIN = os.environ.get("VSESS_BIN", str(REPO / "target" / "debug" / "vsess"))
HOST = "127.0.0.1"
RUN_TIMEOUT = 120
HTTP_TIMEOUT = 30
SCRUB_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "RUST_LOG")
SCRUB_PREFIXES = ("GOVC_", "GOVMOMI_", "VSESS_")
LS_HEADER = ["Key", "Name", "Created", "Idle", "Host", "Agent"]
LOGIN_LINE = re.compile(r"^Logged in to (\S+) as (\S+) \(session (\S+), "
                        r"(new session|cached session reused)\)$")
FINGERPRINT_LINE = re.compile(r"TLS certificate SHA-256 fingerprint: ([0-9A-Fa-f:]+)")
UNKNOWN_KEY = "52a1b2c3-dead-beef-0000-000000000000"
SESSION_HEADER = "vmware-api-session-id"
LEAK_SOAP = 25
LEAK_REST = 25
LEAK_REST_AGENT = "vsess-cli-test-leak/1.0"
ADMIN = "admin@vsphere.local"
READER = "reader@vsphere.local"


# ------------------------------------------------------------------ binaries


@pytest.fixture(scope="session")
def vsess_bin():
    if not os.access(VSESS_BIN, os.X_OK):
        pytest.fail(f"vsess binary not found or not executable: {VSESS_BIN} "
                    "(build it with `cargo build -p vsess-cli` or set VSESS_BIN)", pytrace=False)
    return VSESS_BIN


# ------------------------------------------------------------------ vcsim


# ------------------------------------------------------------------ the CLI


class Cli:
    """Runs `vsess` with its own GOVMOMI_HOME, XDG_CONFIG_HOME and HOME (one 'user')."""

    def __init__(self, binary, root):
        self.binary = binary
        self.root = root
        self.govmomi_home = root / "govmomi"
        self.config_home = root / "config"
        self.home = root / "home"
        self.home.mkdir(parents=True)

    @property
    def current_json(self):
        # The remembered server lives with the sessions when GOVMOMI_HOME is set.
        return self.govmomi_home / "vsess-current.json"

    def env(self, extra=None):
        env = {k: v for k, v in os.environ.items()
               if k not in SCRUB_VARS and not k.startswith(SCRUB_PREFIXES)}
        env.update(GOVMOMI_HOME=str(self.govmomi_home), XDG_CONFIG_HOME=str(self.config_home),
                   HOME=str(self.home))
        env.update(extra or {})
        return env

    def run(self, *args, stdin=None, env=None):
        try:
            proc = subprocess.run([self.binary, *args], env=self.env(env),
                                  input=stdin if stdin is not None else "",
                                  capture_output=True, text=True, timeout=RUN_TIMEOUT)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"`vsess {' '.join(args)}` did not finish in {RUN_TIMEOUT}s\n"
                                 f"stdout: {e.stdout}\nstderr: {e.stderr}") from None
        shown_env = " ".join(f"{k}={v}" for k, v in sorted((env or {}).items()))
        proc.shown = (f"$ {shown_env + ' ' if shown_env else ''}vsess {' '.join(args)}"
                      f"{'   [stdin given]' if stdin is not None else ''}"
                      f"   [root={self.root.name}] -> exit {proc.returncode}\n"
                      f"--- stdout:\n{proc.stdout}--- stderr:\n{proc.stderr}")
        return proc

    def ok(self, *args, **kwargs):
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 0, f"expected exit 0\n{proc.shown}"
        return proc

    def fails(self, code, *args, **kwargs):
        proc = self.run(*args, **kwargs)
        assert proc.returncode == code, f"expected exit {code}\n{proc.shown}"
        assert proc.stderr.strip(), f"a failure must say why on stderr\n{proc.shown}"
        return proc

    def login(self, *args, **kwargs):
        """`vsess login ARGS`, exit 0; returns (proc, key, reused)."""
        proc = self.ok("login", *args, **kwargs)
        lines = proc.stdout.splitlines()
        assert len(lines) == 1, f"login prints one line\n{proc.shown}"
        m = LOGIN_LINE.match(lines[0])
        assert m, f"unexpected login line\n{proc.shown}"
        assert m.group(3) in proc.stdout
        return proc, m.group(3), m.group(4) == "cached session reused"

    def ls_json(self, *args, **kwargs):
        proc = self.ok("ls", "--json", *args, **kwargs)
        try:
            rows = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError(f"ls --json printed no JSON\n{proc.shown}") from None
        assert isinstance(rows, list), proc.shown
        for r in rows:
            assert {"key", "userName", "loginTime", "idleSeconds", "ipAddress", "userAgent",
                    "current"} <= set(r), f"ls --json row lacks fields: {r}\n{proc.shown}"
            assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r["loginTime"]), \
                f"ls --json loginTime must be RFC 3339 in UTC: {r['loginTime']!r}\n{proc.shown}"
        return rows, proc

    def ls_table(self, *args, **kwargs):
        """`vsess ls` -> (rows as dicts, proc); checks the header."""
        proc = self.ok("ls", *args, **kwargs)
        lines = [line for line in proc.stdout.splitlines() if line.strip()]
        assert lines and lines[0].split() == LS_HEADER, f"ls header must be {LS_HEADER}\n" \
                                                        f"{proc.shown}"
        rows = []
        for line in lines[1:]:
            parts = line.split(None, 6)
            assert len(parts) >= 6, f"short ls row {line!r}\n{proc.shown}"
            key, name, day, clock, idle, host = parts[:6]
            assert re.fullmatch(r"\d{4}-\d\d-\d\d", day) and re.fullmatch(r"\d\d:\d\d", clock), \
                f"Created must be 'YYYY-MM-DD HH:MM' in {line!r}\n{proc.shown}"
            rows.append({"key": key, "name": name, "created": f"{day} {clock}", "idle": idle,
                         "host": host, "agent": parts[6] if len(parts) > 6 else ""})
        return rows, proc

    def rm_ended(self, proc):
        """The keys listed under 'ended N session(s)'; checks that N matches."""
        lines = proc.stdout.splitlines()
        assert lines, f"rm printed nothing\n{proc.shown}"
        m = re.fullmatch(r"ended (\d+) sessions?", lines[0])
        assert m, f"rm must start with 'ended N sessions'\n{proc.shown}"
        keys = [line.strip() for line in lines[1:] if line.strip()]
        assert int(m.group(1)) == len(keys), f"count and listed keys disagree\n{proc.shown}"
        return keys


@pytest.fixture
def cli(vsess_bin, tmp_path):
    """``cli(name="default")`` -> a Cli with its own homes under tmp_path."""
    made = {}

    def make(name="default"):
        assert name not in made, name
        made[name] = Cli(vsess_bin, tmp_path / f"cli-{name}")
        return made[name]

    return make


# ------------------------------------------------------------------ helpers


def https(server):
    return f"https://{server.host}:{server.port}"


def smart_connect(server, user, pwd):
    return SmartConnect(host=server.host, port=server.port, user=user, pwd=pwd,
                        disableSslCertValidation=True)


def soap_attach(server, sid):
    return SmartConnect(host=server.host, port=server.port, sessionId=sid,
                        disableSslCertValidation=True)


def soap_sid(si):
    return si._GetStub().GetSessionId()


def key_of(si):
    s = si.content.sessionManager.currentSession
    assert s is not None, "pyVmomi session has no currentSession"
    return s.key


def assert_soap_dead(si, what):
    try:
        si.content.sessionManager.message  # noqa: B018 - an authenticated read
    except vim.fault.NotAuthenticated:
        return
    except Exception as e:  # noqa: BLE001 - show what came instead
        raise AssertionError(f"{what}: expected vim.fault.NotAuthenticated, got "
                             f"{type(e).__name__}: {e}") from None
    raise AssertionError(f"{what}: the session still works on SOAP")


def http():
    s = requests.Session()
    s.verify = False
    s.trust_env = False
    return s


def api_login(server, user, pwd, agent=LEAK_REST_AGENT):
    with http() as s:
        r = s.post(https(server) + "/api/session", auth=(user, pwd),
                   headers={"User-Agent": agent}, timeout=HTTP_TIMEOUT)
    assert r.status_code == 201, f"POST /api/session: {r.status_code} {r.text}"
    sid = r.json()
    assert isinstance(sid, str) and sid, r.text
    return sid


def api_get_session(server, sid):
    with http() as s:
        return s.get(https(server) + "/api/session", headers={SESSION_HEADER: sid},
                     timeout=HTTP_TIMEOUT)


def canonical_user(name):
    """'DOMAIN\\user' and 'user@domain' name the same account: compare them as user@domain."""
    name = name.strip().lower()
    if "\\" in name:
        domain, user = name.split("\\", 1)
        return f"{user}@{domain}"
    return name


def session_list(si):
    """{key: userName} from SessionManager.sessionList."""
    return {s.key: s.userName for s in si.content.sessionManager.sessionList}


def keys_of_user(listing, user):
    return {k for k, u in listing.items() if canonical_user(u) == canonical_user(user)}


def url_with(server, user=None, pwd=None):
    userinfo = ""
    if user is not None:
        userinfo = urllib.parse.quote(user, safe="")
        if pwd is not None:
            userinfo += ":" + urllib.parse.quote(pwd, safe="")
        userinfo += "@"
    return f"https://{userinfo}{server.host}:{server.port}/sdk"


def closed_port():
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def assert_no_secret(cli, secret):
    """Neither current.json nor anything under GOVMOMI_HOME holds the password."""
    forbidden = {secret, urllib.parse.quote(secret, safe="")}
    for root in (cli.config_home, cli.govmomi_home):
        for path in root.rglob("*"):
            if path.is_file():
                text = path.read_text(errors="replace")
                for s in forbidden:
                    assert s not in text, f"{path} contains the password"


def login_reader(cli, server, *extra):
    user, pwd = server.users["reader"]
    return cli.login(https(server), "-k", "--user", user, "--password-stdin", *extra,
                     stdin=pwd + "\n")


@pytest.fixture
def observer(vsess):
    """An admin pyVmomi session that reads sessionList (admin sees every session)."""
    return smart_connect(vsess, *vsess.users["admin"])


# ------------------------------------------------------------------ vsess: the basics


def test_login_whoami_ls_and_reuse(vsess, cli, observer):
    c = cli()
    proc, key, reused = login_reader(c, vsess)
    assert not reused, f"the first login must be a new session\n{proc.shown}"
    listing = session_list(observer)
    assert listing.get(key) is not None and canonical_user(listing[key]) == READER, (
        f"the printed key {key} must be reader's session on the server: {listing}")
    _, pwd = vsess.users["reader"]
    assert_no_secret(c, pwd)
    assert c.current_json.is_file(), "login must remember the server in current.json"

    proc2, key2, reused2 = login_reader(c, vsess)
    assert reused2 and key2 == key, f"a second login must reuse the cached session\n{proc2.shown}"
    assert "cached session reused" in proc2.stdout
    assert keys_of_user(session_list(observer), READER) == {key}, "no second session"

    who = c.ok("whoami")
    assert key in who.stdout and READER in who.stdout, who.shown
    who_json = json.loads(c.ok("whoami", "--json").stdout)
    assert who_json.get("userName") == READER and who_json.get("key") == key, who_json

    rows, proc = c.ls_table()
    assert [r["key"] for r in rows] == [key], proc.shown
    assert rows[0]["idle"] == ".", f"the current session's Idle must be '.'\n{proc.shown}"
    assert canonical_user(rows[0]["name"]) == READER, proc.shown
    assert rows[0]["host"] == HOST, proc.shown

    rows, proc = c.ls_json()
    assert len(rows) == 1, proc.shown
    row = rows[0]
    assert row["key"] == key and row["current"] is True, proc.shown
    assert canonical_user(row["userName"]) == READER, proc.shown
    assert row["ipAddress"] == HOST and isinstance(row["idleSeconds"], int), proc.shown
    assert row["loginTime"] == who_json["loginTime"], \
        f"ls --json and whoami --json must write the login time alike\n{who_json}\n{proc.shown}"
    # Nothing above logged in again.
    assert keys_of_user(session_list(observer), READER) == {key}


def test_rm_another_own_session(vsess, cli, observer):
    c = cli()
    _, key, _ = login_reader(c, vsess)
    other = smart_connect(vsess, *vsess.users["reader"])
    other_key = key_of(other)

    rows, proc = c.ls_json()
    by_key = {r["key"]: r for r in rows}
    assert set(by_key) == {key, other_key}, proc.shown
    assert by_key[key]["current"] is True and by_key[other_key]["current"] is False, proc.shown
    assert by_key[other_key]["userAgent"].lower().startswith("pyvmomi"), proc.shown
    table, proc = c.ls_table()
    idle = {r["key"]: r["idle"] for r in table}
    assert idle[key] == "." and re.fullmatch(r"\d+s|\d+m\d\ds", idle[other_key]), proc.shown

    rm = c.ok("rm", other_key)
    assert c.rm_ended(rm) == [other_key], rm.shown
    rows, proc = c.ls_json()
    assert [r["key"] for r in rows] == [key], f"{other_key} must be gone\n{proc.shown}"
    assert_soap_dead(other, f"session {other_key} after `vsess rm`")
    assert other_key not in session_list(observer)
    assert c.ok("whoami", "--json").stdout.count(key) == 1, "the current session lives on"


def test_rm_unknown_key_fails_with_a_message(vsess, cli, observer):
    c = cli()
    _, key, _ = login_reader(c, vsess)
    proc = c.run("rm", UNKNOWN_KEY)
    assert proc.returncode == 1, f"rm of an unknown key must fail (exit 1)\n{proc.shown}"
    assert UNKNOWN_KEY in proc.stderr, f"the message must name the key\n{proc.shown}"
    assert proc.stdout.strip() == "", f"nothing was ended\n{proc.shown}"
    # Someone else's key is "unknown" to a ReadOnly user, and stays alive.
    admin_key = key_of(observer)
    proc = c.run("rm", admin_key)
    assert proc.returncode == 1 and admin_key in proc.stderr, proc.shown
    assert admin_key in session_list(observer)
    assert key in session_list(observer)


def test_rm_current_session_is_refused(vsess, cli, observer):
    c = cli()
    _, key, _ = login_reader(c, vsess)
    proc = c.fails(2, "rm", key)
    assert "current session" in proc.stderr and "logout" in proc.stderr, proc.shown
    assert key in session_list(observer), "the current session must survive"
    assert json.loads(c.ok("whoami", "--json").stdout)["key"] == key


def test_rm_needs_keys_or_a_valid_duration(vsess, cli):
    c = cli()
    login_reader(c, vsess)
    assert "--idle" in c.fails(2, "rm").stderr
    assert "bogus" in c.fails(2, "rm", "--idle", "bogus").stderr


def test_logout_then_not_logged_in(vsess, cli, observer):
    c = cli()
    _, key, _ = login_reader(c, vsess)
    proc = c.ok("logout")
    assert key in proc.stdout, proc.shown
    assert key not in session_list(observer), "logout must end the session on the server"

    for args in (["ls"], ["ls", "--json"], ["whoami"], ["rm", "--idle", "0s"]):
        proc = c.fails(5, *args)
        assert "not logged in" in proc.stderr, proc.shown
        assert proc.stdout.strip() == "", proc.shown
    # A second logout has nothing to end, and says so.
    proc = c.ok("logout")
    assert "nothing to end" in proc.stdout.lower() or "no valid" in proc.stdout.lower(), proc.shown
    assert keys_of_user(session_list(observer), READER) == set(), "nothing logged in again"


# ------------------------------------------------------------------ vsess: credentials


def test_vsess_environment_variables(vsess, cli, observer):
    c = cli()
    user, pwd = vsess.users["reader"]
    env = {"VSESS_URL": https(vsess), "VSESS_USERNAME": user, "VSESS_PASSWORD": pwd,
           "VSESS_INSECURE": "1",
           # VSESS_* wins over GOVC_*: a GOVC_URL on a closed port must not be used.
           "GOVC_URL": f"https://nobody:nothing@{HOST}:{closed_port()}/sdk"}
    proc, key, reused = c.login(env=env)
    assert not reused, proc.shown
    assert f"{HOST}:{vsess.port}" in proc.stdout, proc.shown
    who = json.loads(c.ok("whoami", "--json", env=env).stdout)
    assert (who["userName"], who["key"]) == (user, key), who
    rows, proc = c.ls_json(env=env)
    assert [r["key"] for r in rows] == [key], f"ls with a password must reuse the cache\n" \
                                              f"{proc.shown}"
    # And without any variable, the remembered server and the cached session.
    assert json.loads(c.ok("whoami", "--json").stdout)["key"] == key
    assert keys_of_user(session_list(observer), user) == {key}
    assert_no_secret(c, pwd)


def test_govc_environment_variables(vsess, cli, observer):
    c = cli()
    user, pwd = vsess.users["reader"]
    env = {"GOVC_URL": url_with(vsess, user, pwd), "GOVC_INSECURE": "1"}
    proc, key, reused = c.login(env=env)
    assert not reused, proc.shown
    assert pwd not in proc.stdout + proc.stderr, f"the password must not be echoed\n{proc.shown}"
    who = json.loads(c.ok("whoami", "--json", env=env).stdout)
    assert (who["userName"], who["key"]) == (user, key), who
    assert json.loads(c.ok("whoami", "--json").stdout)["key"] == key
    assert keys_of_user(session_list(observer), user) == {key}
    assert_no_secret(c, pwd)


def test_password_stdin(vsess, cli, observer):
    c = cli()
    user, pwd = vsess.users["admin"]
    proc, key, reused = c.login(url_with(vsess), "-k", "-u", user, "--password-stdin",
                                stdin=pwd + "\n")
    assert not reused, proc.shown
    assert json.loads(c.ok("whoami", "--json").stdout)["userName"] == user
    assert key in session_list(observer)
    assert_no_secret(c, pwd)


def test_wrong_password_exits_5(vsess, cli, observer):
    c = cli()
    user, _ = vsess.users["reader"]
    proc = c.fails(5, "login", https(vsess), "-k", "-u", user, "--password-stdin",
                   stdin="not-the-password\n")
    assert "authentication failed" in proc.stderr.lower() or "incorrect" in proc.stderr.lower(), \
        proc.shown
    assert not c.current_json.exists(), "a failed login must not remember the server"
    assert keys_of_user(session_list(observer), user) == set()


def test_noaccess_user_cannot_log_in(vsess, cli, observer):
    c = cli()
    user, pwd = vsess.users["noaccess"]
    proc = c.run("login", https(vsess), "-k", "-u", user, "--password-stdin", stdin=pwd + "\n")
    assert proc.returncode not in (0, 2, 3, 4), proc.shown
    assert "permission" in proc.stderr.lower(), proc.shown
    assert not c.current_json.exists(), proc.shown
    assert keys_of_user(session_list(observer), user) == set()


def test_closed_port_exits_3(vsess, cli):
    c = cli()
    user, pwd = vsess.users["reader"]
    port = closed_port()
    proc = c.fails(3, "login", f"https://{HOST}:{port}", "-k", "-u", user, "--password-stdin",
                   stdin=pwd + "\n")
    assert "cannot connect" in proc.stderr.lower(), proc.shown
    assert not c.current_json.exists()


def test_self_signed_certificate_without_k_exits_4(vsess, cli, observer):
    c = cli()
    user, pwd = vsess.users["reader"]
    proc = c.fails(4, "login", https(vsess), "-u", user, "--password-stdin", stdin=pwd + "\n")
    low = proc.stderr.lower()
    assert "thumbprint" in low and "insecure" in low, (
        f"the TLS error must point at --thumbprint and the insecure flag\n{proc.shown}")
    assert not c.current_json.exists()
    assert keys_of_user(session_list(observer), user) == set(), "no Login may be sent"


def server_fingerprints(server):
    """(as `vsess serve` printed it, computed from <data_dir>/server.crt as lower-case hex)."""
    m = FINGERPRINT_LINE.search(server.log)
    assert m, f"`vsess serve` printed no 'TLS certificate SHA-256 fingerprint:' line\n{server.log}"
    printed = m.group(1)
    der = ssl.PEM_cert_to_DER_cert((server.data_dir / "server.crt").read_text())
    computed = hashlib.sha256(der).hexdigest()
    assert printed.replace(":", "").lower() == computed, (
        f"the printed fingerprint {printed} is not the SHA-256 of server.crt ({computed})")
    return printed, computed


def test_thumbprint_pins_the_certificate_without_k(vsess, cli, observer):
    printed, computed = server_fingerprints(vsess)
    user, pwd = vsess.users["reader"]
    keys = set()
    for name, thumb in (("printed", printed), ("computed", computed)):
        c = cli(name)
        proc, key, _ = c.login(https(vsess), "-u", user, "--password-stdin", "--thumbprint",
                               thumb, stdin=pwd + "\n")
        keys.add(key)
        # Remembered: later commands work without -k or --thumbprint.
        assert json.loads(c.ok("whoami", "--json").stdout)["key"] == key
        rows, proc = c.ls_json()
        assert key in {r["key"] for r in rows}, proc.shown
    assert keys <= set(session_list(observer))

    wrong = cli("wrong")
    proc = wrong.fails(4, "login", https(vsess), "-u", user, "--password-stdin", "--thumbprint",
                       "ab" * 32, stdin=pwd + "\n")
    assert "thumbprint" in proc.stderr.lower(), proc.shown
    assert printed in proc.stderr, f"the message should show what the server presented, " \
                                   f"as `vsess serve` prints it ({printed})\n{proc.shown}"


def test_missing_url_exits_2(vsess, cli):
    c = cli()
    user, pwd = vsess.users["reader"]
    for args in (["login"], ["ls"], ["whoami"], ["logout"], ["rm", "--idle", "0s"]):
        proc = c.fails(2, *args, env={"VSESS_USERNAME": user, "VSESS_PASSWORD": pwd})
        assert "no server" in proc.stderr.lower() and "url" in proc.stderr.lower(), proc.shown
    assert not c.current_json.exists()


# ------------------------------------------------------------------ vsess: the leak scenario


def test_leaked_sessions_are_listed_and_ended(vsess, cli):
    user, pwd = vsess.users["reader"]
    admin_user, admin_pwd = vsess.users["admin"]
    admins = [smart_connect(vsess, admin_user, admin_pwd) for _ in range(3)]
    admin_keys = {key_of(si) for si in admins}
    watch = admins[0]

    soap_leaks = [smart_connect(vsess, user, pwd) for _ in range(LEAK_SOAP)]
    soap_sids = [soap_sid(si) for si in soap_leaks]
    rest_sids = [api_login(vsess, user, pwd) for _ in range(LEAK_REST)]
    assert all(soap_sids) and len(set(soap_sids + rest_sids)) == LEAK_SOAP + LEAK_REST

    before = session_list(watch)
    leaked = keys_of_user(before, user)
    assert len(leaked) == LEAK_SOAP + LEAK_REST, f"sessionList as admin: {before}"
    assert keys_of_user(before, admin_user) == admin_keys
    soap_keys = {key_of(si) for si in soap_leaks}
    assert soap_keys <= leaked

    c = cli()
    _, me, _ = login_reader(c, vsess)
    assert me not in leaked

    rows, proc = c.ls_json()
    listed = {r["key"]: r for r in rows}
    assert len(rows) == len(listed) == LEAK_SOAP + LEAK_REST + 1, proc.shown
    assert set(listed) == leaked | {me}, (
        f"missing {sorted(leaked - set(listed))}, extra {sorted(set(listed) - leaked - {me})}")
    assert not set(listed) & admin_keys, "a ReadOnly user must not see admin's sessions"
    assert {canonical_user(r["userName"]) for r in rows} == {READER}
    assert [k for k, r in listed.items() if r["current"]] == [me], proc.shown
    agents = [r["userAgent"] for r in rows]
    assert sum(a.lower().startswith("pyvmomi") for a in agents) == LEAK_SOAP, agents
    assert agents.count(LEAK_REST_AGENT) == LEAK_REST, agents

    rm = c.ok("rm", "--idle", "0s")
    assert rm.stdout.splitlines()[0] == f"ended {LEAK_SOAP + LEAK_REST} sessions", rm.shown
    assert set(c.rm_ended(rm)) == leaked, rm.shown

    table, proc = c.ls_table()
    assert [(r["key"], r["idle"]) for r in table] == [(me, ".")], proc.shown

    for si, sid in zip(soap_leaks, soap_sids):
        assert_soap_dead(si, f"SOAP-leaked session {sid[:8]}...")
        r = api_get_session(vsess, sid)
        assert r.status_code == 401, f"GET /api/session, SOAP-leaked id: {r.status_code} {r.text}"
    for sid in rest_sids:
        r = api_get_session(vsess, sid)
        assert r.status_code == 401, f"GET /api/session, REST-leaked id: {r.status_code} {r.text}"
        assert_soap_dead(soap_attach(vsess, sid), f"REST-leaked session {sid[:8]}...")

    after = session_list(watch)
    assert keys_of_user(after, admin_user) == admin_keys, "admin's sessions must be untouched"
    assert keys_of_user(after, user) == {me}
    for si in admins:
        assert key_of(si) in admin_keys


def test_ls_all_needs_terminate_session(vsess, cli):
    reader_user, reader_pwd = vsess.users["reader"]
    admin_user, admin_pwd = vsess.users["admin"]
    admin_si = smart_connect(vsess, admin_user, admin_pwd)
    admin_py = key_of(admin_si)
    reader_si = smart_connect(vsess, reader_user, reader_pwd)
    reader_py = key_of(reader_si)

    r = cli("reader")
    _, reader_me, _ = login_reader(r, vsess)
    proc = r.run("ls", "--all")
    assert proc.returncode != 0, f"ls --all as ReadOnly must be refused\n{proc.shown}"
    assert "permission" in proc.stderr.lower() or "terminatesession" in proc.stderr.lower(), \
        proc.shown
    assert proc.stdout.strip() == "", proc.shown
    proc = r.run("rm", "--idle", "0s", "--all")
    assert proc.returncode != 0, f"rm --all as ReadOnly must be refused\n{proc.shown}"
    assert "permission" in proc.stderr.lower() or "terminatesession" in proc.stderr.lower(), \
        proc.shown
    listing = session_list(admin_si)
    assert {admin_py, reader_py, reader_me} <= set(listing), "a refused rm ends nothing"

    a = cli("admin")
    _, admin_me, _ = a.login(https(vsess), "-k", "-u", admin_user, "--password-stdin",
                             stdin=admin_pwd + "\n")
    rows, proc = a.ls_json("--all")
    listed = {r["key"]: canonical_user(r["userName"]) for r in rows}
    assert {admin_py, admin_me, reader_py, reader_me} <= set(listed), proc.shown
    assert listed[reader_py] == READER and listed[admin_py] == ADMIN, proc.shown
    assert [r["key"] for r in rows if r["current"]] == [admin_me], proc.shown
    table, proc = a.ls_table("--all")
    assert {admin_py, admin_me, reader_py, reader_me} <= {t["key"] for t in table}, proc.shown

    rows, proc = a.ls_json()
    assert {r["key"] for r in rows} == {admin_py, admin_me}, (
        f"plain ls shows only the caller's own sessions\n{proc.shown}")


# ------------------------------------------------------------------ vcsim

VCSIM_USER, VCSIM_PWD = "user", "pass"
VCSIM_OTHER = ("someone-else", "other-pass")


def vcsim_login(c, sim):
    return c.login(url_with(sim, VCSIM_USER, VCSIM_PWD), "-k")


def test_vcsim_login_whoami_ls_rm_logout(vcsim, cli):
    c = cli()
    proc, me, reused = vcsim_login(c, vcsim)
    assert not reused, proc.shown
    _, again, reused = vcsim_login(c, vcsim)
    assert reused and again == me
    assert_no_secret(c, VCSIM_PWD)

    who = c.ok("whoami")
    assert me in who.stdout and VCSIM_USER in who.stdout, who.shown
    who = json.loads(c.ok("whoami", "--json").stdout)
    assert (who["userName"], who["key"]) == (VCSIM_USER, me), who

    mine = smart_connect(vcsim, VCSIM_USER, VCSIM_PWD)
    mine_key = key_of(mine)
    stranger = smart_connect(vcsim, *VCSIM_OTHER)
    stranger_key = key_of(stranger)

    table, proc = c.ls_table()
    idle = {t["key"]: t["idle"] for t in table}
    assert set(idle) == {me, mine_key}, f"ls shows the user's sessions only\n{proc.shown}"
    assert idle[me] == ".", proc.shown
    rows, proc = c.ls_json()
    assert {r["key"] for r in rows} == {me, mine_key}, proc.shown
    assert [r["key"] for r in rows if r["current"]] == [me], proc.shown
    assert {r["userName"] for r in rows} == {VCSIM_USER}, proc.shown

    rm = c.ok("rm", mine_key)
    assert c.rm_ended(rm) == [mine_key], rm.shown
    rows, proc = c.ls_json()
    assert [r["key"] for r in rows] == [me], proc.shown
    assert_soap_dead(mine, f"vcsim session {mine_key} after `vsess rm`")
    assert stranger_key in session_list(stranger)

    proc = c.run("rm", UNKNOWN_KEY)
    assert proc.returncode == 1, f"rm of an unknown key must fail\n{proc.shown}"
    assert "notfound" in proc.stderr.lower().replace(" ", "") or UNKNOWN_KEY in proc.stderr, \
        proc.shown

    proc = c.ok("logout")
    assert me in proc.stdout, proc.shown
    assert me not in session_list(stranger)
    for args in (["ls"], ["whoami"]):
        proc = c.fails(5, *args)
        assert "not logged in" in proc.stderr, proc.shown


def test_vcsim_rm_idle_ends_the_users_other_sessions(vcsim, cli, govc_bin, tmp_path):
    c = cli()
    _, me, _ = vcsim_login(c, vcsim)

    govc_env = {k: v for k, v in os.environ.items()
                if k not in SCRUB_VARS and not k.startswith(SCRUB_PREFIXES)}
    govc_env.update(GOVMOMI_HOME=str(tmp_path / "govc-home"), GOVC_INSECURE="1",
                    GOVC_URL=url_with(vcsim, VCSIM_USER, VCSIM_PWD))
    for args in (["session.login"], ["session.ls", "-json"]):
        g = subprocess.run([govc_bin, *args], env=govc_env, capture_output=True, text=True,
                           timeout=RUN_TIMEOUT)
        assert g.returncode == 0, f"govc {' '.join(args)}: {g.returncode}\n{g.stdout}{g.stderr}"
    govc_key = json.loads(g.stdout)["CurrentSession"]["Key"]
    py = smart_connect(vcsim, VCSIM_USER, VCSIM_PWD)
    py_key = key_of(py)
    stranger = smart_connect(vcsim, *VCSIM_OTHER)
    stranger_key = key_of(stranger)

    rows, proc = c.ls_json()
    assert {r["key"] for r in rows} == {me, govc_key, py_key}, proc.shown

    rm = c.ok("rm", "--idle", "0s")
    assert sorted(c.rm_ended(rm)) == sorted([govc_key, py_key]), (
        f"--idle 0s must end every other session of the user (govc {govc_key}, "
        f"pyVmomi {py_key}), never the current one {me}\n{rm.shown}")
    table, proc = c.ls_table()
    assert [(t["key"], t["idle"]) for t in table] == [(me, ".")], proc.shown
    assert_soap_dead(py, "vcsim pyVmomi session after `vsess rm --idle 0s`")
    listing = session_list(stranger)
    assert stranger_key in listing and me in listing, "another user's session is untouched"
    assert govc_key not in listing


def test_vcsim_rm_current_session_is_refused(vcsim, cli):
    c = cli()
    _, me, _ = vcsim_login(c, vcsim)
    proc = c.fails(2, "rm", me)
    assert "current session" in proc.stderr and "logout" in proc.stderr, proc.shown
    assert json.loads(c.ok("whoami", "--json").stdout)["key"] == me


def test_vcsim_tls_and_usage_exit_codes(vcsim, cli):
    c = cli()
    proc = c.fails(4, "login", url_with(vcsim, VCSIM_USER, VCSIM_PWD))
    assert "thumbprint" in proc.stderr.lower() and "insecure" in proc.stderr.lower(), proc.shown
    c.fails(5, "ls", "--url", url_with(vcsim, VCSIM_USER), "-k")
    c.fails(2, "rm", "--idle", "soon", "--url", url_with(vcsim, VCSIM_USER), "-k")
    assert not c.current_json.exists()
