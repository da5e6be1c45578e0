//! `vsess-bench-seed`: writes a data directory's `sessions.log` with N live sessions, for
//! the scale scenario (S5) of bench/run.
//!
//! Each line is a `vsess_core::Mutation::PutSession` exactly as the embedded store writes
//! it, with a fresh random 160-bit session id (as `SessionId::generate` makes them; only
//! its SHA-256 digest is stored) and a public key shaped like vCenter's. The first `--keep`
//! ids are written, one per line, to `--ids` (mode 0600) so the harness can drive
//! requests with them.
//!
//! Usage: `vsess-bench-seed --data-dir DIR --count N --user NAME [--role Admin]
//!         [--ids FILE] [--keep K]`
//!
//! The user must exist in `DIR/users.json` with that role (`vsess user add`): the sessions
//! carry the account's id from there, as a Login's would, or the server ends them at their
//! first use. Any existing `sessions.log` is replaced.
use anyhow::{anyhow, Context, Result};
use chrono::Utc;
use rand::{RngCore, SeedableRng};
use std::fs::OpenOptions;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::PathBuf;
use std::time::Instant;
use vsess_core::{MemoryState, Mutation, Role, SessionId, SessionKey, SessionRecord};

struct Args {
    data_dir: PathBuf,
    count: usize,
    user: String,
    role: Role,
    ids: Option<PathBuf>,
    keep: usize,
}

fn args() -> Result<Args> {
    let (mut data_dir, mut count, mut user) = (None, None, None);
    let (mut role, mut ids, mut keep) = (Role::Admin, None, 4usize);
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut value = || it.next().ok_or_else(|| anyhow!("{a} needs a value"));
        match a.as_str() {
            "--data-dir" => data_dir = Some(PathBuf::from(value()?)),
            "--count" => count = Some(value()?.parse().context("--count")?),
            "--user" => user = Some(value()?),
            "--role" => {
                role = match value()?.as_str() {
                    "Admin" => Role::Admin,
                    "ReadOnly" => Role::ReadOnly,
                    r => return Err(anyhow!("unknown role {r}")),
                }
            }
            "--ids" => ids = Some(PathBuf::from(value()?)),
            "--keep" => keep = value()?.parse().context("--keep")?,
            other => return Err(anyhow!("unknown argument {other}")),
        }
    }
    Ok(Args {
        data_dir: data_dir.ok_or_else(|| anyhow!("--data-dir is required"))?,
        count: count.ok_or_else(|| anyhow!("--count is required"))?,
        user: user.ok_or_else(|| anyhow!("--user is required"))?,
        role,
        ids,
        keep,
    })
}

/// A public key like `SessionKey::generate`'s: a v4 UUID whose first byte is 0x52.
fn key(rng: &mut impl RngCore) -> SessionKey {
    let mut b = [0u8; 16];
    rng.fill_bytes(&mut b);
    b[0] = 0x52;
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    let h = hex::encode(b);
    SessionKey(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

/// The id of the account `user` in `DIR/users.json` (see `vsess_core::User::id`).
fn account_id(dir: &std::path::Path, user: &str) -> Result<String> {
    #[derive(serde::Deserialize)]
    struct Users {
        users: Vec<vsess_core::User>,
    }
    let path = dir.join("users.json");
    let text = std::fs::read(&path).with_context(|| format!("cannot read {}", path.display()))?;
    let users: Users =
        serde_json::from_slice(&text).with_context(|| format!("{}", path.display()))?;
    users
        .users
        .into_iter()
        .find(|u| u.name.as_str() == user)
        .map(|u| u.id)
        .ok_or_else(|| anyhow!("no user {user} in {}: add it first", path.display()))
}

fn main() -> Result<()> {
    let a = args()?;
    let started = Instant::now();
    let user_id: std::sync::Arc<str> = account_id(&a.data_dir, &a.user)?.into();
    // A CSPRNG seeded from the OS: as unpredictable as OsRng, without a syscall per id.
    let mut rng = rand::rngs::StdRng::from_rng(rand::rngs::OsRng)?;
    let path = a.data_dir.join("sessions.log");
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    let mut kept = Vec::new();
    let now = Utc::now();
    for i in 0..a.count {
        let mut secret = [0u8; 20];
        rng.fill_bytes(&mut secret);
        let id = SessionId::parse(&hex::encode(secret))
            .ok_or_else(|| anyhow!("generated an invalid session id"))?;
        let rec = SessionRecord {
            digest: id.digest(),
            key: key(&mut rng),
            user_name: a.user.as_str().into(),
            full_name: a.user.as_str().into(),
            role: a.role,
            login_user: a.user.as_str().into(),
            login_time: now,
            last_active_time: now,
            locale: "en".into(),
            message_locale: "en".into(),
            extension_session: false,
            ip_address: "127.0.0.1".into(),
            user_agent: format!("vsess-bench-seed/{}", i % 16).into(),
            call_count: 0,
            user_id: user_id.clone(),
        };
        serde_json::to_writer(&mut out, &Mutation::PutSession { rec })?;
        out.write_all(b"\n")?;
        if i < a.keep {
            kept.push(id.expose().to_owned());
        }
    }
    let file = out.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    let size = file.metadata()?.len();
    if let Some(p) = &a.ids {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(p)
            .with_context(|| format!("cannot create {}", p.display()))?;
        for id in &kept {
            writeln!(f, "{id}")?;
        }
    }
    // In-memory sizes, for reading the RSS figures: MemoryState keeps each session as one
    // compact slot ("entry_bytes") plus entries in two hash tables and two expiry indexes
    // ("index_entry_bytes"); the names, locales, address and agent are shared per user.
    // "record_bytes" is the SessionRecord that the API and the log carry.
    let sizes = MemoryState::session_sizes();
    println!(
        "{{\"sessions\": {}, \"log_bytes\": {size}, \"seconds\": {:.3}, \"record_bytes\": {}, \"entry_bytes\": {}, \"index_entry_bytes\": {}}}",
        a.count,
        started.elapsed().as_secs_f64(),
        std::mem::size_of::<SessionRecord>(),
        sizes.slot,
        sizes.index,
    );
    Ok(())
}
