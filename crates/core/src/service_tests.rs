//! Unit tests of the SessionManager service, on a manual clock and the memory store.
use super::*;
use crate::clock::ManualClock;
use crate::memory::MemoryStore;
use crate::password::hash_password;
use chrono::{Duration, TimeZone};
use std::sync::Mutex;

struct Fixture {
    svc: Arc<SessionService>,
    clock: Arc<ManualClock>,
    sink: Arc<FakeSink>,
    store: Arc<MemoryStore>,
}

fn user(name: &str, role: Role) -> User {
    User::new(
        UserName::parse(name).unwrap(),
        String::new(),
        role,
        hash_password("pw").unwrap(),
    )
}

fn fixture_with(policy: Policy) -> Fixture {
    let clock = Arc::new(ManualClock::new(
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
    ));
    let store = Arc::new(MemoryStore::new([
        user("admin@vsphere.local", Role::Admin),
        user("reader@vsphere.local", Role::ReadOnly),
        user("nobody@vsphere.local", Role::NoAccess),
    ]));
    let sink = Arc::new(FakeSink::default());
    let svc = SessionService::new(
        store.clone(),
        clock.clone(),
        policy,
        Arc::new(InlineVerifier),
        about(),
    )
    .with_local_tickets(sink.clone());
    Fixture {
        svc: Arc::new(svc),
        clock,
        sink,
        store,
    }
}

fn fixture() -> Fixture {
    fixture_with(Policy::default())
}

fn about() -> AboutInfo {
    AboutInfo {
        name: "t".into(),
        full_name: "t".into(),
        vendor: "t".into(),
        version: "1".into(),
        build: "1".into(),
        os_type: "linux".into(),
        product_line_id: "vpx".into(),
        api_type: "VirtualCenter".into(),
        api_version: "8.0.3.0".into(),
        instance_uuid: "u".into(),
        license_product_name: "t".into(),
        license_product_version: "1".into(),
    }
}

#[derive(Default)]
struct FakeSink(Mutex<Vec<(String, String)>>);

impl LocalTicketSink for FakeSink {
    fn write(&self, user: &str, secret: &str) -> Result<String, String> {
        let mut v = self.0.lock().unwrap();
        v.push((user.to_owned(), secret.to_owned()));
        Ok(format!("/tmp/ticket-{}", v.len()))
    }
    fn remove(&self, _path: &str) {}
}

fn anon() -> Caller {
    Caller {
        session: None,
        ip: "127.0.0.1".parse().unwrap(),
        user_agent: "test".into(),
    }
}

fn with(id: &SessionId) -> Caller {
    Caller {
        session: Some(id.clone()),
        ..anon()
    }
}

impl Fixture {
    async fn login(&self, name: &str) -> SessionId {
        self.svc.login(&anon(), name, "pw", None).await.unwrap().0
    }

    async fn auth(&self, id: &SessionId) -> Option<SessionRecord> {
        self.svc.authenticate(&with(id)).await.unwrap()
    }

    /// `ImpersonateUser(name)` from the session `by`.
    async fn impersonate(&self, by: &SessionRecord, name: &str) -> Result<UserSession, Fault> {
        self.svc.impersonate_user(Some(by), name, None).await
    }

    /// 31 minutes pass (past the 30-minute idle timeout) while `active` keeps working, so
    /// every other session has expired but nothing has reaped it; `active`'s record.
    async fn idle_all_but(&self, active: &SessionId) -> SessionRecord {
        self.clock.advance(Duration::minutes(20));
        self.auth(active).await.unwrap();
        self.clock.advance(Duration::minutes(11));
        self.auth(active).await.unwrap()
    }
    /// A self-service API token (and its record) for `name`, password "pw", for an hour.
    async fn token(&self, name: &str) -> (String, crate::selfservice::TokenRecord) {
        self.svc
            .request_token(name, "pw", Duration::hours(1))
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn login_checks_password_role_locale_and_name_forms() {
    let f = fixture();
    let (id, us) = f
        .svc
        .login(&anon(), "admin@vsphere.local", "pw", None)
        .await
        .unwrap();
    assert_eq!(us.user_name, "admin@vsphere.local");
    assert_ne!(
        us.key,
        id.expose(),
        "public key must differ from the secret id"
    );
    assert_eq!(us.locale, "en");
    let (_, us2) = f
        .svc
        .login(&anon(), "VSPHERE.LOCAL\\Admin", "pw", Some("de"))
        .await
        .unwrap();
    assert_eq!(us2.user_name, "admin@vsphere.local");
    assert_eq!(us2.locale, "de");
    assert_eq!(
        f.svc
            .login(&anon(), "admin@vsphere.local", "nope", None)
            .await
            .unwrap_err(),
        Fault::InvalidLogin
    );
    assert_eq!(
        f.svc
            .login(&anon(), "ghost@vsphere.local", "pw", None)
            .await
            .unwrap_err(),
        Fault::InvalidLogin
    );
    assert!(matches!(
        f.svc
            .login(&anon(), "nobody@vsphere.local", "pw", None)
            .await
            .unwrap_err(),
        Fault::NoPermission { .. }
    ));
    assert!(matches!(
        f.svc
            .login(&anon(), "admin@vsphere.local", "pw", Some("xx_YY"))
            .await
            .unwrap_err(),
        Fault::InvalidLocale(_)
    ));
}

#[tokio::test]
async fn idle_timeout_ends_sessions_and_activity_extends_them() {
    let f = fixture();
    let id = f.login("admin@vsphere.local").await;
    f.clock.advance(Duration::seconds(1799));
    assert!(
        f.auth(&id).await.is_some(),
        "still alive just before the timeout"
    );
    f.clock.advance(Duration::seconds(1799));
    assert!(
        f.auth(&id).await.is_some(),
        "the previous call reset the idle clock"
    );
    let other = f.login("reader@vsphere.local").await;
    f.clock.advance(Duration::seconds(1800));
    assert!(
        f.auth(&id).await.is_none(),
        "idle for exactly the timeout: expired"
    );
    // The other one expired too, and is reaped from sessionList.
    let fresh = f.login("admin@vsphere.local").await;
    let me = f.auth(&fresh).await.unwrap();
    let list = f.svc.session_list(Some(&me)).await.unwrap();
    assert_eq!(list.len(), 1);
    assert!(f.auth(&other).await.is_none());
}

/// A writer for a test's own log subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Captured {
    /// Captures this thread's log (the test runtimes are current-thread) while the guard
    /// lives.
    fn capture() -> (Self, tracing::subscriber::DefaultGuard) {
        let log = Self::default();
        let w = log.clone();
        let sub = tracing_subscriber::fmt()
            .with_writer(move || w.clone())
            .with_ansi(false)
            .finish();
        (log, tracing::subscriber::set_default(sub))
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

#[tokio::test]
async fn a_session_that_expires_or_loses_its_user_is_logged_with_user_and_key() {
    let (log, _g) = Captured::capture();
    let f = fixture();
    let admin = f.login("admin@vsphere.local").await;
    let admin_key = f.auth(&admin).await.unwrap().key;
    let reader = f.login("reader@vsphere.local").await;
    let reader_key = f.auth(&reader).await.unwrap().key;
    let idle = f.login("admin@vsphere.local").await;
    let idle_key = f.auth(&idle).await.unwrap().key;
    f.store.remove_user("reader@vsphere.local");
    assert!(f.auth(&reader).await.is_none());
    f.clock.advance(Duration::seconds(1800));
    assert!(f.auth(&admin).await.is_none());
    // The reaper ends the other idle one: logged the same way.
    assert_eq!(f.svc.reap().await.unwrap(), 1);
    let text = log.text();
    let line = |key: &str| {
        text.lines()
            .find(|l| l.contains("session ended") && l.contains(&format!("key={key}")))
            .unwrap_or_else(|| panic!("no line for {key}:\n{text}"))
            .to_owned()
    };
    let l = line(admin_key.as_str());
    assert!(
        l.contains("user=admin@vsphere.local") && l.contains("reason=\"expired\""),
        "{l}"
    );
    let l = line(reader_key.as_str());
    assert!(
        l.contains("user=reader@vsphere.local") && l.contains("reason=\"user_removed\""),
        "{l}"
    );
    let l = line(idle_key.as_str());
    assert!(
        l.contains("user=admin@vsphere.local") && l.contains("reason=\"expired\""),
        "{l}"
    );
    // Nothing secret: no session id is in the log.
    for id in [&admin, &reader, &idle] {
        assert!(!text.contains(id.expose()), "{text}");
    }
}

/// A burst (a store back after more than the idle timeout) is not logged line by line
/// past the cap; what is not named is counted. On Redis nothing is named.
#[test]
fn a_sweep_names_at_most_its_cap_and_counts_the_rest() {
    let (log, _g) = Captured::capture();
    let named = |n: usize| crate::store::Reaped {
        count: n,
        sessions: (0..n)
            .map(|i| (SessionKey(format!("k{i}")), Arc::from(format!("u{i}@x"))))
            .collect(),
    };
    super::log_reaped(&named(2), 3);
    super::log_reaped(&named(5), 3);
    super::log_reaped(
        &crate::store::Reaped {
            count: 7,
            sessions: Vec::new(),
        },
        3,
    );
    let text = log.text();
    let lines: Vec<&str> = text.lines().collect();
    let ended: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains("session ended"))
        .copied()
        .collect();
    assert_eq!(ended.len(), 2 + 3, "{text}");
    assert!(
        ended[4].contains("key=k2") && ended[4].contains("user=u2@x"),
        "{text}"
    );
    let counted: Vec<&str> = lines
        .iter()
        .filter(|l| l.contains("without a line of their own"))
        .copied()
        .collect();
    assert_eq!(counted.len(), 2, "{text}");
    assert!(counted[0].contains("count=2"), "{text}");
    assert!(counted[1].contains("count=7"), "{text}");
    assert_eq!(lines.len(), 7, "{text}");
}

#[tokio::test]
async fn max_lifetime_ends_even_active_sessions() {
    let f = fixture_with(Policy {
        max_lifetime: Some(Duration::seconds(3600)),
        ..Policy::default()
    });
    let id = f.login("admin@vsphere.local").await;
    for _ in 0..5 {
        f.clock.advance(Duration::seconds(600));
        assert!(f.auth(&id).await.is_some());
    }
    f.clock.advance(Duration::seconds(600));
    assert!(
        f.auth(&id).await.is_none(),
        "one hour after login it is gone"
    );
}

#[tokio::test]
async fn session_limit_is_enforced_and_expired_sessions_free_slots() {
    let f = fixture_with(Policy {
        max_sessions: 2,
        ..Policy::default()
    });
    f.login("admin@vsphere.local").await;
    f.login("admin@vsphere.local").await;
    let err = f
        .svc
        .login(&anon(), "admin@vsphere.local", "pw", None)
        .await
        .unwrap_err();
    assert_eq!(err, Fault::SessionLimit { limit: 2 });
    assert!(err.to_string().contains("maxSessionCount"));
    f.clock.advance(Duration::seconds(1800));
    assert!(f
        .svc
        .login(&anon(), "admin@vsphere.local", "pw", None)
        .await
        .is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_logins_never_exceed_the_limit() {
    let f = fixture_with(Policy {
        max_sessions: 7,
        ..Policy::default()
    });
    let mut tasks = Vec::new();
    for _ in 0..40 {
        let svc = f.svc.clone();
        tasks.push(tokio::spawn(async move {
            svc.login(&anon(), "admin@vsphere.local", "pw", None).await
        }));
    }
    let mut ok = 0;
    for t in tasks {
        match t.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e, Fault::SessionLimit { limit: 7 }),
        }
    }
    assert_eq!(ok, 7);
    assert_eq!(f.svc.store().list_sessions().await.unwrap().len(), 7);
}

#[tokio::test]
async fn lockout_after_consecutive_failures_hides_itself_and_expires() {
    let f = fixture();
    for _ in 0..4 {
        assert!(f
            .svc
            .login(&anon(), "admin@vsphere.local", "bad", None)
            .await
            .is_err());
    }
    // A success resets the count.
    f.login("admin@vsphere.local").await;
    for _ in 0..5 {
        assert!(f
            .svc
            .login(&anon(), "admin@vsphere.local", "bad", None)
            .await
            .is_err());
    }
    let locked = f
        .svc
        .login(&anon(), "admin@vsphere.local", "pw", None)
        .await
        .unwrap_err();
    assert_eq!(
        locked,
        Fault::InvalidLogin,
        "a lock looks like a wrong password"
    );
    f.login("reader@vsphere.local").await; // other users are unaffected
    f.clock.advance(Duration::seconds(299));
    assert!(f
        .svc
        .login(&anon(), "admin@vsphere.local", "pw", None)
        .await
        .is_err());
    f.clock.advance(Duration::seconds(1));
    assert!(f
        .svc
        .login(&anon(), "admin@vsphere.local", "pw", None)
        .await
        .is_ok());
}

#[tokio::test]
async fn failed_logins_count_against_the_account_and_an_unlock_forgets_them() {
    let f = fixture();
    let name = "reader@vsphere.local";
    let fail = |n: usize| {
        let f = &f;
        async move {
            for _ in 0..n {
                assert!(f.svc.login(&anon(), name, "bad", None).await.is_err());
            }
        }
    };
    let can_login = || async { f.svc.login(&anon(), name, "pw", None).await.is_ok() };

    // Four failures, then the account is removed and added again: the new account starts
    // from zero, so one more failure does not lock it.
    fail(4).await;
    f.store.remove_user(name);
    f.store.put_user(user(name, Role::ReadOnly));
    fail(1).await;
    assert!(can_login().await, "the old account's failures carried over");

    // Locked; re-adding the account under the same name ends the lock.
    fail(5).await;
    assert!(!can_login().await);
    f.store.remove_user(name);
    f.store.put_user(user(name, Role::ReadOnly));
    assert!(can_login().await, "the old account's lock carried over");

    // Locked; `vsess user unlock` (a bumped `unlocks`) ends it, keeping the account.
    fail(5).await;
    assert!(!can_login().await);
    let mut u = f.store.get_user(name).await.unwrap().unwrap();
    u.unlocks += 1;
    f.store.put_user(u);
    assert!(can_login().await, "an unlock must end the lockout");
    // ...and after an unlock the count starts again from zero.
    fail(4).await;
    assert!(can_login().await);
}

#[tokio::test]
async fn terminate_goes_in_order_and_refuses_self() {
    let f = fixture();
    let me = f.login("admin@vsphere.local").await;
    let a = f.login("reader@vsphere.local").await;
    let b = f.login("reader@vsphere.local").await;
    let me_rec = f.auth(&me).await.unwrap();
    let ka = f.auth(&a).await.unwrap().key.0;
    let kb = f.auth(&b).await.unwrap().key.0;
    let err = f
        .svc
        .terminate_sessions(Some(&me_rec), &[ka.clone(), "nope".into(), kb.clone()])
        .await
        .unwrap_err();
    assert!(matches!(err, Fault::NotFound(_)));
    assert!(
        f.auth(&a).await.is_none(),
        "sessions before the bad key stay terminated"
    );
    assert!(
        f.auth(&b).await.is_some(),
        "sessions after it are untouched"
    );
    let err = f
        .svc
        .terminate_sessions(Some(&me_rec), std::slice::from_ref(&me_rec.key.0))
        .await
        .unwrap_err();
    assert!(matches!(err, Fault::InvalidArgument { .. }));
    let reader = f.auth(&b).await.unwrap();
    assert!(matches!(
        f.svc
            .terminate_sessions(Some(&reader), std::slice::from_ref(&kb))
            .await
            .unwrap_err(),
        Fault::NoPermission { .. }
    ));
    // An expired session the reaper has not yet reached is not a logged-on session.
    f.clock.advance(Duration::seconds(1700));
    let me_rec = f.auth(&me).await.unwrap();
    f.clock.advance(Duration::seconds(200));
    let err = f
        .svc
        .terminate_sessions(Some(&me_rec), std::slice::from_ref(&kb))
        .await
        .unwrap_err();
    assert!(matches!(err, Fault::NotFound(_)), "{err:?}");
    assert!(f.svc.store().session_by_key(&kb).await.unwrap().is_none());
}

#[tokio::test]
async fn clone_tickets_are_one_time_die_with_their_session_and_are_not_ids() {
    let f = fixture();
    let id = f.login("reader@vsphere.local").await;
    let rec = f.auth(&id).await.unwrap();
    let t = f.svc.acquire_clone_ticket(Some(&rec)).await.unwrap();
    assert!(f
        .svc
        .authenticate(&with(&SessionId::parse(&t).unwrap()))
        .await
        .unwrap()
        .is_none());
    let (cid, cs) = f.svc.clone_session(&anon(), None, &t).await.unwrap();
    assert_eq!(cs.user_name, "reader@vsphere.local");
    assert_ne!(cs.key, rec.key.0);
    assert!(f.auth(&cid).await.is_some());
    assert_eq!(
        f.svc.clone_session(&anon(), None, &t).await.unwrap_err(),
        Fault::InvalidLogin
    );

    let t2 = f.svc.acquire_clone_ticket(Some(&rec)).await.unwrap();
    f.svc.logout(Some(&rec)).await.unwrap();
    assert_eq!(
        f.svc.clone_session(&anon(), None, &t2).await.unwrap_err(),
        Fault::InvalidLogin
    );

    let rec2 = f.auth(&cid).await.unwrap();
    let t3 = f.svc.acquire_clone_ticket(Some(&rec2)).await.unwrap();
    f.clock.advance(Duration::seconds(601));
    f.auth(&cid).await.unwrap();
    assert_eq!(
        f.svc.clone_session(&anon(), None, &t3).await.unwrap_err(),
        Fault::InvalidLogin,
        "expired"
    );
    assert!(matches!(
        f.svc.acquire_clone_ticket(None).await.unwrap_err(),
        Fault::NotAuthenticated { .. }
    ));
}

#[tokio::test]
async fn impersonation_needs_a_live_session_of_the_target() {
    let f = fixture();
    let admin = f.login("admin@vsphere.local").await;
    let rec = f.auth(&admin).await.unwrap();
    assert_eq!(
        f.impersonate(&rec, "reader@vsphere.local")
            .await
            .unwrap_err(),
        Fault::InvalidLogin
    );
    let reader = f.login("reader@vsphere.local").await;
    let us = f.impersonate(&rec, "reader@vsphere.local").await.unwrap();
    assert_eq!(us.user_name, "reader@vsphere.local");
    assert_eq!(us.key, rec.key.0, "the session stays the same");
    let now_reader = f.auth(&admin).await.unwrap();
    assert!(matches!(
        f.svc.session_list(Some(&now_reader)).await.unwrap_err(),
        Fault::NoPermission { .. }
    ));
    let r = f.auth(&reader).await.unwrap();
    assert!(matches!(
        f.impersonate(&r, "admin@vsphere.local").await.unwrap_err(),
        Fault::NoPermission { .. }
    ));
}

#[tokio::test]
async fn impersonation_skips_the_callers_own_and_expired_sessions() {
    let f = fixture();
    let a1 = f.login("admin@vsphere.local").await;
    let r1 = f.login("reader@vsphere.local").await;
    let r1_key = f.auth(&r1).await.unwrap().key;
    let rec = f.auth(&a1).await.unwrap();
    assert_eq!(
        f.impersonate(&rec, "admin@vsphere.local")
            .await
            .unwrap_err(),
        Fault::InvalidLogin,
        "the caller's own session is not a target"
    );
    // r1 idles past the timeout while a1 stays active; nothing has reaped r1 yet.
    let rec = f.idle_all_but(&a1).await;
    assert!(f
        .store
        .session_by_key(r1_key.as_str())
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        f.impersonate(&rec, "reader@vsphere.local")
            .await
            .unwrap_err(),
        Fault::InvalidLogin,
        "an expired session is not a target"
    );
    let _r2 = f.login("reader@vsphere.local").await;
    let us = f.impersonate(&rec, "reader@vsphere.local").await.unwrap();
    assert_eq!(us.user_name, "reader@vsphere.local");
    assert_eq!(f.auth(&a1).await.unwrap().role, Role::ReadOnly);
}

/// ImpersonateUser looks at a user's first few sessions, and at all of them when those are
/// all expired.
#[tokio::test]
async fn impersonation_finds_a_live_session_behind_many_expired_ones() {
    let f = fixture();
    let a1 = f.login("admin@vsphere.local").await;
    for _ in 0..IMPERSONATION_PROBE + 2 {
        f.login("reader@vsphere.local").await;
    }
    // They idle past the timeout while a1 stays active; nothing reaps them.
    let rec = f.idle_all_but(&a1).await;
    assert_eq!(
        f.impersonate(&rec, "reader@vsphere.local")
            .await
            .unwrap_err(),
        Fault::InvalidLogin,
        "only expired sessions"
    );
    f.login("reader@vsphere.local").await;
    let us = f.impersonate(&rec, "reader@vsphere.local").await.unwrap();
    assert_eq!(us.user_name, "reader@vsphere.local");
}

#[tokio::test]
async fn a_ticket_whose_redemption_fails_on_the_servers_side_can_be_used_again() {
    let f = fixture_with(Policy {
        max_sessions: 2,
        ..Policy::default()
    });
    let id = f.login("reader@vsphere.local").await;
    let rec = f.auth(&id).await.unwrap();
    let other = f.login("admin@vsphere.local").await;
    let clone = f.svc.acquire_clone_ticket(Some(&rec)).await.unwrap();
    f.svc
        .acquire_local_ticket(&anon(), "admin@vsphere.local")
        .await
        .unwrap();
    let (user, local) = f.sink.0.lock().unwrap()[0].clone();
    // Both slots are taken: each redemption fails, and its ticket is kept.
    for _ in 0..2 {
        assert_eq!(
            f.svc
                .clone_session(&anon(), None, &clone)
                .await
                .unwrap_err(),
            Fault::SessionLimit { limit: 2 }
        );
        assert_eq!(
            f.svc.login(&anon(), &user, &local, None).await.unwrap_err(),
            Fault::SessionLimit { limit: 2 }
        );
    }
    let other = f.auth(&other).await.unwrap();
    f.svc.logout(Some(&other)).await.unwrap();
    let (_, cs) = f.svc.clone_session(&anon(), None, &clone).await.unwrap();
    assert_eq!(cs.user_name, "reader@vsphere.local");
    f.svc.logout(Some(&rec)).await.unwrap();
    let (_, us) = f.svc.login(&anon(), &user, &local, None).await.unwrap();
    assert_eq!(us.user_name, "admin@vsphere.local");
    // Redeemed, each is gone.
    assert_eq!(
        f.svc
            .clone_session(&anon(), None, &clone)
            .await
            .unwrap_err(),
        Fault::InvalidLogin
    );
    assert_eq!(
        f.svc.login(&anon(), &user, &local, None).await.unwrap_err(),
        Fault::InvalidLogin
    );
}

#[tokio::test]
async fn local_tickets_are_local_only_and_one_time() {
    let f = fixture();
    let remote = Caller {
        ip: "192.0.2.1".parse().unwrap(),
        ..anon()
    };
    assert!(matches!(
        f.svc
            .acquire_local_ticket(&remote, "admin@vsphere.local")
            .await
            .unwrap_err(),
        Fault::InvalidRequest(_)
    ));
    let lt = f
        .svc
        .acquire_local_ticket(&anon(), "admin@vsphere.local")
        .await
        .unwrap();
    assert_eq!(lt.user_name, "admin@vsphere.local");
    let lt2 = f
        .svc
        .acquire_local_ticket(&anon(), "admin@vsphere.local")
        .await
        .unwrap();
    assert_ne!(lt2.password_file_path, lt.password_file_path);
    let secrets = f.sink.0.lock().unwrap().clone();
    let (user, pw) = &secrets[0];
    let (_, us) = f.svc.login(&anon(), user, pw, None).await.unwrap();
    assert_eq!(us.user_name, "admin@vsphere.local");
    assert_eq!(
        f.svc.login(&anon(), user, pw, None).await.unwrap_err(),
        Fault::InvalidLogin
    );
    // A ticket of one user does not log in another.
    let (_, pw2) = &secrets[1];
    assert_eq!(
        f.svc
            .login(&anon(), "reader@vsphere.local", pw2, None)
            .await
            .unwrap_err(),
        Fault::InvalidLogin
    );
    assert_eq!(
        f.svc
            .acquire_local_ticket(&anon(), "ghost@vsphere.local")
            .await
            .unwrap_err(),
        Fault::InvalidLogin
    );
    // Expired tickets do not log in.
    f.svc
        .acquire_local_ticket(&anon(), "reader@vsphere.local")
        .await
        .unwrap();
    let pw3 = f.sink.0.lock().unwrap()[2].1.clone();
    f.clock.advance(Duration::seconds(301));
    assert_eq!(
        f.svc
            .login(&anon(), "reader@vsphere.local", &pw3, None)
            .await
            .unwrap_err(),
        Fault::InvalidLogin
    );
}

#[tokio::test]
async fn service_tickets_are_bound_to_their_spec_and_used_once() {
    let f = fixture();
    let id = f.login("admin@vsphere.local").await;
    let rec = f.auth(&id).await.unwrap();
    let spec = ServiceRequestSpec::Http {
        method: Some("httpGet".into()),
        url: "https://127.0.0.1:1/folder".into(),
    };
    let t = f
        .svc
        .acquire_generic_service_ticket(Some(&rec), spec.clone())
        .await
        .unwrap();
    assert_eq!(t.host_name.as_deref(), Some("127.0.0.1:1"));
    let other = ServiceRequestSpec::Http {
        method: Some("httpGet".into()),
        url: "https://127.0.0.1:1/other".into(),
    };
    assert!(
        f.svc.redeem_service_ticket(&t.id, &other).await.is_err(),
        "wrong URL"
    );
    let t = f
        .svc
        .acquire_generic_service_ticket(Some(&rec), spec.clone())
        .await
        .unwrap();
    let us = f.svc.redeem_service_ticket(&t.id, &spec).await.unwrap();
    assert_eq!(us.user_name, "admin@vsphere.local");
    assert!(
        f.svc.redeem_service_ticket(&t.id, &spec).await.is_err(),
        "used once"
    );
    assert!(matches!(
        f.svc
            .acquire_generic_service_ticket(None, spec.clone())
            .await
            .unwrap_err(),
        Fault::NotAuthenticated { .. }
    ));
    let long = format!("https://127.0.0.1:1/{}", "a".repeat(MAX_SPEC_LEN));
    for bad in [
        ServiceRequestSpec::Http {
            method: None,
            url: "ftp://x".into(),
        },
        // Specs longer than any real one are refused: each ticket is kept until it expires.
        ServiceRequestSpec::Http {
            method: None,
            url: long.clone(),
        },
        ServiceRequestSpec::Http {
            method: Some(long.clone()),
            url: "https://127.0.0.1:1/".into(),
        },
        ServiceRequestSpec::Vmomi { method: long },
    ] {
        assert!(matches!(
            f.svc
                .acquire_generic_service_ticket(Some(&rec), bad)
                .await
                .unwrap_err(),
            Fault::InvalidArgument { .. }
        ));
    }
}

#[tokio::test]
async fn a_session_holds_a_bounded_number_of_service_tickets() {
    use crate::ticketcount::MAX_SERVICE_TICKETS_PER_SESSION as MAX;
    let f = fixture();
    let id = f.login("admin@vsphere.local").await;
    let rec = f.auth(&id).await.unwrap();
    let other = f.auth(&f.login("admin@vsphere.local").await).await.unwrap();
    let spec = ServiceRequestSpec::Vmomi {
        method: "FindByUuid".into(),
    };
    async fn acquire(
        f: &Fixture,
        rec: &SessionRecord,
    ) -> Result<crate::ticket::GenericServiceTicket, Fault> {
        let spec = ServiceRequestSpec::Vmomi {
            method: "FindByUuid".into(),
        };
        f.svc.acquire_generic_service_ticket(Some(rec), spec).await
    }
    let mut held = Vec::new();
    for _ in 0..MAX {
        held.push(acquire(&f, &rec).await.unwrap().id);
    }
    let e = acquire(&f, &rec).await.unwrap_err();
    assert!(
        matches!(&e, Fault::InvalidRequest(m) if m.contains(&format!("as it may ({MAX}"))),
        "{e:?}"
    );
    // Another session of the same user is counted apart.
    acquire(&f, &other).await.unwrap();
    // A used ticket frees its place (core's redemption; vsess serves no resource that
    // uses one); so does a failed redemption (it is used up too).
    f.svc.redeem_service_ticket(&held[0], &spec).await.unwrap();
    acquire(&f, &rec).await.unwrap();
    assert!(acquire(&f, &rec).await.is_err());
    let wrong = ServiceRequestSpec::Vmomi {
        method: "Other".into(),
    };
    assert!(f.svc.redeem_service_ticket(&held[1], &wrong).await.is_err());
    acquire(&f, &rec).await.unwrap();
    assert!(acquire(&f, &rec).await.is_err());
    // The specs' bytes count too: 128 tickets of 8 KiB fill a session's 1 MiB.
    let third = f.auth(&f.login("admin@vsphere.local").await).await.unwrap();
    let long = ServiceRequestSpec::Vmomi {
        method: "m".repeat(MAX_SPEC_LEN),
    };
    for _ in 0..128 {
        f.svc
            .acquire_generic_service_ticket(Some(&third), long.clone())
            .await
            .unwrap();
    }
    assert!(f
        .svc
        .acquire_generic_service_ticket(Some(&third), long.clone())
        .await
        .is_err());
    // Expired ones free theirs, and the reaper forgets them.
    f.clock
        .advance(f.svc.policy.service_ticket_ttl + Duration::seconds(1));
    acquire(&f, &rec).await.unwrap();
    f.clock
        .advance(f.svc.policy.service_ticket_ttl + Duration::seconds(1));
    f.svc.reap().await.unwrap();
    assert_eq!(f.svc.service_tickets.sessions(), 0);
}

#[tokio::test]
async fn session_is_active_checks_key_user_and_privilege() {
    let f = fixture();
    let admin = f.login("admin@vsphere.local").await;
    let reader = f.login("reader@vsphere.local").await;
    let a = f.auth(&admin).await.unwrap();
    let r = f.auth(&reader).await.unwrap();
    assert!(f
        .svc
        .session_is_active(Some(&a), r.key.as_str(), "reader@vsphere.local")
        .await
        .unwrap());
    assert!(f
        .svc
        .session_is_active(Some(&a), r.key.as_str(), "VSPHERE.LOCAL\\reader")
        .await
        .unwrap());
    assert!(!f
        .svc
        .session_is_active(Some(&a), r.key.as_str(), "admin@vsphere.local")
        .await
        .unwrap());
    assert!(!f
        .svc
        .session_is_active(Some(&a), "52nope", "reader@vsphere.local")
        .await
        .unwrap());
    assert!(matches!(
        f.svc
            .session_is_active(Some(&r), a.key.as_str(), "admin@vsphere.local")
            .await
            .unwrap_err(),
        Fault::NoPermission { .. }
    ));
    f.svc.logout(Some(&r)).await.unwrap();
    assert!(!f
        .svc
        .session_is_active(Some(&a), r.key.as_str(), "reader@vsphere.local")
        .await
        .unwrap());
    // A removed user's session is not active, although it ends only on its next call.
    let reader = f.login("reader@vsphere.local").await;
    let r = f.auth(&reader).await.unwrap();
    f.store.remove_user("reader@vsphere.local");
    assert!(!f
        .svc
        .session_is_active(Some(&a), r.key.as_str(), "reader@vsphere.local")
        .await
        .unwrap());
}

#[tokio::test]
async fn properties_follow_their_privileges() {
    let f = fixture();
    assert!(f.svc.current_session(None).is_none());
    assert!(matches!(
        f.svc.message(None).await.unwrap_err(),
        Fault::NotAuthenticated { .. }
    ));
    assert!(matches!(
        f.svc.session_list(None).await.unwrap_err(),
        Fault::NotAuthenticated { .. }
    ));
    let reader = f.login("reader@vsphere.local").await;
    let r = f.auth(&reader).await.unwrap();
    assert_eq!(f.svc.message(Some(&r)).await.unwrap(), "");
    assert!(matches!(
        f.svc
            .update_service_message(Some(&r), "x")
            .await
            .unwrap_err(),
        Fault::NoPermission { .. }
    ));
    let admin = f.login("admin@vsphere.local").await;
    let a = f.auth(&admin).await.unwrap();
    f.svc
        .update_service_message(Some(&a), "maintenance at 5")
        .await
        .unwrap();
    assert_eq!(f.svc.message(Some(&r)).await.unwrap(), "maintenance at 5");
    f.svc.set_locale(Some(&r), "fr").await.unwrap();
    assert_eq!(&*f.auth(&reader).await.unwrap().locale, "fr");
    assert!(matches!(
        f.svc.set_locale(Some(&r), "bogus").await.unwrap_err(),
        Fault::InvalidLocale(_)
    ));
    let cur = f.auth(&reader).await.unwrap();
    assert_eq!(cur.call_count, 3, "every authenticated call is counted");
}

mod inventory {
    use super::*;
    use crate::inventory::{CreateKind, FolderFilter, FolderType};
    use crate::value::Value;

    fn root() -> MoRef {
        MoRef::new("Folder", "group-d1")
    }

    #[tokio::test]
    async fn create_datacenter_makes_its_folders_and_refuses_bad_names() {
        let f = fixture();
        let admin = f.login("admin@vsphere.local").await;
        let a = f.auth(&admin).await.unwrap();
        let dc = f
            .svc
            .create_entity(Some(&a), &root(), "DC1", CreateKind::Datacenter)
            .await
            .unwrap();
        assert_eq!(dc.type_, "Datacenter");
        let vm = f.svc.property(Some(&a), &dc, "vmFolder").await.unwrap();
        let Some(Value::Ref(vm)) = vm else {
            panic!("no vmFolder")
        };
        assert_eq!(
            f.svc.property(Some(&a), &vm, "name").await.unwrap(),
            Some(Value::Str("vm".into()))
        );
        assert_eq!(
            f.svc.property(Some(&a), &vm, "parent").await.unwrap(),
            Some(Value::Ref(dc.clone()))
        );
        assert_eq!(
            f.svc
                .property(Some(&a), &root(), "childEntity")
                .await
                .unwrap(),
            Some(Value::Refs(vec![dc.clone()]))
        );
        assert!(matches!(
            f.svc
                .create_entity(Some(&a), &root(), "DC1", CreateKind::Datacenter)
                .await
                .unwrap_err(),
            Fault::DuplicateName { .. }
        ));
        for bad in ["", "   ", &"x".repeat(81)] {
            assert!(matches!(
                f.svc
                    .create_entity(Some(&a), &root(), bad, CreateKind::Folder)
                    .await
                    .unwrap_err(),
                Fault::InvalidName { .. }
            ));
        }
        // Datacenters only go in datacenter folders.
        assert!(matches!(
            f.svc
                .create_entity(Some(&a), &vm, "X", CreateKind::Datacenter)
                .await
                .unwrap_err(),
            Fault::NotSupported(_)
        ));
        let sub = f
            .svc
            .create_entity(Some(&a), &vm, "templates", CreateKind::Folder)
            .await
            .unwrap();
        assert!(sub.value.starts_with("group-v"));
        let gone = MoRef::new("Folder", "group-d999");
        assert!(matches!(
            f.svc
                .create_entity(Some(&a), &gone, "X", CreateKind::Folder)
                .await
                .unwrap_err(),
            Fault::ManagedObjectNotFound(_)
        ));
    }

    #[tokio::test]
    async fn read_only_users_read_but_do_not_create() {
        let f = fixture();
        let reader = f.login("reader@vsphere.local").await;
        let r = f.auth(&reader).await.unwrap();
        assert_eq!(
            f.svc.property(Some(&r), &root(), "name").await.unwrap(),
            Some(Value::Str("Datacenters".into()))
        );
        assert_eq!(
            f.svc.property(Some(&r), &root(), "tag").await.unwrap(),
            Some(Value::Tags(vec![]))
        );
        assert_eq!(
            f.svc.property(Some(&r), &root(), "parent").await.unwrap(),
            None
        );
        let err = f
            .svc
            .create_entity(Some(&r), &root(), "DC", CreateKind::Datacenter)
            .await
            .unwrap_err();
        assert!(
            matches!(
                err,
                Fault::NoPermission {
                    privilege: Privilege::DatacenterCreate,
                    ..
                }
            ),
            "{err:?}"
        );
        assert!(matches!(
            f.svc.property(None, &root(), "name").await.unwrap_err(),
            Fault::NotAuthenticated { .. }
        ));
        assert!(matches!(
            f.svc
                .property(Some(&r), &root(), "colour")
                .await
                .unwrap_err(),
            Fault::InvalidProperty(_)
        ));
    }

    #[tokio::test]
    async fn folder_list_filters_like_vapi() {
        let f = fixture();
        let admin = f.login("admin@vsphere.local").await;
        let a = f.auth(&admin).await.unwrap();
        let dc = f
            .svc
            .create_entity(Some(&a), &root(), "DC1", CreateKind::Datacenter)
            .await
            .unwrap();
        f.svc
            .create_entity(Some(&a), &root(), "Lab", CreateKind::Folder)
            .await
            .unwrap();
        let all = f
            .svc
            .folder_list(Some(&a), &FolderFilter::default())
            .await
            .unwrap();
        assert_eq!(
            all.len(),
            6,
            "root, Lab and the datacenter's four folders: {all:?}"
        );
        let dcs = FolderFilter {
            type_: Some(FolderType::Datacenter),
            ..Default::default()
        };
        let names: Vec<_> = f
            .svc
            .folder_list(Some(&a), &dcs)
            .await
            .unwrap()
            .into_iter()
            .map(|x| x.1)
            .collect();
        assert_eq!(names, ["Datacenters", "Lab"]);
        let in_dc = FolderFilter {
            datacenters: vec![dc.value.clone()],
            names: vec!["host".into()],
            ..Default::default()
        };
        let host = f.svc.folder_list(Some(&a), &in_dc).await.unwrap();
        assert_eq!(host.len(), 1);
        assert_eq!(host[0].2, "HOST");
        assert!(matches!(
            f.svc
                .folder_list(None, &FolderFilter::default())
                .await
                .unwrap_err(),
            Fault::NotAuthenticated { .. }
        ));
    }
}

mod self_service {
    use super::*;

    #[tokio::test]
    async fn tokens_expire_can_be_revoked_and_are_not_session_ids() {
        let f = fixture();
        assert_eq!(
            f.svc
                .request_token("admin@vsphere.local", "nope", Duration::hours(1))
                .await
                .unwrap_err(),
            Fault::InvalidLogin
        );
        let (tok, rec) = f.token("VSPHERE.LOCAL\\reader").await;
        assert_eq!(rec.user, "reader@vsphere.local");
        assert_eq!(f.svc.token(&tok).await.unwrap(), rec);
        let as_session = Caller {
            session: SessionId::parse(&tok),
            ..anon()
        };
        assert!(
            f.svc.authenticate(&as_session).await.unwrap().is_none(),
            "a token is not a session id"
        );
        f.clock.advance(Duration::hours(1));
        assert!(f.svc.token(&tok).await.is_err(), "expired");
        let (tok2, _) = f.token("reader@vsphere.local").await;
        f.svc.revoke_token(&tok2).await.unwrap();
        assert!(f.svc.token(&tok2).await.is_err(), "revoked");
        assert!(f.svc.token("vst-garbage").await.is_err());
        assert!(f.svc.token("").await.is_err());
        assert!(matches!(
            f.svc
                .request_token("nobody@vsphere.local", "pw", Duration::hours(1))
                .await
                .unwrap_err(),
            Fault::NoPermission { .. }
        ));
    }

    #[tokio::test]
    async fn users_see_and_end_only_their_own_sessions() {
        let f = fixture();
        let r1 = f.login("reader@vsphere.local").await;
        let a1 = f.login("admin@vsphere.local").await;
        let rk = f.auth(&r1).await.unwrap().key.0;
        let ak = f.auth(&a1).await.unwrap().key.0;
        let (rt, reader) = f.token("reader@vsphere.local").await;
        let _ = rt;
        let (_, admin) = f.token("admin@vsphere.local").await;
        let mine: Vec<_> = f
            .svc
            .sessions_for(&reader, false)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.key.0)
            .collect();
        assert_eq!(mine, std::slice::from_ref(&rk));
        assert!(matches!(
            f.svc.sessions_for(&reader, true).await.unwrap_err(),
            Fault::NoPermission { .. }
        ));
        assert_eq!(f.svc.sessions_for(&admin, true).await.unwrap().len(), 2);
        // Another user's key looks exactly like a missing one.
        let other = f.svc.session_for(&reader, &ak, false).await.unwrap_err();
        let missing = f
            .svc
            .session_for(&reader, "52nope", false)
            .await
            .unwrap_err();
        assert_eq!(
            std::mem::discriminant(&other),
            std::mem::discriminant(&missing)
        );
        assert!(
            f.svc.end_session_for(&reader, &ak, true).await.is_err(),
            "all=true needs the privilege"
        );
        assert!(f.auth(&a1).await.is_some());
        f.svc.end_session_for(&reader, &rk, false).await.unwrap();
        assert!(f.auth(&r1).await.is_none());
        f.svc.end_session_for(&admin, &ak, false).await.unwrap();
        assert!(f.auth(&a1).await.is_none());
    }
}

mod own_sessions {
    use super::*;

    fn keys(v: Vec<SessionRecord>) -> Vec<SessionKey> {
        v.into_iter().map(|s| s.key).collect()
    }

    /// A user's own list follows ImpersonateUser (the session moves to the user it now
    /// acts as), is ordered by login, and leaves out (and ends) expired sessions.
    #[tokio::test]
    async fn own_sessions_follow_impersonation_and_leave_out_expired_ones() {
        let f = fixture();
        let r_old = f.login("reader@vsphere.local").await;
        let r_old = f.auth(&r_old).await.unwrap();
        f.clock.advance(Duration::minutes(20));
        let r_new = f.login("reader@vsphere.local").await;
        let r_new = f.auth(&r_new).await.unwrap();
        f.clock.advance(Duration::minutes(1));
        let a = f.login("admin@vsphere.local").await;
        let a_rec = f.auth(&a).await.unwrap();
        let (_, reader) = f.token("reader@vsphere.local").await;
        let (_, admin) = f.token("admin@vsphere.local").await;
        assert_eq!(
            keys(f.svc.sessions_for(&reader, false).await.unwrap()),
            [r_old.key.clone(), r_new.key.clone()]
        );
        assert_eq!(
            keys(f.svc.sessions_for(&admin, false).await.unwrap()),
            std::slice::from_ref(&a_rec.key)
        );
        f.impersonate(&a_rec, "reader@vsphere.local").await.unwrap();
        assert_eq!(
            keys(f.svc.sessions_for(&reader, false).await.unwrap()),
            [r_old.key.clone(), r_new.key.clone(), a_rec.key.clone()]
        );
        assert!(f.svc.sessions_for(&admin, false).await.unwrap().is_empty());
        assert_eq!(f.svc.sessions_for(&admin, true).await.unwrap().len(), 3);
        // r_old has been idle for 31 minutes; the others for 11 and 10.
        f.clock.advance(Duration::minutes(10));
        assert_eq!(
            keys(f.svc.sessions_for(&reader, false).await.unwrap()),
            [r_new.key, a_rec.key]
        );
        assert!(f
            .store
            .session_by_key(r_old.key.as_str())
            .await
            .unwrap()
            .is_none());
    }
}

mod ui_support {
    use super::*;

    #[tokio::test]
    async fn only_global_message_holders_set_the_message_from_a_token() {
        let f = fixture();
        let (_, reader) = f.token("reader@vsphere.local").await;
        let (_, admin) = f.token("admin@vsphere.local").await;
        assert_eq!(f.svc.message_for(&reader).await.unwrap(), "");
        assert!(matches!(
            f.svc.set_message_for(&reader, "hi").await.unwrap_err(),
            Fault::NoPermission {
                privilege: Privilege::SessionsGlobalMessage,
                ..
            }
        ));
        assert_eq!(f.svc.message_for(&admin).await.unwrap(), "");
        f.svc
            .set_message_for(&admin, "Maintenance at 18:00")
            .await
            .unwrap();
        assert_eq!(
            f.svc.message_for(&reader).await.unwrap(),
            "Maintenance at 18:00"
        );
        // The same message the SOAP property shows.
        let id = f.login("reader@vsphere.local").await;
        let s = f.auth(&id).await;
        assert_eq!(
            f.svc.message(s.as_ref()).await.unwrap(),
            "Maintenance at 18:00"
        );
        let long = "x".repeat(MAX_MESSAGE_LEN + 1);
        assert!(matches!(
            f.svc.set_message_for(&admin, &long).await.unwrap_err(),
            Fault::InvalidArgument { .. }
        ));
        assert_eq!(
            f.svc.message_for(&admin).await.unwrap(),
            "Maintenance at 18:00",
            "a rejected message changes nothing"
        );
        let noaccess = crate::selfservice::TokenRecord {
            user: "nobody@vsphere.local".into(),
            role: Role::NoAccess,
            created: f.svc.now(),
            expires: f.svc.now() + Duration::hours(1),
            user_id: Default::default(),
        };
        assert!(f.svc.message_for(&noaccess).await.is_err());
    }
}

mod user_changes {
    use super::*;

    #[tokio::test]
    async fn role_changes_apply_to_live_sessions_and_removed_users_lose_them() {
        let f = fixture();
        let id = f.login("reader@vsphere.local").await;
        let (tok, _) = f.token("reader@vsphere.local").await;
        let r = f.auth(&id).await.unwrap();
        assert!(matches!(
            f.svc.session_list(Some(&r)).await.unwrap_err(),
            Fault::NoPermission { .. }
        ));
        let mut account = f
            .store
            .get_user("reader@vsphere.local")
            .await
            .unwrap()
            .unwrap();
        account.role = Role::Admin;
        f.store.put_user(account);
        let r = f.auth(&id).await.unwrap();
        assert_eq!(
            r.role,
            Role::Admin,
            "the new role applies without a new login"
        );
        assert!(f.svc.session_list(Some(&r)).await.is_ok());
        assert!(f
            .svc
            .sessions_for(&f.svc.token(&tok).await.unwrap(), true)
            .await
            .is_ok());
        f.store.remove_user("reader@vsphere.local");
        assert!(f.auth(&id).await.is_none(), "a removed user's session ends");
        assert!(f
            .svc
            .store()
            .session_by_key(r.key.as_str())
            .await
            .unwrap()
            .is_none());
        assert!(
            f.svc.token(&tok).await.is_err(),
            "and their tokens stop working"
        );
    }

    #[tokio::test]
    async fn an_account_added_again_under_an_old_name_inherits_nothing() {
        let f = fixture();
        let name = "reader@vsphere.local";
        let old = f.login(name).await;
        let spare = f.login(name).await;
        let (old_token, _) = f.token(name).await;
        let old_key = f.auth(&old).await.unwrap().key;
        let spare_key = f.auth(&spare).await.unwrap().key;
        // Removed and added again, with more rights, before the old session's next call.
        f.store.remove_user(name);
        f.store.put_user(user(name, Role::Admin));
        assert!(
            f.auth(&old).await.is_none(),
            "the old account's session must not pass as the new account's"
        );
        assert!(f
            .svc
            .store()
            .session_by_key(old_key.as_str())
            .await
            .unwrap()
            .is_none());
        assert!(f.svc.token(&old_token).await.is_err(), "nor its API token");

        // The new account's own list does not show the old account's sessions (and ends
        // them); an administrator cannot impersonate the new account through them.
        let (tok, _) = f.token(name).await;
        let tok = f.svc.token(&tok).await.unwrap();
        let admin = f.login("admin@vsphere.local").await;
        let admin = f.auth(&admin).await.unwrap();
        assert!(matches!(
            f.svc.impersonate_user(Some(&admin), name, None).await,
            Err(Fault::InvalidLogin)
        ));
        assert!(matches!(
            f.svc.session_for(&tok, spare_key.as_str(), false).await,
            Err(Fault::NotFound(_))
        ));
        assert!(f.svc.sessions_for(&tok, false).await.unwrap().is_empty());
        assert_eq!(
            f.svc
                .store()
                .sessions_of_user(name, 10)
                .await
                .unwrap()
                .len(),
            0
        );

        // The new account's sessions work, keep working, and can be impersonated.
        let new = f.login(name).await;
        let r = f.auth(&new).await.unwrap();
        assert_eq!(r.role, Role::Admin);
        assert!(f.auth(&new).await.is_some());
        let mine = f.svc.sessions_for(&tok, false).await.unwrap();
        assert_eq!(mine.len(), 1);
        assert_eq!(mine[0].key, r.key);
        let as_reader = f
            .svc
            .impersonate_user(Some(&admin), name, None)
            .await
            .unwrap();
        assert_eq!(as_reader.user_name, name);
        assert!(f.auth(&spare).await.is_none());
    }

    /// Impersonation lasts only while the user who logged in may impersonate: removed, or
    /// without Sessions.ImpersonateUser, they keep nothing of what they took on, through
    /// their session or a clone of it. A clone also keeps the source's login time, so that
    /// cloning does not renew the maximum age.
    #[tokio::test]
    async fn an_impersonating_session_ends_with_its_login_users_rights() {
        let f = fixture_with(Policy {
            idle_timeout: Duration::hours(8),
            max_lifetime: Some(Duration::hours(10)),
            ..Policy::default()
        });
        let reader = "reader@vsphere.local";
        f.login(reader).await;
        for demote in [false, true] {
            f.store.put_user(user("admin@vsphere.local", Role::Admin));
            let admin = f.login("admin@vsphere.local").await;
            let rec = f.auth(&admin).await.unwrap();
            f.impersonate(&rec, reader).await.unwrap();
            let rec = f.auth(&admin).await.unwrap();
            assert_eq!(rec.user_name.as_ref(), reader);
            f.clock.advance(Duration::hours(6));
            let ticket = f.svc.acquire_clone_ticket(Some(&rec)).await.unwrap();
            let (clone, cs) = f.svc.clone_session(&anon(), None, &ticket).await.unwrap();
            assert_eq!(cs.user_name, reader);
            assert_eq!(
                cs.login_time, rec.login_time,
                "a clone keeps the login time"
            );
            let c = f.auth(&clone).await.unwrap();
            assert_eq!(c.login_user.as_ref(), "admin@vsphere.local");
            if demote {
                f.store.put_user(User {
                    role: Role::ReadOnly,
                    ..f.store
                        .get_user("admin@vsphere.local")
                        .await
                        .unwrap()
                        .unwrap()
                });
            } else {
                f.store.remove_user("admin@vsphere.local");
            }
            assert!(f.auth(&admin).await.is_none(), "demoted: {demote}");
            assert!(f.auth(&clone).await.is_none(), "demoted: {demote}");
            // The reader's own sessions are the reader's.
            let own = f.login(reader).await;
            f.clock.advance(Duration::hours(5));
            assert!(f.auth(&own).await.is_some());
        }
        // A clone dies at its source's maximum age, not 10 hours after it was made.
        f.store.put_user(user("admin@vsphere.local", Role::Admin));
        let source = f.login(reader).await;
        let rec = f.auth(&source).await.unwrap();
        f.clock.advance(Duration::hours(6));
        let ticket = f.svc.acquire_clone_ticket(Some(&rec)).await.unwrap();
        let (clone, _) = f.svc.clone_session(&anon(), None, &ticket).await.unwrap();
        f.clock.advance(Duration::hours(4));
        assert!(f.auth(&clone).await.is_none(), "past the source's lifetime");
    }
}

mod credential_cache {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Counts argon2 verifications.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    #[async_trait]
    impl CredentialVerifier for Counting {
        async fn verify(&self, phc: String, password: String) -> bool {
            self.0.fetch_add(1, Ordering::SeqCst);
            verify_password(&phc, &password)
        }
    }

    /// Verifies after a pause, on the runtime, as the server's pool does, counting the
    /// checks of real hashes (not the dummy hash a refused login burns).
    #[derive(Default)]
    struct Slow(AtomicUsize);

    #[async_trait]
    impl CredentialVerifier for Slow {
        async fn verify(&self, phc: String, password: String) -> bool {
            if phc != dummy_hash() {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            verify_password(&phc, &password)
        }
    }

    /// Verifies after a pause, recording how many verifications ran at once.
    #[derive(Default)]
    struct Peak {
        now: AtomicUsize,
        most: AtomicUsize,
    }

    #[async_trait]
    impl CredentialVerifier for Peak {
        async fn verify(&self, phc: String, password: String) -> bool {
            let n = self.now.fetch_add(1, Ordering::SeqCst) + 1;
            self.most.fetch_max(n, Ordering::SeqCst);
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            self.now.fetch_sub(1, Ordering::SeqCst);
            verify_password(&phc, &password)
        }
    }

    /// Guesses at one name sent at once take turns whether the user exists or not (or is
    /// locked out), so their timing does not tell which.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn guesses_at_a_name_take_turns_whether_or_not_it_exists() {
        for name in ["admin@vsphere.local", "ghost@vsphere.local"] {
            let peak = Arc::new(Peak::default());
            let svc = Arc::new(SessionService::new(
                Arc::new(MemoryStore::new([user("admin@vsphere.local", Role::Admin)])),
                Arc::new(ManualClock::new(
                    Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
                )),
                Policy::default(),
                peak.clone(),
                about(),
            ));
            let guesses: Vec<_> = (0..8)
                .map(|i| {
                    let svc = svc.clone();
                    tokio::spawn(async move {
                        svc.login(&anon(), name, &format!("bad{i}"), None)
                            .await
                            .is_err()
                    })
                })
                .collect();
            for g in guesses {
                assert!(g.await.unwrap());
            }
            assert_eq!(peak.most.load(Ordering::SeqCst), 1, "{name}");
        }
    }

    /// Guesses sent all at once are verified one after another, each seeing the failures
    /// before it: no more are verified than the lockout allows.
    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn guesses_sent_at_once_are_counted_one_by_one() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let store = Arc::new(MemoryStore::new([user("admin@vsphere.local", Role::Admin)]));
        let slow = Arc::new(Slow::default());
        let svc = Arc::new(SessionService::new(
            store,
            clock,
            Policy::default(),
            slow.clone(),
            about(),
        ));
        let guesses: Vec<_> = (0..30)
            .map(|i| {
                let svc = svc.clone();
                tokio::spawn(async move {
                    svc.login(&anon(), "admin@vsphere.local", &format!("bad{i}"), None)
                        .await
                        .is_err()
                })
            })
            .collect();
        for g in guesses {
            assert!(g.await.unwrap());
        }
        assert_eq!(
            slow.0.load(Ordering::SeqCst),
            5,
            "only max_failures guesses may be verified in one lockout"
        );
        assert!(svc
            .login(&anon(), "admin@vsphere.local", "pw", None)
            .await
            .is_err());
        // Concurrent logins with the right password verify it once, then hit the cache.
        let svc = Arc::new(SessionService::new(
            Arc::new(MemoryStore::new([user("admin@vsphere.local", Role::Admin)])),
            Arc::new(ManualClock::new(
                Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
            )),
            Policy::default(),
            slow.clone(),
            about(),
        ));
        let before = slow.0.load(Ordering::SeqCst);
        let logins: Vec<_> = (0..8)
            .map(|_| {
                let svc = svc.clone();
                tokio::spawn(async move {
                    svc.login(&anon(), "admin@vsphere.local", "pw", None)
                        .await
                        .is_ok()
                })
            })
            .collect();
        for l in logins {
            assert!(l.await.unwrap());
        }
        assert_eq!(slow.0.load(Ordering::SeqCst) - before, 1);
    }

    #[tokio::test]
    async fn repeated_logins_skip_argon2_but_failures_and_changes_do_not() {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap(),
        ));
        let store = Arc::new(MemoryStore::new([user("admin@vsphere.local", Role::Admin)]));
        let counting = Arc::new(Counting::default());
        let svc = SessionService::new(
            store.clone(),
            clock.clone(),
            Policy::default(),
            counting.clone(),
            about(),
        );
        let n = || counting.0.load(Ordering::SeqCst);
        svc.login(&anon(), "admin@vsphere.local", "pw", None)
            .await
            .unwrap();
        assert_eq!(n(), 1, "a cold login pays argon2");
        for _ in 0..5 {
            svc.login(&anon(), "admin@vsphere.local", "pw", None)
                .await
                .unwrap();
        }
        assert_eq!(n(), 1, "recently verified credentials are not hashed again");
        assert!(svc
            .login(&anon(), "admin@vsphere.local", "bad", None)
            .await
            .is_err());
        assert_eq!(n(), 2, "a wrong password always pays argon2");
        clock.advance(Duration::seconds(301));
        svc.login(&anon(), "admin@vsphere.local", "pw", None)
            .await
            .unwrap();
        assert_eq!(n(), 3, "entries expire");
        // A password change invalidates the entry: the old password no longer works.
        let mut changed = user("admin@vsphere.local", Role::Admin);
        changed.password_hash = hash_password("new-pw").unwrap();
        store.put_user(changed);
        assert!(svc
            .login(&anon(), "admin@vsphere.local", "pw", None)
            .await
            .is_err());
        svc.login(&anon(), "admin@vsphere.local", "new-pw", None)
            .await
            .unwrap();
        // Lockout wins over the cache, and clears it.
        for _ in 0..5 {
            let _ = svc.login(&anon(), "admin@vsphere.local", "bad", None).await;
        }
        assert_eq!(
            svc.login(&anon(), "admin@vsphere.local", "new-pw", None)
                .await
                .unwrap_err(),
            Fault::InvalidLogin
        );
        clock.advance(Duration::seconds(300));
        let before = n();
        svc.login(&anon(), "admin@vsphere.local", "new-pw", None)
            .await
            .unwrap();
        assert_eq!(
            n(),
            before + 1,
            "after a lockout the password is verified again"
        );
    }
}

/// RetrieveProperties answers each object once and each of its properties once, however
/// often the request repeats them: an anonymous request of O objects × P paths must not
/// make a response O × P times the size.
#[tokio::test]
async fn repeated_objects_and_paths_are_answered_once() {
    use crate::value::{PropertyFilterSpec, PropertySpec};
    let f = fixture();
    let si = MoRef::new("ServiceInstance", "ServiceInstance");
    let sm = MoRef::new("SessionManager", "SessionManager");
    let spec = |paths: Vec<&str>, objects: Vec<MoRef>| PropertyFilterSpec {
        props: vec![
            PropertySpec {
                type_: "ServiceInstance".into(),
                all: false,
                paths: paths.iter().map(|p| p.to_string()).collect(),
            },
            PropertySpec {
                type_: "SessionManager".into(),
                all: false,
                paths: vec!["defaultLocale".into(), "defaultLocale".into()],
            },
        ],
        objects,
    };
    let specs = vec![
        spec(vec!["content"; 200], vec![si.clone(); 200]),
        // The same object again in a second spec: its new path joins the first answer.
        spec(
            vec!["serverClock", "content"],
            vec![si.clone(), sm.clone(), si.clone()],
        ),
    ];
    // Anonymously, as the audit's request was...
    let anon = f.svc.retrieve(None, &specs[..1]).await.unwrap();
    assert_eq!(anon.len(), 1);
    assert_eq!(anon[0].props.len(), 1);
    // ...and with a session, across two specs.
    let id = f.login("admin@vsphere.local").await;
    let admin = f.auth(&id).await.unwrap();
    let out = f.svc.retrieve(Some(&admin), &specs).await.unwrap();
    let got: Vec<(String, Vec<String>)> = out
        .iter()
        .map(|o| {
            (
                o.obj.type_.clone(),
                o.props.iter().map(|(n, _)| n.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "ServiceInstance".to_owned(),
                vec!["content".to_owned(), "serverClock".to_owned()]
            ),
            (
                "SessionManager".to_owned(),
                vec!["defaultLocale".to_owned()]
            ),
        ]
    );
}

/// A user demoted to NoAccess keeps no self-service through the tokens and sessions they
/// still hold (security audit), but may still revoke a token.
#[tokio::test]
async fn a_user_demoted_to_no_access_loses_self_service() {
    let f = fixture();
    let name = "reader@vsphere.local";
    let (tok, _) = f.token(name).await;
    let id = f.login(name).await;
    assert!(f.svc.token(&tok).await.is_ok());
    let mut u = f.store.get_user(name).await.unwrap().unwrap();
    u.role = Role::NoAccess;
    f.store.put_user(u);
    let no_view = |r: Result<_, Fault>| {
        matches!(
            r,
            Err(Fault::NoPermission {
                privilege: Privilege::SystemView,
                ..
            })
        )
    };
    assert!(no_view(f.svc.token(&tok).await.map(|_| ())));
    // The session-id path builds its record from the session, with the current role.
    let s = f.auth(&id).await.unwrap();
    assert_eq!(s.role, Role::NoAccess);
    let as_token = crate::selfservice::TokenRecord {
        user: s.user_name.to_string(),
        role: s.role,
        created: s.login_time,
        expires: s.login_time,
        user_id: s.user_id.to_string(),
    };
    assert!(no_view(
        f.svc.sessions_for(&as_token, false).await.map(|_| ())
    ));
    assert!(no_view(
        f.svc
            .end_session_for(&as_token, s.key.as_str(), false)
            .await
            .map(|_| ())
    ));
    assert!(f.auth(&id).await.is_some(), "the session was not ended");
    f.svc.revoke_token(&tok).await.unwrap();
}

#[tokio::test]
async fn a_refused_login_says_why_to_the_log_and_only_invalid_login_to_the_caller() {
    let f = fixture();
    let why = |r: Result<(SessionId, UserSession), Refused>| {
        let r = r.unwrap_err();
        assert_eq!(r.fault, Fault::InvalidLogin);
        r.why
    };
    let login = |user: &'static str, pw: &'static str| {
        let svc = f.svc.clone();
        async move { svc.login_explained(&anon(), user, pw, None).await }
    };
    assert_eq!(why(login("a@b@c", "x").await), Some(Refusal::BadName));
    assert_eq!(
        why(login("ghost@vsphere.local", "x").await),
        Some(Refusal::UnknownUser)
    );
    for _ in 0..f.svc.policy.lockout.max_failures {
        assert_eq!(
            why(login("reader@vsphere.local", "wrong").await),
            Some(Refusal::WrongPassword)
        );
    }
    // The right password ("pw") while locked.
    let r = f
        .svc
        .login_explained(&anon(), "reader@vsphere.local", "pw", None)
        .await;
    assert_eq!(why(r), Some(Refusal::Locked));
    // Not a credential problem: no reason, the fault says it.
    let r = f
        .svc
        .request_token_explained("nobody@vsphere.local", "pw", Duration::seconds(60))
        .await
        .unwrap_err();
    assert!(matches!(r.fault, Fault::NoPermission { .. }), "{r:?}");
    assert_eq!(r.why, None);
}

#[tokio::test]
async fn a_clone_over_a_live_session_is_refused_and_keeps_the_ticket() {
    let f = fixture();
    let id = f.login("reader@vsphere.local").await;
    let src = f.auth(&id).await.unwrap();
    let ticket = f.svc.acquire_clone_ticket(Some(&src)).await.unwrap();
    let other = f.login("admin@vsphere.local").await;
    let live = f.auth(&other).await.unwrap();
    let created = f.svc.stats().sessions_created;
    assert_eq!(
        f.svc
            .clone_session(&with(&other), Some(&live), &ticket)
            .await
            .unwrap_err(),
        Fault::SessionActive
    );
    assert_eq!(f.svc.stats().sessions_created, created);
    assert!(
        f.auth(&other).await.is_some(),
        "the caller's session is untouched"
    );
    // The ticket was not spent: once the caller holds no live session, it works.
    let (cid, cs) = f.svc.clone_session(&anon(), None, &ticket).await.unwrap();
    assert_eq!(cs.user_name, "reader@vsphere.local");
    assert!(f.auth(&cid).await.is_some());
}

#[tokio::test]
async fn a_login_over_a_live_session_is_refused_and_creates_nothing() {
    let f = fixture();
    let id = f.login("admin@vsphere.local").await;
    let live = f.auth(&id).await.unwrap();
    let created = f.svc.stats().sessions_created;
    let r = f
        .svc
        .login_over(&anon(), Some(&live), "admin@vsphere.local", "pw", None)
        .await
        .unwrap_err();
    assert_eq!(
        (r.fault, r.why),
        (Fault::SessionActive, Some(Refusal::SessionActive))
    );
    let s = f.svc.stats();
    assert_eq!(s.sessions_created, created);
    assert_eq!(
        s.logins_refused
            .iter()
            .find(|(x, _)| *x == Refusal::SessionActive)
            .map(|x| x.1),
        Some(1)
    );
    // Not a credential failure: it does not count towards a lockout of the account.
    assert_eq!(
        f.svc.store.lock_state("admin@vsphere.local").await.unwrap(),
        LockState::default()
    );
    // The first session is untouched, and without a live session the login works.
    assert!(f.auth(&id).await.is_some());
    f.svc
        .login_over(&anon(), None, "admin@vsphere.local", "pw", None)
        .await
        .unwrap();
    assert_eq!(f.svc.stats().sessions_created, created + 1);
}

#[tokio::test]
async fn stats_count_sessions_refusals_and_ends_once_each() {
    use crate::stats::Ended;
    let f = fixture_with(Policy {
        max_sessions: 4,
        ..Policy::default()
    });
    let counts = |f: &Fixture| {
        let s = f.svc.stats();
        let refused = |r: Refusal| s.logins_refused.iter().find(|(x, _)| *x == r).unwrap().1;
        let ended = |e: Ended| s.sessions_ended.iter().find(|(x, _)| *x == e).unwrap().1;
        (
            s.sessions_created,
            s.session_limit_refusals,
            [
                refused(Refusal::BadName),
                refused(Refusal::UnknownUser),
                refused(Refusal::Locked),
                refused(Refusal::WrongPassword),
            ],
            [
                ended(Ended::Logout),
                ended(Ended::Terminated),
                ended(Ended::Expired),
                ended(Ended::UserRemoved),
            ],
            s.lockouts,
        )
    };
    assert_eq!(counts(&f), (0, 0, [0; 4], [0; 4], 0));

    let admin = f.login("admin@vsphere.local").await;
    let a = f.auth(&admin).await.unwrap();
    let other = f.login("admin@vsphere.local").await;
    let o = f.auth(&other).await.unwrap();
    f.svc
        .terminate_sessions(Some(&a), &[o.key.as_str().to_owned()])
        .await
        .unwrap();
    // A second end of the same session ends nothing and counts nothing.
    assert!(f
        .svc
        .terminate_sessions(Some(&a), &[o.key.as_str().to_owned()])
        .await
        .is_err());
    f.svc.logout(Some(&a)).await.unwrap();
    assert_eq!(counts(&f), (2, 0, [0; 4], [1, 1, 0, 0], 0));

    for (user, pw) in [
        ("", "pw"),
        ("ghost@vsphere.local", "pw"),
        ("nobody@vsphere.local", "bad"),
    ] {
        assert!(f.svc.login(&anon(), user, pw, None).await.is_err());
    }
    assert_eq!(counts(&f).2, [1, 1, 0, 1]);
    for _ in 0..4 {
        assert!(f
            .svc
            .login(&anon(), "nobody@vsphere.local", "bad", None)
            .await
            .is_err());
    }
    assert!(f
        .svc
        .login(&anon(), "nobody@vsphere.local", "pw", None)
        .await
        .is_err());
    assert_eq!((counts(&f).2, counts(&f).4), ([1, 1, 1, 5], 1));

    // One session expires on its next call, two in a reap; one goes with its user.
    let s1 = f.login("admin@vsphere.local").await;
    f.login("admin@vsphere.local").await;
    f.login("admin@vsphere.local").await;
    let r = f.login("reader@vsphere.local").await;
    // The limit (4) is reached.
    assert!(f
        .svc
        .login(&anon(), "admin@vsphere.local", "pw", None)
        .await
        .is_err());
    assert_eq!((counts(&f).0, counts(&f).1), (6, 1));
    f.clock.advance(Duration::minutes(20));
    f.auth(&r).await.unwrap();
    f.clock.advance(Duration::minutes(11));
    assert!(f.auth(&s1).await.is_none());
    assert_eq!(f.svc.reap().await.unwrap(), 2);
    f.store.remove_user("reader@vsphere.local");
    assert!(f.auth(&r).await.is_none());
    assert_eq!(counts(&f).3, [1, 1, 3, 1]);
}

/// A session's recorded address is written as `IpAddr`'s `Display` writes it.
#[test]
fn addresses_are_recorded_as_display_writes_them() {
    let mut addresses: Vec<IpAddr> = [
        "0.0.0.0",
        "127.0.0.1",
        "10.9.99.100",
        "255.255.255.255",
        "::1",
        "::ffff:10.0.0.1",
        "fe80::1:2",
    ]
    .iter()
    .map(|a| a.parse().unwrap())
    .collect();
    for octet in 0..=255u8 {
        addresses.push(IpAddr::from([
            octet,
            255 - octet,
            octet / 3,
            octet.wrapping_mul(7),
        ]));
    }
    for ip in addresses {
        assert_eq!(*super::ip_text(ip), ip.to_string());
    }
}
