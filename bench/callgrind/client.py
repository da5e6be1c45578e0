#!/usr/bin/env python3
"""Client for bench/callgrind/run: logs in, warms up with 20 requests, prints "ready",
waits for a line on stdin (the counters are zeroed then), sends N requests, prints "done".

    client.py PORT MODE N PASSWORD      MODE: S1 | S2 | S4rest | S4rpc | S3
Uses TLS unless $PLAIN is set. Standard library only; 127.0.0.1 only.
"""
import http.client
import json
import os
import ssl
import sys

port, mode, n, pw = int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), sys.argv[4]
UA = "vsess-callgrind"
HEAD = ('<?xml version="1.0" encoding="UTF-8"?><soapenv:Envelope '
        'xmlns:soapenc="http://schemas.xmlsoap.org/soap/encoding/" '
        'xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>')
SM = '<_this type="SessionManager">SessionManager</_this>'


def soap(inner):
    return (HEAD + inner + '</soapenv:Body></soapenv:Envelope>').encode()


LOGIN = soap('<Login xmlns="urn:vim25">' + SM + '<userName>administrator@vsphere.local</userName>'
             '<password>' + pw + '</password></Login>')
if os.environ.get("PLAIN"):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
else:
    ctx = ssl.create_default_context()
    ctx.check_hostname, ctx.verify_mode = False, ssl.CERT_NONE
    c = http.client.HTTPSConnection("127.0.0.1", port, timeout=600, context=ctx)
sh = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '"urn:vim25/8.0.3.0"', "User-Agent": UA}


def req(m, p, b=None, h=None):
    c.request(m, p, body=b, headers=h or {})
    r = c.getresponse()
    return r.status, r, r.read()


st, r, d = req("POST", "/sdk", LOGIN, sh)
assert st == 200, d
cookie = r.getheader("Set-Cookie").split(";")[0]
sid = cookie.split("=", 1)[1].strip('"')


def one():
    if mode == "S1":
        st, _, d = req("POST", "/sdk", soap('<Fetch xmlns="urn:vim25">' + SM + '<prop>currentSession</prop></Fetch>'),
                       dict(sh, Cookie=cookie))
    elif mode == "S2":
        st, _, d = req("POST", "/sdk", soap('<RetrieveServiceContent xmlns="urn:vim25"><_this type="ServiceInstance">'
                                            'ServiceInstance</_this></RetrieveServiceContent>'), sh)
    elif mode == "S4rest":
        st, _, d = req("GET", "/api/session", None, {"vmware-api-session-id": sid, "User-Agent": UA})
    elif mode == "S4rpc":
        body = json.dumps({"jsonrpc": "2.0", "method": "invoke", "id": "1", "params": {
            "serviceId": "com.vmware.cis.session", "operationId": "get",
            "input": {"STRUCTURE": {"operation-input": {}}},
            "ctx": {"appCtx": {"opId": "x"}, "securityCtx": {
                "schemeId": "com.vmware.vapi.std.security.session_id", "sessionId": sid}}}}).encode()
        st, _, d = req("POST", "/api", body, {"Content-Type": "application/json", "User-Agent": UA})
    elif mode == "S3":  # one Login and its Logout: two requests
        st, r2, d = req("POST", "/sdk", LOGIN, sh)
        assert st == 200, d
        ck = r2.getheader("Set-Cookie").split(";")[0]
        st, _, d = req("POST", "/sdk", soap('<Logout xmlns="urn:vim25">' + SM + '</Logout>'), dict(sh, Cookie=ck))
    else:
        sys.exit(f"unknown mode {mode}")
    assert st == 200, d


for _ in range(20):
    one()
print("ready", flush=True)
sys.stdin.readline()
for _ in range(n):
    one()
print("done", n, flush=True)
