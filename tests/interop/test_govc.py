"""Real govc 0.24.2 (govmomi's CLI) against a real `vsess serve`: vim.SessionManager over SOAP.

govc is a Go client with its own quirks. This module checks that vsess's answers satisfy them:
- the ServiceContent decodes (`govc about`);
- Login's Set-Cookie is accepted by Go's cookiejar, and govc's on-disk session cache
  ($GOVMOMI_HOME/sessions) is reused on the next run. Each run checks the cached session with
  RetrieveProperties(SessionManager.currentSession), and a stale cookie must give an empty
  value, not a fault;
- `session.ls` (RetrieveProperties with all=true, then CurrentTime) and `session.ls -json`;
- `session.login -clone` (AcquireCloneTicket) and `session.login -ticket` (CloneSession), and
  that a clone ticket works only once;
- `session.rm` (TerminateSession): another session, an unknown key (NotFound), the caller's
  own key (InvalidArgument), and a ReadOnly caller (NoPermission);
- `session.logout` (Logout), and what govc does with the stale cache file afterwards;
- a cached session surviving a graceful restart and a SIGKILL crash of the server.

Every test gets a fresh server (conftest.py) and its own GOVMOMI_HOME directories, with
GOVC_INSECURE=1 and the CA-bundle variables removed from the child environment. govc prints only
a fault's faultstring, so fault types (NotFound, InvalidArgument, NoPermission, InvalidLogin) are
read from govc's own debug trace (GOVC_DEBUG) of that run. govc is
$GOVC_BIN, or ${VSESS_PEERS_DIR:-~/.cache/vsess-peers}/govmomi/bin/govc, which
scripts/peers/govmomi.sh builds. Facts about govc's behaviour are in the govmomi 0.24.2 source,
which that script unpacks: govc/session/*.go, session/cache/session.go.
"""

import datetime
import json
import os
import re
import subprocess
import urllib.parse
import xml.etree.ElementTree as ET

import pytest

ADMIN = "admin@vsphere.local"
GOVC_TIMEOUT = 60
# Environment variables that must not leak from the caller into govc.
SCRUB_VARS = ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE")
LS_HEADER = ["Key", "Name", "Created", "Idle", "Host", "Agent"]
LS_ROW = re.compile(r"^(?P<key>\S+)\s+(?P<name>\S+)\s+(?P<created>\d{4}-\d\d-\d\d \d\d:\d\d)"
                    r"\s+(?P<idle>\S+)")
UNKNOWN_KEY = "52a1b2c3-dead-beef-0000-000000000000"
XSI_TYPE = "{http://www.w3.org/2001/XMLSchema-instance}type"


# ------------------------------------------------------------------ govc runner


class Govc:
    """Runs govc against one vsess server; each `home` name is a separate GOVMOMI_HOME."""

    def __init__(self, binary, server, tmp_path):
        self.binary = binary
        self.server = server
        self.tmp_path = tmp_path
        self.traces = 0

    def home(self, name="default"):
        path = self.tmp_path / f"govmomi-home-{name}"
        path.mkdir(exist_ok=True)
        return path

    def url(self, role="admin", password=True):
        """GOVC_URL for server.users[role]; role=None gives a URL with no user at all."""
        hostport = f"{self.server.host}:{self.server.port}"
        if role is None:
            return f"https://{hostport}/sdk"
        user, pwd = self.server.users[role]
        userinfo = urllib.parse.quote(user, safe="")
        if password is True:
            password = pwd
        if password:
            userinfo += ":" + urllib.parse.quote(password, safe="")
        return f"https://{userinfo}@{hostport}/sdk"

    def env(self, home, url):
        env = {k: v for k, v in os.environ.items()
               if k not in SCRUB_VARS and not k.startswith(("GOVC_", "GOVMOMI_"))}
        # GOVC_FORMAT_ERROR=false: with -json, govc would otherwise print a SOAP fault on
        # stderr as just "{}" (govc/flags/output.go:74).
        env.update(GOVMOMI_HOME=str(home), GOVC_INSECURE="1", GOVC_URL=url,
                   GOVC_FORMAT_ERROR="false")
        return env

    def run(self, *args, role="admin", password=True, home="default"):
        """Run `govc ARGS` and return the CompletedProcess (never raises on exit status).

        password=True puts the role's password in GOVC_URL, password=False leaves it out, so
        govc can only use its cached session, and a string is used as the password.
        govc's own debug trace (GOVC_DEBUG) is kept so faults can be checked by type:
        govc prints only the faultstring, never the fault type, unless the string is empty.
        """
        url = self.url(role, password)
        env = self.env(self.home(home), url)
        self.traces += 1
        run_name = f"run-{self.traces:03d}"
        env.update(GOVC_DEBUG="1", GOVC_DEBUG_PATH=str(self.tmp_path / "govc-debug"),
                   GOVC_DEBUG_PATH_RUN=run_name)
        proc = subprocess.run([self.binary, *args], env=env,
                              capture_output=True, text=True, timeout=GOVC_TIMEOUT)
        proc.trace_dir = self.tmp_path / "govc-debug" / "debug" / run_name
        proc.shown = self._describe(args, role, password, home, proc)
        return proc

    def fails_with(self, fault, *args, **kwargs):
        """Run govc, assert it fails on a SOAP fault whose detail has xsi:type `fault`."""
        proc = self.fails(*args, **kwargs)
        assert "ServerFaultCode" in proc.stderr, f"expected a SOAP fault ({fault})\n{proc.shown}"
        found = fault_types(proc)
        assert fault in found, f"expected fault {fault}, got {found}\n{proc.shown}"
        return proc

    def ok(self, *args, **kwargs):
        """Run govc and assert exit status 0."""
        proc = self.run(*args, **kwargs)
        assert proc.returncode == 0, f"expected success\n{proc.shown}"
        return proc

    def fails(self, *args, **kwargs):
        """Run govc and assert a non-zero exit status."""
        proc = self.run(*args, **kwargs)
        assert proc.returncode != 0, f"expected failure\n{proc.shown}"
        return proc

    def ls_json(self, **kwargs):
        """`session.ls -json` parsed. govc prints nothing (exit 0) when its retrieve fails."""
        proc = self.ok("session.ls", "-json", **kwargs)
        assert proc.stdout.strip(), (
            "session.ls -json printed nothing: govc swallows a failed "
            "RetrieveProperties(SessionManager, all=true) (govc/session/ls.go:123-126)\n"
            + proc.shown)
        try:
            return json.loads(proc.stdout)
        except ValueError as e:
            raise AssertionError(f"session.ls -json is not JSON ({e})\n{proc.shown}")

    def current_key(self, **kwargs):
        data = self.ls_json(**kwargs)
        assert data.get("CurrentSession"), f"no CurrentSession in session.ls -json: {data}"
        return data["CurrentSession"]["Key"]

    def cookie(self, **kwargs):
        """The cached vmware_soap_session value (`session.login -l`)."""
        proc = self.ok("session.login", "-l", **kwargs)
        value = proc.stdout.strip()
        assert value and len(value.split()) == 1, f"session.login -l: no cookie\n{proc.shown}"
        return value

    @staticmethod
    def _describe(args, role, password, home, proc):
        pw = "n/a" if role is None else ("none" if not password else "yes")
        return (f"$ govc {' '.join(args)}   [user={role} password={pw} home={home}] "
                f"-> exit {proc.returncode}\n--- stdout:\n{proc.stdout}--- stderr:\n{proc.stderr}")


@pytest.fixture
def govc(govc_bin, vsess, tmp_path):
    return Govc(govc_bin, vsess, tmp_path)


def fault_types(proc):
    """xsi:type of every SOAP fault detail in the responses of one govc run (its debug trace)."""
    types = []
    for res in sorted(proc.trace_dir.glob("*.res.xml")):
        try:
            root = ET.fromstring(res.read_bytes())
        except ET.ParseError:
            continue
        for detail in root.iter():
            if detail.tag.rsplit("}", 1)[-1] != "detail":
                continue
            for child in detail:
                types.append(child.get(XSI_TYPE, "").rsplit(":", 1)[-1])
    return types


def session_keys(data):
    return [s["Key"] for s in data.get("SessionList") or []]


def parse_ls(proc):
    """Parse the `session.ls` table into dicts (key, name, created, idle)."""
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    assert lines, f"session.ls printed nothing (govc/session/ls.go:123-126)\n{proc.shown}"
    assert lines[0].split() == LS_HEADER, f"unexpected session.ls header\n{proc.shown}"
    rows = []
    for line in lines[1:]:
        m = LS_ROW.match(line)
        assert m, f"unparseable session.ls row {line!r}\n{proc.shown}"
        rows.append(m.groupdict())
    return rows


def parse_time(value):
    """Parse an RFC 3339 time as printed by Go's encoding/json (ns precision, Z or offset)."""
    m = re.fullmatch(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
    assert m, f"not an RFC 3339 time: {value!r}"
    frac = (m.group(2) or ".0")[:7]
    zone = "+00:00" if m.group(3) == "Z" else m.group(3)
    return datetime.datetime.fromisoformat(m.group(1) + frac.ljust(7, "0") + zone)


def assert_recent(when, what):
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs(now - when) < datetime.timedelta(hours=1), f"{what} {when} is not close to now {now}"


# ------------------------------------------------------------------ about


def test_about_shows_service_content(govc):
    proc = govc.ok("about")
    name = re.search(r"^Name:[ \t]*(\S.*)$", proc.stdout, re.M)
    assert name, f"`govc about` shows no non-empty Name:\n{proc.shown}"
    assert re.search(r"^API version:", proc.stdout, re.M), proc.shown


def test_about_works_anonymously(govc):
    """No user in the URL: govc only calls RetrieveServiceContent, which needs no session."""
    proc = govc.ok("about", role=None)
    assert re.search(r"^Name:[ \t]*\S", proc.stdout, re.M), proc.shown


def test_login_with_wrong_password_fails(govc):
    govc.fails_with("InvalidLogin", "session.login", password="definitely-not-the-password")
    assert not list(govc.home().glob("sessions/*")), "a failed login must not be cached"


# ------------------------------------------------------------------ login + ls


def test_login_then_ls_reuses_cached_session(govc):
    proc = govc.ok("session.login")
    assert proc.stdout == "", f"plain session.login prints nothing\n{proc.shown}"
    cache = list(govc.home().glob("sessions/*"))
    assert len(cache) == 1 and re.fullmatch(r"[0-9a-f]{40}", cache[0].name), cache

    # No password: this only works if the cookie from Login is accepted again.
    proc = govc.ok("session.ls", password=False)
    rows = parse_ls(proc)
    mine = [r for r in rows if r["name"] == ADMIN]
    assert len(mine) == 1, f"expected exactly one {ADMIN} session (the cached one)\n{proc.shown}"
    assert mine[0]["idle"] == ".", f"the current session is marked '.'\n{proc.shown}"
    created = datetime.datetime.strptime(mine[0]["created"], "%Y-%m-%d %H:%M")
    now = datetime.datetime.utcnow()
    assert abs(now - created) < datetime.timedelta(days=1), f"bad loginTime\n{proc.shown}"


def test_ls_json_lists_current_session(govc):
    govc.ok("session.login")
    cookie = govc.cookie(password=False)
    data = govc.ls_json(password=False)

    assert data["Self"]["Type"] == "SessionManager", data["Self"]
    current = data["CurrentSession"]
    assert current["UserName"] == ADMIN, current
    keys = session_keys(data)
    assert current["Key"] in keys, f"current session {current['Key']} not in sessionList {keys}"
    assert [s["UserName"] for s in data["SessionList"]].count(ADMIN) == 1, data["SessionList"]
    # DESIGN.md: the secret cookie value and the public UserSession.key are distinct.
    assert cookie != current["Key"] and cookie not in keys, "session key equals the cookie"
    login = parse_time(current["LoginTime"])
    assert_recent(login, "loginTime")
    assert parse_time(current["LastActiveTime"]) >= login, current


# ------------------------------------------------------------------ clone tickets


def test_clone_ticket_login_yields_same_user(govc):
    govc.ok("session.login", home="a")
    key_a = govc.current_key(password=False, home="a")
    cookie_a = govc.cookie(password=False, home="a")

    proc = govc.ok("session.login", "-clone", password=False, home="a")
    ticket = proc.stdout.strip()
    assert ticket and len(ticket.split()) == 1, f"-clone prints one ticket\n{proc.shown}"
    assert ticket != cookie_a, "the clone ticket must not be the session cookie itself"

    # A fresh GOVMOMI_HOME and no user in the URL, so govc really calls CloneSession.
    proc = govc.ok("session.login", f"-ticket={ticket}", role=None, home="b")
    assert proc.stdout == "", proc.shown
    data_b = govc.ls_json(role=None, home="b")
    assert data_b["CurrentSession"]["UserName"] == ADMIN, data_b["CurrentSession"]
    key_b = data_b["CurrentSession"]["Key"]
    assert key_b != key_a, "CloneSession must create a new session"
    assert key_a in session_keys(data_b), "the original session must survive cloning"
    assert govc.cookie(role=None, home="b") != cookie_a

    # The original session still works.
    assert govc.current_key(password=False, home="a") == key_a


def test_clone_ticket_is_one_time(govc):
    govc.ok("session.login", home="a")
    ticket = govc.ok("session.login", "-clone", password=False, home="a").stdout.strip()
    assert ticket

    govc.ok("session.login", f"-ticket={ticket}", role=None, home="b")
    govc.fails_with("InvalidLogin", "session.login", f"-ticket={ticket}", role=None, home="c")


def test_clone_ticket_dies_with_its_session(govc):
    govc.ok("session.login", home="a")
    ticket = govc.ok("session.login", "-clone", password=False, home="a").stdout.strip()
    govc.ok("session.logout", password=False, home="a")

    govc.fails_with("InvalidLogin", "session.login", f"-ticket={ticket}", role=None, home="b")


def test_bogus_clone_ticket_is_rejected(govc):
    govc.fails_with("InvalidLogin", "session.login", "-ticket=cst-not-a-real-ticket",
                    role=None, home="b")


# ------------------------------------------------------------------ session.rm


def test_rm_terminates_another_session(govc):
    govc.ok("session.login", home="a")
    govc.ok("session.login", home="b")
    key_a = govc.current_key(password=False, home="a")
    key_b = govc.current_key(password=False, home="b")
    assert key_a != key_b
    assert key_b in session_keys(govc.ls_json(password=False, home="a"))

    proc = govc.ok("session.rm", key_b, password=False, home="a")
    assert proc.stdout == "", proc.shown

    keys = session_keys(govc.ls_json(password=False, home="a"))
    assert key_b not in keys, f"terminated session {key_b} still listed: {keys}"
    assert key_a in keys

    # b's cached cookie is now dead. Without a password govc cannot recover.
    proc = govc.fails("session.ls", password=False, home="b")
    assert "NotAuthenticated" not in proc.stderr, (
        "a stale cookie must make currentSession empty (HTTP 200), not a fault: govc "
        "(session/cache/session.go:221-237) does not re-login after a fault\n" + proc.shown)
    # With a password, govc notices the stale cache and logs in again.
    data = govc.ls_json(home="b")
    assert data["CurrentSession"]["Key"] not in (key_a, key_b), data["CurrentSession"]


def test_rm_unknown_key_fails_not_found(govc):
    govc.ok("session.login")
    govc.fails_with("NotFound", "session.rm", UNKNOWN_KEY, password=False)
    govc.ok("session.ls", password=False)


def test_rm_own_session_is_rejected(govc):
    govc.ok("session.login")
    key = govc.current_key(password=False)
    govc.fails_with("InvalidArgument", "session.rm", key, password=False)
    assert govc.current_key(password=False) == key, "the session must survive"


def test_rm_as_reader_is_denied(govc):
    govc.ok("session.login", home="admin")
    admin_key = govc.current_key(password=False, home="admin")
    govc.ok("session.login", role="reader", home="reader")

    # ReadOnly lacks Sessions.TerminateSession.
    govc.fails_with("NoPermission", "session.rm", admin_key, role="reader", password=False,
                    home="reader")
    assert admin_key in session_keys(govc.ls_json(password=False, home="admin"))


# ------------------------------------------------------------------ logout


def test_logout_ends_cached_session(govc):
    govc.ok("session.login", home="a")
    govc.ok("session.login", home="witness")
    key_a = govc.current_key(password=False, home="a")

    proc = govc.ok("session.logout", password=False, home="a")
    assert proc.stdout == "", proc.shown
    # govc keeps the cache file; the next run sends the dead cookie.
    assert list(govc.home("a").glob("sessions/*"))

    proc = govc.fails("session.ls", password=False, home="a")
    assert "NotAuthenticated" not in proc.stderr, (
        "after Logout, currentSession must read as empty (HTTP 200), not a fault: govc "
        "(session/cache/session.go:221-237) does not re-login after a fault\n" + proc.shown)
    assert key_a not in session_keys(govc.ls_json(password=False, home="witness"))

    # With the password again, govc replaces the stale cache with a new session.
    key_new = govc.current_key(home="a")
    assert key_new != key_a
    assert govc.current_key(password=False, home="a") == key_new


# ------------------------------------------------------------------ durability


@pytest.mark.parametrize("how", ["restart", "kill9_and_restart"])
def test_cached_session_survives_server_restart(govc, vsess, how):
    govc.ok("session.login")
    key = govc.current_key(password=False)
    cookie = govc.cookie(password=False)

    getattr(vsess, how)()

    assert govc.current_key(password=False) == key, f"session lost after {how}"
    assert govc.cookie(password=False) == cookie
