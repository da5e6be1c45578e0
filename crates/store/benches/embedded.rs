//! The embedded store's per-request operation: `touch_session` (look a session up by the
//! digest of its id and record the call in memory; the touch is written lazily by
//! `flush`), with 100,000 sessions in the store.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::io::Write;
use vsess_core::{Expiry, IdDigest, Mutation, Role, SessionId, SessionKey, SessionRecord, Store};
use vsess_store::EmbeddedStore;

const SESSIONS: usize = 100_000;
const USER: &str = "administrator@vsphere.local";

fn touch_session(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    // Inserting 100,000 sessions one by one would fsync 100,000 times; instead write
    // them as the log a previous run left, which `open` replays and compacts.
    let mut digests: Vec<IdDigest> = Vec::with_capacity(SESSIONS);
    {
        let mut log = std::io::BufWriter::new(
            std::fs::File::create(dir.path().join("sessions.log")).unwrap(),
        );
        for _ in 0..SESSIONS {
            let digest = SessionId::generate().digest();
            let rec = SessionRecord {
                digest,
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
                user_agent: "govc/0.24.2".into(),
                call_count: 0,
                user_id: Default::default(),
            };
            serde_json::to_writer(&mut log, &Mutation::PutSession { rec }).unwrap();
            log.write_all(b"\n").unwrap();
            digests.push(digest);
        }
        log.flush().unwrap();
    }
    let store = EmbeddedStore::open(dir.path()).unwrap();
    assert_eq!(store.list_sessions_len(), SESSIONS);
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let later = now + Duration::seconds(1);
    // vCenter's defaults, as the server passes them.
    let expiry = Expiry {
        idle: Duration::seconds(1800),
        lifetime: Some(Duration::seconds(86400)),
    };
    assert!(rt
        .block_on(store.touch_session(&digests[0], later, expiry))
        .unwrap()
        .is_some());
    let unknown = SessionId::generate().digest();

    let mut g = c.benchmark_group("embedded_touch_100k_sessions");
    let mut i = 0;
    g.bench_function("live_session", |b| {
        b.iter(|| {
            i = (i + 1) % digests.len();
            rt.block_on(store.touch_session(black_box(&digests[i]), later, expiry))
        })
    });
    g.bench_function("unknown_digest", |b| {
        b.iter(|| rt.block_on(store.touch_session(black_box(&unknown), later, expiry)))
    });
    g.finish();
}

criterion_group!(benches, touch_session);
criterion_main!(benches);
