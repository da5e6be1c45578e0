#!/usr/bin/env python3
"""Renders BENCHMARKS.md from a bench/run results file, and evaluates issue 6's targets.

    bench/report.py [bench/results.json] > BENCHMARKS.md

bench/run calls render() and targets() itself after a full run. Standard library only.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))

TITLES = {
    "S1": "authenticated SOAP Fetch(SessionManager, currentSession)",
    "S2": "anonymous SOAP RetrieveServiceContent",
    "S3": "SOAP Login then Logout; cold logins of distinct users",
    "S4": "vAPI: GET /api/session and JSON-RPC com.vmware.cis.session.get",
    "S5": "scale: live sessions in the embedded store",
    "S6": "CLI: vsess ls with a cached session vs a fresh login",
    "S7": "Redis mode: an authenticated call on Redis vs on the embedded store",
}


def get(d, *path):
    for p in path:
        if not isinstance(d, dict) or p not in d:
            return None
        d = d[p]
    return d


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def x(r, digits=2):
    return "–" if r is None else f"{r:.{digits}f}×"


def pct(r):
    return "–" if r is None else f"{r * 100:.0f}%"


def num(v, digits=0):
    if v is None:
        return "–"
    return f"{v:,.{digits}f}"


def ms(us):
    return "–" if us is None else f"{us / 1000:.2f}"


def verdict(ok):
    return "n/a" if ok is None else ("met" if ok else "missed")


def s5_vs_10k(results, row):
    """S1 at this size over S1 at 10k: the paired ratio when the run has one."""
    if row is None:
        return None
    if "s1_vs_ref" in row:
        return row["s1_vs_ref"]
    base = s5_row(results, 10_000)
    return ratio(get(row, "s1", "rps"), get(base, "s1", "rps")) if base else None


def largest_s5(results):
    sizes = get(results, "s5", "sizes") or []
    return sizes[-1] if len(sizes) > 1 else None


def s5_row(results, n):
    for row in get(results, "s5", "sizes") or []:
        if row["sessions"] == n:
            return row
    return None


def targets(results):
    """Each target of issue 6: what was measured, the ratio, met or missed."""
    out = []

    def add(tid, text, summary, ok, ceiling="–"):
        out.append({"id": tid, "target": text, "summary": summary, "verdict": verdict(ok), "ceiling": ceiling})

    s1 = get(results, "s1", "servers") or {}
    levels = sorted((s1.get("vsess") or {}).keys(), key=int)

    def per_level(metric, other, good, who="vsess"):
        parts, oks = [], []
        for c in levels:
            r = ratio(get(s1, who, c, metric), get(s1, other, c, metric))
            parts.append(f"c={c}: {x(r)}")
            oks.append(None if r is None else good(r))
        ok = None if not oks or None in oks else all(oks)
        return ", ".join(parts), ok

    summary, ok = per_level("rps", "vcsim", lambda r: r >= 3)
    ceiling, _ = per_level("rps", "vcsim", lambda r: True, who="baseline")
    add("S1-vcsim", "S1 throughput ≥ 3× vcsim", f"vsess/vcsim req/s {summary}" if levels else "not measured", ok,
        f"baseline/vcsim {ceiling}" if levels else "–")
    summary, ok = per_level("rps", "baseline", lambda r: r >= 0.6)
    add("S1-base", "S1 throughput ≥ 60% of baseline", f"vsess/baseline req/s {summary}" if levels else "not measured", ok)
    summary, ok = per_level("server_cpu_us_per_req", "vcsim", lambda r: r <= 0.25)
    ceiling, _ = per_level("server_cpu_us_per_req", "vcsim", lambda r: True, who="baseline")
    add("S1-cpu", "S1 server CPU/request ≤ 1/4 of vcsim's",
        f"vsess/vcsim CPU per request {summary}" if levels else "not measured", ok,
        f"baseline/vcsim {ceiling}" if levels else "–")

    r = ratio(get(results, "s2", "vsess", "rps"), get(results, "s2", "vcsim", "rps"))
    add("S2", "S2 throughput ≥ 4× vcsim", f"vsess/vcsim req/s {x(r)}", None if r is None else r >= 4,
        f"baseline/vcsim {x(ratio(get(results, 's2', 'baseline', 'rps'), get(results, 's2', 'vcsim', 'rps')))}")

    r = ratio(get(results, "s3", "vsess", "pairs_per_s"), get(results, "s3", "vcsim", "pairs_per_s"))
    add("S3", "S3 Login+Logout pairs/s ≥ 2× vcsim", f"vsess/vcsim pairs/s {x(r)}", None if r is None else r >= 2)

    r1 = ratio(get(results, "s4", "rest", "vsess", "rps"), get(results, "s4", "rest", "baseline", "rps"))
    r2 = ratio(get(results, "s4", "rpc", "vsess", "rps"), get(results, "s4", "rpc", "baseline", "rps"))
    ok = None if r1 is None or r2 is None else (r1 >= 0.7 and r2 >= 0.7)
    add("S4", "S4 ≥ 70% of baseline", f"GET /api/session {pct(r1)}, JSON-RPC get {pct(r2)} of baseline", ok)

    big = largest_s5(results)
    if big:
        n = big["sessions"]
        label = f"at {n:,} sessions" + ("" if n >= 1_000_000 else " (1M not run in this mode)")
        b = big.get("bytes_per_session")
        add("S5-rss", "S5 ≤ 1 KiB RSS per session at 1M",
            f"{num(b)} B/session {label}; {x(ratio(b, 1024))} the target",
            None if b is None or n < 1_000_000 else b <= 1024)
        rs = big.get("restart_s")
        add("S5-restart", "S5 restart ≤ 5 s at 1M", f"{rs:.2f} s {label}; {x(ratio(rs, 5.0))} the target",
            None if rs is None or n < 1_000_000 else rs <= 5)
        r = s5_vs_10k(results, big)
        add("S5-S1", "S5 S1 at 1M ≥ 90% of S1 at 10k", f"{pct(r)} {label}",
            None if r is None or n < 1_000_000 else r >= 0.9)
    else:
        for tid, text in (("S5-rss", "S5 ≤ 1 KiB RSS per session at 1M"), ("S5-restart", "S5 restart ≤ 5 s at 1M"),
                          ("S5-S1", "S5 S1 at 1M ≥ 90% of S1 at 10k")):
            add(tid, text, "not measured", None)

    r = ratio(get(results, "s6", "fresh", "mean_ms"), get(results, "s6", "cached", "mean_ms"))
    floor = ratio(get(results, "s6", "fresh", "mean_ms"), get(results, "s6", "floor", "mean_ms"))
    add("S6", "S6 cached ≥ 3× faster than fresh", f"fresh/cached wall time {x(r)}", None if r is None else r >= 3,
        f"fresh/floor {x(floor)}" if floor is not None else "–")
    return out


def lat(res):
    if not res:
        return "–", "–"
    return ms(get(res, "latency_us", "p50")), ms(get(res, "latency_us", "p99"))


def render(results):
    m = results["meta"]
    mach = m["machine"]
    v = mach["versions"]
    p = m["params"]
    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w("<!-- Generated by bench/report.py from bench/results.json; regenerate with bench/run. -->")
    w("")
    w("vsess against **vcsim 0.24.2** and a **baseline** HTTPS server, side by side in one run of "
      "`bench/run` (issue 6). The baseline is a hello-world on vsess's own stack (axum 0.8, "
      "axum-server 0.8, rustls with ring, tokio): it finds the session id where the protocol "
      "carries it, looks it up in an in-memory map and answers a fixed body of the same shape. It "
      "marks what this machine can do at all. Every comparison is a ratio, and every figure comes "
      "from the run described here.")
    w("")
    w(f"- **Date:** {m['date']}; {m['mode']} run, {m['seconds']:.0f} s in all.")
    steal = m.get("steal_percent")
    w(f"- **Machine:** {mach['cpus']} cores ({mach['cpu_model']}), {mach['memory']} RAM, "
      f"{mach['os']}, Linux {mach['kernel']}, a virtual machine. The load average was "
      f"{' '.join(mach['loadavg_at_start'])} at the start"
      + (f" and {' '.join(mach['loadavg_at_end'])} at the end" if mach.get("loadavg_at_end") else "")
      + (f". CPU time stolen by the hypervisor during the run: {steal:.1f}%." if steal is not None else ".")
      + (" CPU used by other processes (neither the server under test nor wrk) during the measured "
         f"runs: {m['other_cpu_percent']['mean']:.1f}% of the machine on average, "
         f"{m['other_cpu_percent']['max']:.1f}% at most." if m.get("other_cpu_percent") else ""))
    w("- **Versions:** " + "; ".join(f"{k} {val}" for k, val in v.items() if val) + ".")
    reps = p.get("reps", 1)
    w(f"- **Load:** wrk with Lua scripts, HTTP/1.1 keep-alive over TLS on 127.0.0.1. S1–S4 run each "
      f"point {reps} times for {p['duration']} s, round-robin across the servers, and report the "
      f"run with the median throughput. A {p['warmup']} s warm-up comes first. S5 runs once per size, for "
      f"{p.get('s5_duration', p['duration'])} s. wrk uses 1 thread for 1 connection and 2 threads "
      f"otherwise, and 1 thread per connection in S3. Server and load generator share the "
      f"{mach['cpus']} cores, unpinned (except in S1's placement rows). Between whole runs the figures vary by about ±10–20%. "
      "Latency is wrk's closed-loop latency: the time from a request to its response, with no "
      "queueing before the send.")
    w("- **CPU per request:** the server's utime+stime (from `/proc/PID/stat`) over the measured "
      "run, divided by the requests served. All threads are included (tokio workers, blocking "
      "pool, Go runtime).")
    w("")
    w("Run it again with `bench/run` (about 7 minutes; it writes this file and "
      "`bench/results.json`). `bench/run --quick` (about 1.5 minutes) checks that every scenario "
      "still runs correctly: no wrk errors, no unexpected status, no leaked sessions. It asserts "
      "no timings (`scripts/test` runs it on the unoptimized build, `--profile dev`). "
      "`bench/run --only S1,S3` runs a subset.")
    w("")

    # Targets.
    w("## Targets")
    w("")
    w("A target is met only if it holds at every point it covers. The last column gives the same ratio "
      "for the baseline. No session server on this stack can beat it, so it is this machine's ceiling "
      "for a target stated against vcsim. For S6 it gives the ratio for the floor client, which "
      "plays the same part for a cached CLI run (see S6).")
    w("")
    w("| target | measured | verdict | baseline (S6: floor), same ratio |")
    w("|---|---|---|---|")
    for t in targets(results):
        w(f"| {t['target']} | {t['summary']} | **{t['verdict']}** | {t['ceiling']} |")
    w("")

    # S1.
    s1 = get(results, "s1", "servers")
    if s1:
        w(f"## S1: {TITLES['S1']}")
        w("")
        w("This is an authenticated SOAP `Fetch` of `SessionManager.currentSession` with the "
          "`vmware_soap_session` cookie, the call pyVmomi makes for `content.sessionManager.currentSession`. "
          "vsess looks up and touches the session and checks the user's role. It answers the "
          "`UserSession`, as vcsim does.")
        w("")
        w("| conns | vsess req/s | vcsim req/s | baseline req/s | vsess/vcsim | vsess/baseline |")
        w("|---:|---:|---:|---:|---:|---:|")
        for c in sorted(s1.get("vsess", {}), key=int):
            a, b, base = (get(s1, k, c, "rps") for k in ("vsess", "vcsim", "baseline"))
            w(f"| {c} | {num(a)} | {num(b)} | {num(base)} | {x(ratio(a, b))} | {pct(ratio(a, base))} |")
        w("")
        w("| conns | vsess p50 / p99 ms | vcsim p50 / p99 ms | baseline p50 / p99 ms |")
        w("|---:|---:|---:|---:|")
        for c in sorted(s1.get("vsess", {}), key=int):
            cells = ["{} / {}".format(*lat(get(s1, k, c))) for k in ("vsess", "vcsim", "baseline")]
            w(f"| {c} | " + " | ".join(cells) + " |")
        w("")
        w("| conns | vsess CPU µs/req | vcsim CPU µs/req | baseline CPU µs/req | vsess/vcsim | vsess/baseline | wrk CPU µs/req (vsess run) |")
        w("|---:|---:|---:|---:|---:|---:|---:|")
        for c in sorted(s1.get("vsess", {}), key=int):
            a, b, base = (get(s1, k, c, "server_cpu_us_per_req") for k in ("vsess", "vcsim", "baseline"))
            w(f"| {c} | {num(a, 1)} | {num(b, 1)} | {num(base, 1)} | {x(ratio(a, b))} | {x(ratio(a, base))} | "
              f"{num(get(s1, 'vsess', c, 'loadgen_cpu_us_per_req'), 1)} |")
        w("")
        placed = get(results, "s1", "placement")
        if placed:
            w("**One connection, placed by hand.** The same point again, with the server's threads and "
              "wrk pinned (`taskset`) to one CPU, and then the server to CPU 0 and wrk to CPU 1. At one "
              "connection nothing overlaps: each request wakes the server, and its answer wakes wrk. "
              "On one CPU a wake-up is a context switch. Across two it is an interrupt to a CPU that "
              "has gone idle, which in this virtual machine means a trip through the hypervisor. "
              "The unpinned rows above fall between the two, wherever the scheduler put the "
              "processes. These rows do not count towards the targets.")
            w("")
            w("| placement | vsess req/s | vcsim req/s | baseline req/s | vsess/vcsim | baseline/vcsim | "
              "vsess CPU µs/req | vcsim CPU µs/req | baseline CPU µs/req | vsess/vcsim CPU |")
            w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
            unpinned = {k: get(s1, k, "1") for k in ("vsess", "vcsim", "baseline")}
            for label, row in [("unpinned (above)", unpinned)] + list(placed.items()):
                a, b, base = (get(row, k, "rps") for k in ("vsess", "vcsim", "baseline"))
                ca, cb, cbase = (get(row, k, "server_cpu_us_per_req") for k in ("vsess", "vcsim", "baseline"))
                w(f"| {label} | {num(a)} | {num(b)} | {num(base)} | {x(ratio(a, b))} | {x(ratio(base, b))} | "
                  f"{num(ca, 1)} | {num(cb, 1)} | {num(cbase, 1)} | {x(ratio(ca, cb))} |")
            w("")

    s2 = results.get("s2")
    if s2 and "vsess" in s2:
        w(f"## S2: {TITLES['S2']}")
        w("")
        w(f"This is the first call every client makes, with no session: vcsim's anonymous path. It runs at "
          f"{p['load_conns']} connections.")
        w("")
        w("| server | req/s | p50 ms | p99 ms | CPU µs/req | vs vcsim | vs baseline |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for k in ("vsess", "vcsim", "baseline"):
            r = s2.get(k)
            if not r:
                continue
            p50, p99 = lat(r)
            w(f"| {k} | {num(r['rps'])} | {p50} | {p99} | {num(r['server_cpu_us_per_req'], 1)} | "
              f"{x(ratio(r['rps'], get(s2, 'vcsim', 'rps')))} | {pct(ratio(r['rps'], get(s2, 'baseline', 'rps')))} |")
        w("")

    s3 = results.get("s3")
    if s3 and "vsess" in s3:
        w(f"## S3: {TITLES['S3']}")
        w("")
        w(f"Each of {get(s3, 'vsess', 'conns')} connections (one wrk thread each) logs in and then "
          "logs out with the cookie it got, again and again, for the same user. vsess verifies "
          "that user's password with argon2id once and then hits its verified-credential cache. "
          "vcsim accepts any password. Afterwards the harness logs out any session wrk left open "
          "at its deadline. It counts the sessions tagged with the run's User-Agent. A Login that "
          "wrk sent but whose answer it never read (at most one per connection) may have created "
          "one, and anything beyond that count is a leak. The session list must then be back to "
          "its size before the run.")
        w("")
        w("| server | pairs/s | CPU µs/request | per-request p50 / p99 ms | left behind | cut at deadline | sessions before → after |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for k in ("vsess", "vcsim"):
            r = s3.get(k)
            if not r or "pairs_per_s" not in r:
                continue
            p50, p99 = lat(r)
            w(f"| {k} | {num(r['pairs_per_s'])} | {num(r['server_cpu_us_per_req'], 1)} | {p50} / {p99} | "
              f"{r['left_behind']} | {r['cut_logins']} | {r['sessions_before']} → {r['sessions_after']} |")
        w("")
        w(f"vsess/vcsim pairs/s: **{x(ratio(get(s3, 'vsess', 'pairs_per_s'), get(s3, 'vcsim', 'pairs_per_s')))}**.")
        w("")
        w("**Cold logins:** the first Login of each of N distinct users, one after another on one "
          "keep-alive connection, timed by the client. On vsess each pays one argon2id "
          "verification (19 MiB, 2 passes, 1 lane). vcsim checks nothing.")
        w("")
        w("| server | users | p50 ms | p99 ms | mean ms | max ms | failures |")
        w("|---|---:|---:|---:|---:|---:|---:|")
        for k in ("vsess", "vcsim"):
            c = get(s3, k, "cold_login")
            if c:
                w(f"| {k} | {c['users']} | {c['p50_ms']:.2f} | {c['p99_ms']:.2f} | {c['mean_ms']:.2f} | "
                  f"{c['max_ms']:.2f} | {c['failures']} |")
        w("")

    s4 = results.get("s4")
    if s4 and get(s4, "rest", "vsess"):
        w(f"## S4: {TITLES['S4']}")
        w("")
        w(f"Both use the session id from a SOAP Login: in the `vmware-api-session-id` header for REST, "
          f"and in the JSON-RPC `securityCtx` (as the vSphere Automation SDK sends it) for `/api`. "
          f"Both run at {p['load_conns']} connections. vcsim 0.24.2 has no `/api` "
          f"(`GET /api/session` answers HTTP {s4.get('vcsim_api_session_status', '404')}), so only the "
          "baseline is compared.")
        w("")
        w("| call | vsess req/s | baseline req/s | vsess/baseline | vsess p50 / p99 ms | baseline p50 / p99 ms | vsess CPU µs/req | baseline CPU µs/req |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        for key, label in (("rest", "GET /api/session"), ("rpc", "JSON-RPC session.get")):
            a, b = get(s4, key, "vsess"), get(s4, key, "baseline")
            w(f"| {label} | {num(get(a, 'rps'))} | {num(get(b, 'rps'))} | {pct(ratio(get(a, 'rps'), get(b, 'rps')))} | "
              "{} / {} | {} / {} | ".format(*lat(a), *lat(b)) +
              f"{num(get(a, 'server_cpu_us_per_req'), 1)} | {num(get(b, 'server_cpu_us_per_req'), 1)} |")
        w("")

    s5 = get(results, "s5", "sizes")
    if s5:
        w(f"## S5: {TITLES['S5']}")
        w("")
        w("`vsess-bench-seed` (bench/tools) writes `sessions.log` directly: N `PutSession` records with "
          "fresh random 160-bit ids, for one user. The server runs with sessionTimeout 86400 s, "
          "maxSessionCount 2,000,000 and no token lifetime. The harness starts it once (it replays "
          "and compacts the log), stops it with SIGTERM and starts it again. **Restart** is the time "
          "from exec to the first correct answer to a seeded session's Fetch. Then S1 runs at "
          f"{p['load_conns']} connections with a seeded id. **S1 vs 10k** at the larger sizes "
          "comes from paired runs: the 10k server stays up, and each pair runs S1 on it and then on "
          f"the larger one, {p.get('s5_pair_duration', p['s5_duration'])} s each, {p['reps']} pair(s); "
          "the column gives the pair with the median ratio (its req/s in the S1 column), so that "
          "the machine's drift between runs falls on both sides. **RSS** is VmRSS after that load. "
          "**Bytes/session** is (RSS − RSS of the same run with 4 sessions) / N. The idle column "
          "uses the RSS right after the restart.")
        w("")
        w("| sessions | log MB | first open s | restart s | stop s | RSS MiB (idle) | peak RSS MiB | bytes/session (idle) | S1 req/s | S1 p50 / p99 ms | S1 vs 10k |")
        w("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for r in s5:
            label = f"{r['sessions']:,}" if r["sessions"] else f"{r['seeded']} (empty)"
            b = r.get("bytes_per_session")
            bi = r.get("bytes_per_session_idle")
            w(f"| {label} | {r['log_bytes'] / 1e6:.1f} | {r['first_start_s']:.2f} | {r['restart_s']:.2f} | "
              f"{r['stop_s']:.2f} | {r['rss_kb'] / 1024:.0f} ({r['rss_idle_kb'] / 1024:.0f}) | "
              f"{r['hwm_after_kb'] / 1024:.0f} | {num(b)} ({num(bi)}) | {num(r['s1']['rps'])} | "
              "{} / {} | ".format(*lat(r["s1"])) +
              f"{pct(s5_vs_10k(results, r))}{' (paired)' if 's1_vs_ref' in r else ''} |")
        w("")

    s6 = results.get("s6")
    if s6 and "cached" in s6:
        w(f"## S6: {TITLES['S6']}")
        w("")
        w("Each run is the whole `vsess ls` process: it starts, connects and lists your sessions. "
          "hyperfine (`-N`, no shell) times it. **Cached** reuses the session cached in "
          "`$GOVMOMI_HOME` by a first run. **Fresh** empties `$GOVMOMI_HOME` before every run "
          "(`--prepare`), so each run logs in anew; its sessions are ended after each chunk of runs, "
          "so that every run lists the same sessions. The series run in "
          f"{s6['cached'].get('rounds', 1)} rounds, a chunk of each per round, so that the machine's "
          "drift falls on all of them alike. The server's session list is counted before and after "
          "each chunk.")
        if "floor" in s6:
            w("")
            w("**Floor** is the least a cached run can cost on this stack: `vsess-bench-floor` "
              "(bench/tools) makes the cached run's one request, with the same session, and does "
              "nothing else. It starts, opens a TLS connection with the SDK's TLS settings (rustls "
              "with ring, reqwest, tokio's current-thread runtime, the system allocator), sends the "
              "`GET /v2/session` that `vsess ls` sends and writes the body out. It reads no cache "
              "file and decodes nothing. It plays the baseline's part for this target: "
              "fresh/floor is the largest ratio a cached run on this stack could reach against the "
              "same fresh runs.")
        w("")
        w("| mode | runs | mean ms | median ms | p90 ms | σ ms | min ms | max ms | runs over 30 ms | sessions created |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for k in ("cached", "floor", "fresh"):
            if k not in s6:
                continue
            r = s6[k]
            w(f"| {k} | {r['runs']} | {r['mean_ms']:.2f} | {r['median_ms']:.2f} | {num(r.get('p90_ms'), 2)} | "
              f"{r['stddev_ms']:.2f} | {r['min_ms']:.2f} | {r['max_ms']:.2f} | {r.get('over_30ms', '–')} | "
              f"{r['sessions_created']} |")
        w("")
        w(f"fresh/cached: **{x(ratio(s6['fresh']['mean_ms'], s6['cached']['mean_ms']))}** (mean), "
          f"{x(ratio(s6['fresh']['median_ms'], s6['cached']['median_ms']))} (median).")
        if "floor" in s6:
            w(f"fresh/floor: {x(ratio(s6['fresh']['mean_ms'], s6['floor']['mean_ms']))} (mean), "
              f"{x(ratio(s6['fresh']['median_ms'], s6['floor']['median_ms']))} (median); "
              f"cached/floor: {x(ratio(s6['cached']['mean_ms'], s6['floor']['mean_ms']))} (mean), "
              f"{x(ratio(s6['cached']['median_ms'], s6['floor']['median_ms']))} (median).")
        slow = s6["cached"].get("over_30ms")
        if slow and slow > 0.05 * s6["cached"]["runs"]:
            w("")
            w(f"The times are bimodal: {slow} of {s6['cached']['runs']} cached runs took over 30 ms "
              "instead of about 5 ms. These are stalls of about 40 ms from Nagle's algorithm and "
              "delayed ACKs, because the server does not set `TCP_NODELAY`. See profiling finding 4, "
              "which also shows that the ratio drops below 3× once the stalls are gone.")
        w("")

    s7 = results.get("s7")
    if s7 and get(s7, "servers", "redis"):
        w(f"## S7: {TITLES['S7']}")
        w("")
        w("S1's authenticated `Fetch(currentSession)`, against two vsess processes in the same run: "
          "the main one on its embedded store, and one started with `--store redis://…` on Debian's "
          "redis-server 7 (append-only file, `appendfsync everysec`) on loopback. On Redis each call "
          "validates the session with one `HGETALL`; activity is written once a second. The Redis "
          "row's CPU adds redis-server's own CPU per request.")
        w("")
        w("| store | conns | req/s | p50 / p99 ms | vsess CPU µs/req | redis-server CPU µs/req | total CPU µs/req | req/s vs embedded |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|")
        emb = s7["servers"].get("embedded", {})
        for name in ("embedded", "redis"):
            for conns, r in sorted(s7["servers"].get(name, {}).items(), key=lambda kv: int(kv[0])):
                aux = r.get("aux_cpu_us_per_req")
                tot = (r["server_cpu_us_per_req"] or 0) + (aux or 0)
                base = get(emb, conns, "rps")
                w(f"| {name} | {conns} | {num(r['rps'])} | " + "{} / {}".format(*lat(r)) +
                  f" | {num(r['server_cpu_us_per_req'], 1)} | {num(aux, 1) if aux is not None else '–'} | "
                  f"{num(tot, 1)} | {pct(ratio(r['rps'], base))} |")
        w("")

    # Correctness.
    checks = results.get("checks", [])
    bad = [c for c in checks if not c["ok"]]
    w("## Correctness checks")
    w("")
    w(f"{len(checks) - len(bad)} of {len(checks)} checks passed in this run. These are the checks "
      "`bench/run --quick` (part of `scripts/test`) enforces. Scenarios: " +
      ", ".join(f"{k} {'ok' if ok else 'FAILED'}" for k, ok in results.get("status", {}).items()) + ".")
    for c in bad:
        w(f"- FAILED [{c['scenario']}] {c['check']}: {c['detail']}")
    w("")

    notes = os.path.join(HERE, "PROFILE.md")
    if os.path.exists(notes):
        with open(notes) as f:
            w(f.read().rstrip())
        w("")

    w("## Commands")
    w("")
    w("`bench/run` builds with `cargo build --release -p vsess-cli -p vsess-bench-tools`, installs "
      "`wrk` and `hyperfine` with apt-get if they are missing, and runs `bench/harness.py`. These "
      "are the exact commands it ran. `$WORK` is its temporary directory, `$PORT` the server's "
      "port, `$ID` a live session id, `$ROUND` the round of S6 (each S6 command runs once per round), "
      "and paths are relative to the repository.")
    w("")
    w("```sh")
    for c in m.get("commands", []):
        w(c["command"])
    w("```")
    w("")
    return "\n".join(L)


def main():
    path = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "results.json")
    with open(path) as f:
        results = json.load(f)
    sys.stdout.write(render(results))


if __name__ == "__main__":
    main()
