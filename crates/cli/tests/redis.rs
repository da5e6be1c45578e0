//! `vsess serve --store`, `vsess user … --store` and `vsess store migrate` against a real
//! redis-server. Ignored by default; `scripts/test` installs redis-server and runs them.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client, serve, BIN, SM};
use std::io::Write;
use std::process::{Command, Output, Stdio};
use vsess_store::testing::RedisProc;

fn vsess(args: &[&str], stdin: Option<&str>) -> Output {
    let mut c = Command::new(BIN)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    if let Some(s) = stdin {
        writeln!(c.stdin.take().unwrap(), "{s}").unwrap();
    }
    drop(c.stdin.take());
    c.wait_with_output().unwrap()
}

fn ok(out: Output) -> String {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stop(mut child: common::Served) {
    // SIGTERM: a graceful stop releases the data directory.
    let _ = Command::new("kill")
        .arg(child.id().to_string())
        .status()
        .unwrap();
    child.wait().unwrap();
}

fn soap(url: &str, inner: &str, cookie: Option<&str>) -> (u16, String, Option<String>) {
    common::soap(&client(), url, inner, cookie)
}

fn login(url: &str, user: &str, pw: &str) -> String {
    let (s, body, set) = soap(
        url,
        &format!("<Login>{SM}<userName>{user}</userName><password>{pw}</password></Login>"),
        None,
    );
    assert_eq!(s, 200, "{body}");
    set.unwrap()
}

fn alive(url: &str, cookie: &str) -> bool {
    let (_, body, _) = soap(
        url,
        &format!("<Fetch>{SM}<prop>currentSession</prop></Fetch>"),
        Some(cookie),
    );
    body.contains("<key>")
}

#[test]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
fn users_and_sessions_move_to_redis_and_back() {
    let redis = RedisProc::start();
    let url_r = redis.url();
    let a = tempfile::tempdir().unwrap();
    let a_dir = a.path().to_str().unwrap();
    ok(vsess(
        &[
            "user",
            "add",
            "admin@vsphere.local",
            "--role",
            "Admin",
            "--password-stdin",
            "--data-dir",
            a_dir,
        ],
        Some("pw-1"),
    ));

    // State on the embedded store.
    let (child, url) = serve(a.path(), &[]);
    let cookies: Vec<String> = (0..3)
        .map(|_| login(&url, "admin@vsphere.local", "pw-1"))
        .collect();
    let (s, _, _) = soap(
        &url,
        &format!("<UpdateServiceMessage>{SM}<message>moved</message></UpdateServiceMessage>"),
        Some(&cookies[0]),
    );
    assert_eq!(s, 200);
    let (s, body, _) = soap(&url, "<CreateDatacenter><_this type=\"Folder\">group-d1</_this><name>dc-1</name></CreateDatacenter>", Some(&cookies[0]));
    assert_eq!(s, 200, "{body}");
    stop(child);

    // Into Redis; every session is still valid on a Redis-backed replica.
    let out = ok(vsess(
        &["store", "migrate", "--from", a_dir, "--to", &url_r],
        None,
    ));
    assert!(
        out.contains("1 users") && out.contains("3 sessions"),
        "{out}"
    );
    let b = tempfile::tempdir().unwrap();
    let (child, url) = serve(b.path(), &["--store", &url_r]);
    for c in &cookies {
        assert!(alive(&url, c), "session lost in migration");
    }
    let (_, body, _) = soap(
        &url,
        &format!("<Fetch>{SM}<prop>message</prop></Fetch>"),
        Some(&cookies[1]),
    );
    assert!(body.contains("moved"), "{body}");
    assert!(
        !b.path().join("administrator-password").exists(),
        "users were migrated, so no administrator is bootstrapped"
    );

    // The user commands manage Redis while the replica runs.
    ok(vsess(
        &[
            "user",
            "add",
            "ops@vsphere.local",
            "--role",
            "ReadOnly",
            "--password-stdin",
            "--store",
            &url_r,
        ],
        Some("pw-2"),
    ));
    let listed = ok(vsess(&["user", "list", "--json", "--store", &url_r], None));
    assert!(
        listed.contains("ops@vsphere.local") && listed.contains("admin@vsphere.local"),
        "{listed}"
    );
    let ops = login(&url, "ops@vsphere.local", "pw-2");
    assert!(alive(&url, &ops));

    // Five failed logins lock ops out; `user list` shows it and `user unlock` ends it.
    let login_status = |pw: &str| {
        soap(&url, &format!("<Login>{SM}<userName>ops@vsphere.local</userName><password>{pw}</password></Login>"), None).0
    };
    for _ in 0..5 {
        assert_eq!(login_status("wrong"), 500);
    }
    assert_eq!(login_status("pw-2"), 500, "locked out");
    let ops_entry = || {
        let listed = ok(vsess(&["user", "list", "--json", "--store", &url_r], None));
        let v: serde_json::Value = serde_json::from_str(&listed).unwrap();
        v.as_array()
            .unwrap()
            .iter()
            .find(|u| u["name"] == "ops@vsphere.local")
            .cloned()
            .unwrap()
    };
    assert!(ops_entry()["lockedUntil"].is_string(), "{}", ops_entry());
    let table = ok(vsess(&["user", "list", "--store", &url_r], None));
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("ops@vsphere.local") && l.contains("until ")),
        "{table}"
    );
    ok(vsess(
        &["user", "unlock", "ops@vsphere.local", "--store", &url_r],
        None,
    ));
    assert!(ops_entry()["lockedUntil"].is_null(), "{}", ops_entry());
    assert_eq!(login_status("wrong"), 500);
    assert_eq!(ops_entry()["failedLogins"], 1);
    let ops_again = login(&url, "ops@vsphere.local", "pw-2");
    assert_eq!(ops_entry()["failedLogins"], 0);
    let dup = vsess(
        &[
            "user",
            "add",
            "ops@vsphere.local",
            "--role",
            "Admin",
            "--password-stdin",
            "--store",
            &url_r,
        ],
        Some("x"),
    );
    assert_eq!(dup.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    ok(vsess(
        &["user", "rm", "ops@vsphere.local", "--store", &url_r],
        None,
    ));
    assert!(!alive(&url, &ops), "a removed user's session ends at once");
    assert!(!alive(&url, &ops_again));
    stop(child);

    // Migrating again into the store in use would undo what happened there since: refused.
    let again = vsess(&["store", "migrate", "--from", a_dir, "--to", &url_r], None);
    let err = String::from_utf8_lossy(&again.stderr);
    assert_eq!(again.status.code(), Some(2), "{err}");
    assert!(
        err.contains("already holds 1 user(s) and 3 live session(s)") && err.contains("--merge"),
        "{err}"
    );

    // And back into a fresh data directory.
    let c = tempfile::tempdir().unwrap();
    let to_c = [
        "store",
        "migrate",
        "--from",
        &url_r,
        "--to",
        c.path().to_str().unwrap(),
    ];
    let out = ok(vsess(&to_c, None));
    assert!(out.contains("3 sessions"), "{out}");
    let (child, url) = serve(c.path(), &[]);
    for ck in &cookies {
        assert!(alive(&url, ck), "session lost on the way back");
    }
    let (_, body, _) = soap(&url, "<RetrieveProperties><_this type=\"PropertyCollector\">propertyCollector</_this><specSet><propSet><type>Folder</type><pathSet>childEntity</pathSet></propSet><objectSet><obj type=\"Folder\">group-d1</obj></objectSet></specSet></RetrieveProperties>", Some(&cookies[0]));
    assert!(body.contains("datacenter-"), "inventory lost: {body}");
    stop(child);
    // Into a data directory in use, too; --merge copies anyway.
    assert_eq!(vsess(&to_c, None).status.code(), Some(2));
    let merged = ok(vsess(&[&to_c[..], &["--merge"]].concat(), None));
    assert!(merged.contains("3 sessions"), "{merged}");
    // Users alone are enough: a user removed there would come back.
    let e = tempfile::tempdir().unwrap();
    let e_dir = e.path().to_str().unwrap();
    ok(vsess(
        &[
            "user",
            "add",
            "dev@vsphere.local",
            "--role",
            "ReadOnly",
            "--password-stdin",
            "--data-dir",
            e_dir,
        ],
        Some("pw-3"),
    ));
    let into_e = vsess(&["store", "migrate", "--from", &url_r, "--to", e_dir], None);
    let err = String::from_utf8_lossy(&into_e.stderr);
    assert_eq!(into_e.status.code(), Some(2), "{err}");
    assert!(
        err.contains("already holds 1 user(s) and 0 live session(s)"),
        "{err}"
    );
}

#[test]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
fn unreachable_redis_is_a_clear_error_with_exit_code_3() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://:hunter2@127.0.0.1:{port}/0");
    let d = tempfile::tempdir().unwrap();
    let out = vsess(
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            d.path().to_str().unwrap(),
            "--store",
            &url,
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(3));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach Redis"), "{err}");
    assert!(!err.contains("hunter2"), "the password leaked: {err}");
    let out = vsess(&["user", "list", "--store", &url], None);
    assert_eq!(out.status.code(), Some(3));
    let out = vsess(&["serve", "--store", "http://127.0.0.1:1"], None);
    assert_eq!(out.status.code(), Some(2));
    // A redis:// URL that does not parse is bad input (2), not an unreachable server (3).
    let bad = "redis://:hunter2@127.0.0.1:99999/0";
    let data = d.path().join("bad-url");
    let data = data.to_str().unwrap();
    for args in [
        vec!["user", "list", "--store", bad],
        vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            data,
            "--store",
            bad,
        ],
    ] {
        let out = vsess(&args, None);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("invalid Redis URL") && !err.contains("hunter2"),
            "{err}"
        );
    }
}

/// A Redis that answers but refuses the password, wants one, or lacks the database is a
/// configuration error (exit 2) that says what to fix, not "cannot reach Redis" (exit 3).
#[test]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
fn refused_credentials_and_databases_say_what_to_fix() {
    let redis = RedisProc::start_with(&["--requirepass", "s3cret-pw"]);
    let port = redis
        .url()
        .rsplit(':')
        .next()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-it\n").unwrap();
    let right = dir.path().join("password");
    std::fs::write(&right, "s3cret-pw\n").unwrap();
    let cases = [
        (
            format!("redis://:not-it@127.0.0.1:{port}/0"),
            None,
            "refused the password",
        ),
        (
            format!("redis://127.0.0.1:{port}/0"),
            Some(&wrong),
            "refused the password",
        ),
        (
            format!("redis://127.0.0.1:{port}/0"),
            None,
            "needs a password",
        ),
        (
            format!("redis://127.0.0.1:{port}/99"),
            Some(&right),
            "no such database",
        ),
    ];
    for (i, (url, password_file, says)) in cases.iter().enumerate() {
        let cfg = dir.path().join(format!("c{i}.toml"));
        let mut toml = format!("[store]\nurl = \"{url}\"\n");
        if let Some(p) = password_file {
            toml.push_str(&format!("password_file = \"{}\"\n", p.display()));
        }
        std::fs::write(&cfg, toml).unwrap();
        let data = dir.path().join(format!("d{i}"));
        let out = vsess(
            &[
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--data-dir",
                data.to_str().unwrap(),
                "--config",
                cfg.to_str().unwrap(),
            ],
            None,
        );
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {err}");
        assert!(err.contains(says), "{url}: {err}");
        assert!(
            !err.contains("cannot reach") && !err.contains("not-it"),
            "{url}: {err}"
        );
    }
}
