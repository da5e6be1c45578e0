//! `vsess`: the session server and its tools.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

/// mimalloc: the server's requests are mostly small, short-lived allocations, which glibc's
/// malloc served at about 20% of the CPU of an authenticated call (callgrind, bench S1).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

mod serve;
mod session;
mod store;
mod user;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// vsess: vCenter's SessionManager, on every endpoint real clients use.
///
/// Run `vsess serve` to start a server on https://127.0.0.1:8989 with a durable store in
/// ./vsess-data. On first start it creates administrator@vsphere.local, prints its
/// password once and writes it to ./vsess-data/administrator-password (mode 0600).
///
/// Then `vsess login https://USER@127.0.0.1:8989 -k`, `vsess ls`, `vsess rm --idle 30m`:
/// your sessions on vsess, vcsim or vCenter, cached like govc's.
///
/// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration, 3 cannot
/// connect, 4 TLS verification failed, 5 authentication failed or not logged in.
#[derive(Parser)]
#[command(name = "vsess", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the session server (SOAP /sdk).
    Serve(serve::ServeArgs),
    /// Manage the users in a data directory or in Redis (works while servers run).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Move state between the embedded store and Redis.
    #[command(subcommand)]
    Store(store::StoreCommand),
    #[command(flatten)]
    Session(session::SessionCommand),
}

/// A failure with its exit code.
pub struct Failure {
    pub code: u8,
    pub message: String,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Self {
        Self {
            code: 2,
            message: message.into(),
        }
    }

    pub fn runtime(message: impl Into<String>) -> Self {
        Self {
            code: 1,
            message: message.into(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Store(cmd) => store::run(cmd),
        Command::User(cmd) => user::run(cmd),
        Command::Session(cmd) => session::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("vsess: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
    }
}
