//! The session commands against vcsim, govmomi's vCenter simulator (0.24.2): no
//! `/v2/session` there, so `vsess ls` and `rm` use sessionList and TerminateSession.
//!
//! Ignored by default because they need the vcsim binary; `scripts/test` builds it and runs
//!
//!     VCSIM_BIN=.../govmomi/bin/vcsim cargo test -p vsess-cli --test vcsim -- --include-ignored
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{client, soap, BIN, SM};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// One vcsim on a free 127.0.0.1 port; killed (by its handle) when dropped.
struct Vcsim {
    child: Child,
    port: u16,
}

impl Vcsim {
    fn start() -> Self {
        let bin = std::env::var_os("VCSIM_BIN")
            .unwrap_or_else(|| panic!("VCSIM_BIN is not set: point it at govmomi's vcsim"));
        let mut child = Command::new(&bin)
            .args(["-l", "127.0.0.1:0"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start vcsim from VCSIM_BIN={bin:?}: {e}"));
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains("GOVC_URL=") {
                    let _ = tx.send(line);
                }
            }
        });
        let line = rx.recv_timeout(Duration::from_secs(30)).unwrap();
        // "export GOVC_URL=https://user:pass@127.0.0.1:PORT/sdk GOVC_SIM_PID=N"
        let port = line
            .split_once("@127.0.0.1:")
            .and_then(|(_, rest)| rest.split_once('/'))
            .and_then(|(p, _)| p.parse::<u16>().ok())
            .unwrap_or_else(|| panic!("unexpected vcsim output: {line}"));
        Vcsim { child, port }
    }
}

impl Drop for Vcsim {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn vsess(home: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let out = Command::new(BIN)
        .args(args)
        .env_clear()
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("GOVMOMI_HOME", home.join("govmomi"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// TerminateSession with a list fails as a whole on vcsim when one key is unknown (it
/// ends none): `vsess rm K1 bogus K2` ends the keys one by one, so K1 and K2 are ended
/// and reported, and only `bogus` fails.
#[test]
#[ignore = "needs VCSIM_BIN"]
fn rm_reports_each_key_on_vcsim() {
    let sim = Vcsim::start();
    let home = tempfile::tempdir().unwrap();
    let url = format!("https://user:pass@127.0.0.1:{}/sdk", sim.port);
    let (code, _, err) = vsess(home.path(), &["login", &url, "-k"]);
    assert_eq!(code, Some(0), "{err}");
    let c = client();
    let base = format!("https://127.0.0.1:{}", sim.port);
    let login = format!("<Login>{SM}<userName>user</userName><password>pass</password></Login>");
    let keys: Vec<String> = (0..2)
        .map(|_| {
            let (s, body, _) = soap(&c, &base, &login, None);
            assert_eq!(s, 200, "{body}");
            body.split("<key>")
                .nth(1)
                .unwrap()
                .split("</key>")
                .next()
                .unwrap()
                .to_owned()
        })
        .collect();
    let bogus = "52a1b2c3-dead-beef-0000-000000000000";
    let (code, out, err) = vsess(home.path(), &["rm", &keys[0], bogus, &keys[1]]);
    assert_eq!(code, Some(1), "{out}{err}");
    assert_eq!(
        out,
        format!("ended 2 sessions\n  {}\n  {}\n", keys[0], keys[1]),
        "{err}"
    );
    assert!(err.contains(bogus) && !err.contains(&keys[0]), "{err}");
    let (code, out, err) = vsess(home.path(), &["ls", "--json"]);
    assert_eq!(code, Some(0), "{err}");
    for k in &keys {
        assert!(!out.contains(k.as_str()), "{k} lives on: {out}");
    }
}
