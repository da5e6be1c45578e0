//! `vsess`: the session server and its tools.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

mod serve;
mod user;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// vsess: vCenter's SessionManager, on every endpoint real clients use.
///
/// Run `vsess serve` to start a server on https://127.0.0.1:8989 with a durable store in
/// ./vsess-data. On first start it creates administrator@vsphere.local, prints its
/// password once and writes it to ./vsess-data/administrator-password (mode 0600).
///
/// Exit codes: 0 success, 1 runtime failure, 2 bad usage or configuration.
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
    /// Manage the users in a data directory (works while a server runs).
    #[command(subcommand)]
    User(user::UserCommand),
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
        Command::User(cmd) => user::run(cmd),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("vsess: error: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
