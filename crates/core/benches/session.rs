//! Hot path of every authenticated request: resolving a session id to a live session
//! ([`SessionService::authenticate`]: digest, lookup, expiry and role checks, and the
//! touch), against the memory store holding 10,000 sessions. Also the reaper's pass over a
//! large [`MemoryState`].
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::net::IpAddr;
use std::sync::Arc;
use vsess_core::{
    AboutInfo, Caller, IdDigest, InlineVerifier, ManualClock, MemoryState, MemoryStore, Mutation,
    Policy, Role, SessionId, SessionKey, SessionRecord, SessionService, Store, User, UserName,
};

const SESSIONS: usize = 10_000;
const USER: &str = "administrator@vsphere.local";
const USER_AGENT: &str = "pyvmomi 9.1.1.0 OSS Python/3.11.7 (Linux; 6.18.44-fc-v669; x86_64)";

fn about() -> AboutInfo {
    AboutInfo {
        name: "VMware vCenter Server".into(),
        full_name: "VMware vCenter Server 8.0.3".into(),
        vendor: "VMware, Inc.".into(),
        version: "8.0.3".into(),
        build: "1".into(),
        os_type: "linux-x64".into(),
        product_line_id: "vpx".into(),
        api_type: "VirtualCenter".into(),
        api_version: "8.0.3.0".into(),
        instance_uuid: "u".into(),
        license_product_name: "VMware VirtualCenter Server".into(),
        license_product_version: "8.0".into(),
    }
}

struct Fixture {
    rt: tokio::runtime::Runtime,
    svc: SessionService,
    /// One caller per stored session, as a client presents it (same address and agent,
    /// so authenticate only touches and never rewrites the record).
    callers: Vec<Caller>,
}

fn fixture() -> Fixture {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    // The hash is never checked: sessions are inserted directly, without Login (argon2id
    // would take minutes for 10,000 logins).
    let store = Arc::new(MemoryStore::new([User {
        name: UserName::parse(USER).unwrap(),
        full_name: String::new(),
        role: Role::Admin,
        password_hash: String::new(),
        id: String::new(),
        unlocks: 0,
    }]));
    let ip: IpAddr = "127.0.0.1".parse().unwrap();
    let mut callers = Vec::with_capacity(SESSIONS);
    rt.block_on(async {
        for _ in 0..SESSIONS {
            let id = SessionId::generate();
            let rec = SessionRecord {
                digest: id.digest(),
                key: SessionKey::generate(),
                user_name: USER.into(),
                full_name: USER.into(),
                role: Role::Admin,
                login_user: USER.into(),
                login_time: now,
                last_active_time: now,
                locale: "en".into(),
                message_locale: "en".into(),
                extension_session: false,
                ip_address: ip.to_string().into(),
                user_agent: USER_AGENT.into(),
                call_count: 0,
                user_id: Default::default(),
            };
            assert!(store.insert_session(rec, usize::MAX).await.unwrap());
            callers.push(Caller {
                session: Some(id),
                ip,
                user_agent: USER_AGENT.into(),
            });
        }
    });
    // The clock never moves, so no session expires however long the benchmark runs.
    let svc = SessionService::new(
        store,
        Arc::new(ManualClock::new(now)),
        Policy::default(),
        Arc::new(InlineVerifier),
        about(),
    );
    Fixture { rt, svc, callers }
}

fn authenticate(c: &mut Criterion) {
    let f = fixture();
    let unknown = Caller {
        session: Some(SessionId::generate()),
        ..f.callers[0].clone()
    };
    f.rt.block_on(async {
        assert!(f.svc.authenticate(&f.callers[0]).await.unwrap().is_some());
        assert!(f.svc.authenticate(&unknown).await.unwrap().is_none());
    });

    let mut g = c.benchmark_group("authenticate_10k_sessions");
    let mut i = 0;
    g.bench_function("live_session", |b| {
        b.iter(|| {
            // A different session each time, as under real load.
            i = (i + 1) % f.callers.len();
            f.rt.block_on(f.svc.authenticate(black_box(&f.callers[i])))
        })
    });
    g.bench_function("unknown_id", |b| {
        b.iter(|| f.rt.block_on(f.svc.authenticate(black_box(&unknown))))
    });
    g.finish();
}

fn digest(c: &mut Criterion) {
    let id = SessionId::generate();
    let secret = id.expose();
    c.bench_function("id_digest_of_40_hex", |b| {
        b.iter(|| IdDigest::of(black_box(secret)))
    });
}

/// A state holding `n` sessions of one user, all last active at `now`.
fn state(n: usize, now: chrono::DateTime<Utc>) -> MemoryState {
    let mut s = MemoryState::with_capacity(n);
    for i in 0..n {
        let rec = SessionRecord {
            digest: IdDigest::of(&i.to_string()),
            key: SessionKey::generate(),
            user_name: USER.into(),
            full_name: USER.into(),
            role: Role::Admin,
            login_user: USER.into(),
            login_time: now,
            last_active_time: now,
            locale: "en".into(),
            message_locale: "en".into(),
            extension_session: false,
            ip_address: "127.0.0.1".into(),
            user_agent: USER_AGENT.into(),
            call_count: 0,
            user_id: Default::default(),
        };
        s.apply(&Mutation::PutSession { rec });
    }
    s
}

/// The reaper's pass over a large store where nothing has expired (the usual case), and
/// what it used to cost: listing (cloning) every session and testing each.
/// `VSESS_BENCH_REAP_SESSIONS` sets the size (default 100,000).
fn reap(c: &mut Criterion) {
    let n = std::env::var("VSESS_BENCH_REAP_SESSIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut s = state(n, now);
    let idle = chrono::Duration::minutes(30);
    let later = now + chrono::Duration::minutes(10);
    let mut g = c.benchmark_group(format!("reap_{n}_sessions"));
    g.sample_size(10);
    g.bench_function("indexed_nothing_due", |b| {
        b.iter(|| s.reap(black_box(later), idle, None))
    });
    g.bench_function("list_and_filter", |b| {
        b.iter(|| {
            s.sessions()
                .into_iter()
                .filter(|r| r.expired(black_box(later), idle, None))
                .count()
        })
    });
    g.finish();
}

/// Replaying a log's `PutSession` records into an empty, pre-sized state (the in-memory
/// part of a restart), 100,000 sessions of one user from 16 user agents.
fn replay(c: &mut Criterion) {
    let n = 100_000;
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let muts: Vec<Mutation> = (0..n)
        .map(|i| Mutation::PutSession {
            rec: SessionRecord {
                digest: IdDigest::of(&i.to_string()),
                key: SessionKey::generate(),
                user_name: USER.into(),
                full_name: USER.into(),
                role: Role::Admin,
                login_user: USER.into(),
                login_time: now,
                last_active_time: now,
                locale: "en".into(),
                message_locale: "en".into(),
                extension_session: false,
                ip_address: "127.0.0.1".into(),
                user_agent: format!("{USER_AGENT} {}", i % 16).into(),
                call_count: 0,
                user_id: Default::default(),
            },
        })
        .collect();
    let mut g = c.benchmark_group("replay_100k_sessions");
    g.sample_size(10);
    g.bench_function("apply_put_session", |b| {
        b.iter(|| {
            let mut s = MemoryState::with_capacity(n);
            for m in &muts {
                s.apply(m);
            }
            s
        })
    });
    g.finish();
}

criterion_group!(benches, authenticate, digest, reap, replay);
criterion_main!(benches);
