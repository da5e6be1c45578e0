//! The vSphere client and the session cache against a real vsess server (in process, on
//! 127.0.0.1:0, TLS with its self-signed certificate).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use vsess_client::cache::Session;
use vsess_client::tls::Tls;
use vsess_client::vsphere::{Client, KeepAlive, Ping};
use vsess_client::Error;
use vsess_core::password::hash_password;
use vsess_core::{Role, User, UserName};
use vsess_server::{Config, Options, Running, Transport};
use vsess_store::UserFile;

struct Server {
    running: Running,
    dir: tempfile::TempDir,
}

impl Server {
    async fn start() -> Self {
        Self::start_with(Config::default()).await
    }

    async fn start_with(config: Config) -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), config).await
    }

    /// Serving `cert` and `key` (PEM), as the data directory's pair.
    async fn start_with_pair(cert: &str, key: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.crt"), cert).unwrap();
        std::fs::write(dir.path().join("server.key"), key).unwrap();
        Self::start_in(dir, Config::default()).await
    }

    async fn start_in(dir: tempfile::TempDir, config: Config) -> Self {
        let users = [
            ("admin@vsphere.local", "admin-pw", Role::Admin),
            ("ops@vsphere.local", "ops-pw", Role::ReadOnly),
        ]
        .map(|(name, pw, role)| {
            User::new(
                UserName::parse(name).unwrap(),
                String::new(),
                role,
                hash_password(pw).unwrap(),
            )
        });
        UserFile::open(dir.path())
            .unwrap()
            .modify(|u| {
                for user in users {
                    u.insert(user.name.as_str().into(), user);
                }
                Ok(())
            })
            .unwrap();
        let running = vsess_server::start(Options {
            listen: "127.0.0.1:0".parse().unwrap(),
            data_dir: dir.path().to_owned(),
            config,
            transport: Transport::SelfSigned,
        })
        .await
        .unwrap();
        Server { running, dir }
    }

    fn url(&self, creds: bool) -> String {
        let port = self.running.addr.port();
        if creds {
            format!("https://admin%40vsphere.local:admin-pw@127.0.0.1:{port}/sdk")
        } else {
            format!("https://127.0.0.1:{port}/sdk")
        }
    }

    /// What `vsess user passwd` does: a new password for `name`, seen by the running
    /// server at once.
    fn passwd(&self, name: &str, password: &str) {
        let hash = hash_password(password).unwrap();
        UserFile::open(self.dir.path())
            .unwrap()
            .modify(|u| {
                u.get_mut(name).unwrap().password_hash = hash;
                Ok(())
            })
            .unwrap();
    }

    fn live_sessions(&self) -> usize {
        match &self.running.app.backend {
            vsess_store::Backend::Embedded(s) => s.list_sessions_len(),
            vsess_store::Backend::Redis(_) => unreachable!("the tests run on the embedded store"),
        }
    }
}

/// A client on the server's plain URL, with a REST session of the administrator.
async fn rest_admin(server: &Server) -> (Client, String) {
    let c = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    let id = c
        .rest_login("admin@vsphere.local", "admin-pw")
        .await
        .unwrap();
    (c, id)
}

fn cache(server: &Server, home: &std::path::Path) -> Session {
    cache_for(&server.url(true), home)
}

/// A session cache for `url` under `home` (GOVMOMI_HOME's layout).
fn cache_for(url: &str, home: &std::path::Path) -> Session {
    let mut s = Session::new(url, true).unwrap();
    s.dir_soap = Some(home.join("sessions"));
    s.dir_rest = Some(home.join("rest_sessions"));
    s
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_reuses_a_valid_session_and_replaces_a_dead_one() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let first = cache(&server, home.path()).login().await.unwrap();
    assert!(!first.reused);
    assert_eq!(first.client.login_count(), 1);
    let second = cache(&server, home.path()).login().await.unwrap();
    assert!(second.reused, "a valid cached session is reused");
    assert_eq!(second.client.login_count(), 0, "and no Login is sent");
    assert_eq!(second.session.key, first.session.key);
    assert_eq!(server.live_sessions(), 1);
    // Both govmomi file names exist, private, without the password.
    let names = cache(&server, home.path()).file_names("/sdk");
    for n in &names {
        let text = std::fs::read_to_string(home.path().join("sessions").join(n)).unwrap();
        assert!(!text.contains("admin-pw"));
        assert!(text.contains("vmware_soap_session"));
        assert!(
            text.contains("\"sessionManager\":{\"Type\":\"SessionManager\""),
            "{text}"
        );
    }
    // The session dies: the next login makes a new one and caches it.
    first.client.logout().await.unwrap();
    let third = cache(&server, home.path()).login().await.unwrap();
    assert!(!third.reused);
    assert_ne!(third.session.key, first.session.key);
    // A corrupt cache file is ignored and replaced.
    for n in &names {
        std::fs::write(home.path().join("sessions").join(n), b"{not json").unwrap();
    }
    let fourth = cache(&server, home.path()).login().await.unwrap();
    assert!(!fourth.reused);
    let fifth = cache(&server, home.path()).login().await.unwrap();
    assert!(fifth.reused, "the corrupt file was replaced by a good one");
    // reauth skips the cache; passthrough never writes it.
    let mut re = cache(&server, home.path());
    re.reauth = true;
    assert!(!re.login().await.unwrap().reused);
    let other = tempfile::tempdir().unwrap();
    let mut pass = cache(&server, other.path());
    pass.passthrough = true;
    pass.login().await.unwrap();
    assert!(!other.path().join("sessions").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hinted_session_resumes_without_a_round_trip_and_falls_back_safely() {
    use vsess_client::selfservice::{ListQuery, SelfService};
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let s = cache(&server, home.path());
    assert!(s.resume().unwrap().is_none(), "nothing cached yet");
    let first = s.login().await.unwrap();
    // The hint holds the session and version, but not yet whether /v2/session exists.
    let hint = s.hint().unwrap();
    assert!(hint.describes(&first.client.session_id().unwrap()));
    assert_eq!(hint.version, "8.0.3.0");
    assert_eq!(hint.session.key, first.session.key);
    assert_eq!(hint.self_service, None);
    s.remember_self_service(&first, true);
    // Private, beside govc's files, and no password in it.
    let hint_file = home
        .path()
        .join("sessions")
        .join(format!(".{}.vsess.json", s.file_names("/sdk")[0]));
    let text = std::fs::read_to_string(&hint_file).unwrap();
    assert!(!text.contains("admin-pw"));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&hint_file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Resumed: the cached cookie and version, no Login, no password kept.
    let r = cache(&server, home.path()).resume().unwrap().unwrap();
    assert_eq!(r.client.session_id(), first.client.session_id());
    assert_eq!(r.client.version(), "8.0.3.0");
    assert_eq!(r.session.key, first.session.key);
    assert_eq!(r.self_service, Some(true));
    let list = SelfService::with_session(&r.client)
        .list(&ListQuery::default())
        .await
        .unwrap();
    assert!(list.iter().any(|d| d.key == first.session.key));
    assert_eq!(server.live_sessions(), 1);
    // Validated reuse keeps the hint (with the version it knew: no negotiation).
    let again = cache(&server, home.path()).login().await.unwrap();
    assert!(again.reused);
    assert_eq!(
        cache(&server, home.path()).hint().unwrap().self_service,
        Some(true)
    );
    // The session ends: resuming still hands it out (not validated), the first call says
    // 401, and login() then logs in once and corrects the hint.
    first.client.logout().await.unwrap();
    let r = cache(&server, home.path()).resume().unwrap().unwrap();
    let err = SelfService::with_session(&r.client)
        .list(&ListQuery::default())
        .await
        .unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    let second = cache(&server, home.path()).login().await.unwrap();
    assert!(!second.reused);
    assert_eq!(second.client.login_count(), 1);
    let hint = cache(&server, home.path()).hint().unwrap();
    assert!(hint.describes(&second.client.session_id().unwrap()));
    assert_eq!(hint.session.key, second.session.key);
    assert_eq!(hint.self_service, None, "a new session: ask again");
    // A session that govc replaced (another cookie) makes the hint stale: no resume.
    for n in s.file_names("/sdk") {
        let f = home.path().join("sessions").join(n);
        let doc = std::fs::read_to_string(&f).unwrap();
        let id = second.client.session_id().unwrap();
        std::fs::write(&f, doc.replace(&id, "govc-made-this-one")).unwrap();
    }
    assert!(cache(&server, home.path()).resume().unwrap().is_none());
    // Logout removes the hint with the session.
    let third = cache(&server, home.path()).login().await.unwrap();
    assert!(!third.reused, "govc's (fake) cookie is not valid");
    cache(&server, home.path())
        .logout(&third.client)
        .await
        .unwrap();
    assert!(!hint_file.exists());
    assert!(cache(&server, home.path()).resume().unwrap().is_none());
}

/// A new session that cannot be cached is logged out, not left open on the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_session_that_cannot_be_cached_is_logged_out() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    // A directory where the cache file should be: the lock works, the write does not.
    let c = cache(&server, home.path());
    std::fs::create_dir_all(home.path().join("sessions").join(&c.file_names("/sdk")[0])).unwrap();
    std::fs::create_dir_all(
        home.path()
            .join("rest_sessions")
            .join(&c.file_names("/rest")[0]),
    )
    .unwrap();
    let r = c.login().await;
    assert!(matches!(r, Err(Error::Cache { .. })), "{:?}", r.err());
    assert_eq!(server.live_sessions(), 0, "the SOAP session was logged out");
    let r = c.login_rest(None).await;
    assert!(matches!(r, Err(Error::Cache { .. })), "{:?}", r.err());
    assert_eq!(server.live_sessions(), 0, "the REST session was logged out");
}

/// The session cookies in the cache's govc files that exist (unquoted).
fn cookies_left(server: &Server, home: &std::path::Path) -> Vec<String> {
    cache(server, home)
        .file_names("/sdk")
        .iter()
        .filter_map(|n| std::fs::read_to_string(home.join("sessions").join(n)).ok())
        .map(|text| {
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            doc["SoapClient"]["Cookies"][0]["Value"]
                .as_str()
                .unwrap()
                .trim_matches('"')
                .to_owned()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_leaves_the_files_of_another_session_alone() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    // A reads the cache; then B logs in again (reauth) and caches its own session.
    let a = cache(&server, home.path()).login().await.unwrap();
    let mut re = cache(&server, home.path());
    re.reauth = true;
    let b = re.login().await.unwrap();
    let b_cookie = b.client.session_id().unwrap().trim_matches('"').to_owned();
    assert_ne!(a.client.session_id().unwrap(), b_cookie);
    // A ends its session: B's stays cached (it was wiped, and leaked on the server).
    cache(&server, home.path()).logout(&a.client).await.unwrap();
    let cookies = cookies_left(&server, home.path());
    assert!(
        !cookies.is_empty() && cookies.iter().all(|c| *c == b_cookie),
        "{cookies:?}"
    );
    assert!(cache(&server, home.path())
        .hint()
        .is_some_and(|h| h.describes(&b.client.session_id().unwrap())));
    let again = cache(&server, home.path()).login().await.unwrap();
    assert!(again.reused);
    assert_eq!(
        again.client.session_id().unwrap().trim_matches('"'),
        b_cookie
    );
    // A passthrough session is never cached, so its logout does not touch the files.
    let mut pass = cache(&server, home.path());
    pass.passthrough = true;
    let p = pass.login().await.unwrap();
    pass.logout(&p.client).await.unwrap();
    assert!(cookies_left(&server, home.path())
        .iter()
        .all(|c| *c == b_cookie));
    // The cached session's own logout removes its files and its hint.
    cache(&server, home.path())
        .logout(&again.client)
        .await
        .unwrap();
    assert!(cookies_left(&server, home.path()).is_empty());
    assert!(cache(&server, home.path()).hint().is_none());
    assert_eq!(server.live_sessions(), 0);
}

/// govc rewrites its cache files in place without truncating them, so a shorter rewrite
/// leaves the end of the longer one after the JSON; Go's decoder reads the first value.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cache_file_with_govcs_leftover_bytes_still_holds_the_session() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let first = cache(&server, home.path()).login().await.unwrap();
    for n in cache(&server, home.path()).file_names("/sdk") {
        let f = home.path().join("sessions").join(n);
        let mut doc = std::fs::read(&f).unwrap();
        doc.extend_from_slice(b"\n\"Insecure\":true,\"Version\":\"8.0.3.0\"}}\n");
        std::fs::write(&f, doc).unwrap();
    }
    let resumed = cache(&server, home.path()).resume().unwrap();
    assert!(resumed.is_some(), "the hinted path reads the file too");
    let again = cache(&server, home.path()).login().await.unwrap();
    assert!(again.reused, "read as corrupt: logged in again");
    assert_eq!(again.session.key, first.session.key);
    assert_eq!(server.live_sessions(), 1);
}

/// An administrator's client, to end other sessions with.
async fn admin(server: &Server) -> Client {
    let admin = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    admin
        .login("admin@vsphere.local", "admin-pw")
        .await
        .unwrap();
    admin
}

/// The cookie in each of the cache's two govc files (SHA-256 and SHA-1 names); checks
/// that they are private and hold no password.
fn cached_cookies(server: &Server, home: &std::path::Path) -> Vec<String> {
    use std::os::unix::fs::PermissionsExt;
    cache(server, home)
        .file_names("/sdk")
        .iter()
        .map(|n| {
            let f = home.join("sessions").join(n);
            assert_eq!(
                std::fs::metadata(&f).unwrap().permissions().mode() & 0o777,
                0o600
            );
            let text = std::fs::read_to_string(&f).unwrap();
            assert!(!text.contains("admin-pw"));
            let doc: serde_json::Value = serde_json::from_str(&text).unwrap();
            assert!(
                doc["ServiceContent"]["sessionManager"].is_object(),
                "{text}"
            );
            doc["SoapClient"]["Cookies"][0]["Value"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A Logout that failed on the way (here the server is gone) may have left the session
/// live: its files stay for another try, as govmomi keeps them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_that_failed_keeps_the_cached_session() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let c = cache(&server, home.path());
    let login = c.login().await.unwrap();
    let id = login.client.session_id().unwrap();
    assert_eq!(cookies_left(&server, home.path()).len(), 2);
    let Server { running, dir: _dir } = server;
    running.shutdown().await.unwrap();
    let err = c.logout(&login.client).await.unwrap_err();
    assert!(!err.is_unauthenticated(), "{err}");
    let files: Vec<_> = c
        .file_names("/sdk")
        .into_iter()
        .filter(|n| home.path().join("sessions").join(n).exists())
        .collect();
    assert_eq!(
        files.len(),
        2,
        "the files of a session that may be live are kept"
    );
    assert!(c.hint().is_some_and(|h| h.describes(&id)));
}

/// A session reused from the cache by a URL that names a user but no password (as the
/// CLI tries the cache before it asks for one) has nothing to log in again with: when it
/// dies, the call says so, and no Login with an empty password is sent, which the server
/// would count towards the account's lockout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reused_without_a_password_never_logs_in_with_an_empty_one() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    cache(&server, home.path()).login().await.unwrap();
    let port = server.running.addr.port();
    let no_password = format!("https://admin%40vsphere.local@127.0.0.1:{port}/sdk");
    let loaded = cache_for(&no_password, home.path()).login().await.unwrap();
    assert!(loaded.reused);
    admin(&server)
        .await
        .terminate_session(std::slice::from_ref(&loaded.session.key))
        .await
        .unwrap();
    let err = loaded.client.current_time().await.unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    assert_eq!(loaded.client.login_count(), 0, "no Login was sent");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relogin_writes_the_new_session_to_the_cache() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let s = cache(&server, home.path());
    let first = s.login().await.unwrap();
    s.remember_self_service(&first, true);
    // A client loaded from the cache (no Login), as the next run of a tool would be.
    let loaded = cache(&server, home.path()).login().await.unwrap();
    assert!(loaded.reused);
    assert_eq!(loaded.client.login_count(), 0);
    assert!(loaded.client.is_cached());
    let old_id = loaded.client.session_id().unwrap();
    let admin = admin(&server).await;
    admin
        .terminate_session(std::slice::from_ref(&loaded.session.key))
        .await
        .unwrap();
    // A call fails with NotAuthenticated, logs in again and is retried.
    loaded.client.current_time().await.unwrap();
    assert_eq!(loaded.client.login_count(), 1);
    let new_id = loaded.client.session_id().unwrap();
    assert_ne!(new_id, old_id);
    let new_key = loaded.client.current_session().await.unwrap().unwrap().key;
    // Both govc files now hold the new session (private, no password, a ServiceContent).
    assert_eq!(
        cached_cookies(&server, home.path()),
        [new_id.as_str(), new_id.as_str()]
    );
    // So does the hint, which keeps what it knew about the server.
    let hint = cache(&server, home.path()).hint().unwrap();
    assert!(hint.describes(&new_id));
    assert_eq!(hint.session.key, new_key);
    assert_eq!(hint.version, "8.0.3.0");
    assert_eq!(hint.self_service, Some(true));
    let resumed = cache(&server, home.path()).resume().unwrap().unwrap();
    assert_eq!(
        resumed.client.session_id().as_deref(),
        Some(new_id.as_str())
    );
    assert_eq!(resumed.session.key, new_key);
    // The next client loaded from the cache uses the new session: no Login.
    let probe = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    let next = cache(&server, home.path())
        .load(&probe)
        .await
        .unwrap()
        .expect("the cached session is valid");
    assert_eq!(next.session.key, new_key);
    assert_eq!(probe.login_count(), 0);
    let again = cache(&server, home.path()).login().await.unwrap();
    assert!(again.reused);
    assert_eq!(again.client.login_count(), 0);
    assert_eq!(again.client.session_id().as_deref(), Some(new_id.as_str()));
    assert_eq!(
        server.live_sessions(),
        2,
        "the admin's and the one new session"
    );
    // With the cache files gone (removed by hand, or by a `vsess logout` elsewhere), a
    // relogin writes them afresh, asking the server for the ServiceContent.
    std::fs::remove_dir_all(home.path().join("sessions")).unwrap();
    admin.terminate_session(&[new_key]).await.unwrap();
    loaded.client.current_time().await.unwrap();
    assert_eq!(loaded.client.login_count(), 2);
    let id = loaded.client.session_id().unwrap();
    assert_eq!(
        cached_cookies(&server, home.path()),
        [id.as_str(), id.as_str()]
    );
    let hint = cache(&server, home.path()).hint().unwrap();
    assert!(hint.describes(&id));
    assert_eq!(hint.self_service, None, "nothing was known any more");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_sharing_a_cache_log_in_again_once_and_never_cache_a_dead_session() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    // Two clients (two processes, as far as the cache is concerned: each takes the file
    // lock through its own open file) share one cached session.
    let a = cache(&server, home.path()).login().await.unwrap();
    let b = cache(&server, home.path()).login().await.unwrap();
    assert!(b.reused);
    let admin = admin(&server).await;
    admin
        .terminate_session(std::slice::from_ref(&a.session.key))
        .await
        .unwrap();
    let (a0, b0) = (a.client.login_count(), b.client.login_count());
    // Both find the session dead at once: one logs in and caches the new session; the
    // other, waiting on the cache's lock, finds it there and uses it.
    let (ra, rb) = tokio::join!(a.client.current_time(), b.client.current_time());
    ra.unwrap();
    rb.unwrap();
    let logins = (a.client.login_count() - a0) + (b.client.login_count() - b0);
    assert_eq!(logins, 1, "one Login between the two clients");
    let id = a.client.session_id().unwrap();
    assert_eq!(b.client.session_id().as_deref(), Some(id.as_str()));
    assert_eq!(
        cached_cookies(&server, home.path()),
        [id.as_str(), id.as_str()]
    );
    assert_eq!(
        server.live_sessions(),
        2,
        "the admin's and one shared session"
    );
    // Another process caches its own session, which then dies too; the shared one dies.
    let mut other = cache(&server, home.path());
    other.reauth = true;
    let c = other.login().await.unwrap();
    let c_key = c.session.key.clone();
    let shared_key = a.client.current_session().await.unwrap().unwrap().key;
    admin.terminate_session(&[c_key, shared_key]).await.unwrap();
    // The relogin finds a session other than its own in the cache, but a dead one: it
    // logs in and replaces it.
    let a1 = a.client.login_count();
    a.client.current_time().await.unwrap();
    assert_eq!(a.client.login_count() - a1, 1);
    let id = a.client.session_id().unwrap();
    assert_eq!(
        cached_cookies(&server, home.path()),
        [id.as_str(), id.as_str()]
    );
    let hint = cache(&server, home.path()).hint().unwrap();
    assert!(hint.describes(&id));
    assert_eq!(server.live_sessions(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relogin_leaves_the_cache_alone_unless_the_client_belongs_to_it() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let cached = cache(&server, home.path()).login().await.unwrap();
    let files: Vec<_> = std::fs::read_dir(home.path().join("sessions"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_none_or(|e| e != "lock"))
        .collect();
    assert_eq!(files.len(), 3, "two govc files and the hint: {files:?}");
    let snapshot = || -> Vec<Vec<u8>> { files.iter().map(|f| std::fs::read(f).unwrap()).collect() };
    let before = snapshot();
    // A client that logged in by itself relogs in in memory only.
    let plain = admin(&server).await;
    let admin = admin(&server).await;
    assert!(!plain.is_cached());
    let key = plain.current_session().await.unwrap().unwrap().key;
    admin.terminate_session(&[key]).await.unwrap();
    plain.current_time().await.unwrap();
    assert_eq!(plain.login_count(), 2);
    assert!(snapshot() == before, "the cache files changed");
    // Nor does passthrough ever link a client to the cache.
    let mut pass = cache(&server, home.path());
    pass.passthrough = true;
    assert!(!pass.login().await.unwrap().client.is_cached());
    // A cached client given another user's password logs in as that user, and that
    // session is not written to the admin's cache files.
    cached.client.set_password("ops@vsphere.local", "ops-pw");
    admin
        .terminate_session(std::slice::from_ref(&cached.session.key))
        .await
        .unwrap();
    cached.client.current_time().await.unwrap();
    let now = cached.client.current_session().await.unwrap().unwrap();
    assert_eq!(now.user_name, "ops@vsphere.local");
    assert!(snapshot() == before, "the cache files changed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_concurrent_calls_after_expiry_log_in_exactly_once() {
    let server = Server::start().await;
    let client = admin(&server).await;
    let admin = admin(&server).await;
    let key = client.current_session().await.unwrap().unwrap().key;
    admin
        .terminate_session(std::slice::from_ref(&key))
        .await
        .unwrap();
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
    assert_eq!(
        server.live_sessions(),
        2,
        "the admin's session and one new one"
    );
    assert_ne!(client.current_session().await.unwrap().unwrap().key, key);
}

/// A second `login` on a client whose session is live would open another session and
/// orphan the first: the client sends its session along, and the server refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_login_on_a_live_session_is_refused_and_leaks_nothing() {
    let server = Server::start().await;
    let c = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    let first = c.login("admin@vsphere.local", "admin-pw").await.unwrap();
    let id = c.session_id().unwrap();
    let err = c.login("ops@vsphere.local", "ops-pw").await.unwrap_err();
    assert!(
        matches!(&err, Error::Authentication(m)
            if m.contains("already logged in") && m.ends_with("(user ops@vsphere.local)")),
        "{err}"
    );
    assert_eq!(server.live_sessions(), 1);
    assert_eq!(c.session_id().as_deref(), Some(id.as_str()));
    let still = c.current_session().await.unwrap().unwrap();
    assert_eq!(still.key, first.key);
    // After a logout the client logs in again; so does a client whose session ended.
    c.logout().await.unwrap();
    let second = c.login("ops@vsphere.local", "ops-pw").await.unwrap();
    assert_eq!(second.user_name, "ops@vsphere.local");
    admin(&server)
        .await
        .terminate_session(std::slice::from_ref(&second.key))
        .await
        .unwrap();
    let third = c.login("admin@vsphere.local", "admin-pw").await.unwrap();
    assert_ne!(third.key, second.key);
    assert_eq!(server.live_sessions(), 2, "this client's and admin()'s");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn typed_calls_clone_tickets_and_unified_rest() {
    let server = Server::start().await;
    let c = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    assert_eq!(c.version(), "8.0.3.0");
    let err = c.login("admin@vsphere.local", "nope").await.unwrap_err();
    assert!(matches!(err, Error::Authentication(_)), "{err}");
    let me = c.login("admin@vsphere.local", "admin-pw").await.unwrap();
    assert!(c
        .supported_locale_list()
        .await
        .unwrap()
        .contains(&"de".to_owned()));
    assert_eq!(c.default_locale().await.unwrap(), "en");
    c.set_locale("de").await.unwrap();
    c.update_service_message("hello").await.unwrap();
    assert_eq!(c.message().await.unwrap(), "hello");
    assert!(c
        .session_is_active(&me.key, "admin@vsphere.local")
        .await
        .unwrap());
    let err = c
        .terminate_session(std::slice::from_ref(&me.key))
        .await
        .unwrap_err();
    assert!(err.is_fault("InvalidArgument"), "{err}");
    let ticket = c.acquire_clone_ticket().await.unwrap();
    let c2 = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    // A client whose session is live cannot clone over it: that session would be
    // orphaned. The ticket survives the refusal.
    let ops_session = c2.login("ops@vsphere.local", "ops-pw").await.unwrap();
    let ops = c2.session_id();
    let err = c2.login_by_ticket(&ticket).await.unwrap_err();
    assert!(
        matches!(&err, Error::Authentication(m)
            if m.starts_with("CloneSession was refused: ") && m.contains("Logout first")),
        "{err}"
    );
    assert_eq!(c2.session_id(), ops, "the client keeps its session");
    assert_eq!(c.session_list().await.unwrap().len(), 2);
    // Once that session has ended, the stale id counts as none. c2 still holds the ops
    // password: after the clone it acts as the ticket's user, and when that session ends
    // it does not log in again as its earlier user.
    c.terminate_session(std::slice::from_ref(&ops_session.key))
        .await
        .unwrap();
    let cloned = c2.login_by_ticket(&ticket).await.unwrap();
    assert_eq!(cloned.user_name, "admin@vsphere.local");
    assert!(c2.login_by_ticket(&ticket).await.is_err(), "one-time");
    c.terminate_session(std::slice::from_ref(&cloned.key))
        .await
        .unwrap();
    let err = c2.message().await.unwrap_err();
    assert!(err.is_unauthenticated(), "{err}");
    // Only c's own session is left: nothing was orphaned.
    assert_eq!(c.session_list().await.unwrap().len(), 1);
    let t = c
        .acquire_generic_service_ticket("httpGet", "https://127.0.0.1/folder")
        .await
        .unwrap();
    assert!(!t.is_empty());
    let lt = c.acquire_local_ticket("admin@vsphere.local").await.unwrap();
    assert!(lt
        .password_file_path
        .starts_with(server.dir.path().to_str().unwrap()));
    assert!(c
        .login_unsupported("LoginBySSPI")
        .await
        .unwrap_err()
        .is_fault("NotSupported"));
    // Unified sessions: the SOAP session serves vAPI, so the cache makes no second login.
    assert!(c.supports_unified_sessions().await.unwrap());
    let home = tempfile::tempdir().unwrap();
    let s = cache(&server, home.path());
    let login = s.login().await.unwrap();
    let before = server.live_sessions();
    let (rest_id, reused) = s.login_rest(Some(&login.client)).await.unwrap();
    assert!(!reused);
    assert_eq!(Some(rest_id.clone()), login.client.session_id());
    assert_eq!(server.live_sessions(), before, "no second session");
    let (again, reused) = s.login_rest(Some(&login.client)).await.unwrap();
    assert!(reused);
    assert_eq!(again, rest_id);
    // REST login, then logout ends it everywhere.
    let id = c
        .rest_login("admin@vsphere.local", "admin-pw")
        .await
        .unwrap();
    assert_eq!(
        c.rest_session(&id).await.unwrap().unwrap().user,
        "admin@vsphere.local"
    );
    c.rest_logout(&id).await.unwrap();
    assert!(c.rest_session(&id).await.unwrap().is_none());
    c.logout().await.unwrap();
    assert!(c.current_session().await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_is_verified_by_default_and_can_be_pinned() {
    let server = Server::start().await;
    let err = Client::connect(&server.url(false), Tls::Verify)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Tls { .. }),
        "self-signed is refused by default: {err}"
    );
    let fp = server.running.fingerprint.clone().unwrap();
    let c = Client::connect(&server.url(false), Tls::Thumbprint(fp.clone()))
        .await
        .unwrap();
    c.login("admin@vsphere.local", "admin-pw").await.unwrap();
    let wrong = "00".repeat(32);
    let err = Client::connect(&server.url(false), Tls::Thumbprint(wrong))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    let ca = server.dir.path().join("server.crt");
    let c = Client::connect(&server.url(false), Tls::CaBundle(ca.clone()))
        .await
        .unwrap();
    c.login("admin@vsphere.local", "admin-pw").await.unwrap();
    // A list of bundles, as govc splits GOVC_TLS_CA_CERTS: another server's certificate
    // first, this one's second.
    let other = Server::start().await;
    let other_ca = other.dir.path().join("server.crt");
    let list = std::env::join_paths([&other_ca, &ca]).unwrap();
    let c = Client::connect(&server.url(false), Tls::CaBundle(list.into()))
        .await
        .unwrap();
    c.login("admin@vsphere.local", "admin-pw").await.unwrap();
    let err = Client::connect(&server.url(false), Tls::CaBundle(other_ca.clone()))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    let missing = other.dir.path().join("missing.crt");
    let list = std::env::join_paths([&other_ca, &missing]).unwrap();
    let err = Client::connect(&server.url(false), Tls::CaBundle(list.into()))
        .await
        .unwrap_err();
    assert!(
        err.to_string()
            .contains(&format!("cannot read CA bundle {}", missing.display())),
        "{err}"
    );
    let err = Client::connect("https://127.0.0.1:1/sdk", Tls::Insecure)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Connection { .. }), "{err}");
    // Classified by what failed, not by words in the URL.
    for url in [
        "https://127.0.0.1:1/tls/sdk",
        "https://127.0.0.1:1/certificate/handshake/sdk",
    ] {
        for tls in [Tls::Insecure, Tls::Verify] {
            let err = Client::connect(url, tls).await.unwrap_err();
            assert!(matches!(err, Error::Connection { .. }), "{url}: {err}");
        }
    }
    // A TLS server's certificate refused under such a URL is still a TLS error.
    let port = server.running.addr.port();
    let err = Client::connect(&format!("https://127.0.0.1:{port}/tls/sdk"), Tls::Verify)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
    assert!(!err.is_thumbprint_mismatch(), "{err}");
    let err = Client::connect(
        &format!("https://127.0.0.1:{port}/sdk"),
        Tls::Thumbprint("11".repeat(32)),
    )
    .await
    .unwrap_err();
    assert!(err.is_thumbprint_mismatch(), "{err}");
    // Both in the form `vsess serve` prints: upper case, with colons.
    let printed = server.running.fingerprint.clone().unwrap();
    assert!(
        err.to_string().contains(&format!(
            "the server presented {printed}, expected {}",
            ["11"; 32].join(":")
        )),
        "{err}"
    );
}

/// A self-signed certificate made as `openssl req -x509` makes it (`CA:TRUE`), given as its
/// own CA bundle, is accepted as govc, curl and Python accept it, if it names the host
/// and is within its dates; webpki alone refuses it (`CaUsedAsEndEntity`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_self_signed_ca_certificate_is_its_own_trust_anchor() {
    use rcgen::ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};
    let with_usage = |name: &str, from: i32, to: i32, usage: &[rcgen::ExtendedKeyUsagePurpose]| {
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        params.extended_key_usages = usage.to_vec();
        let key = rcgen::KeyPair::generate().unwrap();
        (params.self_signed(&key).unwrap().pem(), key.serialize_pem())
    };
    let pair = |name: &str, from: i32, to: i32| with_usage(name, from, to, &[]);
    for (name, from, to, usage, ok) in [
        ("127.0.0.1", 2020, 2100, &[][..], true),
        ("127.0.0.1", 2020, 2100, &[ClientAuth, ServerAuth][..], true),
        ("vc.example.com", 2020, 2100, &[][..], false),
        ("127.0.0.1", 2020, 2021, &[][..], false),
        // Only for clients: not a server's, as Go decides too.
        ("127.0.0.1", 2020, 2100, &[ClientAuth][..], false),
    ] {
        let (cert, key) = with_usage(name, from, to, usage);
        let server = Server::start_with_pair(&cert, &key).await;
        let bundle = server.dir.path().join("bundle.pem");
        std::fs::write(&bundle, &cert).unwrap();
        let r = Client::connect(&server.url(false), Tls::CaBundle(bundle)).await;
        match r {
            Ok(c) if ok => {
                c.login("admin@vsphere.local", "admin-pw").await.unwrap();
            }
            Err(Error::Tls { .. }) if !ok => {}
            Ok(_) => panic!("{name} {from}-{to} {usage:?} was accepted"),
            Err(e) => panic!("{name} {from}-{to} {usage:?}: {e}"),
        }
    }
    // Another self-signed certificate in the bundle does not vouch for this one.
    let (cert, key) = pair("127.0.0.1", 2020, 2100);
    let server = Server::start_with_pair(&cert, &key).await;
    let bundle = server.dir.path().join("bundle.pem");
    std::fs::write(&bundle, pair("127.0.0.1", 2020, 2100).0).unwrap();
    let err = Client::connect(&server.url(false), Tls::CaBundle(bundle))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Tls { .. }), "{err}");
}

/// An `https://` URL for a plain-HTTP server (or the wrong port) is said as such, not as
/// rustls's "received corrupt message of type InvalidContentType" with certificate advice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_url_for_a_plain_http_server_says_so() {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    // Answers whatever comes (a TLS ClientHello) as an HTTP server does.
    std::thread::spawn(move || {
        for conn in listener.incoming().take(2) {
            let Ok(mut conn) = conn else { break };
            let mut buf = [0u8; 1024];
            let _ = conn.read(&mut buf);
            let _ = conn.write_all(
                b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    for tls in [Tls::Insecure, Tls::Verify] {
        let err = Client::connect(&format!("https://127.0.0.1:{port}/sdk"), tls)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Tls { .. }), "{err}");
        assert!(err.is_plain_http(), "{err}");
        let text = err.to_string();
        assert!(
            text.contains(
                "the server answered in plain HTTP, not TLS: use http:// or check the port"
            ),
            "{text}"
        );
        assert!(!text.contains("thumbprint"), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_reports_failures_instead_of_dying_silently() {
    let server = Server::start().await;
    let (c, id) = rest_admin(&server).await;
    c.set_session_id(Some(id.clone()));
    let mut ka =
        KeepAlive::start(c.clone(), Ping::Soap, std::time::Duration::from_millis(20)).unwrap();
    assert_eq!(ka.last_error(), None);
    c.rest_logout(&id).await.unwrap();
    // The ping after the session ended fails, and the failure is delivered, not dropped.
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), ka.next_error())
        .await
        .expect("the keepalive reported its failure")
        .unwrap();
    assert!(err.is_unauthenticated(), "{err}");
    assert!(ka.last_error().unwrap().contains("NotAuthenticated"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_refuses_a_zero_interval() {
    let server = Server::start().await;
    let (c, _id) = rest_admin(&server).await;
    match KeepAlive::start(c, Ping::Soap, std::time::Duration::ZERO) {
        Err(Error::Config(m)) => assert!(m.contains("more than zero"), "{m}"),
        Err(e) => panic!("{e:?}"),
        Ok(_) => panic!("a zero interval was accepted"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_reports_an_ended_rest_session_as_unauthenticated() {
    let server = Server::start().await;
    let (c, id) = rest_admin(&server).await;
    let mut ka = KeepAlive::start(
        c.clone(),
        Ping::Rest(id.clone()),
        std::time::Duration::from_millis(20),
    )
    .unwrap();
    c.rest_logout(&id).await.unwrap();
    let err = tokio::time::timeout(std::time::Duration::from_secs(10), ka.next_error())
        .await
        .expect("the keepalive reported its failure")
        .unwrap();
    assert!(err.is_unauthenticated(), "{err:?}");
    assert!(!matches!(err, Error::Authentication(_)), "{err:?}");
    assert!(ka.last_error().unwrap().contains("no longer valid"));
}

/// A cache for ops@vsphere.local (a ReadOnly user), whose password the tests change.
fn ops_cache(server: &Server, home: &std::path::Path) -> Session {
    let port = server.running.addr.port();
    cache_for(
        &format!("https://ops%40vsphere.local:ops-pw@127.0.0.1:{port}/sdk"),
        home,
    )
}

/// The audit's repro: a cached session dies, the password changes, and many calls at once
/// need a relogin. One Login is sent, every caller gets its refusal, and later calls send
/// none, so the server's lockout (5 failures) never locks the real user out.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_refused_relogin_is_sent_once_and_never_repeated() {
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let login = ops_cache(&server, home.path()).login().await.unwrap();
    let client = login.client.clone();
    assert!(client.is_cached());
    let admin = admin(&server).await;
    admin
        .terminate_session(std::slice::from_ref(&login.session.key))
        .await
        .unwrap();
    server.passwd("ops@vsphere.local", "ops-new-pw");
    let before = client.login_count();
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move { c.current_time().await }));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(matches!(err, Error::Authentication(_)), "{err}");
        assert!(!err.is_unauthenticated(), "{err}");
    }
    assert_eq!(client.login_count() - before, 1, "one Login for 12 callers");
    // Later calls fail at once, with a clear error, and send no Login.
    for _ in 0..6 {
        let err = client.current_time().await.unwrap_err();
        assert!(matches!(err, Error::Authentication(_)), "{err}");
        assert!(err.to_string().contains("not tried again"), "{err}");
    }
    assert_eq!(
        client.login_count() - before,
        1,
        "no Login after the refusal"
    );
    // The real user is not locked out.
    let other = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    other
        .login("ops@vsphere.local", "ops-new-pw")
        .await
        .unwrap();
    // An explicit login with the new password lifts the refusal, and relogins work again.
    client
        .login("ops@vsphere.local", "ops-new-pw")
        .await
        .unwrap();
    client.current_time().await.unwrap();
    let key = client.current_session().await.unwrap().unwrap().key;
    admin.terminate_session(&[key]).await.unwrap();
    let n = client.login_count();
    client.current_time().await.unwrap();
    assert_eq!(client.login_count() - n, 1);
}

/// A relogin that fails for another reason than bad credentials (here the server's
/// session limit) is shared by the callers waiting for it, but not sticky: a later call
/// tries again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_relogin_that_failed_for_want_of_room_is_tried_again_later() {
    let mut config = Config::default();
    config.policy.max_sessions = 2;
    // Every Login pays argon2 (no cache of verified passwords): the relogin attempt then
    // lasts long enough for all the callers' NotAuthenticated to come back while it runs.
    config.policy.credential_cache_ttl = chrono::Duration::zero();
    let server = Server::start_with(config).await;
    let client = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    client.login("ops@vsphere.local", "ops-pw").await.unwrap();
    let admin = admin(&server).await;
    let key = client.current_session().await.unwrap().unwrap().key;
    admin.terminate_session(&[key]).await.unwrap();
    // Another session takes the freed place: the relogin finds the server full.
    let filler = Client::connect(&server.url(false), Tls::Insecure)
        .await
        .unwrap();
    filler.login("ops@vsphere.local", "ops-pw").await.unwrap();
    let before = client.login_count();
    let mut tasks = Vec::new();
    let start = std::sync::Arc::new(tokio::sync::Barrier::new(8));
    for _ in 0..8 {
        let (c, start) = (client.clone(), start.clone());
        tasks.push(tokio::spawn(async move {
            start.wait().await;
            c.current_time().await
        }));
    }
    for t in tasks {
        let err = t.await.unwrap().unwrap_err();
        assert!(err.is_fault("SystemError"), "{err}");
    }
    // Callers that were waiting for the attempt share its outcome. A caller whose own
    // NotAuthenticated came back only after that attempt had failed would try once more
    // (the failure is not sticky); the argon2 time makes that unlikely, not impossible.
    let sent = client.login_count() - before;
    assert!((1..=2).contains(&sent), "{sent} Logins for 8 callers");
    filler.logout().await.unwrap();
    client.current_time().await.unwrap();
    assert_eq!(
        client.login_count() - before,
        sent + 1,
        "a later call tried again"
    );
}

/// An unknown or ended session is a NotAuthenticated fault on SOAP, REST, legacy REST and
/// `/v2` alike (`is_unauthenticated`, the cue to log in again); refused credentials are
/// `Error::Authentication` on each of them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_session_looks_the_same_on_every_path() {
    use vsess_client::selfservice::{ListQuery, SelfService};
    let server = Server::start().await;
    let (c, id) = rest_admin(&server).await;
    c.rest_logout(&id).await.unwrap();
    c.set_session_id(Some(id.clone()));
    let soap = c.current_time().await.unwrap_err();
    let rest = c.rest_logout(&id).await.unwrap_err();
    let legacy = c.legacy_rest_logout(&id).await.unwrap_err();
    let v2 = SelfService::with_session(&c)
        .list(&ListQuery::default())
        .await
        .unwrap_err();
    let v2_get = SelfService::with_session(&c)
        .get("some-key", false)
        .await
        .unwrap_err();
    let v2_end = SelfService::with_session(&c)
        .end_idle("30m", &[], false)
        .await
        .unwrap_err();
    c.set_session_id(None);
    let none = SelfService::with_session(&c)
        .list(&ListQuery::default())
        .await
        .unwrap_err();
    for err in [&soap, &rest, &legacy, &v2, &v2_get, &v2_end, &none] {
        assert!(err.is_unauthenticated(), "{err}");
        assert!(err.is_fault("NotAuthenticated"), "{err}");
        assert!(!matches!(err, Error::Authentication(_)), "{err}");
    }
    let ss = SelfService::with_password(&c, "admin@vsphere.local", "admin-pw")
        .await
        .unwrap();
    ss.list(&ListQuery::default()).await.unwrap();
    // Refused credentials are Error::Authentication everywhere, and not a cue to log in.
    let refused = [
        c.login("admin@vsphere.local", "nope").await.unwrap_err(),
        c.rest_login("admin@vsphere.local", "nope")
            .await
            .unwrap_err(),
        c.legacy_rest_login("admin@vsphere.local", "nope")
            .await
            .unwrap_err(),
        SelfService::with_password(&c, "admin@vsphere.local", "nope")
            .await
            .unwrap_err(),
    ];
    for err in &refused {
        assert!(matches!(err, Error::Authentication(_)), "{err}");
        assert!(!err.is_unauthenticated(), "{err}");
    }
}

/// `SelfService::with_session` logs in again when the client's session has ended, through
/// the client's single-flight relogin, and retries once.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn self_service_with_a_dead_session_logs_in_again_once() {
    use vsess_client::selfservice::{ListQuery, SelfService};
    let server = Server::start().await;
    let home = tempfile::tempdir().unwrap();
    let login = ops_cache(&server, home.path()).login().await.unwrap();
    let client = login.client.clone();
    let admin = admin(&server).await;
    admin
        .terminate_session(std::slice::from_ref(&login.session.key))
        .await
        .unwrap();
    let before = client.login_count();
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let c = client.clone();
        tasks.push(tokio::spawn(async move {
            SelfService::with_session(&c)
                .list(&ListQuery::default())
                .await
        }));
    }
    let lists: Vec<_> = futures_all(tasks).await;
    assert_eq!(client.login_count() - before, 1, "one Login for 8 callers");
    let now = client.current_session().await.unwrap().unwrap();
    assert_ne!(now.key, login.session.key);
    for list in lists {
        let keys: Vec<_> = list.unwrap().into_iter().map(|d| d.key).collect();
        assert_eq!(keys, std::slice::from_ref(&now.key));
    }
    // The cache follows, as after any relogin of a cached client.
    let id = client.session_id().unwrap();
    let hint = ops_cache(&server, home.path()).hint().unwrap();
    assert!(hint.describes(&id));
    assert_eq!(hint.session.key, now.key);
    // get and end too.
    let ss = SelfService::with_session(&client);
    admin
        .terminate_session(std::slice::from_ref(&now.key))
        .await
        .unwrap();
    let other = ops_cache(&server, tempfile::tempdir().unwrap().path())
        .login()
        .await
        .unwrap();
    let d = ss.get(&other.session.key, false).await.unwrap();
    assert_eq!(d.key, other.session.key);
    assert_eq!(client.login_count() - before, 2);
    let now = client.current_session().await.unwrap().unwrap();
    admin
        .terminate_session(std::slice::from_ref(&now.key))
        .await
        .unwrap();
    ss.end(&other.session.key, false).await.unwrap();
    assert_eq!(client.login_count() - before, 3);
    assert!(other.client.current_session().await.unwrap().is_none());
    // end_idle: the session the caller excluded has been replaced, and the new one is
    // not ended even with 0s.
    let now = client.current_session().await.unwrap().unwrap();
    admin
        .terminate_session(std::slice::from_ref(&now.key))
        .await
        .unwrap();
    let spare = ops_cache(&server, tempfile::tempdir().unwrap().path())
        .login()
        .await
        .unwrap();
    let ended = ss
        .end_idle("0s", std::slice::from_ref(&now.key), false)
        .await
        .unwrap();
    assert_eq!(client.login_count() - before, 4);
    let current = client
        .current_session()
        .await
        .unwrap()
        .expect("the new session was not ended");
    assert_eq!(ended, std::slice::from_ref(&spare.session.key));
    assert!(!ended.contains(&current.key));
    // A refused password: one Login, then none; the error says so.
    server.passwd("ops@vsphere.local", "ops-new-pw");
    admin.terminate_session(&[current.key]).await.unwrap();
    for _ in 0..3 {
        let err = ss.list(&ListQuery::default()).await.unwrap_err();
        assert!(matches!(err, Error::Authentication(_)), "{err}");
    }
    assert_eq!(client.login_count() - before, 5);
}

async fn futures_all<T>(tasks: Vec<tokio::task::JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for t in tasks {
        out.push(t.await.unwrap());
    }
    out
}

/// A server that accepts connections and never answers (a hung process, a port forwarded
/// to nothing) makes every call fail with [`Error::Timeout`] after the client's timeouts,
/// naming the host and the limit, instead of hanging; and the session cache's lock is
/// released, so other users of the cache are not blocked for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_answers_times_out_clearly() {
    use std::time::{Duration, Instant};
    use vsess_client::tls::Timeouts;
    // The kernel completes the TCP handshake for the backlog; nobody ever reads or writes.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = silent.local_addr().unwrap().port();
    let timeouts = Timeouts {
        connect: Duration::from_millis(300),
        request: Duration::from_millis(700),
    };
    // HTTPS: the TLS handshake gets no answer, so opening the connection times out.
    let t = Instant::now();
    let err = Client::connect_with(
        &format!("https://127.0.0.1:{port}"),
        Tls::Insecure,
        timeouts,
    )
    .await
    .unwrap_err();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert!(
        matches!(err, Error::Timeout { connecting: true, after: Some(d), .. } if d == timeouts.connect),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(
        text.contains(&format!("no answer from 127.0.0.1:{port} within 300 ms")),
        "{text}"
    );
    // Plain HTTP: connected at once, then the request gets no answer.
    let err = Client::connect_with(&format!("http://127.0.0.1:{port}"), Tls::Insecure, timeouts)
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Timeout { connecting: false, after: Some(d), .. } if d == timeouts.request),
        "{err:?}"
    );
    assert!(err.to_string().contains("within 700 ms"), "{err}");
    // The defaults are govc's handshake timeout and a minute per request.
    assert_eq!(
        Client::with_version("https://127.0.0.1:1", Tls::Insecure, "8.0.3.0")
            .unwrap()
            .timeouts(),
        Timeouts {
            connect: Duration::from_secs(10),
            request: Duration::from_secs(60)
        }
    );
    // A cached login fails the same way and lets go of the cache's lock: a second login
    // on the same cache entry gets its own timeout instead of waiting for ever.
    let home = tempfile::tempdir().unwrap();
    let mut s = Session::new(&format!("https://u:p@127.0.0.1:{port}/sdk"), true).unwrap();
    s.dir_soap = Some(home.path().join("sessions"));
    s.timeouts = timeouts;
    for _ in 0..2 {
        let t = Instant::now();
        let err = s.login().await.unwrap_err();
        assert!(matches!(err, Error::Timeout { .. }), "{err:?}");
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    }
    drop(silent);
}

/// A URL with another path than `/sdk` (vAPI's `/api`, the web page's `/ui`) gets an
/// error that says where the SOAP endpoint is; `/sdk` itself gets no such advice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_url_that_is_not_the_soap_endpoint_says_where_it_is() {
    let server = Server::start().await;
    let port = server.running.addr.port();
    for path in ["/api", "/ui"] {
        let c = Client::with_version(
            &format!("https://127.0.0.1:{port}{path}"),
            Tls::Insecure,
            "8.0.3.0",
        )
        .unwrap();
        let err = c
            .login("admin@vsphere.local", "admin-pw")
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains(&format!(
                "not a SOAP endpoint? vCenter's is /sdk: https://127.0.0.1:{port}/sdk"
            )),
            "{path}: {err}"
        );
    }
    let c = Client::with_version(&server.url(false), Tls::Insecure, "8.0.3.0").unwrap();
    let err = c.login("admin@vsphere.local", "wrong").await.unwrap_err();
    assert!(!err.to_string().contains("SOAP endpoint"), "{err}");
}

/// A 201 to `POST /api/session` that carries no session id is a decode error, not a
/// session with an empty id.
#[tokio::test]
async fn a_rest_login_answer_without_an_id_is_refused() {
    for body in ["{}", "{\"value\":\"\"}", "\"\""] {
        let app = axum::Router::new().route(
            "/api/session",
            axum::routing::post(move || async move { (axum::http::StatusCode::CREATED, body) }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let c = Client::with_version(
            &format!("http://127.0.0.1:{port}/sdk"),
            Tls::Insecure,
            "8.0.3.0",
        )
        .unwrap();
        let err = c.rest_login("ops@vsphere.local", "pw").await.unwrap_err();
        assert!(matches!(err, Error::Decode { .. }), "{body}: {err}");
    }
}
