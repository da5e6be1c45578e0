"""Real pyVmomi 9.1.1.0 against a real `vsess serve`: vim.SessionManager over SOAP.

Each test gets its own server (see conftest.py).  No sleeps: time-based expiry
is covered by the Rust unit tests with an injected clock.
"""

import datetime
import os
import re
import stat
import threading

import pytest
from pyVim.connect import (Disconnect, SmartConnect, SmartStubAdapter,
                           VimSessionOrientedStub)
from pyVmomi import vim, vmodl

ADMIN = "admin@vsphere.local"
READER = "reader@vsphere.local"
NOACCESS = "noaccess@vsphere.local"
DEFAULT_LOCALES = {"en", "de", "fr", "es", "it", "ja", "ko", "zh_CN", "zh_TW"}
PC = vmodl.query.PropertyCollector


# ------------------------------------------------------------------ helpers


def connect(server, role="admin"):
    """SmartConnect as server.users[role] (or a (user, pwd) tuple)."""
    return server.connect(role)


def anon_stub(server, session_id=None):
    """A fresh SoapStubAdapter (negotiated version, no cookie unless given)."""
    return SmartStubAdapter(host=server.host, port=server.port,
                            disableSslCertValidation=True, sessionId=session_id)


def anon_si(server, session_id=None):
    return vim.ServiceInstance("ServiceInstance", anon_stub(server, session_id))


def attach(server, session_id):
    """SmartConnect(sessionId=...): no Login, just reuse the cookie."""
    return SmartConnect(host=server.host, port=server.port, sessionId=session_id,
                        disableSslCertValidation=True)


def sm(si):
    return si.content.sessionManager


def cookie(si):
    return si._stub.GetSessionId()


def current(si):
    return sm(si).currentSession


def key(si):
    session = current(si)
    assert session is not None, "expected an authenticated session"
    return session.key


def keys(sessions):
    return {s.key for s in sessions}


def login_fresh(server, role="admin", locale=None):
    """Login on a brand-new stub; returns (si, UserSession returned by Login)."""
    si = anon_si(server)
    user, pwd = server.users[role]
    session = sm(si).Login(user, pwd, locale)
    return si, session


def assert_alive(si):
    """A call that needs an authenticated session (System.View) succeeds."""
    sm(si).message  # noqa: B018 - raises NotAuthenticated when the session is gone


def assert_dead(si):
    with pytest.raises(vim.fault.NotAuthenticated):
        sm(si).message
    assert current(si) is None


def assert_no_session(si):
    assert current(si) is None


# ------------------------------------------------------------ connecting


def test_smartconnect_service_content(vsess):
    si = connect(vsess)
    content = si.content
    about = content.about
    assert about.name and about.fullName and about.apiVersion
    assert isinstance(content.sessionManager, vim.SessionManager)
    assert isinstance(content.propertyCollector, vmodl.query.PropertyCollector)


def test_current_time_is_now_utc(vsess):
    si = connect(vsess)
    t = si.CurrentTime()
    assert isinstance(t, datetime.datetime)
    assert t.tzinfo is not None and t.utcoffset() is not None, f"naive time {t!r}"
    now = datetime.datetime.now(datetime.timezone.utc)
    assert abs((now - t).total_seconds()) < 60


def test_current_session_identity_and_secret_cookie(vsess):
    si = connect(vsess)
    session = current(si)
    assert session.userName == ADMIN
    assert session.key
    sid = cookie(si)
    assert sid, "Login must set exactly one vmware_soap_session cookie"
    assert re.fullmatch(r"[A-Za-z0-9+/=_\-]{32,}", sid), f"weak cookie id {sid!r}"
    assert session.key != sid, "UserSession.key must not be the secret cookie value"
    assert sid not in session.key
    assert session.ipAddress == "127.0.0.1"
    assert session.userAgent.startswith("pyvmomi")
    assert session.loginTime is not None and session.lastActiveTime is not None


def test_login_returns_same_session_as_current(vsess):
    si, session = login_fresh(vsess, "reader")
    assert isinstance(session, vim.UserSession)
    assert session.userName == READER
    assert current(si).key == session.key


def test_two_logins_get_distinct_sessions(vsess):
    a, b = connect(vsess), connect(vsess)
    assert cookie(a) != cookie(b)
    assert key(a) != key(b)


def test_current_session_without_login_is_none(vsess):
    si = anon_si(vsess)
    assert si._stub.GetSessionId() is None
    assert current(si) is None


def test_anonymous_readable_properties(vsess):
    mgr = sm(anon_si(vsess))
    assert mgr.defaultLocale == "en"
    assert set(mgr.supportedLocaleList) == DEFAULT_LOCALES
    assert mgr.messageLocaleList and "en" in mgr.messageLocaleList


@pytest.mark.parametrize("call", [
    pytest.param(lambda m: m.sessionList, id="sessionList"),
    pytest.param(lambda m: m.message, id="message"),
    pytest.param(lambda m: m.UpdateServiceMessage("x"), id="UpdateServiceMessage"),
    pytest.param(lambda m: m.AcquireCloneTicket(), id="AcquireCloneTicket"),
    pytest.param(lambda m: m.TerminateSession(["52000000-0000-0000-0000-000000000000"]),
                 id="TerminateSession"),
    pytest.param(lambda m: m.SessionIsActive("52000000-0000-0000-0000-000000000000", ADMIN),
                 id="SessionIsActive"),
    pytest.param(lambda m: m.SetLocale("de"), id="SetLocale"),
    pytest.param(lambda m: m.ImpersonateUser(READER), id="ImpersonateUser"),
    pytest.param(lambda m: m.Logout(), id="Logout"),
])
def test_anonymous_calls_need_a_session(vsess, call):
    with pytest.raises(vim.fault.NotAuthenticated):
        call(sm(anon_si(vsess)))


# ------------------------------------------------------------ login faults


def test_bad_password_is_invalid_login(vsess):
    user, _ = vsess.users["admin"]
    si = anon_si(vsess)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(si).Login(user, "wrong-password", None)
    assert_no_session(si)
    with pytest.raises(vim.fault.InvalidLogin):
        SmartConnect(host=vsess.host, port=vsess.port, user=user, pwd="nope",
                     disableSslCertValidation=True)


def test_unknown_user_is_invalid_login(vsess):
    si = anon_si(vsess)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(si).Login("ghost@vsphere.local", "whatever", None)
    assert_no_session(si)


def test_noaccess_user_gets_no_permission(vsess):
    si = anon_si(vsess)
    user, pwd = vsess.users["noaccess"]
    with pytest.raises(vim.fault.NoPermission):
        sm(si).Login(user, pwd, None)
    assert_no_session(si)


def test_noaccess_wrong_password_is_invalid_login_not_no_permission(vsess):
    user, _ = vsess.users["noaccess"]
    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(vsess)).Login(user, "wrong", None)


@pytest.mark.parametrize("locale", ["bogus", "xx_YY"])
def test_login_with_unknown_locale_is_invalid_locale(vsess, locale):
    si = anon_si(vsess)
    user, pwd = vsess.users["admin"]
    with pytest.raises(vim.fault.InvalidLocale):
        sm(si).Login(user, pwd, locale)
    assert_no_session(si)


@pytest.mark.parametrize("locale", ["de", "zh_CN", "en_US"])
def test_login_with_supported_locale(vsess, locale):
    si, session = login_fresh(vsess, "admin", locale)
    assert session.userName == ADMIN
    if locale in DEFAULT_LOCALES:  # en_US is accepted via its language part
        assert current(si).locale == locale


def test_login_domain_backslash_form(vsess):
    _, pwd = vsess.users["admin"]
    si = connect(vsess, ("VSPHERE.LOCAL\\admin", pwd))
    # the session carries admin@vsphere.local's Admin role
    assert key(si) in keys(sm(si).sessionList)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(vsess)).Login("VSPHERE.LOCAL\\admin", "wrong", None)


def test_login_with_stale_cookie_gets_new_cookie(vsess):
    user, pwd = vsess.users["admin"]
    si = anon_si(vsess, session_id="0" * 40)
    assert_no_session(si)
    session = sm(si).Login(user, pwd, None)
    assert cookie(si) != "0" * 40
    assert current(si).key == session.key


# ------------------------------------------------------------ properties


def test_session_list_as_admin(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    sessions = sm(admin).sessionList
    by_key = {s.key: s for s in sessions}
    assert key(admin) in by_key and key(reader) in by_key
    assert by_key[key(reader)].userName == READER
    for s in sessions:
        assert s.userAgent.startswith("pyvmomi")
        assert s.ipAddress == "127.0.0.1"
        assert s.key not in (cookie(admin), cookie(reader))


def test_session_list_as_reader_is_no_permission(vsess):
    reader = connect(vsess, "reader")
    with pytest.raises(vim.fault.NoPermission):
        sm(reader).sessionList


def test_message_and_locale_properties_as_reader(vsess):
    mgr = sm(connect(vsess, "reader"))
    assert mgr.message in (None, "")
    assert mgr.defaultLocale == "en"
    assert set(mgr.supportedLocaleList) == DEFAULT_LOCALES
    assert "en" in mgr.messageLocaleList


def test_update_service_message(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    sm(admin).UpdateServiceMessage("hello")
    assert sm(reader).message == "hello"
    assert sm(connect(vsess)).message == "hello"
    sm(admin).UpdateServiceMessage("")
    assert sm(reader).message in (None, "")


def test_update_service_message_as_reader_is_no_permission(vsess):
    admin = connect(vsess)
    sm(admin).UpdateServiceMessage("from admin")
    reader = connect(vsess, "reader")
    with pytest.raises(vim.fault.NoPermission):
        sm(reader).UpdateServiceMessage("from reader")
    assert sm(admin).message == "from admin"


def test_set_locale(vsess):
    si = connect(vsess)
    sm(si).SetLocale("de")
    assert current(si).locale == "de"
    with pytest.raises(vim.fault.InvalidLocale):
        sm(si).SetLocale("bogus")
    assert current(si).locale == "de"


def test_locale_config(vsess_factory):
    server = vsess_factory('[locale]\nsupported = ["en", "de", "fr", "ja"]\ndefault = "fr"\n')
    si = connect(server)
    mgr = sm(si)
    assert set(mgr.supportedLocaleList) == {"en", "de", "fr", "ja"}
    assert mgr.defaultLocale == "fr"
    assert current(si).locale == "fr"
    with pytest.raises(vim.fault.InvalidLocale):
        mgr.SetLocale("es")
    mgr.SetLocale("ja")
    assert current(si).locale == "ja"
    with pytest.raises(vim.fault.InvalidLocale):
        sm(anon_si(server)).Login(*server.users["admin"], "it")


# ------------------------------------------------------------ TerminateSession


def test_terminate_other_session(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    victim = key(reader)
    sm(admin).TerminateSession([victim])
    assert_dead(reader)
    assert victim not in keys(sm(admin).sessionList)
    assert_alive(admin)


def test_terminate_own_session_is_invalid_argument(vsess):
    admin = connect(vsess)
    with pytest.raises(vmodl.fault.InvalidArgument):
        sm(admin).TerminateSession([key(admin)])
    assert_alive(admin)


def test_terminate_list_stops_at_unknown_key(vsess):
    admin = connect(vsess)
    first, third = connect(vsess, "reader"), connect(vsess, "reader")
    k1, k3 = key(first), key(third)
    with pytest.raises(vim.fault.NotFound):
        sm(admin).TerminateSession([k1, "unknown", k3])
    assert_dead(first)
    assert_alive(third)
    assert sm(admin).SessionIsActive(k3, READER) is True
    assert sm(admin).SessionIsActive(k1, READER) is False


def test_terminate_by_cookie_value_is_not_found(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    with pytest.raises(vim.fault.NotFound):
        sm(admin).TerminateSession([cookie(reader)])
    assert_alive(reader)


def test_terminate_as_reader_is_no_permission(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    with pytest.raises(vim.fault.NoPermission):
        sm(reader).TerminateSession([key(admin)])
    assert_alive(admin)


# ------------------------------------------------------------ SessionIsActive


def test_session_is_active(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    k = key(reader)
    mgr = sm(admin)
    assert mgr.SessionIsActive(k, READER) is True
    assert mgr.SessionIsActive(key(admin), ADMIN) is True
    assert mgr.SessionIsActive(k, ADMIN) is False
    assert mgr.SessionIsActive("52000000-0000-0000-0000-000000000000", READER) is False
    assert mgr.SessionIsActive(cookie(reader), READER) is False
    mgr.TerminateSession([k])
    assert mgr.SessionIsActive(k, READER) is False


def test_session_is_active_as_reader_is_no_permission(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    with pytest.raises(vim.fault.NoPermission):
        sm(reader).SessionIsActive(key(admin), ADMIN)


# ------------------------------------------------------------ clone tickets


def test_clone_session(vsess):
    admin = connect(vsess)
    ticket = sm(admin).AcquireCloneTicket()
    assert isinstance(ticket, str) and ticket
    assert ticket != cookie(admin)

    clone = anon_si(vsess)
    session = sm(clone).CloneSession(ticket)
    assert isinstance(session, vim.UserSession)
    assert session.userName == ADMIN
    assert session.key != key(admin)
    assert cookie(clone) and cookie(clone) not in (cookie(admin), ticket)
    assert current(clone).key == session.key
    assert session.key in keys(sm(clone).sessionList)  # clone carries Admin rights
    assert_alive(admin)


def test_clone_ticket_is_single_use(vsess):
    admin = connect(vsess)
    ticket = sm(admin).AcquireCloneTicket()
    sm(anon_si(vsess)).CloneSession(ticket)
    again = anon_si(vsess)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(again).CloneSession(ticket)
    assert_no_session(again)


def test_clone_ticket_is_not_a_session_cookie(vsess):
    admin = connect(vsess)
    ticket = sm(admin).AcquireCloneTicket()
    si = attach(vsess, ticket)
    assert current(si) is None
    with pytest.raises(vim.fault.NotAuthenticated):
        sm(si).sessionList
    with pytest.raises(vim.fault.NotAuthenticated):
        sm(si).AcquireCloneTicket()


def test_clone_ticket_dies_with_its_session(vsess):
    reader = connect(vsess, "reader")
    ticket = sm(reader).AcquireCloneTicket()
    sm(reader).Logout()
    si = anon_si(vsess)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(si).CloneSession(ticket)
    assert_no_session(si)


def test_clone_ticket_dies_with_terminated_session(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    ticket = sm(reader).AcquireCloneTicket()
    sm(admin).TerminateSession([key(reader)])
    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(vsess)).CloneSession(ticket)


def test_clone_session_with_garbage_ticket(vsess):
    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(vsess)).CloneSession("not-a-ticket")


# ------------------------------------------------------------ ImpersonateUser


def test_impersonate_user(vsess):
    reader = connect(vsess, "reader")
    admin = connect(vsess)
    session = sm(admin).ImpersonateUser(READER)
    assert isinstance(session, vim.UserSession)
    assert session.userName == READER
    assert current(admin).userName == READER
    with pytest.raises(vim.fault.NoPermission):
        sm(admin).sessionList
    assert_alive(reader)


def test_impersonate_user_without_active_session_is_invalid_login(vsess):
    admin = connect(vsess)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(admin).ImpersonateUser(READER)  # reader exists but is not logged in
    with pytest.raises(vim.fault.InvalidLogin):
        sm(admin).ImpersonateUser("ghost@vsphere.local")
    assert current(admin).userName == ADMIN
    assert_alive(admin)


def test_impersonate_user_as_reader_is_no_permission(vsess):
    connect(vsess)
    reader = connect(vsess, "reader")
    with pytest.raises(vim.fault.NoPermission):
        sm(reader).ImpersonateUser(ADMIN)
    assert current(reader).userName == READER


# ------------------------------------------------------------ local / service tickets


def test_acquire_local_ticket(vsess):
    ticket = sm(anon_si(vsess)).AcquireLocalTicket(userName=ADMIN)
    assert isinstance(ticket, vim.SessionManager.LocalTicket)
    assert ticket.userName == ADMIN
    path = ticket.passwordFilePath
    assert path and os.path.isabs(path)
    st = os.stat(path)
    assert stat.S_ISREG(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o600, oct(st.st_mode)
    with open(path) as f:
        secret = f.read()
    assert secret

    si = anon_si(vsess)
    session = sm(si).Login(ticket.userName, secret, None)
    assert session.userName == ADMIN
    assert current(si).userName == ADMIN

    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(vsess)).Login(ticket.userName, secret, None)


def test_acquire_local_ticket_unknown_user_is_invalid_login(vsess):
    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(vsess)).AcquireLocalTicket(userName="ghost@vsphere.local")


def test_acquire_generic_service_ticket(vsess):
    admin = connect(vsess)
    spec = vim.SessionManager.HttpServiceRequestSpec(
        url=f"https://127.0.0.1:{vsess.port}/folder", method="httpGet")
    ticket = sm(admin).AcquireGenericServiceTicket(spec=spec)
    assert isinstance(ticket, vim.SessionManager.GenericServiceTicket)
    assert ticket.id
    assert ticket.id != cookie(admin)
    assert_alive(admin)


def test_acquire_generic_service_ticket_anonymous_is_not_authenticated(vsess):
    spec = vim.SessionManager.HttpServiceRequestSpec(
        url=f"https://127.0.0.1:{vsess.port}/folder", method="httpGet")
    with pytest.raises(vim.fault.NotAuthenticated):
        sm(anon_si(vsess)).AcquireGenericServiceTicket(spec=spec)


# ------------------------------------------------------------ other login methods


def test_login_by_sspi_is_not_supported(vsess):
    si = anon_si(vsess)
    with pytest.raises(vmodl.fault.NotSupported):
        sm(si).LoginBySSPI("TlRMTVNTUAABAAAAB4IIogAAAAAAAAAAAAAAAAAAAAAGAbEdAAAADw==", None)
    assert_no_session(si)


@pytest.mark.parametrize("call", [
    pytest.param(lambda m: m.LoginByToken(None), id="LoginByToken"),
    pytest.param(lambda m: m.LoginExtensionByCertificate("com.example.ext", None),
                 id="LoginExtensionByCertificate"),
    pytest.param(lambda m: m.LoginExtensionBySubjectName("com.example.ext", None),
                 id="LoginExtensionBySubjectName"),
])
def test_unsupported_login_methods_fault(vsess, call):
    si = anon_si(vsess)
    with pytest.raises(vmodl.MethodFault) as exc:
        call(sm(si))
    assert exc.value.msg, f"empty fault message for {type(exc.value).__name__}"
    assert_no_session(si)


# ------------------------------------------------------------ PropertyCollector


def _session_manager_filter(mgr):
    return PC.FilterSpec(
        objectSet=[PC.ObjectSpec(obj=mgr, skip=False)],
        propSet=[PC.PropertySpec(type=vim.SessionManager, all=False,
                                 pathSet=["currentSession", "sessionList"])])


def _props(object_content):
    return {p.name: p.val for p in object_content.propSet}


def test_retrieve_properties_ex(vsess):
    si = connect(vsess)
    content = si.content
    result = content.propertyCollector.RetrievePropertiesEx(
        specSet=[_session_manager_filter(content.sessionManager)],
        options=PC.RetrieveOptions())
    assert len(result.objects) == 1
    assert result.objects[0].obj == content.sessionManager
    props = _props(result.objects[0])
    assert props["currentSession"].key == key(si)
    assert props["currentSession"].userName == ADMIN
    assert key(si) in keys(props["sessionList"])


def test_retrieve_contents(vsess):
    si = connect(vsess)
    other = connect(vsess, "reader")
    content = si.content
    result = content.propertyCollector.RetrieveContents(
        [_session_manager_filter(content.sessionManager)])
    assert len(result) == 1
    props = _props(result[0])
    assert props["currentSession"].key == key(si)
    assert {key(si), key(other)} <= keys(props["sessionList"])


# ------------------------------------------------------------ SmartConnect(sessionId=)


def test_smartconnect_with_existing_session_id(vsess):
    first = connect(vsess)
    second = attach(vsess, cookie(first))
    assert cookie(second) == cookie(first)
    assert key(second) == key(first)
    assert current(second).userName == ADMIN


def test_smartconnect_with_bogus_session_id(vsess):
    si = attach(vsess, "bogus")
    assert current(si) is None
    with pytest.raises(vim.fault.NotAuthenticated):
        sm(si).sessionList


# ------------------------------------------------------------ VimSessionOrientedStub


def test_session_oriented_stub_logs_in_again(vsess):
    user, pwd = vsess.users["admin"]
    soap = anon_stub(vsess)
    stub = VimSessionOrientedStub(soap, VimSessionOrientedStub.makeUserLoginMethod(user, pwd))
    si = vim.ServiceInstance("ServiceInstance", stub)
    first_key = key(si)
    first_cookie = soap.GetSessionId()
    assert first_cookie

    killer = connect(vsess)
    sm(killer).TerminateSession([first_key])

    sessions = sm(si).sessionList  # NotAuthenticated -> relogin -> retry
    second_key = key(si)
    assert second_key != first_key
    assert second_key in keys(sessions)
    assert soap.GetSessionId() not in (None, first_cookie)
    assert sm(killer).SessionIsActive(first_key, ADMIN) is False


# ------------------------------------------------------------ Disconnect


def test_disconnect_ends_session(vsess):
    admin = connect(vsess)
    reader = connect(vsess, "reader")
    k, sid = key(reader), cookie(reader)
    Disconnect(reader)
    assert sm(admin).SessionIsActive(k, READER) is False
    assert k not in keys(sm(admin).sessionList)
    assert current(attach(vsess, sid)) is None


def test_logout_then_login_again_on_same_stub(vsess):
    si, first = login_fresh(vsess, "reader")
    sm(si).Logout()
    assert_dead(si)
    _, pwd = vsess.users["reader"]
    second = sm(si).Login(READER, pwd, None)
    assert second.key != first.key
    assert_alive(si)


# ------------------------------------------------------------ policies


def test_max_session_count_under_concurrency(vsess_factory):
    server = vsess_factory("config.vmacore.soap.maxSessionCount = 5\n")
    user, pwd = server.users["admin"]
    stubs = [anon_si(server) for _ in range(20)]
    barrier = threading.Barrier(len(stubs))
    results = [None] * len(stubs)

    def worker(i):
        barrier.wait()
        try:
            results[i] = sm(stubs[i]).Login(user, pwd, None)
        except BaseException as e:  # noqa: BLE001 - recorded and asserted below
            results[i] = e

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(len(stubs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)

    ok = [i for i, r in enumerate(results) if isinstance(r, vim.UserSession)]
    refused = [i for i, r in enumerate(results) if not isinstance(r, vim.UserSession)]
    failed = [results[i] for i in refused]
    assert len(ok) == 5, f"{len(ok)} logins succeeded: {failed[:3]!r}"
    for err in failed:
        assert isinstance(err, vmodl.MethodFault), repr(err)
        assert err.msg and "session" in err.msg.lower(), repr(err)

    survivor = stubs[ok[0]]
    assert len(sm(survivor).sessionList) == 5
    # the limit counts live sessions: logging one out frees a slot
    sm(stubs[ok[1]]).Logout()
    assert sm(stubs[refused[0]]).Login(user, pwd, None).userName == ADMIN


def test_login_lockout(vsess_factory):
    server = vsess_factory("[lockout]\nmax_failures = 3\nlock_seconds = 300\n")
    user, pwd = server.users["admin"]
    for _ in range(3):
        with pytest.raises(vim.fault.InvalidLogin):
            sm(anon_si(server)).Login(user, "wrong-password", None)
    si = anon_si(server)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(si).Login(user, pwd, None)
    assert_no_session(si)
    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(server)).Login("VSPHERE.LOCAL\\admin", pwd, None)
    # other users are unaffected
    reader = connect(server, "reader")
    assert current(reader).userName == READER


def test_login_failures_below_threshold_do_not_lock(vsess_factory):
    server = vsess_factory("[lockout]\nmax_failures = 3\nlock_seconds = 300\n")
    user, pwd = server.users["admin"]
    for _ in range(2):
        with pytest.raises(vim.fault.InvalidLogin):
            sm(anon_si(server)).Login(user, "wrong-password", None)
    assert current(connect(server)).userName == ADMIN


# ------------------------------------------------------------ durability


@pytest.mark.parametrize("how", ["kill9_and_restart", "restart"])
def test_state_survives_restart(vsess, how):
    admin = connect(vsess)
    sid, k = cookie(admin), key(admin)
    sm(admin).UpdateServiceMessage("persisted")
    ticket = sm(admin).AcquireCloneTicket()
    reader = connect(vsess, "reader")
    dead_sid = cookie(reader)
    sm(admin).TerminateSession([key(reader)])

    getattr(vsess, how)()

    again = attach(vsess, sid)
    assert current(again) is not None, "session lost across " + how
    assert key(again) == k
    assert current(again).userName == ADMIN
    assert sm(again).message == "persisted"
    assert current(attach(vsess, dead_sid)) is None, "terminated session came back"

    clone = anon_si(vsess)
    assert sm(clone).CloneSession(ticket).userName == ADMIN
    with pytest.raises(vim.fault.InvalidLogin):
        sm(anon_si(vsess)).CloneSession(ticket)

    assert current(connect(vsess, "reader")).userName == READER
