//! `vsess`: the session server and its tools.
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
// The doc comments of the command-line types are clap's `--help` text, written for a
// terminal: `[store]` there is a TOML section and `USER:PASSWORD@HOST` a URL, not links.
#![allow(rustdoc::broken_intra_doc_links)]

/// The allocator: mimalloc for `vsess serve`, the system's for the short-lived commands.
///
/// mimalloc: the server's requests are mostly small, short-lived allocations, which glibc's
/// malloc served at about 20% of the CPU of an authenticated call (callgrind, bench S1).
/// It is entered through [`mi::Mi`], which picks mimalloc's cheapest entry point per layout.
/// But setting it up costs a CLI run more than it saves: it reserves an arena with
/// MADV_HUGEPAGE, so the first allocation faults in a 2 MiB page for the kernel to zero
/// (with THP `defrag=madvise`, a common default, after compacting memory: runs of tens
/// of ms now and then), and it purges its pages at exit. That was ~20% of the CPU time
/// of a cached `vsess ls`.
///
/// Which one is decided once, before the first allocation, by [`CHOOSE_ALLOCATOR`], and
/// never changes: every block is freed or grown by the allocator that made it.
#[global_allocator]
static GLOBAL: Allocator = Allocator;

struct Allocator;

/// Set once, before `main` and before any allocation, never changed afterwards.
static USE_MIMALLOC: AtomicBool = AtomicBool::new(!ARGS_IN_CONSTRUCTORS);

/// glibc passes `argc, argv, envp` to `.init_array` functions; elsewhere, mimalloc always.
const ARGS_IN_CONSTRUCTORS: bool = cfg!(all(target_os = "linux", target_env = "gnu"));

#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[used]
#[link_section = ".init_array.00100"]
static CHOOSE_ALLOCATOR: extern "C" fn(
    std::ffi::c_int,
    *const *const std::ffi::c_char,
    *const *const std::ffi::c_char,
) = {
    extern "C" fn choose(
        argc: std::ffi::c_int,
        argv: *const *const std::ffi::c_char,
        _envp: *const *const std::ffi::c_char,
    ) {
        // `.init_array.00100` runs before the default-priority constructors (mimalloc's
        // included) and before Rust's runtime: nothing has been allocated yet.
        let serve = argc > 1
            && !argv.is_null()
            // SAFETY: glibc passes main's argc and argv: argv[1] is a NUL-terminated string.
            && unsafe {
                let arg = *argv.add(1);
                !arg.is_null() && std::ffi::CStr::from_ptr(arg).to_bytes() == b"serve"
            };
        USE_MIMALLOC.store(serve, Ordering::Relaxed);
    }
    choose
};

// SAFETY: each call forwards to one allocator, the same for the whole process (the flag
// is set before the first allocation and never changes), so blocks are always freed and
// reallocated by the allocator that made them.
unsafe impl GlobalAlloc for Allocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mi::Mi.alloc(layout) }
        } else {
            unsafe { System.alloc(layout) }
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mi::Mi.alloc_zeroed(layout) }
        } else {
            unsafe { System.alloc_zeroed(layout) }
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mi::Mi.dealloc(ptr, layout) }
        } else {
            unsafe { System.dealloc(ptr, layout) }
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if USE_MIMALLOC.load(Ordering::Relaxed) {
            unsafe { mi::Mi.realloc(ptr, layout, new_size) }
        } else {
            unsafe { System.realloc(ptr, layout, new_size) }
        }
    }
}

/// `println!` for a command's output: a reader that went away (`vsess user list | head`)
/// ends the output quietly, where `println!` would panic ("failed printing to stdout",
/// exit 101). SIGPIPE stays ignored, as Rust sets it: restoring its default would also
/// kill a command whose server or Redis closes a socket it writes to with `writev`
/// (hyper, rustls and redis-rs do), silently, with status 141.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::session::emit(&format!("{}\n", format_args!($($arg)*)))
    };
}

mod clilog;
mod logfmt;
mod logwriter;
mod mi;
mod serve;
mod session;
mod store;
mod user;

use clap::{Parser, Subcommand};
use std::alloc::{GlobalAlloc, Layout, System};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};

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
/// connect or no answer in time, 4 TLS verification failed, 5 authentication failed or not
/// logged in.
#[derive(Parser)]
#[command(name = "vsess", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the session server (SOAP /sdk, VI/JSON, vAPI REST and JSON-RPC at /api).
    Serve(serve::ServeArgs),
    /// Manage the users in a data directory or in Redis (works while servers run).
    #[command(subcommand)]
    User(user::UserCommand),
    /// Move state between the embedded store and Redis.
    #[command(subcommand)]
    Store(store::StoreCommand),
    #[command(flatten)]
    Session(session::SessionCommand),
    /// Print a shell completion script for vsess.
    #[command(after_help = "\
Examples:
  vsess completion bash > ~/.local/share/bash-completion/completions/vsess
  vsess completion zsh > \"${fpath[1]}/_vsess\"
  vsess completion fish > ~/.config/fish/completions/vsess.fish
  vsess completion powershell >> $PROFILE

The script completes commands and flags; open a new shell to use it.")]
    Completion {
        /// The shell to write the script for.
        shell: clap_complete::Shell,
    },
}

/// The session commands alone. `vsess ls` and the like are parsed with this, so that
/// clap does not build the argument trees of `serve`, `user` and `store` (most of its
/// work, ~5% of the instructions of a cached `vsess ls`); help, errors and `--version`
/// read the same.
#[derive(Parser)]
#[command(name = "vsess", version, propagate_version = true)]
struct SessionCli {
    #[command(subcommand)]
    command: session::SessionCommand,
}

/// The names of [`session::SessionCommand`]'s subcommands (a test checks them).
const SESSION_COMMANDS: &[&str] = &["login", "ls", "rm", "logout", "whoami"];

fn parse() -> Command {
    let first = std::env::args_os().nth(1);
    if first
        .as_deref()
        .and_then(|a| a.to_str())
        .is_some_and(|a| SESSION_COMMANDS.contains(&a))
    {
        Command::Session(SessionCli::parse().command)
    } else {
        Cli::parse().command
    }
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

/// [`vsess_store::check_data_dir`]: a directory that is not one vsess may use (someone
/// else's, or one every user may write to) is a usage error; reading it is checked later.
pub(crate) fn check_data_dir_usage(dir: &std::path::Path) -> Result<(), Failure> {
    match vsess_store::check_data_dir(dir) {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidInput => Err(Failure::usage(format!(
            "cannot use data directory {}: {e}",
            dir.display()
        ))),
        _ => Ok(()),
    }
}

fn main() -> ExitCode {
    let result = match parse() {
        Command::Serve(args) => serve::run(args),
        Command::Store(cmd) => store::run(cmd),
        Command::User(cmd) => user::run(cmd),
        Command::Session(cmd) => session::run(cmd),
        Command::Completion { shell } => {
            let mut script = Vec::new();
            let mut cli = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut cli, "vsess", &mut script);
            session::emit(&String::from_utf8_lossy(&script))
        }
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
    use super::*;

    #[test]
    fn only_serve_uses_mimalloc() {
        // Decided from this test binary's own argv[1] (`serve` only as a test filter).
        let serve = std::env::args().nth(1).as_deref() == Some("serve");
        assert_eq!(
            USE_MIMALLOC.load(Ordering::Relaxed),
            serve || !ARGS_IN_CONSTRUCTORS
        );
        let v: Vec<u64> = (0..1000).collect();
        assert_eq!(v.iter().sum::<u64>(), 499_500);
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        super::Cli::command().debug_assert();
        super::SessionCli::command().debug_assert();
        let names: Vec<String> = super::SessionCli::command()
            .get_subcommands()
            .map(|c| c.get_name().to_owned())
            .collect();
        assert_eq!(names, SESSION_COMMANDS);
        for name in SESSION_COMMANDS {
            assert!(super::Cli::command().find_subcommand(name).is_some());
        }
    }

    /// `serve --help`'s configuration example works pasted as it is, and so does its Redis
    /// alternative uncommented in place of the embedded [store].
    #[test]
    fn the_configuration_example_in_serve_help_parses() {
        use clap::CommandFactory;
        let help = super::Cli::command()
            .find_subcommand_mut("serve")
            .unwrap()
            .render_long_help()
            .to_string();
        let block: Vec<&str> = help
            .lines()
            .skip_while(|l| !l.starts_with("Configuration (TOML"))
            .skip(1)
            .take_while(|l| !l.is_empty())
            .map(|l| l.strip_prefix("  ").unwrap_or(l))
            .collect();
        assert!(block.len() > 20, "{help}");
        let as_is = block.join("\n");
        vsess_server::Config::parse(&as_is).unwrap();
        let store = block.iter().position(|l| l.starts_with("[store]")).unwrap();
        let redis: Vec<&str> = block[..store]
            .iter()
            .copied()
            .chain(
                block[store..]
                    .iter()
                    .filter_map(|l| l.strip_prefix("# "))
                    .skip_while(|l| !l.starts_with("[store]")),
            )
            .collect();
        let c = vsess_server::Config::parse(&redis.join("\n")).unwrap();
        assert!(matches!(c.store, vsess_server::StoreConfig::Redis(_)));
    }
}
