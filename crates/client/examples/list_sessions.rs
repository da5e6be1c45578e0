//! Lists the sessions of a vCenter-compatible server (needs Sessions.TerminateSession),
//! logging in through the session cache.
//!
//!     GOVC_URL=https://user:pass@127.0.0.1:8989/sdk GOVC_INSECURE=1 \
//!         cargo run -p vsess-client --example list_sessions
use std::process::ExitCode;
use vsess_client::cache::Session;

#[tokio::main]
async fn main() -> ExitCode {
    let Ok(raw) = std::env::var("GOVC_URL") else {
        eprintln!("list_sessions: set GOVC_URL=https://user:pass@host:port/sdk");
        return ExitCode::from(2);
    };
    let insecure = std::env::var("GOVC_INSECURE").is_ok_and(|v| v == "1" || v == "true");
    let result = async {
        let login = Session::new(&raw, insecure)?.login().await?;
        let now = login.client.current_time().await?;
        let sessions = login.client.session_list().await?;
        Ok::<_, vsess_client::Error>((login.session.key, now, sessions))
    }
    .await;
    match result {
        Ok((me, now, sessions)) => {
            println!("{:<38} {:<30} {:>8}  Agent", "Key", "Name", "Idle");
            for s in sessions {
                let idle = if s.key == me {
                    ".".to_owned()
                } else {
                    format!("{}s", (now - s.last_active_time).num_seconds().max(0))
                };
                println!(
                    "{:<38} {:<30} {:>8}  {}",
                    s.key, s.user_name, idle, s.user_agent
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("list_sessions: {e}");
            ExitCode::from(1)
        }
    }
}
