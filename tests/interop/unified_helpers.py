"""Helpers for test_unified.py: one session id across SOAP, VI/JSON, vAPI JSON-RPC and REST.

Every HTTP call uses a brand-new ``requests.Session`` (verify=False, trust_env=False) so that
no cookie set by one call (e.g. the legacy ``/rest`` session cookie) leaks into the next one.
Only 127.0.0.1 is ever contacted.
"""

import json
import pprint

import requests
import urllib3
from pyVim.connect import SmartConnect, SmartStubAdapter
from pyVmomi import vim

urllib3.disable_warnings(urllib3.exceptions.InsecureRequestWarning)

ADMIN = "admin@vsphere.local"
READER = "reader@vsphere.local"
RELEASES = ("7.0.3.0", "8.0.1.0", "8.0.2.0", "8.0.3.0", "9.0.0.0")
RELEASE = "8.0.3.0"
SESSION_HEADER = "vmware-api-session-id"
ROOT = "group-d1"
TIMEOUT = 30

SCHEME_USER_PASS = "com.vmware.vapi.std.security.user_pass"
SCHEME_SESSION = "com.vmware.vapi.std.security.session_id"
EMPTY_INPUT = {"STRUCTURE": {"operation-input": {}}}
ERR = "com.vmware.vapi.std.errors."


# ------------------------------------------------------------------ plumbing


def base(server):
    return f"https://{server.host}:{server.port}"


def new_http():
    s = requests.Session()
    s.verify = False
    s.trust_env = False
    return s


def call(method, url, **kwargs):
    """One request on a fresh requests.Session (no shared cookie jar)."""
    kwargs.setdefault("timeout", TIMEOUT)
    with new_http() as s:
        return s.request(method, url, **kwargs)


def show(r):
    """Raw request/response, for assertion messages."""
    req = r.request
    body = req.body
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if body and len(body) > 600:
        body = body[:600] + f"...({len(body)} chars)"
    hdrs = {k: (v if len(v) < 120 else v[:120] + "...") for k, v in req.headers.items()}
    text = r.text if len(r.text) < 3000 else r.text[:3000] + "..."
    return (f"\n>>> {req.method} {req.url}\n>>> headers {hdrs}\n>>> body {body!r}"
            f"\n<<< {r.status_code} {r.reason}\n<<< headers {dict(r.headers)}\n<<< body {text!r}")


def json_of(r):
    try:
        return r.json()
    except ValueError:
        raise AssertionError("response body is not JSON" + show(r)) from None


def user_pwd(server, role):
    return server.users[role] if isinstance(role, str) else role


# ------------------------------------------------------------------ VI/JSON


def vj_url(server, type_, moid, member, release=RELEASE):
    return f"{base(server)}/sdk/vim25/{release}/{type_}/{moid}/{member}"


def vj_get(server, type_, moid, prop, sid=None, release=RELEASE, headers=None):
    h = dict(headers or {})
    if sid is not None:
        h[SESSION_HEADER] = sid
    return call("GET", vj_url(server, type_, moid, prop, release), headers=h)


def vj_post(server, type_, moid, method, body=None, sid=None, release=RELEASE, headers=None,
            data=None):
    h = dict(headers or {})
    if sid is not None:
        h[SESSION_HEADER] = sid
    if data is not None:
        h.setdefault("Content-Type", "application/json")
        return call("POST", vj_url(server, type_, moid, method, release), headers=h, data=data)
    return call("POST", vj_url(server, type_, moid, method, release), headers=h, json=body)


def vj_login(server, role="admin", release=RELEASE, headers=None):
    user, pwd = user_pwd(server, role)
    return vj_post(server, "SessionManager", "SessionManager", "Login",
                   {"userName": user, "password": pwd}, release=release, headers=headers)


def vj_sid(server, role="admin", headers=None):
    r = vj_login(server, role, headers=headers)
    assert r.status_code == 200, "VI/JSON Login failed" + show(r)
    sid = r.headers.get(SESSION_HEADER)
    assert sid, "VI/JSON Login must return the vmware-api-session-id header" + show(r)
    return sid


def vj_fault(r, *types):
    """A VI/JSON fault: HTTP >= 400 and a JSON body whose _typeName is one of ``types``."""
    assert r.status_code >= 400, f"expected a fault {types}" + show(r)
    body = json_of(r)
    assert isinstance(body, dict) and body.get("_typeName") in types, \
        f"expected _typeName in {types}" + show(r)
    return body


def moref(value, type_):
    return {"_typeName": "ManagedObjectReference", "type": type_, "value": value}


# ------------------------------------------------------------------ REST (/api and legacy /rest)


def api_login(server, role="admin", headers=None, **kwargs):
    return call("POST", base(server) + "/api/session", auth=user_pwd(server, role),
                headers=headers, **kwargs)


def api_sid(server, role="admin", headers=None):
    r = api_login(server, role, headers=headers)
    assert r.status_code == 201, "POST /api/session must answer 201" + show(r)
    sid = json_of(r)
    assert isinstance(sid, str) and sid, "POST /api/session must return a bare JSON string" + show(r)
    return sid


def api_get_session(server, sid):
    return call("GET", base(server) + "/api/session", headers={SESSION_HEADER: sid})


def api_delete_session(server, sid):
    return call("DELETE", base(server) + "/api/session", headers={SESSION_HEADER: sid})


def api_folders(server, sid, params=None):
    return call("GET", base(server) + "/api/vcenter/folder", headers={SESSION_HEADER: sid},
                params=params)


def assert_api_error(r, status, error_type):
    assert r.status_code == status, f"expected HTTP {status} {error_type}" + show(r)
    body = json_of(r)
    assert isinstance(body, dict) and body.get("error_type") == error_type, \
        f"expected error_type {error_type}" + show(r)
    msgs = body.get("messages")
    assert isinstance(msgs, list), "REST error needs a messages list" + show(r)
    for m in msgs:
        assert {"args", "default_message", "id"} <= set(m), \
            "REST error messages need args/default_message/id" + show(r)
    return body


REST_SESSION = "/rest/com/vmware/cis/session"


def rest_login(server, role="admin", headers=None, **kwargs):
    return call("POST", base(server) + REST_SESSION, auth=user_pwd(server, role),
                headers=headers, **kwargs)


def rest_sid(server, role="admin", headers=None):
    r = rest_login(server, role, headers=headers)
    assert r.status_code == 200, "POST /rest/com/vmware/cis/session must answer 200" + show(r)
    body = json_of(r)
    assert isinstance(body, dict) and isinstance(body.get("value"), str) and body["value"], \
        'legacy login must return {"value": "<sid>"}' + show(r)
    return body["value"]


def rest_get_session(server, sid, via="cookie"):
    if via == "cookie":
        return call("GET", base(server) + REST_SESSION, cookies={SESSION_HEADER: sid})
    return call("GET", base(server) + REST_SESSION, headers={SESSION_HEADER: sid})


def rest_delete_session(server, sid):
    return call("DELETE", base(server) + REST_SESSION, headers={SESSION_HEADER: sid})


# ------------------------------------------------------------------ vAPI JSON-RPC (raw)


def sec_session(sid):
    return {"schemeId": SCHEME_SESSION, "sessionId": sid}


def sec_user_pass(user, pwd):
    return {"schemeId": SCHEME_USER_PASS, "userName": user, "password": pwd}


def jsonrpc_body(service, operation, input_value=None, sec=None, rid="1"):
    ctx = {"appCtx": {"opId": "unified-test"}}
    if sec is not None:
        ctx["securityCtx"] = sec
    return {"jsonrpc": "2.0", "method": "invoke",
            "params": {"serviceId": service, "operationId": operation,
                       "input": input_value if input_value is not None else EMPTY_INPUT,
                       "ctx": ctx},
            "id": rid}


def jsonrpc(server, service, operation, input_value=None, sec=None, rid="1", headers=None,
            data=None):
    """POST /api like the SDK does (vapi-service / vapi-operation headers included)."""
    h = {"Content-Type": "application/json", "vapi-service": service, "vapi-operation": operation}
    h.update(headers or {})
    if data is None:
        data = json.dumps(jsonrpc_body(service, operation, input_value, sec, rid))
    return call("POST", base(server) + "/api", headers=h, data=data)


def jrpc_result(r, rid="1"):
    """HTTP 200, jsonrpc 2.0, echoed id, a ``result`` object; returns the result."""
    assert r.status_code == 200, "JSON-RPC answers must be HTTP 200" + show(r)
    body = json_of(r)
    assert body.get("jsonrpc") == "2.0", "missing jsonrpc 2.0" + show(r)
    assert body.get("id") == rid, f"JSON-RPC id {rid!r} not echoed" + show(r)
    assert "result" in body and isinstance(body["result"], dict), "no result object" + show(r)
    return body["result"]


def jrpc_error(result):
    """(error name, fields) of result.error, or (None, None)."""
    err = result.get("error")
    if err is None:
        return None, None
    assert isinstance(err, dict) and list(err) == ["ERROR"], f"bad error shape {err!r}"
    (name, fields), = err["ERROR"].items()
    return name, fields


def assert_jrpc_error(r, name, rid="1"):
    result = jrpc_result(r, rid)
    got, fields = jrpc_error(result)
    assert got == ERR + name, f"expected vAPI error {name}" + show(r)
    assert isinstance(fields.get("messages"), list), "vAPI error needs messages" + show(r)
    for m in fields["messages"]:
        (sname, mf), = m["STRUCTURE"].items()
        assert sname == "com.vmware.vapi.std.localizable_message"
        assert {"id", "default_message", "args"} <= set(mf), show(r)
    return fields


def jrpc_output(r, rid="1"):
    result = jrpc_result(r, rid)
    assert "output" in result and "error" not in result, "expected result.output" + show(r)
    return result["output"]


def unstruct(v):
    """Strip JSON-RPC wrappers: STRUCTURE/OPTIONAL/SECRET -> plain python."""
    if isinstance(v, list):
        return [unstruct(x) for x in v]
    if isinstance(v, dict) and len(v) == 1:
        (k, inner), = v.items()
        if k == "STRUCTURE":
            (_, fields), = inner.items()
            return {f: unstruct(x) for f, x in fields.items()}
        if k in ("OPTIONAL", "SECRET"):
            return unstruct(inner)
    return v


def jrpc_sid(server, role="admin", headers=None):
    user, pwd = user_pwd(server, role)
    r = jsonrpc(server, "com.vmware.cis.session", "create", sec=sec_user_pass(user, pwd),
                headers=headers)
    out = jrpc_output(r)
    sid = out.get("SECRET") if isinstance(out, dict) else out
    assert isinstance(sid, str) and sid, "session create must return a SECRET string" + show(r)
    return sid


def jrpc_session_get(server, sid, rid="1"):
    return jsonrpc(server, "com.vmware.cis.session", "get", sec=sec_session(sid), rid=rid)


def jrpc_session_delete(server, sid):
    return jsonrpc(server, "com.vmware.cis.session", "delete", sec=sec_session(sid))


def folder_filter(**fields):
    names = ("folders", "names", "type", "parent_folders", "datacenters")
    spec = {n: {"OPTIONAL": fields.get(n)} for n in names}
    return {"STRUCTURE": {"operation-input": {"filter": {"OPTIONAL": {
        "STRUCTURE": {"com.vmware.vcenter.folder.filter_spec": spec}}}}}}


# ------------------------------------------------------------------ vAPI SDK (create_vsphere_client)


def vapi_client(server, role=None, session_id=None):
    from vmware.vapi.vsphere.client import create_vsphere_client
    if session_id is not None:
        return create_vsphere_client(f"{server.host}:{server.port}", session=new_http(),
                                     session_id=session_id)
    user, pwd = user_pwd(server, role or "admin")
    return create_vsphere_client(f"{server.host}:{server.port}", user, pwd, session=new_http())


def defuse(client):
    """Stop VsphereClient.__del__ from deleting the (shared) session at garbage collection."""
    client.session_svc = None  # __del__ swallows the resulting AttributeError


# ------------------------------------------------------------------ SOAP (pyVmomi)


def soap_connect(server, role="admin"):
    user, pwd = user_pwd(server, role)
    return SmartConnect(host=server.host, port=server.port, user=user, pwd=pwd,
                        disableSslCertValidation=True)


def soap_attach(server, sid):
    return SmartConnect(host=server.host, port=server.port, sessionId=sid,
                        disableSslCertValidation=True)


def soap_anon(server):
    stub = SmartStubAdapter(host=server.host, port=server.port, disableSslCertValidation=True)
    return vim.ServiceInstance("ServiceInstance", stub)


def soap_sid(si):
    return si._GetStub().GetSessionId()


def sm(si):
    return si.content.sessionManager


def soap_clone_sid(server, role="admin"):
    src = soap_connect(server, role)
    ticket = sm(src).AcquireCloneTicket()
    clone = soap_anon(server)
    sm(clone).CloneSession(ticket)
    sid = soap_sid(clone)
    assert sid, "CloneSession must set a vmware_soap_session cookie"
    return sid, (src, clone)


def fmt(x):
    return pprint.pformat(x, width=120)
