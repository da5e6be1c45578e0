"""Holds real pyVmomi sessions for the browser test and answers one JSON command a line.

Commands (stdin, one JSON object a line; one JSON answer a line on stdout):
  {"cmd": "connect", "name": N, "user": U, "pwd": P}
      SmartConnect to $VSESS_HOST:$VSESS_PORT; answers {"ok": true, "key": <session key>}
  {"cmd": "call", "name": N}
      the session's next call (ServiceInstance.CurrentTime, which needs System.View);
      answers {"ok": true} or {"ok": false, "fault": "vim.fault.NotAuthenticated"}
  {"cmd": "message", "name": N}
      reads SessionManager.message; answers {"ok": true, "message": M}
  {"cmd": "quit"}
Passwords arrive on stdin only and are never printed.
"""

import json
import os
import sys

# In this environment these point at a system CA bundle and make requests ignore
# verify=False; the server's certificate is self-signed.
for _var in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"):
    os.environ.pop(_var, None)

from pyVim.connect import SmartConnect  # noqa: E402
from pyVmomi import vim  # noqa: E402

HOST = os.environ["VSESS_HOST"]
PORT = int(os.environ["VSESS_PORT"])
sessions = {}


def handle(req):
    cmd = req.get("cmd")
    if cmd == "connect":
        si = SmartConnect(host=HOST, port=PORT, user=req["user"], pwd=req["pwd"],
                          disableSslCertValidation=True)
        sessions[req["name"]] = si
        return {"ok": True, "key": si.content.sessionManager.currentSession.key}
    if cmd == "call":
        si = sessions[req["name"]]
        try:
            si.CurrentTime()
            return {"ok": True}
        except vim.fault.NotAuthenticated as e:
            return {"ok": False, "fault": "vim.fault.NotAuthenticated", "msg": e.msg or ""}
        except Exception as e:  # any other fault is reported, not raised
            return {"ok": False, "fault": type(e).__name__, "detail": str(e)[:300]}
    if cmd == "message":
        si = sessions[req["name"]]
        return {"ok": True, "message": si.content.sessionManager.message or ""}
    if cmd == "quit":
        return None
    return {"ok": False, "error": f"unknown command {cmd!r}"}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        try:
            answer = handle(json.loads(line))
        except Exception as e:
            answer = {"ok": False, "error": f"{type(e).__name__}: {str(e)[:300]}"}
        if answer is None:
            break
        sys.stdout.write(json.dumps(answer) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    main()
