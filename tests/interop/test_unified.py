"""Issue 3, unified sessions: one session id across SOAP, VI/JSON, vAPI JSON-RPC and REST.

Real clients against a real `vsess serve` (fixtures from conftest.py):
  - pyVmomi 9.1.1.0 (SOAP /sdk),
  - the vSphere Automation SDK 9.1.1.0 (`create_vsphere_client`, JSON-RPC on POST /api),
  - `requests` for VI/JSON (/sdk/vim25/{release}/...), REST (/api/session, /api/vcenter/folder)
    and the legacy REST session (/rest/com/vmware/cis/session).

Sections:
  1. the four reference flows of seeds/002, unchanged but for host/port/credentials/TLS;
  2. the cross-endpoint matrix: an id from any of 6 logins works on every transport, and any
     of 6 ways of ending a session kills it on every transport;
  3. SessionManager.sessionList shows sessions from every endpoint;
  4. error paths per endpoint, each in its own shape, with the server still serving;
  5. long and odd tokens;
  6. the minimal inventory (Folder.CreateDatacenter / CreateFolder, folder listing, persistence).

No sleeps except one: test_expired_session_on_every_endpoint sleeps 2.5 s after configuring a
1 s idle timeout, because expiry cannot be driven from outside the process.
"""

import datetime
import http.client
import json
import secrets
import time

import pytest
from pyVmomi import vim

from unified_helpers import (
    ADMIN, READER, RELEASES, ROOT, SESSION_HEADER, ERR,
    api_delete_session, api_folders, api_get_session, api_login, api_sid, assert_api_error,
    assert_jrpc_error, base, call, defuse, folder_filter, jrpc_error, jrpc_output, jrpc_result,
    jrpc_session_delete, jrpc_session_get, jrpc_sid, jsonrpc, jsonrpc_body, json_of, moref,
    rest_delete_session, rest_get_session, rest_login, rest_sid, REST_SESSION, sec_session,
    sec_user_pass, show, sm, soap_attach, soap_clone_sid, soap_connect, soap_sid,
    unstruct, vapi_client, vj_fault, vj_get, vj_login, vj_post, vj_sid, vj_url,
)


# ------------------------------------------------------------------ small helpers


def rfc3339(value):
    """Parse with the SDK's own RFC 3339 parser; returns an aware UTC datetime."""
    from vmware.vapi.bindings.datetime_helper import DateTimeConverter
    assert isinstance(value, str), f"not a timestamp string: {value!r}"
    t = DateTimeConverter.convert_to_datetime(value)
    return t if t.tzinfo else t.replace(tzinfo=datetime.timezone.utc)


def check_all(checks):
    """Run every (name, fn) and report all failures together."""
    failures = []
    for name, fn in checks:
        try:
            fn()
        except (Exception, pytest.fail.Exception) as e:  # noqa: PERF203
            failures.append(f"[{name}] {type(e).__name__}: {e}")
    assert not failures, "\n\n".join(failures)


def sdk_errors():
    from com.vmware.vapi.std import errors_client
    return errors_client


# ------------------------------------------------------------------ per-transport checks
# alive_*(server, sid, user): the id is a live session of `user` on that transport.
# dead_*(server, sid): the id is answered as unauthenticated, in that transport's own shape.


def alive_soap(server, sid, user):
    si = soap_attach(server, sid)
    s = sm(si).currentSession
    assert s is not None, "SOAP currentSession is unset for a live id"
    assert s.userName == user, f"SOAP currentSession.userName {s.userName!r} != {user!r}"
    sm(si).message  # noqa: B018 - an authenticated read must succeed


def dead_soap(server, sid):
    si = soap_attach(server, sid)
    s = sm(si).currentSession
    assert s is None, f"SOAP currentSession still set for a dead id: {s!r}"
    with pytest.raises(vim.fault.NotAuthenticated):
        sm(si).message


def alive_vijson(server, sid, user):
    r = vj_get(server, "SessionManager", "SessionManager", "currentSession", sid)
    assert r.status_code == 200, show(r)
    body = json_of(r)
    assert isinstance(body, dict) and body.get("_typeName") == "UserSession", show(r)
    assert body.get("userName") == user, show(r)
    r = vj_get(server, "Folder", ROOT, "name", sid)
    assert r.status_code == 200 and json_of(r) == "Datacenters", show(r)


def dead_vijson(server, sid):
    r = vj_get(server, "SessionManager", "SessionManager", "currentSession", sid)
    if r.status_code == 200:
        assert r.text.strip() in ("", "null"), "VI/JSON currentSession set for a dead id" + show(r)
    else:
        vj_fault(r, "NotAuthenticated")
    vj_fault(vj_get(server, "Folder", ROOT, "name", sid), "NotAuthenticated")


def alive_api(server, sid, user):
    r = api_get_session(server, sid)
    assert r.status_code == 200, show(r)
    body = json_of(r)
    assert body.get("user") == user, show(r)
    rfc3339(body.get("created_time"))
    rfc3339(body.get("last_accessed_time"))


def dead_api(server, sid):
    assert_api_error(api_get_session(server, sid), 401, "UNAUTHENTICATED")


def alive_rest(server, sid, user):
    r = rest_get_session(server, sid, via="cookie")
    assert r.status_code == 200, show(r)
    value = json_of(r).get("value")
    assert isinstance(value, dict) and value.get("user") == user, show(r)
    rfc3339(value.get("created_time"))
    rfc3339(value.get("last_accessed_time"))


def dead_rest(server, sid):
    r = rest_get_session(server, sid, via="cookie")
    assert r.status_code == 401, show(r)


def alive_jsonrpc(server, sid, user):
    r = jrpc_session_get(server, sid)
    out = jrpc_output(r)
    assert isinstance(out, dict) and list(out) == ["STRUCTURE"], show(r)
    (name, info), = out["STRUCTURE"].items()
    assert name == "com.vmware.cis.session.info", show(r)
    assert info.get("user") == user, show(r)
    rfc3339(info.get("created_time"))
    rfc3339(info.get("last_accessed_time"))


def dead_jsonrpc(server, sid):
    assert_jrpc_error(jrpc_session_get(server, sid), "unauthenticated")


def alive_sdk(server, sid, user):
    client = vapi_client(server, session_id=sid)
    try:
        info = client.session_svc.get()
    finally:
        defuse(client)
    assert info.user == user
    assert isinstance(info.created_time, datetime.datetime)
    assert isinstance(info.last_accessed_time, datetime.datetime)


def dead_sdk(server, sid):
    client = vapi_client(server, session_id=sid)
    try:
        with pytest.raises(sdk_errors().Unauthenticated):
            client.session_svc.get()
    finally:
        defuse(client)


ALIVE = {"soap": alive_soap, "vijson": alive_vijson, "api": alive_api, "rest": alive_rest,
         "jsonrpc": alive_jsonrpc, "vapi_sdk": alive_sdk}
DEAD = {"soap": dead_soap, "vijson": dead_vijson, "api": dead_api, "rest": dead_rest,
        "jsonrpc": dead_jsonrpc, "vapi_sdk": dead_sdk}


def assert_alive_everywhere(server, sid, user):
    check_all([(t, lambda f=f: f(server, sid, user)) for t, f in ALIVE.items()])


def assert_dead_everywhere(server, sid):
    check_all([(t, lambda f=f: f(server, sid)) for t, f in DEAD.items()])


# ------------------------------------------------------------------ the six logins (as admin)
# Each returns (sid, keep): `keep` holds client objects alive for the test's duration.


def login_soap(server):
    si = soap_connect(server)
    sid = soap_sid(si)
    assert sid, "SOAP Login must set a vmware_soap_session cookie"
    return sid, si


def login_vijson(server):
    return vj_sid(server), None


def login_api(server):
    return api_sid(server), None


def login_rest(server):
    return rest_sid(server), None


def login_jsonrpc(server):
    client = vapi_client(server, "admin")
    sid = client.get_session_id()
    defuse(client)  # otherwise VsphereClient.__del__ would delete the session at GC
    assert isinstance(sid, str) and sid
    return sid, client


def login_clone(server):
    return soap_clone_sid(server, "admin")


LOGINS = {"soap_login": login_soap, "vijson_login": login_vijson, "api_session": login_api,
          "rest_session": login_rest, "jsonrpc_create": login_jsonrpc, "soap_clone": login_clone}


# ------------------------------------------------------------------ the six ways to end a session


def end_soap_logout(server, sid):
    sm(soap_attach(server, sid)).Logout()


def end_vijson_logout(server, sid):
    r = vj_post(server, "SessionManager", "SessionManager", "Logout", sid=sid)
    assert r.status_code == 204, "VI/JSON Logout must answer 204" + show(r)


def end_api_delete(server, sid):
    r = api_delete_session(server, sid)
    assert r.status_code == 204, "DELETE /api/session must answer 204" + show(r)


def end_rest_delete(server, sid):
    r = rest_delete_session(server, sid)
    assert r.status_code == 200, "DELETE /rest/com/vmware/cis/session must answer 200" + show(r)


def end_jsonrpc_delete(server, sid):
    r = jrpc_session_delete(server, sid)
    assert jrpc_output(r) is None, "cis.session.delete must return output null" + show(r)


def end_soap_terminate(server, sid):
    victim = sm(soap_attach(server, sid)).currentSession
    assert victim is not None, "session to terminate is not live"
    admin = soap_connect(server)
    sm(admin).TerminateSession([victim.key])
    assert sm(admin).currentSession is not None  # the terminator itself is untouched


ENDS = {"soap_logout": end_soap_logout, "vijson_logout": end_vijson_logout,
        "api_delete": end_api_delete, "rest_delete": end_rest_delete,
        "jsonrpc_delete": end_jsonrpc_delete, "soap_terminate": end_soap_terminate}


# ================================================================== 1. reference flows (seeds/002)


def test_flow_a_vapi_session_reused_by_pyvmomi(vsess):
    import requests
    from pyVim.connect import SmartConnect
    from vmware.vapi.vsphere.client import create_vsphere_client

    vc_host = f"{vsess.host}:{vsess.port}"
    user, password = vsess.users["admin"]
    # vAPI setup
    session = requests.session()
    session.verify = False
    session.trust_env = False
    client = create_vsphere_client(vc_host, user, password, session=session)
    # Acquire session_id
    session_id = client.get_session_id()
    # Reuse session_id in SmartConnect
    si = SmartConnect(host=vsess.host, port=vsess.port, disableSslCertValidation=True,
                      sessionId=session_id)
    content = si.RetrieveContent()
    dc_moref = content.rootFolder.CreateDatacenter("TEST")
    print(dc_moref)

    assert isinstance(dc_moref, vim.Datacenter), repr(dc_moref)
    assert dc_moref.name == "TEST"
    assert dc_moref._moId in [e._moId for e in content.rootFolder.childEntity]
    assert si._GetStub().GetSessionId() == session_id


def test_flow_b_pyvmomi_session_reused_by_vapi(vsess):
    import requests
    from pyVim.connect import SmartConnect
    from vmware.vapi.vsphere.client import create_vsphere_client

    vc_host = f"{vsess.host}:{vsess.port}"
    user, password = vsess.users["admin"]
    # Login with pyvmomi
    si = SmartConnect(host=vsess.host, port=vsess.port, user=user, pwd=password,
                      disableSslCertValidation=True)
    session_id = si._GetStub().GetSessionId()
    # vAPI setup
    session = requests.session()
    session.verify = False
    session.trust_env = False
    client = create_vsphere_client(vc_host, session=session, session_id=session_id)
    policies = client.vcenter.compute.Policies.list()
    print(policies)

    assert policies == [], f"compute policies must be an empty list by default, got {policies!r}"
    defuse(client)
    assert sm(si).currentSession.userName == ADMIN


def test_flow_c_vijson_login_then_rest_then_vijson(vsess):
    vc = f"{vsess.host}:{vsess.port}"
    user, pswd = vsess.users["admin"]
    get = lambda *a, **k: call("GET", *a, **k)  # noqa: E731 - curl -k
    post = lambda *a, **k: call("POST", *a, **k)  # noqa: E731

    r = post(f"https://{vc}/sdk/vim25/8.0.2.0/SessionManager/SessionManager/Login",
             headers={"Content-Type": "application/json"},
             data=json.dumps({"userName": user, "password": pswd}))
    assert r.status_code == 200, show(r)
    vim_session = r.headers.get("vmware-api-session-id")
    assert vim_session, "Login must return the vmware-api-session-id header" + show(r)

    r = get(f"https://{vc}/api/vcenter/folder", headers={"vmware-api-session-id": vim_session})
    assert r.status_code == 200, show(r)
    folders = json_of(r)
    assert isinstance(folders, list), show(r)
    assert {"folder": ROOT, "name": "Datacenters", "type": "DATACENTER"} in folders, show(r)

    r = get(f"https://{vc}/sdk/vim25/8.0.2.0/Folder/{ROOT}/tag",
            headers={"vmware-api-session-id": vim_session})
    assert r.status_code == 200, show(r)
    tags = json_of(r)
    assert isinstance(tags, list), show(r)
    assert all(t.get("_typeName") == "Tag" for t in tags), show(r)


def test_flow_d_rest_session_used_on_vijson(vsess):
    vc = f"{vsess.host}:{vsess.port}"
    user, pswd = vsess.users["admin"]
    r = call("POST", f"https://{vc}/api/session", auth=(user, pswd))
    assert r.status_code == 201, show(r)
    vapi_session = json_of(r)
    assert isinstance(vapi_session, str) and vapi_session, show(r)

    r = call("GET", f"https://{vc}/sdk/vim25/8.0.2.0/Folder/{ROOT}/tag",
             headers={"vmware-api-session-id": vapi_session})
    assert r.status_code == 200, show(r)
    assert isinstance(json_of(r), list), show(r)


def test_vsphere_client_exit_ends_the_shared_soap_session(vsess):
    """VsphereClient.__exit__ deletes the session: with unified ids that logs pyVmomi out too."""
    si = soap_connect(vsess)
    sid = soap_sid(si)
    with vapi_client(vsess, session_id=sid) as client:
        assert client.vcenter.compute.Policies.list() == []
    dead_soap(vsess, sid)
    dead_api(vsess, sid)


# ================================================================== 2. cross-endpoint matrix


@pytest.mark.parametrize("transport", list(ALIVE))
@pytest.mark.parametrize("login", list(LOGINS))
def test_id_works_on_every_transport(vsess, login, transport):
    sid, keep = LOGINS[login](vsess)
    ALIVE[transport](vsess, sid, ADMIN)
    # the same id keeps working: the check did not consume or rotate it
    alive_api(vsess, sid, ADMIN)
    del keep  # (kept referenced until here: SDK client / pyVmomi stubs)


@pytest.mark.parametrize("login", list(LOGINS))
@pytest.mark.parametrize("end", list(ENDS))
def test_ending_a_session_kills_it_everywhere(vsess, end, login):
    bystander = soap_connect(vsess)               # another admin session, must survive
    other = api_sid(vsess)                        # and another one from REST
    sid, keep = LOGINS[login](vsess)
    alive_api(vsess, sid, ADMIN)
    ENDS[end](vsess, sid)
    assert_dead_everywhere(vsess, sid)
    assert sm(bystander).currentSession is not None, "ending one session killed another"
    alive_api(vsess, other, ADMIN)
    alive_jsonrpc(vsess, soap_sid(bystander), ADMIN)
    del keep


def test_session_info_agrees_across_transports(vsess):
    sid = api_sid(vsess, "reader")
    vj = json_of(vj_get(vsess, "SessionManager", "SessionManager", "currentSession", sid))
    soap = sm(soap_attach(vsess, sid)).currentSession
    api = json_of(api_get_session(vsess, sid))
    rest = json_of(rest_get_session(vsess, sid, via="header"))["value"]
    rpc = unstruct(jrpc_output(jrpc_session_get(vsess, sid)))
    assert vj["key"] == soap.key, (vj, soap)
    assert vj["userName"] == soap.userName == api["user"] == rest["user"] == rpc["user"] == READER
    created = {rfc3339(api["created_time"]), rfc3339(rest["created_time"]),
               rfc3339(rpc["created_time"])}
    assert max(created) - min(created) < datetime.timedelta(seconds=1), created
    assert abs(rfc3339(api["created_time"]) - soap.loginTime) < datetime.timedelta(seconds=1), \
        (api["created_time"], soap.loginTime)
    assert sid not in (soap.key, vj["key"]), "UserSession.key must not be the secret id"


# ================================================================== 3. sessionList


def test_session_list_shows_sessions_from_every_endpoint(vsess):
    from vmware.vapi.protocol.client.msg.user_agent_util import get_user_agent
    admin = soap_connect(vsess)
    uas = {t: f"unified-test/{t} (probe)" for t in ("vijson", "api", "rest", "jsonrpc")}

    r = vj_login(vsess, "reader", headers={"User-Agent": uas["vijson"]})
    assert r.status_code == 200, show(r)
    vj_key = json_of(r)["key"]
    api_sid(vsess, "reader", headers={"User-Agent": uas["api"]})
    rest_sid(vsess, "reader", headers={"User-Agent": uas["rest"]})
    jrpc_sid(vsess, "reader", headers={"User-Agent": uas["jsonrpc"]})
    client = vapi_client(vsess, "reader")
    defuse(client)
    soap_reader = soap_connect(vsess, "reader")
    soap_key = sm(soap_reader).currentSession.key
    _, (_, clone) = soap_clone_sid(vsess, "reader")
    clone_key = sm(clone).currentSession.key

    sessions = sm(admin).sessionList
    listing = [(s.key, s.userName, s.userAgent, s.ipAddress) for s in sessions]
    by_ua = {}
    for s in sessions:
        by_ua.setdefault(s.userAgent, []).append(s)
    for t, ua in list(uas.items()) + [("vapi_sdk", get_user_agent())]:
        found = by_ua.get(ua, [])
        assert len(found) == 1, f"{t}: expected one session with userAgent {ua!r}: {listing}"
        assert found[0].userName == READER, (t, listing)
        assert found[0].ipAddress == "127.0.0.1", (t, listing)
    assert by_ua[uas["vijson"]][0].key == vj_key, listing
    by_key = {s.key: s for s in sessions}
    for k in (soap_key, clone_key):
        assert k in by_key, f"SOAP session {k} missing: {listing}"
        assert by_key[k].userName == READER and by_key[k].ipAddress == "127.0.0.1"
        assert by_key[k].userAgent.startswith("pyvmomi"), listing
    # vijson, api, rest, jsonrpc, vapi_sdk, soap, clone source (soap), clone
    assert len([s for s in sessions if s.userName == READER]) == 8, listing


# ================================================================== 4. error paths


def assert_still_serving(server):
    check_all([
        ("soap", lambda: alive_soap(server, soap_sid(soap_connect(server)), ADMIN)),
        ("vijson", lambda: alive_vijson(server, vj_sid(server), ADMIN)),
        ("api", lambda: alive_api(server, api_sid(server), ADMIN)),
        ("rest", lambda: alive_rest(server, rest_sid(server), ADMIN)),
        ("jsonrpc", lambda: alive_jsonrpc(server, jrpc_sid(server), ADMIN)),
    ])


def wrong_pwd(server):
    return (server.users["admin"][0], "definitely-wrong")


def bad_login_soap(server):
    with pytest.raises(vim.fault.InvalidLogin):
        soap_connect(server, wrong_pwd(server))


def bad_login_vijson(server):
    r = vj_login(server, wrong_pwd(server))
    vj_fault(r, "InvalidLogin")
    assert SESSION_HEADER not in r.headers, show(r)


def bad_login_api(server):
    r = api_login(server, wrong_pwd(server))
    assert_api_error(r, 401, "UNAUTHENTICATED")


def bad_login_rest(server):
    r = rest_login(server, wrong_pwd(server))
    assert r.status_code == 401, show(r)
    assert "set-cookie" not in {k.lower() for k in r.headers}, show(r)


def bad_login_jsonrpc(server):
    user, pwd = wrong_pwd(server)
    r = jsonrpc(server, "com.vmware.cis.session", "create", sec=sec_user_pass(user, pwd))
    assert_jrpc_error(r, "unauthenticated")


def bad_login_sdk(server):
    with pytest.raises(sdk_errors().Unauthenticated):
        vapi_client(server, wrong_pwd(server))


BAD_LOGINS = {"soap": bad_login_soap, "vijson": bad_login_vijson, "api": bad_login_api,
              "rest": bad_login_rest, "jsonrpc": bad_login_jsonrpc, "vapi_sdk": bad_login_sdk}


@pytest.mark.parametrize("endpoint", list(BAD_LOGINS))
def test_wrong_password(vsess, endpoint):
    BAD_LOGINS[endpoint](vsess)
    assert_still_serving(vsess)


def test_login_without_credentials(vsess):
    assert_api_error(call("POST", base(vsess) + "/api/session"), 401, "UNAUTHENTICATED")
    r = call("POST", base(vsess) + REST_SESSION)
    assert r.status_code == 401, show(r)
    assert_jrpc_error(jsonrpc(vsess, "com.vmware.cis.session", "create"), "unauthenticated")
    assert_still_serving(vsess)


def test_expired_session_on_every_endpoint(vsess_factory):
    server = vsess_factory("config.vmacore.soap.sessionTimeout = 1\n")
    made = {}
    for name, login in (("soap", login_soap), ("vijson", login_vijson), ("api", login_api),
                        ("rest", login_rest), ("jsonrpc", lambda s: (jrpc_sid(s), None))):
        sid, keep = login(server)
        alive_api(server, sid, ADMIN)
        made[name] = (sid, keep)
    # The only sleep in this module: a 1 s idle timeout cannot be driven from outside.
    time.sleep(2.5)
    check_all([(f"{name}-session", lambda sid=sid: assert_dead_everywhere(server, sid))
               for name, (sid, _) in made.items()])
    assert_still_serving(server)


def test_malformed_json_vijson(vsess):
    sid = vj_sid(vsess)
    vj_fault(vj_post(vsess, "SessionManager", "SessionManager", "Login", data='{"userName": "x", '),
             "InvalidRequest")
    vj_fault(vj_post(vsess, "Folder", ROOT, "CreateFolder", sid=sid, data='{"name": '),
             "InvalidRequest")
    alive_vijson(vsess, sid, ADMIN)
    assert_still_serving(vsess)


def test_malformed_json_jsonrpc(vsess):
    r = jsonrpc(vsess, "com.vmware.cis.session", "get", data='{"jsonrpc": "2.0", "method": ')
    assert r.status_code == 200, "JSON-RPC parse errors are still HTTP 200" + show(r)
    body = json_of(r)
    assert body.get("jsonrpc") == "2.0", show(r)
    if "error" in body:
        assert body["error"].get("code") == -32700, show(r)
        assert body.get("id") is None, show(r)
    else:
        assert jrpc_error(body.get("result") or {})[0] is not None, show(r)
    assert_still_serving(vsess)


def test_vijson_unknown_method(vsess):
    sid = vj_sid(vsess)
    vj_fault(vj_post(vsess, "SessionManager", "SessionManager", "NoSuchMethod", {}, sid=sid),
             "MethodNotFound", "InvalidRequest")
    alive_vijson(vsess, sid, ADMIN)


def test_vijson_unknown_property(vsess):
    sid = vj_sid(vsess)
    vj_fault(vj_get(vsess, "SessionManager", "SessionManager", "noSuchProperty", sid=sid),
             "InvalidProperty", "InvalidRequest", "MethodNotFound")
    alive_vijson(vsess, sid, ADMIN)


@pytest.mark.parametrize("release", ["6.5", "1.2.3.4", "8.0.3", "9.9.9.9"])
def test_vijson_unknown_release(vsess, release):
    r = call("GET", vj_url(vsess, "ServiceInstance", "ServiceInstance", "content", release))
    assert r.status_code == 404, show(r)
    json_of(r)
    for known in RELEASES:
        assert known in r.text, f"404 body must list supported release {known}" + show(r)


# VI/JSON answers every fault with HTTP 500 and the fault object as the body: the VI/JSON
# OpenAPI specification documents method faults only as 500 "Failure", real vCenter 8.0.3
# answers NotAuthenticated, InvalidLogin, NoPermission and ManagedObjectNotFound with 500,
# and govmomi's JSON transport parses a fault body only on a 500.  (Only an unknown
# release is a 404, tested above.)
VIJSON_STATUS_CASES = {
    "malformed_json": (lambda s, sid: vj_post(s, "SessionManager", "SessionManager", "Login",
                                              data='{"userName": "x", '),
                       "InvalidRequest"),
    "unknown_method": (lambda s, sid: vj_post(s, "SessionManager", "SessionManager",
                                              "NoSuchMethod", {}, sid=sid),
                       "MethodNotFound"),
    "unknown_property": (lambda s, sid: vj_get(s, "SessionManager", "SessionManager",
                                               "noSuchProperty", sid=sid),
                         "InvalidProperty"),
    "token3000_unauthenticated": (lambda s, sid: vj_get(s, "Folder", ROOT, "name", TOKEN_3000),
                                  "NotAuthenticated"),
    "token5000_unauthenticated": (lambda s, sid: vj_get(s, "Folder", ROOT, "name", TOKEN_5000),
                                  "NotAuthenticated"),
}


@pytest.mark.parametrize("case", list(VIJSON_STATUS_CASES))
def test_vijson_faults_are_http_500_with_the_fault_object(vsess, case):
    request, fault = VIJSON_STATUS_CASES[case]
    r = request(vsess, vj_sid(vsess))
    assert r.status_code == 500, f"{case}: unexpected HTTP status" + show(r)
    body = json_of(r)
    assert body.get("_typeName") == fault, f"{case}: wrong fault" + show(r)
    assert body.get("faultstring"), f"{case}: a fault carries a faultstring" + show(r)


@pytest.mark.parametrize("service,operation", [
    ("com.vmware.vcenter.no_such_service", "list"),
    ("com.vmware.cis.session", "frobnicate"),
    ("com.vmware.vcenter.folder", "delete_everything"),
], ids=["unknown-service", "unknown-session-op", "unknown-folder-op"])
def test_unknown_jsonrpc_operation(vsess, service, operation):
    sid = jrpc_sid(vsess)
    r = jsonrpc(vsess, service, operation, sec=sec_session(sid), rid="7")
    assert_jrpc_error(r, "operation_not_found", rid="7")
    alive_jsonrpc(vsess, sid, ADMIN)


def test_jsonrpc_echoes_request_id(vsess):
    sid = jrpc_sid(vsess)
    r = jrpc_session_get(vsess, sid, rid="abc-42")
    jrpc_result(r, "abc-42")
    body = jsonrpc_body("com.vmware.cis.session", "get", sec=sec_session(sid), rid=7)
    r = jsonrpc(vsess, "com.vmware.cis.session", "get", data=json.dumps(body))
    assert r.status_code == 200 and json_of(r).get("id") == 7, show(r)


def test_oversized_bodies_are_413_everywhere(vsess_factory):
    server = vsess_factory("[server]\nmax_body_bytes = 4096\n")
    user, pwd = server.users["admin"]
    pad = "x" * 8000
    soap = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
            'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>'
            '<Login xmlns="urn:vim25"><_this type="SessionManager">SessionManager</_this>'
            f'<userName>{user}</userName><password>{pad}</password></Login>'
            '</soapenv:Body></soapenv:Envelope>')
    rpc = jsonrpc_body("com.vmware.cis.session", "create", sec=sec_user_pass(user, pad))
    big = {
        "soap": lambda: call("POST", base(server) + "/sdk", data=soap, headers={
            "Content-Type": "text/xml; charset=UTF-8", "SOAPAction": '"urn:vim25/8.0.3.0"'}),
        "vijson": lambda: vj_post(server, "SessionManager", "SessionManager", "Login",
                                  {"userName": user, "password": pad}),
        "api": lambda: call("POST", base(server) + "/api/session", auth=(user, pwd), data=pad),
        "rest": lambda: call("POST", base(server) + REST_SESSION, auth=(user, pwd), data=pad),
        "jsonrpc": lambda: jsonrpc(server, "com.vmware.cis.session", "create",
                                   data=json.dumps(rpc)),
    }

    def expect_413(fn):
        r = fn()
        assert r.status_code == 413, show(r)

    check_all([(name, lambda fn=fn: expect_413(fn)) for name, fn in big.items()])

    # just under the limit still works
    padded = jsonrpc_body("com.vmware.cis.session", "create", sec=sec_user_pass(user, pwd))
    padded["params"]["ctx"]["appCtx"]["padding"] = "y" * 3000
    r = jsonrpc(server, "com.vmware.cis.session", "create", data=json.dumps(padded))
    assert len(r.request.body) < 4096
    assert jrpc_output(r), show(r)
    r = vj_post(server, "SessionManager", "SessionManager", "Login",
                data=json.dumps({"userName": user, "password": pwd}) + " " * 3000)
    assert r.status_code == 200, show(r)
    assert_still_serving(server)


# ================================================================== 5. long and odd tokens

TOKEN_3000 = ("bogus-" + secrets.token_hex(1500))[:3000]
TOKEN_5000 = ("bogus-" + secrets.token_hex(2500))[:5000]


def unauth_vijson(server, sid):
    # (HTTP status of VI/JSON faults: see test_vijson_fault_http_status_per_brief)
    dead_vijson(server, sid)
    vj_fault(vj_get(server, "SessionManager", "SessionManager", "message", sid),
             "NotAuthenticated")


def unauth_api_folders(server, sid):
    assert_api_error(api_folders(server, sid), 401, "UNAUTHENTICATED")


def unauth_rest_header(server, sid):
    r = rest_get_session(server, sid, via="header")
    assert r.status_code == 401, show(r)


UNAUTH = {"soap": dead_soap, "vijson": unauth_vijson, "api": dead_api,
          "api_folder": unauth_api_folders, "rest_cookie": dead_rest,
          "rest_header": unauth_rest_header, "jsonrpc": dead_jsonrpc, "vapi_sdk": dead_sdk}


@pytest.mark.parametrize("transport", list(UNAUTH))
def test_3000_char_bogus_token_is_unauthenticated(vsess, transport):
    assert len(TOKEN_3000) == 3000
    UNAUTH[transport](vsess, TOKEN_3000)
    alive_api(vsess, api_sid(vsess), ADMIN)


def rejected_soap(server, token):
    try:
        si = soap_attach(server, token)
        sm(si).message
    except vim.fault.NotAuthenticated:
        return  # the SOAP fault shape (HTTP 500 + NotAuthenticated detail) is the expected one
    except http.client.HTTPException as e:
        assert str(e)[:1] == "4", f"SOAP answered {e}"
        return
    raise AssertionError("a 5000-char bogus cookie was accepted")


def rejected_http(r):
    assert 400 <= r.status_code < 500, "must be rejected with a 4xx, not 5xx/2xx" + show(r)


def rejected_jsonrpc(server, token):
    r = jrpc_session_get(server, token)
    if r.status_code == 200:
        name, _ = jrpc_error(jrpc_result(r))
        assert name in (ERR + "unauthenticated", ERR + "invalid_argument",
                        ERR + "invalid_request"), show(r)
    else:
        rejected_http(r)


REJECT = {
    "soap": rejected_soap,
    # VI/JSON: a proper NotAuthenticated fault, not a crash (status: see the *_per_brief test)
    "vijson": lambda s, t: vj_fault(vj_get(s, "Folder", ROOT, "name", t), "NotAuthenticated"),
    "vijson_session": lambda s, t: vj_fault(
        vj_get(s, "SessionManager", "SessionManager", "message", t), "NotAuthenticated"),
    "api": lambda s, t: rejected_http(api_get_session(s, t)),
    "api_folder": lambda s, t: rejected_http(api_folders(s, t)),
    "rest_cookie": lambda s, t: rejected_http(rest_get_session(s, t, via="cookie")),
    "rest_header": lambda s, t: rejected_http(rest_get_session(s, t, via="header")),
    "jsonrpc": rejected_jsonrpc,
}


@pytest.mark.parametrize("transport", list(REJECT))
def test_5000_char_token_is_rejected_without_500(vsess, transport):
    assert len(TOKEN_5000) == 5000
    REJECT[transport](vsess, TOKEN_5000)
    alive_api(vsess, api_sid(vsess), ADMIN)


ODD_TOKENS = ["not-a-session", "' OR '1'='1", "../../../etc/passwd", "%00%0d%0a", "a b c",
              "0" * 40, "\"quoted\"", "tab\tinside"]


@pytest.mark.parametrize("token", ODD_TOKENS, ids=range(len(ODD_TOKENS)))
def test_odd_tokens_are_not_sessions(vsess, token):
    live = api_sid(vsess)
    check_all([
        ("vijson", lambda: dead_vijson(vsess, token)),
        ("api", lambda: rejected_http(api_get_session(vsess, token))),
        ("api_folder", lambda: rejected_http(api_folders(vsess, token))),
        ("rest_header", lambda: rejected_http(rest_get_session(vsess, token, via="header"))),
        ("jsonrpc", lambda: assert_jrpc_error(jrpc_session_get(vsess, token), "unauthenticated")),
    ])
    alive_api(vsess, live, ADMIN)


# ================================================================== 6. inventory


def child_ids(folder):
    return {e._moId: e for e in folder.childEntity}


def test_soap_create_datacenter_and_folder(vsess):
    si = soap_connect(vsess)
    root = si.content.rootFolder
    assert root._moId == ROOT and root.name == "Datacenters"
    dc = root.CreateDatacenter("DC1")
    assert isinstance(dc, vim.Datacenter) and dc.name == "DC1", repr(dc)
    assert dc._moId.startswith("datacenter-"), dc._moId
    for prop in ("vmFolder", "hostFolder", "datastoreFolder", "networkFolder"):
        f = getattr(dc, prop)
        assert isinstance(f, vim.Folder), (prop, f)
    assert len({dc.vmFolder._moId, dc.hostFolder._moId, dc.datastoreFolder._moId,
                dc.networkFolder._moId}) == 4
    f = root.CreateFolder("F1")
    assert isinstance(f, vim.Folder) and f.name == "F1"
    assert {dc._moId, f._moId} <= set(child_ids(root))
    with pytest.raises(vim.fault.DuplicateName):
        root.CreateDatacenter("DC1")
    with pytest.raises(vim.fault.DuplicateName):
        root.CreateFolder("F1")
    with pytest.raises(vim.fault.DuplicateName):
        root.CreateDatacenter("F1")
    with pytest.raises(vim.fault.InvalidName):
        root.CreateDatacenter("")
    with pytest.raises(vim.fault.InvalidName):
        root.CreateFolder("")
    sub = f.CreateFolder("Nested")
    assert sub._moId in child_ids(f)
    assert len(root.childEntity) == 2


def test_datacenter_child_folders_match_vcenter(vsess):
    si = soap_connect(vsess)
    dc = si.content.rootFolder.CreateDatacenter("DC1")
    expect = {"vmFolder": ("vm", "VIRTUAL_MACHINE"), "hostFolder": ("host", "HOST"),
              "datastoreFolder": ("datastore", "DATASTORE"), "networkFolder": ("network", "NETWORK")}
    listed = json_of(api_folders(vsess, soap_sid(si)))
    for prop, (name, ftype) in expect.items():
        f = getattr(dc, prop)
        assert f.name == name, (prop, f.name)
        assert {"folder": f._moId, "name": name, "type": ftype} in listed, (prop, listed)


def test_reader_gets_no_permission(vsess):
    reader = soap_connect(vsess, "reader")
    root = reader.content.rootFolder
    with pytest.raises(vim.fault.NoPermission):
        root.CreateDatacenter("DCR")
    with pytest.raises(vim.fault.NoPermission):
        root.CreateFolder("FR")
    sid = vj_sid(vsess, "reader")
    vj_fault(vj_post(vsess, "Folder", ROOT, "CreateDatacenter", {"name": "DCR"}, sid=sid),
             "NoPermission")
    vj_fault(vj_post(vsess, "Folder", ROOT, "CreateFolder", {"name": "FR"}, sid=sid),
             "NoPermission")
    assert len(root.childEntity) == 0
    assert root.name == "Datacenters"  # reading is fine for ReadOnly


def test_vijson_inventory(vsess):
    sid = vj_sid(vsess)
    r = vj_get(vsess, "ServiceInstance", "ServiceInstance", "content")
    assert r.status_code == 200, show(r)
    content = json_of(r)
    assert content.get("_typeName") == "ServiceContent", show(r)
    assert content.get("rootFolder") == moref(ROOT, "Folder"), show(r)
    r = vj_get(vsess, "Folder", ROOT, "name", sid)
    assert r.status_code == 200 and json_of(r) == "Datacenters", show(r)
    r = vj_get(vsess, "Folder", ROOT, "childEntity", sid)
    assert r.status_code == 200 and json_of(r) == [], show(r)

    r = vj_post(vsess, "Folder", ROOT, "CreateDatacenter", {"name": "TEST"}, sid=sid)
    assert r.status_code == 200, show(r)
    dc = json_of(r)
    assert dc.get("_typeName") == "ManagedObjectReference" and dc.get("type") == "Datacenter", \
        show(r)
    assert dc.get("value", "").startswith("datacenter-"), show(r)
    r = vj_post(vsess, "Folder", ROOT, "CreateFolder", {"name": "F1"}, sid=sid)
    assert r.status_code == 200, show(r)
    folder = json_of(r)
    assert folder.get("type") == "Folder" and folder.get("_typeName") == "ManagedObjectReference", \
        show(r)

    r = vj_get(vsess, "Folder", ROOT, "childEntity", sid)
    kids = json_of(r)
    assert dc in kids and folder in kids and len(kids) == 2, show(r)
    r = vj_get(vsess, "Datacenter", dc["value"], "name", sid)
    assert r.status_code == 200 and json_of(r) == "TEST", show(r)
    r = vj_get(vsess, "Datacenter", dc["value"], "vmFolder", sid)
    assert r.status_code == 200 and json_of(r).get("type") == "Folder", show(r)

    vj_fault(vj_post(vsess, "Folder", ROOT, "CreateDatacenter", {"name": "TEST"}, sid=sid),
             "DuplicateName")
    vj_fault(vj_post(vsess, "Folder", ROOT, "CreateFolder", {"name": "TEST"}, sid=sid),
             "DuplicateName")
    vj_fault(vj_post(vsess, "Folder", ROOT, "CreateFolder", {"name": ""}, sid=sid),
             "InvalidName")
    vj_fault(vj_post(vsess, "Folder", ROOT, "CreateDatacenter", {"name": ""}, sid=sid),
             "InvalidName")

    # the same objects through SOAP, with the same id
    si = soap_attach(vsess, sid)
    kids = child_ids(si.content.rootFolder)
    assert isinstance(kids[dc["value"]], vim.Datacenter) and kids[dc["value"]].name == "TEST"
    assert isinstance(kids[folder["value"]], vim.Folder) and kids[folder["value"]].name == "F1"
    assert json_of(vj_get(vsess, "Datacenter", dc["value"], "vmFolder", sid))["value"] == \
        kids[dc["value"]].vmFolder._moId


@pytest.mark.parametrize("release", RELEASES)
def test_vijson_releases(vsess, release):
    r = vj_get(vsess, "ServiceInstance", "ServiceInstance", "content", release=release)
    assert r.status_code == 200, show(r)
    content = json_of(r)
    assert content.get("_typeName") == "ServiceContent", show(r)
    assert content.get("rootFolder") == moref(ROOT, "Folder"), show(r)
    r = vj_login(vsess, release=release)
    assert r.status_code == 200, show(r)
    body = json_of(r)
    sid = r.headers.get(SESSION_HEADER)
    assert sid and body.get("_typeName") == "UserSession" and body.get("userName") == ADMIN, show(r)
    assert body.get("key") and body["key"] != sid, show(r)
    other = RELEASES[(RELEASES.index(release) + 1) % len(RELEASES)]
    r = vj_get(vsess, "Folder", ROOT, "tag", sid, release=other)
    assert r.status_code == 200 and isinstance(json_of(r), list), show(r)
    r = vj_post(vsess, "SessionManager", "SessionManager", "Logout", sid=sid, release=release)
    assert r.status_code == 204, show(r)
    dead_vijson(vsess, sid)


def test_inventory_persists_across_restart(vsess):
    si = soap_connect(vsess)
    root = si.content.rootFolder
    dc = root.CreateDatacenter("Persist-DC")
    dc_id, vm_id = dc._moId, dc.vmFolder._moId
    sid = vj_sid(vsess)
    r = vj_post(vsess, "Folder", ROOT, "CreateFolder", {"name": "Persist-F"}, sid=sid)
    assert r.status_code == 200, show(r)
    f_id = json_of(r)["value"]

    vsess.restart()

    si = soap_connect(vsess)
    kids = child_ids(si.content.rootFolder)
    assert set(kids) == {dc_id, f_id}, kids
    assert kids[dc_id].name == "Persist-DC" and kids[dc_id].vmFolder._moId == vm_id
    assert kids[f_id].name == "Persist-F"
    listed = json_of(api_folders(vsess, api_sid(vsess)))
    assert {"folder": f_id, "name": "Persist-F", "type": "DATACENTER"} in listed, listed
    # new objects do not reuse ids
    dc2 = si.content.rootFolder.CreateDatacenter("After-Restart")
    assert dc2._moId not in (dc_id, f_id)


def triples(items):
    return {(i["folder"], i["name"], i["type"]) for i in items}


def test_rest_folder_list_and_filters(vsess):
    si = soap_connect(vsess)
    root = si.content.rootFolder
    dc = root.CreateDatacenter("DC1")
    sub = root.CreateFolder("Sub")
    sid = api_sid(vsess)

    r = api_folders(vsess, sid)
    assert r.status_code == 200, show(r)
    every = json_of(r)
    assert isinstance(every, list), show(r)
    for item in every:
        assert set(item) == {"folder", "name", "type"}, show(r)
    assert triples(every) >= {(ROOT, "Datacenters", "DATACENTER"), (sub._moId, "Sub", "DATACENTER"),
                              (dc.vmFolder._moId, "vm", "VIRTUAL_MACHINE")}, show(r)
    assert len(every) == 6, show(r)

    r = api_folders(vsess, sid, {"type": "DATACENTER"})
    assert triples(json_of(r)) == {(ROOT, "Datacenters", "DATACENTER"),
                                   (sub._moId, "Sub", "DATACENTER")}, show(r)
    r = api_folders(vsess, sid, {"names": "Sub"})
    assert triples(json_of(r)) == {(sub._moId, "Sub", "DATACENTER")}, show(r)
    r = api_folders(vsess, sid, {"names": ["Sub", "Datacenters"]})
    assert triples(json_of(r)) == {(ROOT, "Datacenters", "DATACENTER"),
                                   (sub._moId, "Sub", "DATACENTER")}, show(r)
    r = api_folders(vsess, sid, {"folders": ROOT})
    assert triples(json_of(r)) == {(ROOT, "Datacenters", "DATACENTER")}, show(r)
    r = api_folders(vsess, sid, {"type": "DATACENTER", "names": "vm"})
    assert json_of(r) == [], show(r)
    r = api_folders(vsess, sid, {"type": "VIRTUAL_MACHINE", "names": "vm"})
    assert triples(json_of(r)) == {(dc.vmFolder._moId, "vm", "VIRTUAL_MACHINE")}, show(r)

    assert_api_error(api_folders(vsess, sid, {"type": "BOGUS"}), 400, "INVALID_ARGUMENT")
    assert_api_error(call("GET", base(vsess) + "/api/vcenter/folder"), 401, "UNAUTHENTICATED")


def test_jsonrpc_folder_list_with_filters(vsess):
    from com.vmware.vcenter_client import Folder
    si = soap_connect(vsess)
    root = si.content.rootFolder
    root.CreateDatacenter("DC1")
    sub = root.CreateFolder("Sub")
    client = vapi_client(vsess, "admin")

    def listed(spec=None):
        return {(s.folder, s.name, str(s.type)) for s in client.vcenter.Folder.list(spec)}

    root_t = (ROOT, "Datacenters", "DATACENTER")
    sub_t = (sub._moId, "Sub", "DATACENTER")
    everything = listed()
    assert len(everything) == 6 and {root_t, sub_t} <= everything, everything
    assert listed(Folder.FilterSpec(type=Folder.Type.DATACENTER)) == {root_t, sub_t}
    assert listed(Folder.FilterSpec(names={"Sub"})) == {sub_t}
    assert listed(Folder.FilterSpec(folders={ROOT})) == {root_t}
    assert listed(Folder.FilterSpec(folders={ROOT, sub._moId}, names={"Sub"})) == {sub_t}
    hosts = {t for t in everything if t[2] == "HOST"}
    assert len(hosts) == 1
    assert listed(Folder.FilterSpec(type=Folder.Type.HOST, names={"host"})) == hosts

    sid = client.get_session_id()
    r = jsonrpc(vsess, "com.vmware.vcenter.folder", "list", folder_filter(type="BOGUS"),
                sec=sec_session(sid))
    assert_jrpc_error(r, "invalid_argument")
    r = jsonrpc(vsess, "com.vmware.vcenter.folder", "list", folder_filter())
    assert_jrpc_error(r, "unauthenticated")
    out = jrpc_output(jsonrpc(vsess, "com.vmware.vcenter.folder", "list",
                              folder_filter(names=["Datacenters"]), sec=sec_session(sid)))
    assert out == [{"STRUCTURE": {"com.vmware.vcenter.folder.summary": {
        "folder": ROOT, "name": "Datacenters", "type": "DATACENTER"}}}], out
    defuse(client)


# ================================================================== REST session endpoints


def test_api_session_lifecycle(vsess):
    r = api_login(vsess, "reader")
    assert r.status_code == 201, show(r)
    assert r.headers.get("Content-Type", "").startswith("application/json"), show(r)
    sid = json_of(r)
    assert isinstance(sid, str) and sid, show(r)
    r = api_get_session(vsess, sid)
    assert r.status_code == 200, show(r)
    info = json_of(r)
    assert info["user"] == READER, show(r)
    assert rfc3339(info["last_accessed_time"]) >= rfc3339(info["created_time"])
    r = api_delete_session(vsess, sid)
    assert r.status_code == 204 and r.content == b"", show(r)
    dead_api(vsess, sid)
    r = api_delete_session(vsess, sid)
    assert_api_error(r, 401, "UNAUTHENTICATED")


def test_legacy_rest_session_lifecycle(vsess):
    r = rest_login(vsess, "reader")
    assert r.status_code == 200, show(r)
    sid = json_of(r)["value"]
    cookie = r.headers.get("Set-Cookie", "")
    assert cookie.startswith(f"vmware-api-session-id={sid}"), show(r)
    assert "Path=/rest" in cookie, show(r)
    assert cookie.count("vmware-api-session-id") == 1, show(r)

    for via in ("cookie", "header"):
        r = rest_get_session(vsess, sid, via=via)
        assert r.status_code == 200 and json_of(r)["value"]["user"] == READER, show(r)
    r = call("POST", base(vsess) + REST_SESSION, params={"~action": "get"},
             headers={SESSION_HEADER: sid})
    assert r.status_code == 200, show(r)
    value = json_of(r)["value"]
    assert value["user"] == READER, show(r)
    rfc3339(value["created_time"])
    rfc3339(value["last_accessed_time"])

    r = rest_delete_session(vsess, sid)
    assert r.status_code == 200, show(r)
    dead_rest(vsess, sid)
    r = rest_get_session(vsess, sid, via="header")
    assert r.status_code == 401, show(r)


def test_legacy_rest_header_authn_sets_no_cookie(vsess):
    r = rest_login(vsess, "admin", headers={"vmware-use-header-authn": "true"})
    assert r.status_code == 200, show(r)
    assert "set-cookie" not in {k.lower() for k in r.headers}, show(r)
    sid = json_of(r)["value"]
    alive_soap(vsess, sid, ADMIN)
