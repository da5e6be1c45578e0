//! End-to-end tests of the `vsess` binary: crash durability, start-up errors, user commands.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client, serve, soap, BIN, SM};
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};

fn add_user(dir: &Path, name: &str, role: &str, pw: &str) {
    let out = user_add(dir, name, role, pw);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn user_add(dir: &Path, name: &str, role: &str, pw: &str) -> std::process::Output {
    let mut c = Command::new(BIN)
        .args([
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(c.stdin.take().unwrap(), "{pw}").unwrap();
    c.wait_with_output().unwrap()
}

/// Starts `vsess serve` and returns it with the URL from its ready line.

#[test]
fn sessions_tickets_and_message_survive_kill_9() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "admin@vsphere.local", "Admin", "pw-1");
    let (mut child, url) = serve(dir.path(), &[]);
    let c = client();
    let mut cookies = Vec::new();
    for _ in 0..5 {
        let (s, _, set) = soap(&c, &url, &format!("<Login>{SM}<userName>admin@vsphere.local</userName><password>pw-1</password></Login>"), None);
        assert_eq!(s, 200);
        cookies.push(set.unwrap());
    }
    let (s, _, _) = soap(
        &c,
        &url,
        &format!("<UpdateServiceMessage>{SM}<message>kept</message></UpdateServiceMessage>"),
        Some(&cookies[0]),
    );
    assert_eq!(s, 200);
    let (_, body, _) = soap(
        &c,
        &url,
        &format!("<AcquireCloneTicket>{SM}</AcquireCloneTicket>"),
        Some(&cookies[1]),
    );
    let ticket = body
        .split("<returnval>")
        .nth(1)
        .unwrap()
        .split("</returnval>")
        .next()
        .unwrap()
        .to_owned();
    let (s, _, _) = soap(
        &c,
        &url,
        &format!("<Logout>{SM}</Logout>"),
        Some(&cookies[4]),
    );
    assert_eq!(s, 200);

    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    let (mut child, url) = serve(dir.path(), &[]);
    for ck in &cookies[..4] {
        let (s, body, _) = soap(
            &c,
            &url,
            &format!("<Fetch>{SM}<prop>currentSession</prop></Fetch>"),
            Some(ck),
        );
        assert_eq!(s, 200);
        assert!(
            body.contains("<userName>admin@vsphere.local</userName>"),
            "session lost: {body}"
        );
    }
    let (_, body, _) = soap(
        &c,
        &url,
        &format!("<Fetch>{SM}<prop>currentSession</prop></Fetch>"),
        Some(&cookies[4]),
    );
    assert!(
        !body.contains("<userName>"),
        "a logged-out session came back: {body}"
    );
    let (_, body, _) = soap(
        &c,
        &url,
        &format!("<Fetch>{SM}<prop>message</prop></Fetch>"),
        Some(&cookies[0]),
    );
    assert!(body.contains(">kept</returnval>"), "{body}");
    let (s, _, _) = soap(
        &c,
        &url,
        &format!("<CloneSession>{SM}<cloneTicket>{ticket}</cloneTicket></CloneSession>"),
        None,
    );
    assert_eq!(s, 200, "clone ticket survived");
    let (s, _, _) = soap(
        &c,
        &url,
        &format!("<CloneSession>{SM}<cloneTicket>{ticket}</cloneTicket></CloneSession>"),
        None,
    );
    assert_eq!(s, 500, "and is still one-time");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn start_up_errors_are_clear_and_non_zero() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = Command::new(BIN)
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path().join("d"))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cannot listen on") && err.contains("another process"),
        "{err}"
    );

    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot use data directory"), "{err}");

    let cfg = dir.path().join("bad.toml");
    std::fs::write(&cfg, "config.vmacore.soap.sessionTimeOut = 5\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--config"])
        .arg(&cfg)
        .arg("--data-dir")
        .arg(dir.path().join("d2"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sessionTimeOut"));

    // A --cert that is not there is a usage error, found before the data directory is
    // created.
    let d3 = dir.path().join("d3");
    let out = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&d3)
        .args(["--cert", "missing.crt", "--key", "missing.key"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot read missing.crt"), "{err}");
    assert!(!d3.exists());
}

#[test]
fn first_start_creates_an_administrator_with_a_private_password_file() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url) = serve(dir.path(), &[]);
    let pw_file = dir.path().join("administrator-password");
    let mode = std::fs::metadata(&pw_file).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600);
    let pw = std::fs::read_to_string(&pw_file).unwrap().trim().to_owned();
    assert!(pw.len() >= 16);
    let users = std::fs::read_to_string(dir.path().join("users.json")).unwrap();
    assert!(!users.contains(&pw), "the password is stored hashed");
    assert!(users.contains("$argon2id$"));
    let (s, _, _) = soap(&client(), &url, &format!("<Login>{SM}<userName>administrator@vsphere.local</userName><password>{pw}</password></Login>"), None);
    assert_eq!(s, 200);
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Users added before the first start: no administrator is made, and the server says
/// nobody holds the Admin role (and stops saying it once someone does).
#[test]
fn a_store_without_an_admin_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops@vsphere.local", "ReadOnly", "pw-1");
    let warned = |log: &std::sync::Mutex<Vec<String>>| {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("no user has the Admin role"))
    };
    for (role, expected) in [("ReadOnly", true), ("Admin", false)] {
        if role == "Admin" {
            add_user(dir.path(), "boss@vsphere.local", "Admin", "pw-2");
        }
        let (mut child, _, log) = common::serve_logged(dir.path(), &[]);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(warned(&log), expected, "{role}: {:#?}", log.lock().unwrap());
        assert!(!dir.path().join("administrator-password").exists());
    }
}

#[test]
fn user_commands_manage_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "VSPHERE.LOCAL\\Ops", "ReadOnly", "x");
    let out = Command::new(BIN)
        .args(["user", "list", "--json", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let list = String::from_utf8_lossy(&out.stdout);
    assert!(
        list.contains("\"name\":\"ops@vsphere.local\"") && list.contains("\"role\":\"ReadOnly\""),
        "{list}"
    );
    let dup = user_add(dir.path(), "ops@vsphere.local", "Admin", "y");
    assert!(!dup.status.success());
    assert!(String::from_utf8_lossy(&dup.stderr).contains("already exists"));
    let out = Command::new(BIN)
        .args(["user", "rm", "ops@vsphere.local", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = Command::new(BIN)
        .args(["user", "rm", "ops@vsphere.local", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user ops@vsphere.local"));
}

/// `vsess user rm` then `vsess user add` of the same name, while the server runs and
/// before the old session's next call: the old session must not pass as the new
/// account's (which here has more rights). `vsess user passwd` keeps the account.
#[test]
fn a_name_removed_and_added_again_does_not_revive_its_sessions() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "bob@vsphere.local", "ReadOnly", "first");
    let (mut child, url) = serve(dir.path(), &[]);
    let c = client();
    let login = |pw: &str| {
        let (s, _, set) = soap(&c, &url, &format!("<Login>{SM}<userName>bob@vsphere.local</userName><password>{pw}</password></Login>"), None);
        assert_eq!(s, 200);
        set.unwrap()
    };
    let current = |cookie: &str| {
        let (s, body, _) = soap(&c, &url, &format!("<SessionIsActive>{SM}<sessionID>x</sessionID><userName>bob@vsphere.local</userName></SessionIsActive>"), Some(cookie));
        (s, body)
    };
    let old = login("first");
    let (s, body) = current(&old);
    assert!(
        s == 500 && body.contains("NoPermission"),
        "ReadOnly cannot call SessionIsActive: {s} {body}"
    );
    let rm = Command::new(BIN)
        .args(["user", "rm", "bob@vsphere.local", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(rm.status.success());
    add_user(dir.path(), "bob@vsphere.local", "Admin", "second");
    let (s, body) = current(&old);
    assert!(
        s == 500 && body.contains("NotAuthenticated"),
        "the old session must be dead: {s} {body}"
    );
    let new = login("second");
    assert_eq!(current(&new).0, 200, "the new account is an Admin");
    let mut passwd = Command::new(BIN)
        .args(["user", "passwd", "bob@vsphere.local", "--role", "Admin"])
        .args(["--password-stdin", "--data-dir"])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(passwd.stdin.take().unwrap(), "third").unwrap();
    assert!(passwd.wait_with_output().unwrap().status.success());
    assert_eq!(
        current(&new).0,
        200,
        "a password change keeps the account's sessions"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Over plain HTTP (`--http`, for tests) the SOAP cookie has no `Secure`: Go's cookie jar
/// (govc) drops a Secure cookie on http, then logs in again on every run.
#[test]
fn the_soap_cookie_is_secure_only_over_https() {
    let login =
        format!("<Login>{SM}<userName>bob@vsphere.local</userName><password>pw</password></Login>");
    for (extra, secure) in [(&["--http"][..], false), (&[][..], true)] {
        let dir = tempfile::tempdir().unwrap();
        add_user(dir.path(), "bob@vsphere.local", "ReadOnly", "pw");
        let (mut child, url) = serve(dir.path(), extra);
        assert_eq!(url.starts_with("https://"), secure, "{url}");
        let (s, _, set) = soap(&client(), &url, &login, None);
        assert_eq!(s, 200);
        let set = set.unwrap();
        assert!(set.starts_with("vmware_soap_session=") && set.contains("HttpOnly"));
        assert_eq!(set.contains("Secure"), secure, "{url}: {set}");
        child.kill().unwrap();
        child.wait().unwrap();
    }
}

/// SIGHUP (a closing terminal) stops the server as SIGTERM does: logged, exit 0, the
/// data directory released and its sessions kept. It used to kill it outright.
#[test]
fn sighup_stops_the_server_gracefully() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "bob@vsphere.local", "ReadOnly", "pw");
    let (mut child, url, log) = common::serve_logged(dir.path(), &[]);
    let login =
        format!("<Login>{SM}<userName>bob@vsphere.local</userName><password>pw</password></Login>");
    let (s, _, cookie) = soap(&client(), &url, &login, None);
    assert_eq!(s, 200);
    let hup = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let status = child.wait().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(100));
    let lines = log.lock().unwrap().join("\n");
    assert!(status.success(), "exit {status:?}\n{lines}");
    assert!(
        lines.contains("SIGHUP") && lines.contains("stopped"),
        "{lines}"
    );
    // Released and intact: a new server starts on it and knows the session.
    let (mut child, url) = serve(dir.path(), &[]);
    let fetch = format!("<SessionIsActive>{SM}<sessionID>x</sessionID><userName>bob@vsphere.local</userName></SessionIsActive>");
    let (_, body, _) = soap(&client(), &url, &fetch, cookie.as_deref());
    assert!(
        body.contains("NoPermission"),
        "the session survived: {body}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Operators see refused logins on every endpoint, and the session limit once.
#[test]
fn refused_logins_and_the_session_limit_are_logged() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops@vsphere.local", "ReadOnly", "right");
    let cfg = dir.path().join("limit.toml");
    std::fs::write(&cfg, "config.vmacore.soap.maxSessionCount = 1\n").unwrap();
    let (mut child, url, log) =
        common::serve_logged(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let c = client();
    let rest = |pw: &str| {
        c.post(format!("{url}/api/session"))
            .basic_auth("ops@vsphere.local", Some(pw))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    let rpc = |pw: &str| {
        let body = format!(
            r#"{{"jsonrpc":"2.0","id":"1","method":"invoke","params":{{"serviceId":"com.vmware.cis.session","operationId":"create","ctx":{{"securityCtx":{{"schemeId":"com.vmware.vapi.std.security.user_pass","userName":"ops@vsphere.local","password":"{pw}"}}}},"input":{{"STRUCTURE":{{"operation-input":{{}}}}}}}}}}"#
        );
        c.post(format!("{url}/api"))
            .header("Content-Type", "application/json")
            .body(body)
            .send()
            .unwrap()
            .text()
            .unwrap()
    };
    assert_eq!(rest("wrong"), 401);
    assert!(!rpc("wrong").contains("\"output\""));
    assert_eq!(rest("right"), 201);
    for _ in 0..3 {
        assert_eq!(rest("right"), 503, "the limit is one session");
    }
    let wait_for = |what: &dyn Fn(&str) -> bool| common::wait_for_line(&log, what);
    wait_for(&|l| l.contains("login failed (REST)") && l.contains("ops@vsphere.local"));
    wait_for(&|l| l.contains("login failed (vAPI JSON-RPC)") && l.contains("InvalidLogin"));
    // The log says why (the caller gets InvalidLogin whatever it was).
    wait_for(&|l| {
        l.contains("login failed (REST)")
            && l.contains("user=\"ops@vsphere.local\"")
            && l.contains("reason=\"wrong password\"")
    });
    wait_for(&|l| l.contains("session limit reached") && l.contains("WARN"));
    std::thread::sleep(std::time::Duration::from_millis(100));
    let lines = log.lock().unwrap().clone();
    let limit = lines
        .iter()
        .filter(|l| l.contains("session limit reached"))
        .count();
    assert_eq!(
        limit,
        1,
        "once, not per refused login:\n{}",
        lines.join("\n")
    );

    // The API-token and web-page sign-ins log refusals too, and a user name cannot forge
    // a log line of its own.
    let forged = "ops@vsphere.local\n2026-01-01T00:00:00Z  INFO vsess_server::vim: login user=administrator@vsphere.local";
    // ...nor a field of the line it is in.
    let rest_as = |user: &str| {
        c.post(format!("{url}/api/session"))
            .basic_auth(user, Some("wrong"))
            .send()
            .unwrap()
            .status()
            .as_u16()
    };
    assert_eq!(rest_as("bob ip=10.9.9.9 fault=None"), 401);
    let token = c
        .post(format!("{url}/auth/request-token"))
        .basic_auth(forged, Some("wrong"))
        .send()
        .unwrap();
    assert_eq!(token.status().as_u16(), 401);
    let page = c
        .post(format!("{url}/ui/api/sign-in"))
        .json(&serde_json::json!({"username": "web@vsphere.local", "password": "wrong"}))
        .send()
        .unwrap();
    assert_eq!(page.status().as_u16(), 401);
    wait_for(&|l| {
        l.contains("login failed (API token)") && l.contains("user=\"ops@vsphere.local\\n2026")
    });
    wait_for(&|l| {
        l.contains("login failed (REST)")
            && l.contains("user=\"bob ip=10.9.9.9 fault=None\" ip=127.0.0.1")
    });
    wait_for(&|l| {
        l.contains("login failed (web page)")
            && l.contains("web@vsphere.local")
            && l.contains("reason=\"no such user\"")
    });
    let lines = log.lock().unwrap().clone();
    assert!(
        !lines.iter().any(|l| l.starts_with("2026-01-01T00:00:00Z")),
        "a user name started a log line:\n{}",
        lines.join("\n")
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `vsess user` run while a server runs: the server's log says what changed, at its next
/// login, without the password or its hash.
#[test]
fn user_changes_reach_the_server_log() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops@vsphere.local", "ReadOnly", "pw");
    let (mut child, url, log) = common::serve_logged(dir.path(), &[]);
    let c = client();
    let poke = || {
        let s = c
            .post(format!("{url}/api/session"))
            .basic_auth("ops@vsphere.local", Some("nope"))
            .send()
            .unwrap()
            .status();
        assert_eq!(s.as_u16(), 401);
    };
    let vsess_user = |args: &[&str]| {
        let out = Command::new(BIN)
            .arg("user")
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(out.status.success(), "{args:?}: {out:?}");
    };
    let wait_for = |what: &dyn Fn(&str) -> bool| common::wait_for_line(&log, what);
    poke();
    add_user(dir.path(), "dev@vsphere.local", "Admin", "dev-pw-1");
    poke();
    wait_for(&|l| l.contains("user added") && l.contains("user=dev@vsphere.local role=Admin"));
    vsess_user(&["role", "ops@vsphere.local", "NoAccess"]);
    poke();
    wait_for(&|l| {
        l.contains("user role changed")
            && l.contains("user=ops@vsphere.local from=ReadOnly to=NoAccess")
    });
    let mut p = Command::new(BIN)
        .args([
            "user",
            "passwd",
            "dev@vsphere.local",
            "--password-stdin",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    writeln!(p.stdin.take().unwrap(), "dev-pw-2").unwrap();
    assert!(p.wait_with_output().unwrap().status.success());
    poke();
    wait_for(&|l| l.contains("user password changed") && l.contains("user=dev@vsphere.local"));
    vsess_user(&["rm", "dev@vsphere.local"]);
    poke();
    wait_for(&|l| l.contains("user removed") && l.contains("user=dev@vsphere.local"));
    // A TerminateSession that fails is logged without its keys: a client that passes its
    // secret session id for a key must not get it written to the log.
    add_user(dir.path(), "boss@vsphere.local", "Admin", "boss-pw");
    let login = format!(
        "<Login xmlns=\"urn:vim25\">{SM}<userName>boss@vsphere.local</userName><password>boss-pw</password></Login>"
    );
    let (status, _, cookie) = soap(&c, &url, &login, None);
    assert_eq!(status, 200);
    let cookie = cookie.unwrap();
    let id = cookie.split('"').nth(1).unwrap().to_owned();
    let terminate = format!(
        "<TerminateSession xmlns=\"urn:vim25\">{SM}<sessionId>{id}</sessionId></TerminateSession>"
    );
    let (status, body, _) = soap(&c, &url, &terminate, Some(&cookie));
    assert_eq!(status, 500, "{body}");
    wait_for(&|l| l.contains("terminate sessions") && l.contains("ok=false"));
    let lines = log.lock().unwrap().join("\n");
    assert!(
        !lines.contains(&id),
        "the session id is in the log:\n{lines}"
    );
    for secret in ["dev-pw-1", "dev-pw-2", "$argon2"] {
        assert!(!lines.contains(secret), "{secret} in the log:\n{lines}");
    }
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `vsess user list | head -1`: a reader that goes away ends the output quietly (exit 0,
/// as `ls | head`), not with a panic ("failed printing to stdout", exit 101).
#[test]
fn a_closed_stdout_ends_a_command_quietly() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops@vsphere.local", "ReadOnly", "x");
    for args in [vec!["user", "list"], vec!["user", "list", "--json"]] {
        // The reader is gone before the command starts: every write to stdout fails.
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(dir.path())
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
        // Output nobody reads is not a failure (`ls | head` exits 0 too).
        assert_eq!(out.status.code(), Some(0), "{args:?}: {err}");
    }
    // SIGPIPE stays ignored, by the commands (a server or Redis closing a socket they
    // write to must be an error they report, not a silent death) and by the server (a
    // client that goes away must not kill it).
    let ignores_sigpipe = |pid: u32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        let ignored = status
            .lines()
            .find_map(|l| l.strip_prefix("SigIgn:"))
            .map(|m| u64::from_str_radix(m.trim(), 16).unwrap())
            .unwrap();
        ignored & (1 << (13 - 1)) != 0
    };
    // A command waiting for its password on stdin, well past its start.
    let mut add = Command::new(BIN)
        .args([
            "user",
            "add",
            "dev@vsphere.local",
            "--role",
            "ReadOnly",
            "--password-stdin",
        ])
        .arg("--data-dir")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        ignores_sigpipe(add.id()),
        "vsess user add must ignore SIGPIPE"
    );
    add.kill().unwrap();
    add.wait().unwrap();
    let (mut child, _) = serve(dir.path(), &["--http"]);
    assert!(ignores_sigpipe(child.id()), "serve must ignore SIGPIPE");
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_mistyped_data_directory_is_refused_not_created() {
    let dir = tempfile::tempdir().unwrap();
    let typo = dir.path().join("typo");
    for args in [
        vec!["user", "list"],
        vec!["user", "rm", "ops@vsphere.local"],
        vec!["user", "passwd", "ops@vsphere.local", "--password-stdin"],
    ] {
        let out = Command::new(BIN)
            .args(&args)
            .arg("--data-dir")
            .arg(&typo)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no data directory"), "{args:?}: {err}");
        assert!(!typo.exists(), "{args:?} created {}", typo.display());
    }
    // A migration's source must be a data directory already: no empty copy, no new directory.
    let migrate_from_typo = || {
        let out = Command::new(BIN)
            .args([
                "store",
                "migrate",
                "--to",
                "redis://127.0.0.1:1/0",
                "--from",
            ])
            .arg(&typo)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    assert!(migrate_from_typo().contains("no such data directory"));
    // A mistyped Redis URL is named as such, not taken for a directory.
    for to in ["redis:/127.0.0.1:1/0", "http://127.0.0.1:1"] {
        let out = Command::new(BIN)
            .args(["store", "migrate", "--to", to, "--from"])
            .arg(&typo)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!("--to {to}: not a Redis URL")),
            "{err}"
        );
    }
    assert!(!typo.exists());
    std::fs::create_dir(&typo).unwrap();
    assert!(migrate_from_typo().contains("not a vsess data directory"));
    assert_eq!(
        std::fs::read_dir(&typo).unwrap().count(),
        0,
        "nothing written"
    );
    // `user add` may start a directory, and says so; not before it has a password.
    let fresh = dir.path().join("fresh");
    let out = Command::new(BIN)
        .args([
            "user",
            "add",
            "ops@vsphere.local",
            "--role",
            "ReadOnly",
            "--password-stdin",
        ])
        .arg("--data-dir")
        .arg(&fresh)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(!fresh.exists(), "created before the password was refused");
    let out = user_add(&fresh, "ops@vsphere.local", "ReadOnly", "x");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("created the data directory"));
    let out = user_add(&fresh, "dev@vsphere.local", "ReadOnly", "x");
    assert!(!String::from_utf8_lossy(&out.stderr).contains("created the data directory"));
}

#[test]
fn user_role_changes_the_role_and_keeps_the_password() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops@vsphere.local", "ReadOnly", "pw");
    let users = || -> serde_json::Value {
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("users.json")).unwrap())
            .unwrap()
    };
    let before = users();
    let out = Command::new(BIN)
        .args([
            "user",
            "role",
            "OPS@vsphere.local",
            "NoAccess",
            "--data-dir",
        ])
        .arg(dir.path())
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let after = users();
    assert_eq!(after["users"][0]["role"], "NoAccess", "{after}");
    assert_eq!(
        after["users"][0]["password_hash"], before["users"][0]["password_hash"],
        "the password is kept"
    );
    let out = Command::new(BIN)
        .args(["user", "role", "ghost@vsphere.local", "Admin", "--data-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user ghost@vsphere.local"));
}

#[test]
fn a_name_edited_into_users_json_by_hand_is_the_account_vsess_user_names() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops@vsphere.local", "ReadOnly", "pw");
    let file = dir.path().join("users.json");
    let text = std::fs::read_to_string(&file).unwrap();
    std::fs::write(
        &file,
        text.replace("ops@vsphere.local", "Ops@VSphere.Local"),
    )
    .unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let list = run(&["user", "list"]);
    assert!(
        String::from_utf8_lossy(&list.stdout).contains("ops@vsphere.local"),
        "{list:?}"
    );
    // The same account twice (case apart): one account, and a warning that says so.
    let mut doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let mut twin = doc["users"][0].clone();
    twin["name"] = "OPS@vsphere.local".into();
    doc["users"].as_array_mut().unwrap().push(twin);
    std::fs::write(&file, doc.to_string()).unwrap();
    let list = run(&["user", "list"]);
    let out = String::from_utf8_lossy(&list.stdout);
    assert_eq!(out.matches("ops@vsphere.local").count(), 1, "{out}");
    assert!(
        String::from_utf8_lossy(&list.stderr).contains("names this user more than once"),
        "{list:?}"
    );
    let rm = run(&["user", "rm", "OPS@vsphere.local"]);
    assert!(rm.status.success(), "{rm:?}");
    let list = run(&["user", "list"]);
    assert!(
        !String::from_utf8_lossy(&list.stdout).contains("ops@"),
        "{list:?}"
    );
}

#[test]
fn another_directory_is_not_taken_for_a_data_directory() {
    use std::os::unix::fs::PermissionsExt;
    // Someone's directory (/var/lib, $HOME): not empty, none of vsess's files, mode 0755.
    let dir = tempfile::tempdir().unwrap();
    let shared = dir.path().join("shared");
    std::fs::create_dir(&shared).unwrap();
    std::fs::write(shared.join("notes.txt"), "someone else's").unwrap();
    std::fs::set_permissions(&shared, std::fs::Permissions::from_mode(0o755)).unwrap();
    let run = |args: &[&str]| {
        Command::new(BIN)
            .args(args)
            .arg("--data-dir")
            .arg(&shared)
            .stdin(Stdio::null())
            .stderr(Stdio::piped())
            .stdout(Stdio::piped())
            .output()
            .unwrap()
    };
    for args in [
        &["user", "list"][..],
        &[
            "user",
            "add",
            "ops@vsphere.local",
            "--role",
            "ReadOnly",
            "--password-stdin",
        ],
    ] {
        let out = run(args);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("not a vsess data directory") && err.contains("notes.txt"),
            "{err}"
        );
    }
    let mut serve = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&shared)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let status = serve.wait().unwrap();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut serve.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(err.contains("not a vsess data directory"), "{err}");
    // A migration into it too.
    let out = Command::new(BIN)
        .args([
            "store",
            "migrate",
            "--from",
            "redis://127.0.0.1:1/0",
            "--to",
        ])
        .arg(&shared)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("not a vsess data directory"), "{err}");
    // Untouched: its mode, and nothing written into it.
    let mode = std::fs::metadata(&shared).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o755);
    assert_eq!(std::fs::read_dir(&shared).unwrap().count(), 1);
    // An empty directory is fine, and so is one that already holds vsess's files.
    let empty = dir.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::set_permissions(&empty, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = user_add(&empty, "ops@vsphere.local", "ReadOnly", "x");
    assert!(out.status.success());
    // The store's warnings reach stderr (vsess user had no log output at all).
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("vsess: warning: directory was mode 0755"),
        "{err}"
    );
    std::fs::write(empty.join("README"), "ours").unwrap();
    assert!(user_add(&empty, "dev@vsphere.local", "ReadOnly", "x")
        .status
        .success());
}

#[test]
fn session_command_errors_say_what_is_missing_and_never_show_a_password() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path();
    let run = |args: &[&str], envs: &[(&str, &str)], stdin: &str| {
        let (code, _, err) = vsess_in(home, args, envs, stdin);
        (code, err)
    };
    // A rejected URL never shows the password, wherever it came from: one from stdin or
    // the environment is not even read before the URL is refused, and one in the URL is
    // masked.
    for (args, envs, stdin) in [
        (
            vec![
                "login",
                "ftp://127.0.0.1:1",
                "-u",
                "a@b",
                "--password-stdin",
            ],
            vec![],
            "S3cretPw!\n",
        ),
        (
            vec!["login", "htps://127.0.0.1:1", "-u", "a@b"],
            vec![("VSESS_PASSWORD", "S3cretPw!")],
            "",
        ),
        (
            vec!["ls"],
            vec![("GOVC_URL", "https://root:S3cretPw!@127.0.0.1:99999")],
            "",
        ),
    ] {
        let (code, err) = run(&args, &envs, stdin);
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            !err.contains("S3cretPw"),
            "{args:?} shows the password: {err}"
        );
        assert!(
            err.contains("scheme must be https or http") || err.contains(":***@"),
            "{args:?}: {err}"
        );
        if envs.iter().any(|(_, v)| v.contains("root:")) {
            assert!(err.contains(":***@"), "{args:?}: {err}");
        }
    }
    // Nothing listens on port 1: a password without a user is caught before any request.
    let (code, err) = run(
        &["login", "https://127.0.0.1:1", "-k", "--password-stdin"],
        &[],
        "pw\n",
    );
    assert_eq!(code, Some(5), "{err}");
    assert!(
        err.contains("no user to log in as") && err.contains("-u USER"),
        "{err}"
    );
    // `--listen` wants an address.
    let (code, err) = run(&["serve", "--listen", "localhost:8989"], &[], "");
    assert_eq!(code, Some(2));
    assert!(err.contains("not IP:PORT"), "{err}");
}

#[test]
fn a_lockout_is_logged_once_and_vsess_user_unlock_ends_it() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "ops@vsphere.local", "ReadOnly", "right");
    let cfg = dir.path().join("lockout.toml");
    std::fs::write(&cfg, "[lockout]\nmax_failures = 2\nlock_seconds = 60\n").unwrap();
    let (mut child, url, log) =
        common::serve_logged(dir.path(), &["--config", cfg.to_str().unwrap()]);
    let login = |pw: &str| {
        soap(&client(), &url, &format!("<Login>{SM}<userName>ops@vsphere.local</userName><password>{pw}</password></Login>"), None).0
    };
    for _ in 0..4 {
        assert_eq!(login("wrong"), 500);
    }
    assert_eq!(login("right"), 500, "locked: even the right password fails");
    let locked = |log: &Vec<String>| {
        log.iter()
            .filter(|l| l.contains("user locked out") && l.contains("ops@vsphere.local"))
            .count()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while locked(&log.lock().unwrap()) == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    std::thread::sleep(std::time::Duration::from_millis(100));
    let lines = log.lock().unwrap().clone();
    assert_eq!(
        locked(&lines),
        1,
        "one line per lock, not per refused login:\n{}",
        lines.join("\n")
    );
    assert!(
        lines
            .iter()
            .any(|l| l.contains("WARN") && l.contains("until=") && l.contains("vsess user unlock")),
        "{}",
        lines.join("\n")
    );
    // The right password while locked: refused, and the log says why.
    assert!(
        lines
            .iter()
            .any(|l| l.contains("login failed") && l.contains("reason=\"locked out\"")),
        "{}",
        lines.join("\n")
    );
    assert_eq!(login("right"), 500, "still locked");
    let unlock = |name: &str| {
        Command::new(BIN)
            .args(["user", "unlock", name, "--data-dir"])
            .arg(dir.path())
            .output()
            .unwrap()
    };
    let out = unlock("OPS@vsphere.local");
    assert!(out.status.success(), "{out:?}");
    assert_eq!(
        login("right"),
        200,
        "the running server sees the unlock on the next login"
    );
    let out = unlock("nobody@vsphere.local");
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("no user nobody@vsphere.local"));
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `vsess` with a clean environment and its own homes under `home`; returns the exit
/// code, stdout and stderr.
fn vsess_in(
    home: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    stdin: &str,
) -> (Option<i32>, String, String) {
    let mut c = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("GOVMOMI_HOME", home.join("govmomi"))
        .envs(envs.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The command may exit before it reads its input (a bad URL): a closed pipe is fine.
    let _ = c.stdin.take().unwrap().write_all(stdin.as_bytes());
    let out = c.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A server that accepts connections and never answers: the session commands give up
/// after their timeouts with exit 3 and say who did not answer, and how long was waited.
#[test]
fn a_server_that_never_answers_times_out_with_exit_3() {
    let dir = tempfile::tempdir().unwrap();
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let https = format!("https://127.0.0.1:{port}");
    let started = std::time::Instant::now();
    let (code, _, err) = vsess_in(
        dir.path(),
        &[
            "login",
            &https,
            "-k",
            "-u",
            "a@b",
            "--connect-timeout",
            "300ms",
        ],
        &[("VSESS_PASSWORD", "pw")],
        "",
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(&format!("no answer from 127.0.0.1:{port} within 300 ms"))
            && err.contains("--connect-timeout"),
        "{err}"
    );
    // Plain HTTP connects at once; the request then waits for the request timeout, set
    // here from the environment.
    let (code, _, err) = vsess_in(
        dir.path(),
        &["ls", "--url", &format!("http://a%40b:pw@127.0.0.1:{port}")],
        &[("VSESS_TIMEOUT", "400ms")],
        "",
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("within 400 ms") && err.contains("--timeout"),
        "{err}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
    // A duration needs its unit.
    let (code, _, err) = vsess_in(
        dir.path(),
        &["ls", "--url", &https, "-k", "--timeout", "30"],
        &[],
        "",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("--timeout '30'") && err.contains("10s"),
        "{err}"
    );
    drop(silent);
}

/// `DOMAIN\user@host` in a URL would make DOMAIN the host (the WHATWG parser reads `\` as
/// `/`), and send the login there: refused before any request, wherever the URL came from.
#[test]
fn a_backslash_user_in_the_url_is_refused_with_the_way_to_say_it() {
    let dir = tempfile::tempdir().unwrap();
    let url = r"https://VSPHERE.LOCAL\administrator:S3cretPw@127.0.0.1:1";
    for (args, envs) in [
        (vec!["login", url, "-k"], vec![]),
        (vec!["ls", "--url", url, "-k"], vec![]),
        (
            vec!["whoami"],
            vec![("GOVC_URL", url), ("GOVC_INSECURE", "1")],
        ),
    ] {
        let (code, _, err) = vsess_in(dir.path(), &args, &envs, "");
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(
            err.contains(r"-u 'DOMAIN\user'") && err.contains("%5C"),
            "{args:?}: {err}"
        );
        assert!(
            !err.contains("S3cretPw") && !err.contains("vsphere.local"),
            "{err}"
        );
    }
}

/// `rm --idle 30` once meant 30 seconds (the server's reading of a bare number) and ended
/// sessions idle for minutes: the CLI wants the unit, and says so before connecting.
#[test]
fn rm_idle_needs_a_unit() {
    let dir = tempfile::tempdir().unwrap();
    for (value, want) in [
        ("30", "30s, 30m or 30h"),
        ("0", "0s, 0m or 0h"),
        ("+30", "30s, 30m or 30h"),
    ] {
        let (code, out, err) = vsess_in(
            dir.path(),
            &[
                "rm",
                "--idle",
                value,
                "--url",
                "https://u:p@127.0.0.1:1",
                "-k",
            ],
            &[],
            "",
        );
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("no unit") && err.contains(want), "{err}");
        assert!(out.is_empty(), "{out}");
    }
    // With a unit it gets as far as connecting (nothing listens on port 1).
    let (code, _, err) = vsess_in(
        dir.path(),
        &[
            "rm",
            "--idle",
            "30m",
            "--url",
            "https://u:p@127.0.0.1:1",
            "-k",
        ],
        &[],
        "",
    );
    assert_eq!(code, Some(3), "{err}");
}

/// The `<key>` of a SOAP Login's answer.
fn login_key(body: &str) -> String {
    body.split("<key>")
        .nth(1)
        .and_then(|b| b.split("</key>").next())
        .unwrap()
        .to_owned()
}

/// `vsess rm K1 bogus K2` ends K1 and K2, says so, names `bogus`, and exits 1.
#[test]
fn rm_reports_each_key_and_carries_on_past_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "admin@vsphere.local", "Admin", "pw-1");
    let (mut child, url) = serve(dir.path(), &[]);
    let home = tempfile::tempdir().unwrap();
    let pw = [("VSESS_PASSWORD", "pw-1")];
    let (code, _, err) = vsess_in(
        home.path(),
        &["login", &url, "-k", "-u", "admin@vsphere.local"],
        &pw,
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    let c = client();
    let login = format!(
        "<Login>{SM}<userName>admin@vsphere.local</userName><password>pw-1</password></Login>"
    );
    let mut others = Vec::new();
    for _ in 0..2 {
        let (s, body, cookie) = soap(&c, &url, &login, None);
        assert_eq!(s, 200);
        others.push((login_key(&body), cookie.unwrap()));
    }
    let (k1, k2) = (others[0].0.clone(), others[1].0.clone());
    let bogus = "52a1b2c3-dead-beef-0000-000000000000";
    let (code, out, err) = vsess_in(home.path(), &["rm", &k1, bogus, &k2], &[], "");
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(out, format!("ended 2 sessions\n  {k1}\n  {k2}\n"), "{err}");
    assert!(
        err.contains(bogus) && err.contains("the other 2 were ended"),
        "{err}"
    );
    for (key, cookie) in &others {
        let (_, body, _) = soap(
            &c,
            &url,
            &format!("<Fetch>{SM}<prop>currentSession</prop></Fetch>"),
            Some(cookie),
        );
        assert!(!body.contains("<userName>"), "{key} lives on: {body}");
    }
    // Only unknown keys: nothing on stdout, each named, exit 1.
    let (code, out, err) = vsess_in(home.path(), &["rm", bogus, &k1], &[], "");
    assert_eq!(code, Some(1), "{err}");
    assert!(out.is_empty(), "{out}");
    assert!(err.contains(&format!("{bogus}, {k1}")), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The remembered server is kept per GOVMOMI_HOME, and a command whose server comes from
/// the environment instead of a different remembered one says so.
#[test]
fn the_remembered_server_is_per_govmomi_home_and_its_source_is_shown() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "admin@vsphere.local", "Admin", "pw-1");
    let (mut child, url) = serve(dir.path(), &[]);
    let home = tempfile::tempdir().unwrap();
    let (g1, g2) = (home.path().join("g1"), home.path().join("g2"));
    let (g1, g2) = (g1.to_str().unwrap(), g2.to_str().unwrap());
    let (code, _, err) = vsess_in(
        home.path(),
        &["login", &url, "-k", "-u", "admin@vsphere.local"],
        &[("VSESS_PASSWORD", "pw-1"), ("GOVMOMI_HOME", g1)],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(Path::new(g1).join("vsess-current.json").is_file());
    assert!(!home.path().join("config/vsess/current.json").exists());
    // Another GOVMOMI_HOME (another CI job) has no last login.
    let (code, _, err) = vsess_in(home.path(), &["whoami"], &[("GOVMOMI_HOME", g2)], "");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no server"), "{err}");
    // Its own does, and whoami says where the server came from.
    let (code, out, err) = vsess_in(home.path(), &["whoami"], &[("GOVMOMI_HOME", g1)], "");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.contains("admin@vsphere.local on ")
            && out.contains("server from your last `vsess login`"),
        "{out}"
    );
    assert!(err.is_empty(), "{err}");
    // A GOVC_URL for another server wins, and the command says so.
    let (code, _, err) = vsess_in(
        home.path(),
        &["whoami"],
        &[
            ("GOVMOMI_HOME", g1),
            ("GOVC_URL", "https://u:p@127.0.0.1:1"),
        ],
        "",
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains("note: using $GOVC_URL (https://127.0.0.1:1/sdk), not the server of your last `vsess login`"),
        "{err}"
    );
    // The same server from the environment: no note; --json names the variable.
    let (code, out, err) = vsess_in(
        home.path(),
        &["whoami", "--json"],
        &[
            ("GOVMOMI_HOME", g1),
            ("VSESS_URL", &url),
            ("VSESS_USERNAME", "admin@vsphere.local"),
            ("VSESS_INSECURE", "1"),
        ],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    assert!(out.contains(r#""serverFrom":"VSESS_URL""#), "{out}");
    // $VSESS_INSECURE is read as govc reads $GOVC_INSECURE (1 or true): "yes" does not
    // skip the verification of this self-signed certificate, and the command says so.
    let (code, _, err) = vsess_in(
        home.path(),
        &["whoami"],
        &[
            ("GOVMOMI_HOME", g2),
            ("VSESS_URL", &url),
            ("VSESS_USERNAME", "admin@vsphere.local"),
            ("VSESS_PASSWORD", "pw-1"),
            ("VSESS_INSECURE", "yes"),
        ],
        "",
    );
    assert_ne!(code, Some(0), "{err}");
    assert!(
        err.contains("$VSESS_INSECURE=yes is neither 1 nor true"),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `vsess login URL --url OTHER` is ambiguous: a usage error, not the argument silently.
#[test]
fn login_with_both_a_url_argument_and_url_is_a_usage_error() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out, err) = vsess_in(
        dir.path(),
        &[
            "login",
            "https://u:p@127.0.0.1:1",
            "--url",
            "https://u:p@127.0.0.1:2",
            "-k",
        ],
        &[],
        "",
    );
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("not both"), "{err}");
    assert!(out.is_empty());
}

/// `vsess login` with a valid cached session reuses it without asking for a password
/// (run on a terminal, under util-linux's `script`, where it would prompt); a refused
/// password during `vsess login` does not advise running `vsess login`.
#[test]
fn login_asks_for_a_password_only_when_it_must_log_in() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "admin@vsphere.local", "Admin", "pw-1");
    let (mut child, url) = serve(dir.path(), &[]);
    let home = tempfile::tempdir().unwrap();
    let user = &["-u", "admin@vsphere.local"];
    let (code, _, err) = vsess_in(
        home.path(),
        &[&["login", url.as_str(), "-k"][..], user].concat(),
        &[("VSESS_PASSWORD", "pw-1")],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    // On a terminal: a prompt would read "wrong-pw" (and wait for more without it).
    let mut tty = Command::new("script")
        .args(["-qec", &format!("'{BIN}' login"), "/dev/null"])
        .env_clear()
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path().join("config"))
        .env("GOVMOMI_HOME", home.path().join("govmomi"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux's `script` runs a command on a terminal");
    writeln!(tty.stdin.take().unwrap(), "wrong-pw").unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while tty.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = tty.kill();
    let out = tty.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!text.contains("Password for"), "prompted: {text}");
    assert!(text.contains("cached session reused"), "{text}");
    // A login that is needed, with a wrong password.
    let (code, _, err) = vsess_in(home.path(), &["logout"], &[], "");
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = vsess_in(
        home.path(),
        &[&["login", url.as_str(), "-k", "--password-stdin"][..], user].concat(),
        &[],
        "wrong-pw\n",
    );
    assert_eq!(code, Some(5), "{out}{err}");
    assert!(
        err.contains("authentication failed") && !err.contains("vsess login"),
        "{err}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// The session commands' warnings reach stderr (a corrupt cache file, as the README
/// promises), and RUST_LOG sets the level.
#[test]
fn session_commands_show_warnings_and_follow_rust_log() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "admin@vsphere.local", "Admin", "pw-1");
    let (mut child, url) = serve(dir.path(), &[]);
    let home = tempfile::tempdir().unwrap();
    let login = [
        ("VSESS_URL", url.as_str()),
        ("VSESS_USERNAME", "admin@vsphere.local"),
        ("VSESS_PASSWORD", "pw-1"),
        ("VSESS_INSECURE", "1"),
    ];
    let (code, _, err) = vsess_in(home.path(), &["login"], &login, "");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let corrupt = || {
        let sessions = home.path().join("govmomi/sessions");
        let mut n = 0;
        for f in std::fs::read_dir(&sessions).unwrap() {
            let f = f.unwrap().path();
            if !f.file_name().unwrap().to_string_lossy().starts_with('.') {
                std::fs::write(&f, b"{corrupt").unwrap();
                n += 1;
            }
        }
        assert_eq!(n, 2, "govc's two file names");
    };
    corrupt();
    let (code, _, err) = vsess_in(home.path(), &["ls"], &login, "");
    assert_eq!(code, Some(0), "{err}");
    assert!(
        err.contains(
            "vsess: warning: ignoring a corrupt session cache file; it will be replaced (file="
        ),
        "{err}"
    );
    assert!(!err.contains("DEBUG"), "{err}");
    // RUST_LOG=error hides it; RUST_LOG=debug shows more.
    corrupt();
    let quiet = [&login[..], &[("RUST_LOG", "error")]].concat();
    let (code, _, err) = vsess_in(home.path(), &["ls"], &quiet, "");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
    let verbose = [&login[..], &[("RUST_LOG", "debug")]].concat();
    let (code, _, err) = vsess_in(home.path(), &["ls"], &verbose, "");
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("DEBUG"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// As in govc, GOVC_USERNAME replaces the URL's user; vsess says so when they differ.
#[test]
fn a_user_variable_that_replaces_the_urls_user_is_warned_about() {
    let dir = tempfile::tempdir().unwrap();
    let (code, _, err) = vsess_in(
        dir.path(),
        &["ls"],
        &[
            ("GOVC_URL", "https://alice:pw@127.0.0.1:1"),
            ("GOVC_USERNAME", "bob"),
        ],
        "",
    );
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(
            "vsess: warning: the user bob from $GOVC_USERNAME replaces the URL's user alice"
        ),
        "{err}"
    );
    // The same user: nothing to say.
    let (_, _, err) = vsess_in(
        dir.path(),
        &["ls"],
        &[
            ("GOVC_URL", "https://alice:pw@127.0.0.1:1"),
            ("GOVC_USERNAME", "alice"),
        ],
        "",
    );
    assert!(!err.contains("warning"), "{err}");
}

/// A cached session the server no longer accepts, and no password to log in again: the
/// error says the session expired or was ended, not that the user never logged in.
#[test]
fn an_ended_cached_session_is_named_as_such() {
    let dir = tempfile::tempdir().unwrap();
    add_user(dir.path(), "admin@vsphere.local", "Admin", "pw-1");
    let (mut child, url) = serve(dir.path(), &[]);
    let home = tempfile::tempdir().unwrap();
    let (code, _, err) = vsess_in(
        home.path(),
        &["login", &url, "-k", "-u", "admin@vsphere.local"],
        &[("VSESS_PASSWORD", "pw-1")],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, out, err) = vsess_in(home.path(), &["whoami", "--json"], &[], "");
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let key = v["key"].as_str().unwrap().to_owned();
    // An administrator ends it from another session.
    let (code, _, err) = vsess_in(
        home.path(),
        &["rm", &key],
        &[
            ("GOVMOMI_HOME", home.path().join("other").to_str().unwrap()),
            ("VSESS_URL", &url),
            ("VSESS_USERNAME", "admin@vsphere.local"),
            ("VSESS_PASSWORD", "pw-1"),
            ("VSESS_INSECURE", "1"),
        ],
        "",
    );
    assert_eq!(code, Some(0), "{err}");
    let (code, _, err) = vsess_in(home.path(), &["ls"], &[], "");
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("has expired or was ended"), "{err}");
    // Never logged in there at all: the other message.
    let (code, _, err) = vsess_in(
        home.path(),
        &["ls"],
        &[
            ("GOVMOMI_HOME", home.path().join("fresh").to_str().unwrap()),
            ("VSESS_URL", &url),
            ("VSESS_USERNAME", "admin@vsphere.local"),
            ("VSESS_INSECURE", "1"),
        ],
        "",
    );
    assert_eq!(code, Some(5), "{err}");
    assert!(err.contains("not logged in to"), "{err}");
    child.kill().unwrap();
    child.wait().unwrap();
}

/// SIGTERM drains (and says for how long at most); a second SIGTERM while a stalled
/// client holds the drain stops the server at once, saying it cut the connection.
#[test]
fn a_second_sigterm_stops_a_draining_server_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, log) = common::serve_logged(dir.path(), &["--http"]);
    let addr = url.trim_start_matches("http://");
    let mut stalled = std::net::TcpStream::connect(addr).unwrap();
    stalled
        .write_all(b"POST /sdk HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n<Env")
        .unwrap();
    std::thread::sleep(std::time::Duration::from_millis(200));
    let pid = i32::try_from(child.id()).unwrap();
    let logged = |what: &str| {
        let t0 = std::time::Instant::now();
        while t0.elapsed() < std::time::Duration::from_secs(5) {
            if log.lock().unwrap().iter().any(|l| l.contains(what)) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no {what:?} in the log: {:#?}", log.lock().unwrap());
    };
    // SAFETY: signals the child started above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    logged("waiting up to 10s for 1 open connection(s)");
    std::thread::sleep(std::time::Duration::from_millis(100));
    assert!(child.try_wait().unwrap().is_none(), "the drain waits");
    let t0 = std::time::Instant::now();
    // SAFETY: as above.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if t0.elapsed() > std::time::Duration::from_secs(4) {
            child.kill().unwrap();
            child.wait().unwrap();
            panic!("a second SIGTERM did not stop the server");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    assert!(status.success(), "{status:?}");
    logged("SIGTERM again: stopping now; cut 1 open connection(s)");
}

#[test]
fn a_tls_key_every_user_can_read_is_warned_about() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    // The first start generates a pair (0600) and warns about nothing.
    let (mut first, _, log) = common::serve_logged(&dir.path().join("a"), &[]);
    first.kill().unwrap();
    first.wait().unwrap();
    let warned = |log: &std::sync::Mutex<Vec<String>>| {
        log.lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("WARN") && l.contains("every user on this machine can read it"))
    };
    assert!(!warned(&log), "{:#?}", log.lock().unwrap());
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::copy(dir.path().join("a/server.crt"), &cert).unwrap();
    std::fs::copy(dir.path().join("a/server.key"), &key).unwrap();
    for (mode, expected) in [(0o640, false), (0o644, true)] {
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(mode)).unwrap();
        let (mut child, _, log) = common::serve_logged(
            &dir.path().join(format!("{mode:o}")),
            &[
                "--cert",
                cert.to_str().unwrap(),
                "--key",
                key.to_str().unwrap(),
            ],
        );
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(
            warned(&log),
            expected,
            "{mode:o}: {:#?}",
            log.lock().unwrap()
        );
    }
}

#[test]
fn the_bash_completion_script_completes_commands_and_flags() {
    let out = Command::new(BIN)
        .args(["completion", "bash"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let script = String::from_utf8(out.stdout).unwrap();
    let complete = |words: &str| {
        let n = words.split(' ').count() - 1;
        let prog = format!(
            "{script}\nCOMP_WORDS=({words}); COMP_CWORD={n}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; _vsess vsess \"${{COMP_WORDS[{n}]}}\" \
             \"${{COMP_WORDS[{}]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            n - 1
        );
        let out = Command::new("bash").args(["-c", &prog]).output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let mut words: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        words.sort();
        words
    };
    assert_eq!(complete("vsess lo"), ["login", "logout"]);
    assert_eq!(complete("vsess serve --data"), ["--data-dir"]);
    assert_eq!(complete("vsess user ro"), ["role"]);
    assert_eq!(
        complete("vsess user add x --role "),
        ["Admin", "NoAccess", "ReadOnly"]
    );
    let out = Command::new(BIN)
        .args(["completion", "tcsh"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn metrics_count_logins_and_ends_and_need_the_token() {
    let dir = tempfile::tempdir().unwrap();
    add_user(
        &dir.path().join("d"),
        "admin@vsphere.local",
        "Admin",
        "pw-1",
    );
    let etc = dir.path().join("etc");
    std::fs::create_dir(&etc).unwrap();
    std::fs::write(etc.join("metrics-token"), "tok-123\n").unwrap();
    // token_file is relative: it is read from the config file's directory.
    std::fs::write(
        etc.join("vsess.toml"),
        "[metrics]\nenabled = true\ntoken_file = \"metrics-token\"\n",
    )
    .unwrap();
    let config = etc.join("vsess.toml");
    let (mut child, url) = serve(
        &dir.path().join("d"),
        &["--config", config.to_str().unwrap()],
    );
    let c = client();
    let scrape = |token: Option<&str>| {
        let mut r = c.get(format!("{url}/metrics"));
        if let Some(t) = token {
            r = r.bearer_auth(t);
        }
        let r = r.send().unwrap();
        (r.status().as_u16(), r.text().unwrap())
    };
    assert_eq!(scrape(None).0, 401);
    assert_eq!(scrape(Some("tok-12")).0, 401);
    let login = format!(
        "<Login>{SM}<userName>admin@vsphere.local</userName><password>pw-1</password></Login>"
    );
    let (s, _, set) = soap(&c, &url, &login, None);
    assert_eq!(s, 200);
    let cookie = set.unwrap().split(';').next().unwrap().to_owned();
    let bad = login.replace("pw-1", "nope");
    assert_eq!(soap(&c, &url, &bad, None).0, 500);
    let logout = format!("<Logout>{SM}</Logout>");
    assert_eq!(soap(&c, &url, &logout, Some(&cookie)).0, 200);
    let (s, text) = scrape(Some("tok-123"));
    assert_eq!(s, 200, "{text}");
    for line in [
        "vsess_sessions_created_total 1",
        "vsess_sessions_ended_total{reason=\"logout\"} 1",
        "vsess_logins_refused_total{reason=\"wrong_password\"} 1",
        "vsess_sessions 0",
        "vsess_store_up 1",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line:?} in\n{text}");
    }
    child.kill().unwrap();
    child.wait().unwrap();

    // Off by default: no /metrics at all.
    let (mut child, url) = serve(&dir.path().join("d"), &[]);
    let r = client().get(format!("{url}/metrics")).send().unwrap();
    assert_eq!(r.status().as_u16(), 404);
    child.kill().unwrap();
    child.wait().unwrap();
}

#[test]
fn a_renewed_certificate_is_served_without_a_restart() {
    use rustls::pki_types::pem::PemObject;
    let dir = tempfile::tempdir().unwrap();
    // Two pairs, as two first starts generate them.
    for name in ["a", "b"] {
        let (mut child, _) = serve(&dir.path().join(name), &[]);
        child.kill().unwrap();
        child.wait().unwrap();
    }
    let pair = |name: &str| {
        (
            std::fs::read(dir.path().join(name).join("server.crt")).unwrap(),
            std::fs::read(dir.path().join(name).join("server.key")).unwrap(),
        )
    };
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    std::fs::write(&cert, pair("a").0).unwrap();
    std::fs::write(&key, pair("a").1).unwrap();
    let config = dir.path().join("vsess.toml");
    std::fs::write(&config, "[server]\ncertificate_check_seconds = 1\n").unwrap();
    let (mut child, url, log) = common::serve_logged(
        &dir.path().join("d"),
        &[
            "--cert",
            cert.to_str().unwrap(),
            "--key",
            key.to_str().unwrap(),
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let _ = rustls::crypto::ring::default_provider().install_default();
    let served = || {
        let c = reqwest::blocking::Client::builder()
            .tls_danger_accept_invalid_certs(true)
            .tls_info(true)
            .build()
            .unwrap();
        let r = c.get(format!("{url}/healthz")).send().unwrap();
        r.extensions()
            .get::<reqwest::tls::TlsInfo>()
            .unwrap()
            .peer_certificate()
            .unwrap()
            .to_vec()
    };
    let der = |pem: &[u8]| {
        rustls::pki_types::CertificateDer::from_pem_slice(pem)
            .unwrap()
            .to_vec()
    };
    let wait_for = |what: &str| {
        let t0 = std::time::Instant::now();
        while !log.lock().unwrap().iter().any(|l| l.contains(what)) {
            assert!(
                t0.elapsed() < std::time::Duration::from_secs(10),
                "no {what:?} in {:#?}",
                log.lock().unwrap()
            );
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    };
    assert_eq!(served(), der(&pair("a").0));
    // A broken certificate is not served: the old one stays.
    std::fs::write(&cert, "not a certificate").unwrap();
    wait_for("cannot be used");
    assert_eq!(served(), der(&pair("a").0));
    // The renewed pair is.
    std::fs::write(&key, pair("b").1).unwrap();
    std::fs::write(&cert, pair("b").0).unwrap();
    wait_for("serving the renewed TLS certificate");
    assert_eq!(served(), der(&pair("b").0));
    // With the same protocols offered: a client offering only `http/1.0` still connects.
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(rustls::pki_types::CertificateDer::from_pem_slice(&pair("b").0).unwrap())
        .unwrap();
    let mut cfg = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.0".to_vec()];
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(std::sync::Arc::new(cfg), name).unwrap();
    let mut tcp = std::net::TcpStream::connect(url.trim_start_matches("https://")).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).unwrap();
    }
    assert_eq!(conn.alpn_protocol(), Some(&b"http/1.0"[..]));
    child.kill().unwrap();
    child.wait().unwrap();
}
