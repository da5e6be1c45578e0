//! Several vsess replicas on one real redis-server (issue 7): the invariants hold across
//! replicas, termination is immediate everywhere, and Redis outages fail fast and heal.
//!
//! Ignored by default because they need Debian's `redis-server`; `scripts/test` installs it
//! and runs them with `--include-ignored`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::redis::{add_user, admin_handle, redis_config, RedisCluster, RedisProc, Replicas};
use common::{between, fault_type, fetch};
use std::time::{Duration, Instant};
use vsess_core::Role;

const NEEDS: &str = "needs Debian's redis-server (scripts/test installs it)";

const ADMIN: (&str, &str) = ("admin@vsphere.local", "admin-pw");
const READER: &str = "reader@vsphere.local";

async fn setup(n: usize, base: &str) -> (RedisProc, Replicas, vsess_store::RedisStore) {
    let redis = RedisProc::start();
    let (replicas, handle) = setup_on(&redis.url(), n, base).await;
    (redis, replicas, handle)
}

async fn setup_on(url: &str, n: usize, base: &str) -> (Replicas, vsess_store::RedisStore) {
    let handle = admin_handle(url, "t").await;
    add_user(&handle, ADMIN.0, Role::Admin, ADMIN.1).await;
    add_user(&handle, "reader@vsphere.local", Role::ReadOnly, "reader-pw").await;
    let config = redis_config(base, url, "t");
    let replicas = Replicas::start(n, &config).await;
    (replicas, handle)
}

fn current_key(body: &str) -> String {
    between(body, "<key>", "</key>").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn one_session_works_on_every_replica_and_every_protocol() {
    let _ = NEEDS;
    let (_redis, r, _h) = setup(3, "").await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    let id = cookie
        .split_once('=')
        .unwrap()
        .1
        .trim_matches('"')
        .to_owned();
    for i in 0..3 {
        let (s, body, _) = r.soap(i, &fetch("currentSession"), Some(&cookie)).await;
        assert_eq!(s, 200, "replica {i}: {body}");
        assert!(body.contains(ADMIN.0), "{body}");
        let rest = r
            .http
            .get(r.url(i, "/api/session"))
            .header("vmware-api-session-id", &id)
            .send()
            .await
            .unwrap();
        assert_eq!(rest.status(), 200, "replica {i}");
    }
    // Every replica reports the same instanceUuid.
    let mut uuids = Vec::new();
    for i in 0..3 {
        let (_, body, _) = r.soap(i, common::RSC, None).await;
        uuids.push(between(&body, "<instanceUuid>", "</instanceUuid>").to_owned());
    }
    assert!(uuids.iter().all(|u| *u == uuids[0]), "{uuids:?}");
}

async fn instance_uuid(r: &Replicas, i: usize) -> String {
    let (_, body, _) = r.soap(i, common::RSC, None).await;
    between(&body, "<instanceUuid>", "</instanceUuid>").to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_replica_started_after_redis_lost_its_data_reports_the_same_instance_uuid() {
    let (redis, r, _h) = setup(1, "").await;
    let first = instance_uuid(&r, 0).await;
    // What a Redis restarted without its data has lost (the users stay, so that the
    // replicas keep serving).
    assert_eq!(redis.cli(&["DEL", "t:instance-uuid"]).trim(), "1");
    // The running replica puts its own back within a second or so...
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.cli(&["GET", "t:instance-uuid"]).trim() != first {
        assert!(
            Instant::now() < deadline,
            "the instanceUuid was not put back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // ...so that a replica started now adopts it, instead of writing its own.
    let config = redis_config("", &redis.url(), "t");
    let later = Replicas::start(1, &config).await;
    assert_eq!(instance_uuid(&later, 0).await, first);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn max_session_count_is_global_under_concurrent_logins() {
    const N: usize = 6;
    let (_redis, r, _h) = setup(3, &format!("config.vmacore.soap.maxSessionCount = {N}\n")).await;
    let r = std::sync::Arc::new(r);
    let mut ok = 0;
    for (s, body, _) in r
        .race(4 * N, &common::login_body(ADMIN.0, ADMIN.1), None)
        .await
    {
        if s == 200 {
            ok += 1;
        } else {
            assert_eq!(fault_type(&body), "SystemError", "{body}");
            assert!(body.contains("maxSessionCount"), "{body}");
        }
    }
    assert_eq!(
        ok, N,
        "exactly maxSessionCount logins succeed across 3 replicas"
    );
    let sessions = r.servers[1].app.svc.store().list_sessions().await.unwrap();
    assert_eq!(sessions.len(), N);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_clone_ticket_raced_by_50_clients_is_redeemed_once() {
    let (_redis, r, _h) = setup(3, "").await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    let (s, body, _) = r
        .soap(1, "<AcquireCloneTicket xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></AcquireCloneTicket>", Some(&cookie))
        .await;
    assert_eq!(s, 200, "{body}");
    let ticket = between(&body, "<returnval>", "</returnval>").to_owned();
    let r = std::sync::Arc::new(r);
    let clone = format!("<CloneSession xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><cloneTicket>{ticket}</cloneTicket></CloneSession>");
    let mut ok = 0;
    for (s, body, _) in r.race(50, &clone, None).await {
        if s == 200 {
            ok += 1;
        } else {
            assert_eq!(fault_type(&body), "InvalidLogin", "{body}");
        }
    }
    assert_eq!(ok, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_session_ended_on_one_replica_is_refused_by_the_next_request_on_another() {
    let (_redis, r, _h) = setup(2, "").await;
    // TerminateSession by an administrator on replica A.
    let victim = r.login(1, "reader@vsphere.local", "reader-pw").await;
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&victim)).await;
    let key = current_key(&body);
    let admin = r.login(0, ADMIN.0, ADMIN.1).await;
    let (s, body, _) = r
        .soap(0, &format!("<TerminateSession xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><sessionId>{key}</sessionId></TerminateSession>"), Some(&admin))
        .await;
    assert_eq!(s, 200, "{body}");
    let (s, body, _) = r.soap(1, &fetch("currentSession"), Some(&victim)).await;
    assert_eq!(s, 200);
    assert!(
        !body.contains("<key>"),
        "ended session still answered on B: {body}"
    );
    // Logout on B, refused on A at once; over REST too.
    let (s, _, _) = r.soap(1, common::LOGOUT, Some(&admin)).await;
    assert_eq!(s, 200);
    let id = admin.split_once('=').unwrap().1.trim_matches('"');
    let rest = r
        .http
        .get(r.url(0, "/api/session"))
        .header("vmware-api-session-id", id)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 401);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_logout_whose_slot_release_fails_still_ends_the_session_and_frees_the_slot() {
    let redis = RedisProc::start();
    // An account that may do anything but ZREM: Logout's live-set update fails after the
    // session itself has ended, as when Redis goes away between the two commands.
    redis.cli(&[
        "ACL", "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all", "-zrem",
    ]);
    let url = format!("redis://app:app-pw@127.0.0.1:{}/0", redis.port);
    let (r, _h) = setup_on(&url, 1, "config.vmacore.soap.maxSessionCount = 1\n").await;
    let first = r.login(0, ADMIN.0, ADMIN.1).await;
    let (s, body, _) = r
        .soap(0, &common::login_body(READER, "reader-pw"), None)
        .await;
    assert_eq!(s, 500, "the only slot is taken: {body}");

    let (s, body, _) = r.soap(0, common::LOGOUT, Some(&first)).await;
    assert_eq!(s, 200, "the session ended, so its Logout succeeds: {body}");
    let (_, body, _) = r.soap(0, &fetch("currentSession"), Some(&first)).await;
    assert!(!body.contains("<key>"), "the session still answers: {body}");
    assert_eq!(
        redis.cli(&["ZCARD", "t:live"]),
        "1",
        "the slot is still taken"
    );

    // Once Redis takes the removal, the next flush (every second) frees the slot.
    redis.cli(&["ACL", "SETUSER", "app", "+zrem"]);
    slots_come_back(&redis).await;
    r.login(0, READER, "reader-pw").await;
}

/// Waits until the live set (prefix `t`) is empty: every `maxSessionCount` slot is free.
async fn slots_come_back(redis: &RedisProc) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.cli(&["ZCARD", "t:live"]) != "0" {
        assert!(Instant::now() < deadline, "a slot was never freed");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn redis_of(r: &Replicas, i: usize) -> &vsess_store::RedisStore {
    match &r.servers[i].app.backend {
        vsess_store::Backend::Redis(s) => s,
        _ => panic!("replica {i} is not on Redis"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_login_whose_reservation_answer_is_lost_leaves_no_slot_taken() {
    let (redis, r, _h) = setup(1, "config.vmacore.soap.maxSessionCount = 1\n").await;
    redis_of(&r, 0).lose_answers(vsess_store::LostScript::Reserve, 1);
    let (s, body, _) = r.soap(0, &common::login_body(ADMIN.0, ADMIN.1), None).await;
    assert_eq!(s, 500, "the reservation's answer was lost: {body}");
    slots_come_back(&redis).await;
    r.login(0, ADMIN.0, ADMIN.1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_logout_whose_answer_is_lost_still_frees_its_slot() {
    let (redis, r, _h) = setup(1, "config.vmacore.soap.maxSessionCount = 1\n").await;
    let first = r.login(0, ADMIN.0, ADMIN.1).await;
    redis_of(&r, 0).lose_answers(vsess_store::LostScript::End, 1);
    let (s, body, _) = r.soap(0, common::LOGOUT, Some(&first)).await;
    assert_eq!(s, 500, "the Logout's answer was lost: {body}");
    let (_, body, _) = r.soap(0, &fetch("currentSession"), Some(&first)).await;
    assert!(!body.contains("<key>"), "the session still answers: {body}");
    slots_come_back(&redis).await;
    r.login(0, READER, "reader-pw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_logout_that_never_ran_ends_its_session_when_redis_is_back() {
    let redis = RedisProc::start();
    // An account that may run no script: Logout's script fails outright.
    redis.cli(&[
        "ACL", "SETUSER", "app", "on", ">app-pw", "~*", "&*", "+@all",
    ]);
    let url = format!("redis://app:app-pw@127.0.0.1:{}/0", redis.port);
    let (r, _h) = setup_on(&url, 1, "config.vmacore.soap.maxSessionCount = 1\n").await;
    let first = r.login(0, ADMIN.0, ADMIN.1).await;
    redis.cli(&["ACL", "SETUSER", "app", "-del"]);
    let (s, body, _) = r.soap(0, common::LOGOUT, Some(&first)).await;
    assert_eq!(s, 500, "the Logout failed: {body}");
    let (_, body, _) = r.soap(0, &fetch("currentSession"), Some(&first)).await;
    assert!(
        body.contains("<key>"),
        "the session has not ended yet: {body}"
    );
    // Asked to end, it ends once Redis takes the change.
    redis.cli(&["ACL", "SETUSER", "app", "+del"]);
    slots_come_back(&redis).await;
    let (_, body, _) = r.soap(0, &fetch("currentSession"), Some(&first)).await;
    assert!(!body.contains("<key>"), "the session still answers: {body}");
    r.login(0, READER, "reader-pw").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_lost_key_index_comes_back_with_the_sessions_next_activity() {
    let (redis, r, _h) = setup(1, "").await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    let (_, body, _) = r.soap(0, &fetch("currentSession"), Some(&cookie)).await;
    let index = format!("t:key:{{{}}}", current_key(&body));
    // Lost as when a write of it failed and the replica that owed it stopped: the key
    // index expires before its session, and Logout could no longer find the session.
    assert_eq!(redis.cli(&["DEL", &index]), "1");
    r.soap(0, &fetch("currentSession"), Some(&cookie)).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.cli(&["EXISTS", &index]) != "1" {
        assert!(Instant::now() < deadline, "the key index never came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (s, _, _) = r.soap(0, common::LOGOUT, Some(&cookie)).await;
    assert_eq!(s, 200);
    slots_come_back(&redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn user_changes_invalidate_every_replicas_cache_at_once() {
    let (redis, r, h) = setup(2, "").await;
    let reader = r.login(0, "reader@vsphere.local", "reader-pw").await;
    let admin = r.login(0, ADMIN.0, ADMIN.1).await;
    let admin2 = r.login(0, ADMIN.0, ADMIN.1).await;
    // Warm replica B's user cache with both users.
    for _ in 0..3 {
        let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&reader)).await;
        assert!(body.contains("reader@vsphere.local"), "{body}");
        let (s, body, _) = r.soap(1, &fetch("sessionList"), Some(&admin)).await;
        assert_eq!(s, 200, "{body}");
    }
    // Logins, whatever name they try, read Redis and leave the cache alone: it holds the
    // users of the sessions B has served, and no more.
    for i in 0..20 {
        let (s, body, _) = r
            .soap(1, &common::login_body(&format!("nobody{i}"), "x"), None)
            .await;
        assert_eq!((s, fault_type(&body)), (500, "InvalidLogin"), "{body}");
    }
    let vsess_store::Backend::Redis(b) = &r.servers[1].app.backend else {
        panic!("not on Redis")
    };
    assert_eq!(b.cached_users(), 2);
    // B answers the session check from its cache: no user reads on further calls (an
    // entry is kept for USER_CACHE_MAX_AGE, one second; one re-read allows for a stall).
    r.soap(1, &fetch("currentSession"), Some(&reader)).await;
    let reads = b.user_reads();
    for _ in 0..5 {
        r.soap(1, &fetch("currentSession"), Some(&reader)).await;
    }
    assert!(b.user_reads() <= reads + 1, "B re-read a cached user");
    // Replicas of earlier versions hear of changes on P:events.
    let published = redis.command_calls("publish");
    // A role change made through another handle applies to B's very next call.
    assert!(h
        .modify_user(ADMIN.0, |u| u.role = Role::ReadOnly)
        .await
        .unwrap());
    let (s, body, _) = r.soap(1, &fetch("sessionList"), Some(&admin)).await;
    assert_eq!((s, fault_type(&body)), (500, "NoPermission"), "{body}");
    // The next session of that user is checked against B's cache, now read at the new
    // generation: the new role applies to it too.
    let (s, body, _) = r.soap(1, &fetch("sessionList"), Some(&admin2)).await;
    assert_eq!((s, fault_type(&body)), (500, "NoPermission"), "{body}");
    assert_eq!(redis.command_calls("publish"), published + 1);
    // A name removed and added again is a new account: a session of the old one, which
    // B served from its cache a moment ago, ends on B's next call.
    let again = r.login(0, "reader@vsphere.local", "reader-pw").await;
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&again)).await;
    assert!(body.contains("<key>"), "{body}");
    let wrong = common::login_body("reader@vsphere.local", "wrong");
    assert_eq!(r.soap(0, &wrong, None).await.0, 500);
    let leftovers = ["t:us:reader@vsphere.local", "t:lock:reader@vsphere.local"];
    for key in leftovers {
        assert_eq!(redis.cli(&["exists", key]), "1", "{key}");
    }
    assert!(h.remove_user("reader@vsphere.local").await.unwrap());
    for key in leftovers {
        assert_eq!(redis.cli(&["exists", key]), "0", "{key} outlived its user");
    }
    add_user(&h, "reader@vsphere.local", Role::Admin, "reader-pw").await;
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&again)).await;
    assert!(
        !body.contains("<key>"),
        "an earlier account's session must not pass as the new one's: {body}"
    );
    // So does a removal: the removed user's session ends on its next request.
    r.soap(1, &fetch("currentSession"), Some(&reader)).await;
    assert!(h.remove_user("reader@vsphere.local").await.unwrap());
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&reader)).await;
    assert!(
        !body.contains("<key>"),
        "a removed user's session must end on its next request: {body}"
    );
    // The generation token is not a user.
    let names: Vec<String> = vsess_core::Store::list_users(&h)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.name.as_str().to_owned())
        .collect();
    assert_eq!(names, vec![ADMIN.0.to_owned()]);
    // A first-run bootstrap (`only_if_empty`) counts users, not the token.
    let u = vsess_core::Store::get_user(&h, ADMIN.0)
        .await
        .unwrap()
        .unwrap();
    assert!(!h.add_user(&u, true).await.unwrap(), "a user exists");
    assert!(h.remove_user(ADMIN.0).await.unwrap());
    assert!(h.add_user(&u, true).await.unwrap(), "no user is left");

    // A change made behind vsess's back (no new token) is seen once the cached entry is
    // older than USER_CACHE_MAX_AGE.
    let admin = r.login(0, ADMIN.0, ADMIN.1).await;
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&admin)).await;
    assert!(body.contains("<key>"), "{body}");
    redis.cli(&["hdel", "t:users", ADMIN.0]);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&admin)).await;
        if !body.contains("<key>") {
            break;
        }
        assert!(Instant::now() < deadline, "the cache never let go");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // A change is a compare-and-set: when the record changes between the read and the
    // write (here: the name re-added as another account, by another process), the change
    // is applied to the new record, not written over it.
    assert!(h.add_user(&u, false).await.unwrap());
    let mut seen = Vec::new();
    assert!(h
        .modify_user(ADMIN.0, |u| {
            seen.push(u.id.clone());
            if seen.len() == 1 {
                let mut other = u.clone();
                other.id = "another-account".into();
                other.full_name = "Re-added".into();
                redis.cli(&[
                    "hset",
                    "t:users",
                    ADMIN.0,
                    &serde_json::to_string(&other).unwrap(),
                ]);
            }
            u.role = Role::Admin;
        })
        .await
        .unwrap());
    assert_eq!(seen.len(), 2, "{seen:?}");
    assert_eq!(seen[1], "another-account");
    let u = vsess_core::Store::get_user(&h, ADMIN.0)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (u.id.as_str(), u.full_name.as_str(), u.role),
        ("another-account", "Re-added", Role::Admin)
    );
    assert!(!h.modify_user("nobody@vsphere.local", |_| {}).await.unwrap());
}

/// A user's sessions are found through that user's own set, which follows logins,
/// logouts and ImpersonateUser on every replica, sheds sessions that expired by TTL when it
/// is read, and is built on start for sessions that predate it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn each_users_sessions_are_found_through_their_own_set() {
    use vsess_core::Store;
    let (redis, r, h) = setup(2, "config.vmacore.soap.sessionTimeout = 2\n").await;
    let set = format!("t:us:{READER}");
    let keys = |v: Vec<vsess_core::SessionRecord>| -> Vec<String> {
        v.into_iter().map(|r| r.key.as_str().to_owned()).collect()
    };
    let mut readers = Vec::new();
    for i in 0..3 {
        let c = r.login(i, READER, "reader-pw").await;
        let (_, body, _) = r.soap(i, &fetch("currentSession"), Some(&c)).await;
        readers.push((c, current_key(&body)));
    }
    let admin = r.login(1, ADMIN.0, ADMIN.1).await;
    let all: Vec<String> = readers.iter().map(|(_, k)| k.clone()).collect();
    assert_eq!(
        keys(h.sessions_of_user(READER, usize::MAX).await.unwrap()),
        all
    );
    assert_eq!(keys(h.sessions_of_user(READER, 2).await.unwrap()), all[..2]);
    assert_eq!(h.sessions_of_user(ADMIN.0, 9).await.unwrap().len(), 1);

    // A Logout on another replica than the Login leaves the set.
    r.soap(1, common::LOGOUT, Some(&readers[0].0)).await;
    assert_eq!(redis.cli(&["zcard", &set]), "2");
    // ImpersonateUser moves the admin's session to the reader's set.
    let impersonate = format!("<ImpersonateUser xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><userName>{READER}</userName></ImpersonateUser>");
    let (s, body, _) = r.soap(0, &impersonate, Some(&admin)).await;
    assert_eq!(s, 200, "{body}");
    assert_eq!(
        h.sessions_of_user(READER, usize::MAX).await.unwrap().len(),
        3
    );
    assert!(h.sessions_of_user(ADMIN.0, 9).await.unwrap().is_empty());

    // They all expire by TTL, which tells no one.
    tokio::time::sleep(Duration::from_millis(3500)).await;
    assert_eq!(redis.cli(&["zcard", &set]), "3");
    // The user's next login checks two members at random: at least one of them is dead.
    let c = r.login(0, READER, "reader-pw").await;
    let deadline = Instant::now() + Duration::from_secs(5);
    while redis.cli(&["zcard", &set]).parse::<u32>().unwrap() > 3 {
        assert!(Instant::now() < deadline, "the login pruned nothing");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // A read drops the rest.
    let (_, body, _) = r.soap(0, &fetch("currentSession"), Some(&c)).await;
    assert_eq!(
        keys(h.sessions_of_user(READER, usize::MAX).await.unwrap()),
        [current_key(&body)]
    );
    assert_eq!(redis.cli(&["zcard", &set]), "1");

    // Sessions from before the sets existed are indexed when a replica starts.
    redis.cli(&["del", &set, "t:us-built"]);
    assert!(h.sessions_of_user(READER, 9).await.unwrap().is_empty());
    let config = redis_config("", &redis.url(), "t");
    let _late = Replicas::start(1, &config).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while redis.cli(&["exists", "t:us-built"]) != "1" {
        assert!(
            Instant::now() < deadline,
            "the starting replica did not index"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        keys(h.sessions_of_user(READER, 9).await.unwrap()),
        [current_key(&body)]
    );
}

/// A user's set is read in pages by login time, ties broken by digest, skipping ended
/// sessions: whatever the limit, the first live sessions in that order come back.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn a_users_set_is_read_in_pages_that_skip_ended_sessions() {
    use vsess_core::Store;
    let (redis, r, h) = setup(1, "").await;
    let set = format!("t:us:{READER}");
    for _ in 0..7 {
        r.login(0, READER, "reader-pw").await;
    }
    // Give them tied login times, and end two of them behind the set's back.
    let members: Vec<String> = redis
        .cli(&["zrange", &set, "0", "-1"])
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(members.len(), 7);
    let scores = [1000, 1000, 1000, 2000, 2000, 3000, 1000];
    for (m, score) in members.iter().zip(scores) {
        redis.cli(&["zadd", &set, &score.to_string(), m]);
    }
    let mut order: Vec<(i32, &String)> = scores.into_iter().zip(&members).collect();
    order.sort();
    // The first of each tie: a page must reach past them.
    for (_, m) in [order[0], order[4]] {
        assert_eq!(redis.cli(&["del", &format!("t:{{s:{m}}}")]), "1");
    }
    let want: Vec<String> = [1, 2, 3, 5, 6].map(|i| order[i].1.clone()).to_vec();
    for limit in [6, 5, 4, 3, 2, 1] {
        // Each read drops the ended ones from the set; put them back for the next.
        for (score, m) in [order[0], order[4]] {
            redis.cli(&["zadd", &set, &score.to_string(), m]);
        }
        let got: Vec<String> = h
            .sessions_of_user(READER, limit)
            .await
            .unwrap()
            .into_iter()
            .map(|r| r.digest.to_hex())
            .collect();
        assert_eq!(got, want[..limit.min(want.len())], "limit {limit}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn lockout_counts_failures_from_every_replica() {
    let (_redis, r, _h) = setup(3, "[lockout]\nmax_failures = 3\nlock_seconds = 60\n").await;
    for i in 0..3 {
        let (s, body, _) = r
            .soap(
                i,
                &common::login_body("reader@vsphere.local", "wrong"),
                None,
            )
            .await;
        assert_eq!(s, 500, "{body}");
    }
    // Locked everywhere: even the right password fails.
    for i in 0..3 {
        let (s, body, _) = r
            .soap(
                i,
                &common::login_body("reader@vsphere.local", "reader-pw"),
                None,
            )
            .await;
        assert_eq!((s, fault_type(&body)), (500, "InvalidLogin"), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn activity_reaches_other_replicas_and_idle_sessions_expire_by_ttl() {
    let (_redis, r, _h) = setup(2, "config.vmacore.soap.sessionTimeout = 3\n").await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    for _ in 0..4 {
        r.soap(1, &fetch("currentSession"), Some(&cookie)).await;
    }
    // Replica B writes its activity within a second.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let (_, body, _) = r.soap(0, &fetch("sessionList"), Some(&cookie)).await;
    let calls: u64 = between(&body, "<callCount>", "</callCount>")
        .parse()
        .unwrap();
    assert!(calls >= 4, "replica A sees B's calls: {body}");
    // Then idle: Redis drops the key at the deadline, for every replica.
    let idle_from = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let live = r.servers[0].app.svc.store().list_sessions().await.unwrap();
        if live.is_empty() {
            break;
        }
        assert!(
            idle_from.elapsed() < Duration::from_secs(15),
            "never expired"
        );
    }
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&cookie)).await;
    assert!(!body.contains("<key>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn concurrent_creates_of_one_folder_name_succeed_once() {
    let (_redis, r, _h) = setup(3, "").await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    let r = std::sync::Arc::new(r);
    let create = "<CreateDatacenter xmlns=\"urn:vim25\"><_this type=\"Folder\">group-d1</_this><name>dc-race</name></CreateDatacenter>";
    let mut ok = 0;
    for (s, body, _) in r.race(12, create, Some(&cookie)).await {
        if s == 200 {
            ok += 1;
        } else {
            assert_eq!(fault_type(&body), "DuplicateName", "{body}");
        }
    }
    assert_eq!(ok, 1);
    let all = r.servers[2].app.svc.store().entities().await.unwrap();
    assert_eq!(all.iter().filter(|e| e.name == "dc-race").count(), 1);
    // The datacenter and its four folders, plus the root.
    assert_eq!(all.len(), 6, "{all:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn redis_outage_fails_fast_with_clear_errors_and_service_recovers() {
    // `always`: Redis writes and fsyncs a command before answering it. With `everysec` it
    // may answer before even writing while a background fsync is slow (for up to 2 s), and
    // a kill then loses the answered logins (seen once here under load).
    let mut redis = RedisProc::start_with(&["--appendfsync", "always"]);
    let (r, _h) = setup_on(&redis.url(), 2, "").await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    let id = cookie
        .split_once('=')
        .unwrap()
        .1
        .trim_matches('"')
        .to_owned();
    // Acknowledged sessions, on both replicas.
    let mut acked = vec![cookie.clone()];
    for i in 0..10 {
        acked.push(r.login(i, "reader@vsphere.local", "reader-pw").await);
    }
    redis.kill();

    let t = Instant::now();
    let (s, body, _) = r.soap(1, &fetch("currentSession"), Some(&cookie)).await;
    assert_eq!(s, 500, "{body}");
    assert_eq!(fault_type(&body), "SystemError", "{body}");
    assert!(body.contains("session store is unavailable"), "{body}");
    let rest = r
        .http
        .get(r.url(0, "/api/session"))
        .header("vmware-api-session-id", &id)
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 503);
    let health = r.http.get(r.url(1, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 503);
    assert!(health.text().await.unwrap().contains("Redis"));
    // Fast: well inside the client timeouts (the store's own timeout is 1 s here).
    eprintln!("three requests during the outage took {:?}", t.elapsed());
    assert!(t.elapsed() < Duration::from_secs(10), "{:?}", t.elapsed());

    redis.restart();
    // Recovery by itself: the replicas reconnect on their next use.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let h = r.http.get(r.url(0, "/healthz")).send().await.unwrap();
        if h.status() == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (n, c) in acked.iter().enumerate() {
        let (s, body, _) = r.soap(n, &fetch("currentSession"), Some(c)).await;
        assert_eq!(s, 200, "{body}");
        assert!(
            body.contains("<key>"),
            "acknowledged session {n} lost: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn redis_cluster_keeps_the_invariants() {
    const N: usize = 5;
    let cluster = RedisCluster::start(3);
    let (r, h) = setup_on(
        &cluster.url(),
        2,
        &format!("config.vmacore.soap.maxSessionCount = {N}\n"),
    )
    .await;
    let r = std::sync::Arc::new(r);
    // The session limit, raced across replicas.
    let cookies: Vec<String> = r
        .race(4 * N, &common::login_body(ADMIN.0, ADMIN.1), None)
        .await
        .into_iter()
        .filter(|(s, _, _)| *s == 200)
        .map(|(_, _, c)| c.unwrap())
        .collect();
    assert_eq!(cookies.len(), N);
    // Every session works on both replicas; one ended on A is refused by B.
    for c in &cookies {
        for i in 0..2 {
            let (_, body, _) = r.soap(i, &fetch("currentSession"), Some(c)).await;
            assert!(body.contains("<key>"), "{body}");
        }
    }
    let (s, _, _) = r.soap(0, common::LOGOUT, Some(&cookies[0])).await;
    assert_eq!(s, 200);
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&cookies[0])).await;
    assert!(!body.contains("<key>"), "{body}");
    // sessionList gathers sessions from every shard.
    let (_, body, _) = r.soap(1, &fetch("sessionList"), Some(&cookies[1])).await;
    assert_eq!(body.matches("<userName>").count(), N - 1, "{body}");
    // A clone ticket works once; user changes reach every replica.
    let (_, body, _) = r
        .soap(0, "<AcquireCloneTicket xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this></AcquireCloneTicket>", Some(&cookies[1]))
        .await;
    let ticket = between(&body, "<returnval>", "</returnval>").to_owned();
    let clone = format!("<CloneSession xmlns=\"urn:vim25\"><_this type=\"SessionManager\">SessionManager</_this><cloneTicket>{ticket}</cloneTicket></CloneSession>");
    let (s1, _, _) = r.soap(1, &clone, None).await;
    let (s2, _, _) = r.soap(0, &clone, None).await;
    assert_eq!((s1, s2), (200, 500));
    assert!(h.remove_user(ADMIN.0).await.unwrap());
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&cookies[2])).await;
    assert!(!body.contains("<key>"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn killing_redis_under_load_gives_clear_errors_and_no_replica_fails() {
    // `always`, so that the kill cannot take the users and the session with it (see above).
    let mut redis = RedisProc::start_with(&["--appendfsync", "always"]);
    let (r, _h) = setup_on(&redis.url(), 2, "").await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    let r = std::sync::Arc::new(r);
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut workers = Vec::new();
    for w in 0..8 {
        let (r, cookie, stop) = (r.clone(), cookie.clone(), stop.clone());
        workers.push(tokio::spawn(async move {
            let (mut ok, mut unavailable, mut i) = (0u32, 0u32, w);
            while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                i += 1;
                // Every answer is a real one: the session, or the store's clear fault.
                let (s, body, _) = r.soap(i, &fetch("currentSession"), Some(&cookie)).await;
                match s {
                    200 if body.contains("<key>") => ok += 1,
                    500 if body.contains("session store is unavailable") => unavailable += 1,
                    _ => panic!("unexpected answer during the outage: {s} {body}"),
                }
            }
            (ok, unavailable)
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    redis.kill();
    tokio::time::sleep(Duration::from_millis(1500)).await;
    redis.restart();
    // Load continues until both replicas answer the session again.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut back = true;
        for i in 0..2 {
            let (s, body, _) = r.soap(i, &fetch("currentSession"), Some(&cookie)).await;
            back &= s == 200 && body.contains("<key>");
        }
        if back {
            break;
        }
        assert!(Instant::now() < deadline, "did not recover under load");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let (mut ok, mut unavailable) = (0, 0);
    for w in workers {
        let (o, u) = w.await.unwrap();
        ok += o;
        unavailable += u;
    }
    eprintln!("under load: {ok} answered, {unavailable} refused while Redis was down");
    assert!(
        ok > 0 && unavailable > 0,
        "ok {ok}, unavailable {unavailable}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn rediss_with_a_private_ca_and_a_password_file() {
    // A CA, and a certificate for 127.0.0.1 that it signs.
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let leaf = rcgen::CertificateParams::new(vec!["127.0.0.1".to_owned()])
        .unwrap()
        .signed_by(&leaf_key, &issuer)
        .unwrap();
    let pki = tempfile::tempdir().unwrap();
    let file = |name: &str, data: &str| {
        let p = pki.path().join(name);
        std::fs::write(&p, data).unwrap();
        p
    };
    let ca = file("ca.pem", &ca_cert.pem());
    let cert = file("redis.pem", &leaf.pem());
    let key = file("redis.key", &leaf_key.serialize_pem());
    let pw = file("redis-password", "s3cret-pw\n");
    let redis = vsess_store::testing::RedisProc::start_tls(&cert, &key, &ca, "s3cret-pw");
    let url = format!("rediss://127.0.0.1:{}/0", redis.port);
    let toml = format!(
        "[store]\nkind = \"redis\"\nurl = \"{url}\"\npassword_file = \"{}\"\nca_file = \"{}\"\n",
        pw.display(),
        ca.display()
    );
    let config = vsess_server::Config::parse(&toml).unwrap();
    let vsess_server::StoreConfig::Redis(o) = config.store.clone() else {
        panic!("not redis")
    };
    let handle = vsess_store::RedisStore::connect(o.clone()).await.unwrap();
    add_user(&handle, ADMIN.0, Role::Admin, ADMIN.1).await;
    let r = Replicas::start(2, &config).await;
    let cookie = r.login(0, ADMIN.0, ADMIN.1).await;
    let (_, body, _) = r.soap(1, &fetch("currentSession"), Some(&cookie)).await;
    assert!(body.contains("<key>"), "{body}");

    // Without the CA, the server's certificate is refused; without the password, AUTH is.
    let mut no_ca = o.clone();
    no_ca.ca_file = None;
    let err = vsess_store::RedisStore::connect(no_ca)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("cannot reach Redis"), "{err}");
    let mut no_pw = o;
    no_pw.password_file = None;
    let err = vsess_store::RedisStore::connect(no_pw)
        .await
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("NOAUTH") || err.contains("auth"), "{err}");
    assert!(!err.contains("s3cret"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "needs Debian's redis-server (scripts/test installs it)"]
async fn metrics_count_every_replicas_sessions_and_each_ones_own_events() {
    let (_redis, r, _h) = setup(2, "[metrics]\nenabled = true\n").await;
    let a = r.login(0, ADMIN.0, ADMIN.1).await;
    r.login(0, ADMIN.0, ADMIN.1).await;
    r.login(1, ADMIN.0, ADMIN.1).await;
    let scrape = |i: usize| {
        let url = r.url(i, "/metrics");
        let http = r.http.clone();
        async move {
            let text = http.get(url).send().await.unwrap().text().await.unwrap();
            let value = |name: &str| -> u64 {
                text.lines()
                    .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
                    .unwrap_or_else(|| panic!("no {name} in\n{text}"))
                    .parse()
                    .unwrap()
            };
            (
                value("vsess_sessions"),
                value("vsess_sessions_created_total"),
                value("vsess_sessions_ended_total{reason=\"logout\"}"),
            )
        }
    };
    assert_eq!(scrape(0).await, (3, 2, 0));
    assert_eq!(scrape(1).await, (3, 1, 0));
    let (s, _, _) = r.soap(1, common::LOGOUT, Some(&a)).await;
    assert_eq!(s, 200);
    assert_eq!(scrape(0).await, (2, 2, 0));
    assert_eq!(scrape(1).await, (2, 1, 1));
}
