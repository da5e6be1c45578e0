//! Logs in through govmomi's session cache, as govc does, and says whether the cached
//! session was reused.
//!
//!     GOVC_URL=https://user:pass@127.0.0.1:8989/sdk GOVC_INSECURE=1 \
//!         cargo run -p vsess-client --example cached_login
//!
//! Prints one line: `reused <key>` or `new <key>` (the UserSession key, never the id).
//! Reads `GOVC_URL`, `GOVC_INSECURE`, `GOVC_USERNAME`/`GOVC_PASSWORD` (when the URL has
//! no user) and `GOVMOMI_HOME`, like govc.
use std::process::ExitCode;
use vsess_client::cache::Session;

fn truthy(v: &str) -> bool {
    matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on")
}

#[tokio::main]
async fn main() -> ExitCode {
    // Warnings (a corrupt cache file, for one) go to stderr; RUST_LOG overrides.
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    let Ok(raw) = std::env::var("GOVC_URL") else {
        eprintln!("cached_login: set GOVC_URL=https://user:pass@host:port/sdk");
        return ExitCode::from(2);
    };
    let insecure = std::env::var("GOVC_INSECURE").is_ok_and(|v| truthy(&v));
    let mut session = match Session::new(&raw, insecure) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("cached_login: {e}");
            return ExitCode::from(2);
        }
    };
    if session.url.username().is_empty() {
        if let Ok(user) = std::env::var("GOVC_USERNAME") {
            let _ = session.url.set_username(&user);
            let pw = std::env::var("GOVC_PASSWORD").ok();
            let _ = session.url.set_password(pw.as_deref());
        }
    }
    match session.login().await {
        Ok(login) => {
            println!(
                "{} {}",
                if login.reused { "reused" } else { "new" },
                login.session.key
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cached_login: {e}");
            ExitCode::from(1)
        }
    }
}
