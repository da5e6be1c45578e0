//! The vSphere client and the session cache against vcsim, govmomi's vCenter simulator
//! (0.24.2, API 6.5), started from `$VCSIM_BIN` on a free 127.0.0.1 port.
//!
//! vcsim is not vsess: it has no unified sessions (no `/api/session`), its session cookie
//! is the public `UserSession.key`, and it accepts any non-empty user and password. These
//! tests check that the SDK works with such a server, not only with vsess.
//!
//! Ignored by default because they need the vcsim binary; `scripts/test` builds it and runs
//!
//!     VCSIM_BIN=.../govmomi/bin/vcsim cargo test -p vsess-client --test vcsim -- --include-ignored
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;
use vsess_client::cache::Session;
use vsess_client::tls::Tls;
use vsess_client::vsphere::Client;
use vsess_client::Error;

const START_TIMEOUT: Duration = Duration::from_secs(30);
const USER: &str = "user";
const PASSWORD: &str = "pass";

/// One vcsim process; killed (by its handle) when dropped.
struct Vcsim {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Vcsim {
    fn start() -> Self {
        let bin = std::env::var_os("VCSIM_BIN").unwrap_or_else(|| {
            panic!(
                "VCSIM_BIN is not set: point it at govmomi's vcsim \
                 (scripts/peers/govmomi.sh builds it; scripts/test exports VCSIM_BIN)"
            )
        });
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("vcsim.stderr");
        let stderr = std::fs::File::create(&stderr_path).unwrap();
        // Port 0: the kernel picks a free port and vcsim prints the URL it listens on.
        let mut child = Command::new(&bin)
            .args(["-l", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(stderr))
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start vcsim from VCSIM_BIN={bin:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = mpsc::channel();
        // Reads until EOF so vcsim never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line.contains("GOVC_URL=") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(e) => {
                let _ = child.kill();
                let status = child.wait();
                let err = std::fs::read_to_string(&stderr_path).unwrap_or_default();
                panic!(
                    "vcsim printed no GOVC_URL within {START_TIMEOUT:?} ({e}; exit {status:?})\n\
                     stderr:\n{err}"
                );
            }
        };
        // "export GOVC_URL=https://user:pass@127.0.0.1:PORT/sdk GOVC_SIM_PID=N"
        let port = line
            .split_once("@127.0.0.1:")
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(p, _)| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected vcsim output (not on 127.0.0.1?): {line}"));
        Vcsim {
            child,
            port,
            _dir: dir,
        }
    }

    fn url(&self) -> String {
        format!("https://127.0.0.1:{}/sdk", self.port)
    }

    fn url_with(&self, user: &str, password: &str) -> String {
        format!("https://{user}:{password}@127.0.0.1:{}/sdk", self.port)
    }

    async fn client(&self) -> Client {
        Client::connect(&self.url(), Tls::Insecure).await.unwrap()
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn cache(sim: &Vcsim, home: &std::path::Path) -> Session {
    let mut s = Session::new(&sim.url_with(USER, PASSWORD), true).unwrap();
    s.dir_soap = Some(home.join("sessions"));
    s.dir_rest = Some(home.join("rest_sessions"));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vcsim: scripts/test builds it"]
async fn connects_at_6_5_logs_in_and_reads_session_properties() {
    let sim = Vcsim::start();
    let c = sim.client().await;
    assert_eq!(
        c.version(),
        "6.5",
        "vcsim offers 6.5 (priorVersions 6.0, 5.5)"
    );
    assert_eq!(c.url().as_str(), sim.url());

    // No session yet: currentSession is empty, not a fault.
    assert!(c.current_session().await.unwrap().is_none());
    // vcsim refuses an empty password with InvalidLogin.
    let err = c.login(USER, "").await.unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert!(c.session_id().is_none(), "a failed login sets no session");

    let me = c.login(USER, PASSWORD).await.unwrap();
    assert_eq!(me.user_name, USER);
    assert!(!me.key.is_empty());
    assert_eq!(c.login_count(), 2, "both Logins were counted");
    assert!(c.session_id().is_some());

    let current = c.current_session().await.unwrap().expect("currentSession");
    assert_eq!(current.key, me.key);
    assert_eq!(current.user_name, USER);

    let list = c.session_list().await.unwrap();
    assert_eq!(
        list.iter().map(|s| s.key.as_str()).collect::<Vec<_>>(),
        vec![me.key.as_str()],
        "the only session on a fresh vcsim is ours"
    );
    assert!(c.session_is_active(&me.key, USER).await.unwrap());
    assert!(!c.session_is_active(&me.key, "someone-else").await.unwrap());
    // A second Login carries the live session's cookie, as govmomi's does, and vcsim
    // refuses it: no second session is opened behind the first.
    let err = c.login(USER, PASSWORD).await.unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    assert_eq!(c.session_list().await.unwrap().len(), 1);
    assert_eq!(c.current_session().await.unwrap().unwrap().key, me.key);

    let now = chrono::Utc::now();
    let t = c.current_time().await.unwrap();
    assert!(
        (t - now).num_seconds().abs() < 300,
        "CurrentTime {t} is far from {now}"
    );

    // Terminating our own session is refused, as on vCenter.
    let err = c
        .terminate_session(std::slice::from_ref(&me.key))
        .await
        .unwrap_err();
    assert!(err.is_fault("InvalidArgument"), "{err}");

    c.logout().await.unwrap();
    assert!(c.session_id().is_none());
    assert!(c.current_session().await.unwrap().is_none());
    // Without a session (and without a password, which logout forgot) a call is refused.
    let err = c.current_time().await.unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    assert_eq!(c.login_count(), 3, "no relogin after logout");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs vcsim: scripts/test builds it"]
async fn a_terminated_session_is_replaced_by_exactly_one_login() {
    let sim = Vcsim::start();
    let client = sim.client().await;
    let old = client.login(USER, PASSWORD).await.unwrap();
    let admin = sim.client().await;
    let admin_session = admin.login("admin", "admin-pw").await.unwrap();
    admin
        .terminate_session(std::slice::from_ref(&old.key))
        .await
        .unwrap();
    assert!(
        client.current_session().await.unwrap().is_none(),
        "the terminated session is gone"
    );
    let before = client.login_count();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.current_time().await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(client.login_count() - before, 1, "single-flight relogin");
    let new = client
        .current_session()
        .await
        .unwrap()
        .expect("a new session");
    assert_ne!(new.key, old.key);
    assert_eq!(new.user_name, USER);
    let mut keys: Vec<String> = admin
        .session_list()
        .await
        .unwrap()
        .into_iter()
        .map(|s| s.key)
        .collect();
    keys.sort();
    let mut expected = vec![admin_session.key.clone(), new.key.clone()];
    expected.sort();
    assert_eq!(keys, expected, "the admin's session and one new one");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vcsim: scripts/test builds it"]
async fn clone_tickets_log_in_once() {
    let sim = Vcsim::start();
    let c = sim.client().await;
    let me = c.login(USER, PASSWORD).await.unwrap();
    let ticket = c.acquire_clone_ticket().await.unwrap();
    assert!(!ticket.is_empty());

    let c2 = sim.client().await;
    let cloned = c2.login_by_ticket(&ticket).await.unwrap();
    assert_eq!(cloned.user_name, USER);
    assert_ne!(cloned.key, me.key, "CloneSession makes a new session");
    assert!(c2.session_id().is_some());
    assert_ne!(c2.session_id(), c.session_id());
    assert_eq!(
        c2.current_session().await.unwrap().expect("cloned").key,
        cloned.key
    );
    assert_eq!(
        c2.login_count(),
        0,
        "a ticket login is not a password Login"
    );

    let c3 = sim.client().await;
    let err = c3.login_by_ticket(&ticket).await.unwrap_err();
    assert!(
        matches!(err, Error::Authentication(_)),
        "a clone ticket works once: {err}"
    );
    assert!(c3.session_id().is_none());
    // The original session survives.
    assert_eq!(
        c.current_session().await.unwrap().expect("original").key,
        me.key
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs vcsim: scripts/test builds it"]
async fn no_unified_sessions_so_rest_falls_back_to_a_legacy_login() {
    let sim = Vcsim::start();
    let home = tempfile::tempdir().unwrap();
    let s = cache(&sim, home.path());

    // The SOAP cache works against vcsim: one Login, then reuse with none.
    let first = s.login().await.unwrap();
    assert!(!first.reused);
    assert_eq!(first.client.login_count(), 1);
    assert_eq!(first.client.version(), "6.5");
    let second = cache(&sim, home.path()).login().await.unwrap();
    assert!(second.reused);
    assert_eq!(second.client.login_count(), 0);
    assert_eq!(second.session.key, first.session.key);

    let soap = &first.client;
    let soap_id = soap.session_id().unwrap();
    assert!(
        !soap.supports_unified_sessions().await.unwrap(),
        "vcsim has no /api/session, so a SOAP session is not a vAPI session"
    );
    assert!(soap.rest_session(&soap_id).await.unwrap().is_none());

    // No unified sessions: the cache makes a separate legacy REST login.
    let (rest_id, reused) = s.login_rest(Some(soap)).await.unwrap();
    assert!(!reused);
    assert!(!rest_id.is_empty());
    assert_ne!(rest_id, soap_id, "a separate vAPI session");
    let info = soap
        .legacy_rest_session(&rest_id)
        .await
        .unwrap()
        .expect("the REST session is valid");
    assert_eq!(info.user, USER);
    assert_eq!(soap.login_count(), 1, "no extra SOAP Login");
    // The SOAP session is untouched.
    assert_eq!(
        soap.current_session().await.unwrap().expect("soap").key,
        first.session.key
    );

    // Cached in both govmomi names, private, without the password.
    for name in s.file_names("/rest") {
        let path = home.path().join("rest_sessions").join(&name);
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(doc["SessionID"], rest_id.as_str(), "{text}");
        assert!(!text.contains(PASSWORD), "{text}");
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }

    // The next call reuses the cached REST session, with or without a SOAP client.
    let (again, reused) = s.login_rest(Some(soap)).await.unwrap();
    assert!(reused);
    assert_eq!(again, rest_id);
    let (again, reused) = cache(&sim, home.path()).login_rest(None).await.unwrap();
    assert!(reused);
    assert_eq!(again, rest_id);

    // Logging out ends it on vcsim and empties the cache, so the next call logs in again.
    s.logout_rest(soap, &rest_id).await.unwrap();
    assert!(soap.legacy_rest_session(&rest_id).await.unwrap().is_none());
    for name in s.file_names("/rest") {
        assert!(!home.path().join("rest_sessions").join(name).exists());
    }
    let (fresh, reused) = s.login_rest(Some(soap)).await.unwrap();
    assert!(!reused);
    assert_ne!(fresh, rest_id);
}
