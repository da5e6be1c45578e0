//! `EmbeddedStore::open` on a log of live sessions (the restart path, S5 of bench/run):
//! replaying 20,000 `PutSession` lines as an older vsess (or `vsess-bench-seed`) wrote them.
//!
//! `VSESS_REPLAY_DIR=DIR cargo bench -p vsess-store --bench replay` instead opens an
//! existing data directory (for instance one seeded with 1M sessions) three times and
//! prints the wall time of each open, without criterion.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{TimeZone, Utc};
use criterion::{criterion_group, criterion_main, Criterion};
use std::io::Write;
use std::time::Instant;
use vsess_core::{Mutation, Role, SessionId, SessionKey, SessionRecord};
use vsess_store::EmbeddedStore;

const SESSIONS: usize = 20_000;
const USER: &str = "administrator@vsphere.local";

fn write_log(dir: &std::path::Path, n: usize) {
    let now = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
    let mut log = std::io::BufWriter::new(std::fs::File::create(dir.join("sessions.log")).unwrap());
    for _ in 0..n {
        let rec = SessionRecord {
            digest: SessionId::generate().digest(),
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
    }
    log.flush().unwrap();
}

/// This process's user + system CPU time so far, in seconds (from `/proc/self/stat`).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<f64> = after
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // Fields 14 and 15 (utime, stime) are the 12th and 13th after the command name.
    (f.get(11).unwrap_or(&0.0) + f.get(12).unwrap_or(&0.0)) / 100.0
}

fn open(c: &mut Criterion) {
    if let Some(dir) = std::env::var_os("VSESS_REPLAY_DIR") {
        for _ in 0..3 {
            let (t, cpu) = (Instant::now(), cpu_seconds());
            let s = EmbeddedStore::open(std::path::Path::new(&dir)).unwrap();
            let opened = t.elapsed();
            let cpu = cpu_seconds() - cpu;
            let n = s.list_sessions_len();
            let t = Instant::now();
            drop(s);
            println!(
                "open {:.3} s, {cpu:.2} s CPU ({n} sessions), drop {:.3} s",
                opened.as_secs_f64(),
                t.elapsed().as_secs_f64()
            );
        }
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    write_log(dir.path(), SESSIONS);
    let mut g = c.benchmark_group("embedded_open");
    g.sample_size(10);
    g.bench_function("replay_20k_sessions", |b| {
        b.iter(|| {
            let s = EmbeddedStore::open(dir.path()).unwrap();
            assert_eq!(s.list_sessions_len(), SESSIONS);
        })
    });
    g.finish();
}

criterion_group!(benches, open);
criterion_main!(benches);
