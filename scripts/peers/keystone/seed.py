#!/usr/bin/env python3
"""Idempotent test fixtures for the local keystone started by start.sh.

Creates (only if missing):
  * region RegionTwo
  * service "nova" (type compute) with public+internal endpoints in
    RegionOne (http://127.0.0.1:8774/v2.1) and public in RegionTwo
    (http://127.0.0.1:18774/v2.1) - nothing listens there, it is only for
    service-catalog / EndpointOpts{Region} lookup tests
  * service "swift" (type object-store), public endpoint in RegionTwo only
  * project "demo" + user "demo" (password "demo-secret", role member on demo)
  * user "probe" (password "probe-secret", no role) for wrong-password tests
  * projects "page-01".."page-NN" (NN = --projects, default 25) for pager tests

Run with the keystone venv's python (it has requests):
  .venv/bin/python seed.py [--url http://127.0.0.1:5000] [--projects 25]
Talks to loopback only. Prints a JSON summary (ids) on stdout.
"""
import argparse
import json
import os
import sys
import urllib.parse

import requests

HERE = os.path.dirname(os.path.abspath(__file__))
ap = argparse.ArgumentParser()
ap.add_argument("--url", default="http://127.0.0.1:%s" % os.environ.get("KS_PORT", "5000"))
ap.add_argument("--password", default=None)
ap.add_argument("--projects", type=int, default=25)
args = ap.parse_args()
assert urllib.parse.urlparse(args.url).hostname in ("127.0.0.1", "localhost", "::1"), "loopback only"
if args.password is None:
    state = os.environ.get("KS_STATE_DIR", os.path.join(HERE, "state"))
    args.password = open(os.path.join(state, "admin-password")).read().strip()

V3 = args.url.rstrip("/") + "/v3"
s = requests.Session()
r = s.post(V3 + "/auth/tokens?nocatalog", json={"auth": {"identity": {"methods": ["password"], "password": {
    "user": {"name": "admin", "domain": {"id": "default"}, "password": args.password}}},
    "scope": {"project": {"name": "admin", "domain": {"id": "default"}}}}}, timeout=30)
r.raise_for_status()
s.headers["X-Auth-Token"] = r.headers["X-Subject-Token"]


def get_all(path, key, **params):
    out, url = [], V3 + path
    while url:
        r = s.get(url, params=params, timeout=30)
        r.raise_for_status()
        body = r.json()
        out += body[key]
        url, params = (body.get("links") or {}).get("next"), None
    return out


def ensure(path, key, match, body):
    for item in get_all(path, key + "s"):
        if all(item.get(k) == v for k, v in match.items()):
            return item
    r = s.post(V3 + path, json={key: body}, timeout=30)
    r.raise_for_status()
    return r.json()[key]


summary = {}
ensure("/regions", "region", {"id": "RegionTwo"}, {"id": "RegionTwo", "description": "second test region"})
for name, stype, eps in [
    ("nova", "compute", [("RegionOne", "public", "http://127.0.0.1:8774/v2.1"),
                         ("RegionOne", "internal", "http://127.0.0.1:8774/v2.1"),
                         ("RegionTwo", "public", "http://127.0.0.1:18774/v2.1")]),
    ("swift", "object-store", [("RegionTwo", "public", "http://127.0.0.1:18080/v1/AUTH_%(tenant_id)s")]),
]:
    svc = ensure("/services", "service", {"name": name, "type": stype},
                 {"name": name, "type": stype, "enabled": True})
    summary[name] = svc["id"]
    for region, iface, url in eps:
        ensure("/endpoints", "endpoint",
               {"service_id": svc["id"], "region_id": region, "interface": iface},
               {"service_id": svc["id"], "region_id": region, "interface": iface, "url": url, "enabled": True})

demo = ensure("/projects", "project", {"name": "demo", "domain_id": "default"},
              {"name": "demo", "domain_id": "default", "description": "non-admin test project"})
user = ensure("/users", "user", {"name": "demo", "domain_id": "default"},
              {"name": "demo", "domain_id": "default", "password": "demo-secret",
               "default_project_id": demo["id"]})
member = get_all("/roles", "roles", name="member")[0]
s.put(V3 + "/projects/%s/users/%s/roles/%s" % (demo["id"], user["id"], member["id"]), timeout=30).raise_for_status()
summary.update(demo_project_id=demo["id"], demo_user_id=user["id"])

# A user that only wrong-password tests use: a failed login writes its failed_auth_count, and
# the next good login of that user writes it again; keeping those writes off the admin and
# demo users keeps sqlite's single writer out of the way of the other tests.
probe = ensure("/users", "user", {"name": "probe", "domain_id": "default"},
               {"name": "probe", "domain_id": "default", "password": "probe-secret"})
summary.update(probe_user_id=probe["id"])

existing = {p["name"] for p in get_all("/projects", "projects")}
for i in range(1, args.projects + 1):
    name = "page-%02d" % i
    if name not in existing:
        s.post(V3 + "/projects", json={"project": {"name": name, "domain_id": "default",
               "description": "pagination fixture"}}, timeout=30).raise_for_status()
summary["projects_total"] = len(get_all("/projects", "projects"))
json.dump(summary, sys.stdout, indent=1)
print()
