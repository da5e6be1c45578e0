//! `vsess user add|passwd|rm|list`: the user directory of a data directory, or of Redis.
use crate::Failure;
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use vsess_core::password::hash_password;
use vsess_core::{LockState, Role, Store, User, UserName};
use vsess_server::{Config, StoreConfig};
use vsess_store::{check_data_dir, ensure_data_dir, RedisStore, UserFile};

#[derive(Args)]
pub struct DataDir {
    /// Data directory of the server whose users to manage.
    #[arg(long, default_value = "vsess-data", env = "VSESS_DATA_DIR")]
    data_dir: PathBuf,
    /// Manage the users in Redis instead (what replicas started with `serve --store`
    /// share): redis://[:PASSWORD@]HOST:PORT/DB or rediss://…
    #[arg(long, env = "VSESS_STORE", value_name = "URL")]
    store: Option<String>,
    /// Read [store] (Redis URL, password_file, prefix, TLS) from this server config.
    #[arg(long, env = "VSESS_CONFIG")]
    config: Option<PathBuf>,
}

/// Where the users live, and a runtime for Redis calls.
pub enum Directory {
    File(UserFile),
    Redis(RedisStore, tokio::runtime::Runtime),
}

/// The store a `--data-dir`/`--store`/`--config` triple names.
pub fn store_config(dir: &DataDir) -> Result<StoreConfig, Failure> {
    let mut store = match &dir.config {
        Some(p) => {
            Config::load(p)
                .map_err(|e| Failure::usage(e.to_string()))?
                .store
        }
        None => StoreConfig::default(),
    };
    if let Some(url) = &dir.store {
        store = store.with_url(url).map_err(Failure::usage)?;
    }
    Ok(store)
}

/// Connects to Redis on a runtime of its own (the CLI is synchronous).
pub fn connect_redis(
    o: vsess_store::RedisOptions,
) -> Result<(RedisStore, tokio::runtime::Runtime), Failure> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::runtime(format!("cannot start the runtime: {e}")))?;
    let store = rt.block_on(RedisStore::connect(o)).map_err(|e| Failure {
        // Unreachable is 3; a malformed URL or an unreadable password or CA file is the
        // caller's input (2).
        code: match e {
            vsess_core::StoreError::Unavailable(_) => 3,
            _ => 2,
        },
        message: e.to_string(),
    })?;
    Ok((store, rt))
}

impl Directory {
    /// The users of `dir`; `create` makes a missing data directory (only `user add` may:
    /// a mistyped one would otherwise be created empty and look like a server's).
    fn open(dir: &DataDir, create: bool) -> Result<Self, Failure> {
        match store_config(dir)? {
            StoreConfig::Embedded(_) => open(dir, create).map(Directory::File),
            StoreConfig::Redis(o) => {
                let (store, rt) = connect_redis(o)?;
                Ok(Directory::Redis(store, rt))
            }
        }
    }

    fn get(&self, name: &str) -> Result<Option<User>, Failure> {
        match self {
            Directory::File(f) => f.get(name),
            Directory::Redis(s, rt) => rt.block_on(s.get_user(name)),
        }
        .map_err(|e| Failure::runtime(e.to_string()))
    }

    fn list(&self) -> Result<Vec<User>, Failure> {
        match self {
            Directory::File(f) => f.list(),
            Directory::Redis(s, rt) => rt.block_on(s.list_users()),
        }
        .map_err(|e| Failure::runtime(e.to_string()))
    }

    /// Adds `user`; an error if the name exists.
    fn add(&self, user: User) -> Result<(), Failure> {
        let n = user.name.clone();
        let exists = || {
            format!(
                "user {n} already exists; change it with `vsess user passwd` or remove it with `vsess user rm`"
            )
        };
        match self {
            Directory::File(f) => f
                .modify(move |u| {
                    if u.contains_key(user.name.as_str()) {
                        return Err(exists());
                    }
                    u.insert(user.name.as_str().to_owned(), user);
                    Ok(())
                })
                .map_err(|e| Failure::runtime(e.to_string())),
            Directory::Redis(s, rt) => {
                let added = rt
                    .block_on(s.add_user(&user, false))
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                if added {
                    Ok(())
                } else {
                    Err(Failure::runtime(exists()))
                }
            }
        }
    }

    /// Changes an existing user's password hash and, optionally, role.
    /// Sets a new password hash and/or role (`None`: kept).
    fn update(
        &self,
        name: &UserName,
        hash: Option<String>,
        role: Option<Role>,
    ) -> Result<(), Failure> {
        let missing = || format!("no user {name}; add it with `vsess user add`");
        match self {
            Directory::File(f) => f
                .modify(|u| {
                    let user = u.get_mut(name.as_str()).ok_or_else(missing)?;
                    if let Some(h) = hash {
                        user.password_hash = h;
                    }
                    if let Some(r) = role {
                        user.role = r;
                    }
                    Ok(())
                })
                .map_err(|e| Failure::runtime(e.to_string())),
            Directory::Redis(s, rt) => {
                let done = rt
                    .block_on(s.modify_user(name.as_str(), |user| {
                        if let Some(h) = &hash {
                            user.password_hash.clone_from(h);
                        }
                        if let Some(r) = role {
                            user.role = r;
                        }
                    }))
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                if done {
                    Ok(())
                } else {
                    Err(Failure::runtime(missing()))
                }
            }
        }
    }

    /// Bumps a user's [`User::unlocks`]: the failed logins counted so far stop counting,
    /// and a lockout in force ends.
    fn unlock(&self, name: &UserName) -> Result<(), Failure> {
        let missing = || format!("no user {name}");
        match self {
            Directory::File(f) => f
                .modify(|u| {
                    let user = u.get_mut(name.as_str()).ok_or_else(missing)?;
                    user.unlocks = user.unlocks.wrapping_add(1);
                    Ok(())
                })
                .map_err(|e| Failure::runtime(e.to_string())),
            Directory::Redis(s, rt) => {
                let done = rt
                    .block_on(s.modify_user(name.as_str(), |user| {
                        user.unlocks = user.unlocks.wrapping_add(1);
                    }))
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                if done {
                    Ok(())
                } else {
                    Err(Failure::runtime(missing()))
                }
            }
        }
    }

    /// Where the store can tell (Redis), each user's lockout as it applies now.
    fn lock_states(&self, users: &[User]) -> Result<Option<Vec<LockState>>, Failure> {
        let Directory::Redis(s, rt) = self else {
            return Ok(None);
        };
        users
            .iter()
            .map(|u| {
                rt.block_on(s.lock_state(u.name.as_str()))
                    .map(|l| l.for_account(&u.lock_key()))
                    .map_err(|e| Failure::runtime(e.to_string()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }

    fn remove(&self, name: &UserName) -> Result<(), Failure> {
        let missing = || format!("no user {name}");
        match self {
            Directory::File(f) => f
                .modify(|u| u.remove(name.as_str()).map(|_| ()).ok_or_else(missing))
                .map_err(|e| Failure::runtime(e.to_string())),
            Directory::Redis(s, rt) => {
                let removed = rt
                    .block_on(s.remove_user(name.as_str()))
                    .map_err(|e| Failure::runtime(e.to_string()))?;
                if removed {
                    Ok(())
                } else {
                    Err(Failure::runtime(missing()))
                }
            }
        }
    }
}

#[derive(Args)]
pub struct PasswordInput {
    /// Read the password from standard input (one line) instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

/// The roles, as clap offers them (help, completion) and accepts them (any case, also
/// `read-only` and `no-access`).
fn role_parser() -> impl clap::builder::TypedValueParser<Value = Role> {
    use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
    PossibleValuesParser::new([
        PossibleValue::new("Admin"),
        PossibleValue::new("ReadOnly").alias("read-only"),
        PossibleValue::new("NoAccess").alias("no-access"),
    ])
    .try_map(|s| s.parse::<Role>())
}

#[derive(Subcommand)]
#[command(after_long_help = "\
Names: user@domain or DOMAIN\\user (the same account); stored in lower case.
Roles: Admin (every privilege), ReadOnly (System.Anonymous, System.View, System.Read),
       NoAccess (cannot log in).
A running server picks up changes on the next login; no restart needed. With --store
(Redis), every replica sharing it does, and a removed user's sessions end on their next call.
A server on the embedded store logs each change it picks up (INFO: user added, removed,
role changed, password changed, unlocked), never a password or a hash.
Lockout: after [lockout] max_failures failed logins in a row the server refuses the user
for [lockout] lock_seconds (and logs a WARN). `vsess user unlock` ends that at once; a user
removed and added again starts with no failures. With --store, `user list` shows who is
locked; on the embedded store the lockout lives in the server's log, so look for the WARN.

Examples:
  printf '%s\\n' \"$PW\" | vsess user add ops@vsphere.local --role ReadOnly --password-stdin
  vsess user passwd ops@vsphere.local
  vsess user role ops@vsphere.local NoAccess    # disable, keeping the account
  vsess user list --json
  vsess user unlock ops@vsphere.local
  vsess user add ops@vsphere.local --role Admin --store redis://127.0.0.1:6379/0")]
pub enum UserCommand {
    /// Add a user.
    Add {
        /// user@domain or DOMAIN\user
        name: String,
        /// The user's role.
        #[arg(long, value_parser = role_parser(), ignore_case = true)]
        role: Role,
        /// Display name (UserSession.fullName). Without it, sessions show the user name.
        #[arg(long, default_value = "", hide_default_value = true)]
        full_name: String,
        #[command(flatten)]
        password: PasswordInput,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change a user's password (and optionally role).
    Passwd {
        /// The user: user@domain or DOMAIN\user.
        name: String,
        /// Also change the role.
        #[arg(long, value_parser = role_parser(), ignore_case = true)]
        role: Option<Role>,
        #[command(flatten)]
        password: PasswordInput,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change a user's role and keep the password (NoAccess disables an account: it
    /// cannot log in, and its live sessions lose every privilege from their next call).
    Role {
        /// The user: user@domain or DOMAIN\user.
        name: String,
        /// The new role.
        #[arg(value_parser = role_parser(), ignore_case = true)]
        role: Role,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove a user.
    Rm {
        /// The user: user@domain or DOMAIN\user.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// End a user's lockout and forget their failed logins.
    Unlock {
        /// The user: user@domain or DOMAIN\user.
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List users and their roles (with --store, also who is locked out).
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

fn open(dir: &DataDir, create: bool) -> Result<UserFile, Failure> {
    let new = !dir.data_dir.exists();
    if new && !create {
        return Err(Failure::usage(format!(
            "no data directory {}: give the server's --data-dir (or $VSESS_DATA_DIR; the \
             default is ./vsess-data)",
            dir.data_dir.display()
        )));
    }
    // Listing only reads: the directory is checked, not tightened or written to.
    let prepared = if create {
        ensure_data_dir(&dir.data_dir)
    } else {
        check_data_dir(&dir.data_dir)
    };
    prepared.map_err(|e| {
        let message = format!("cannot use data directory {}: {e}", dir.data_dir.display());
        // Another directory than a data directory is the caller's mistake.
        if e.kind() == std::io::ErrorKind::InvalidInput {
            Failure::usage(message)
        } else {
            Failure::runtime(message)
        }
    })?;
    if new {
        eprintln!(
            "created the data directory {} (a new one: the server must be started with \
             --data-dir {0})",
            dir.data_dir.display()
        );
    }
    UserFile::open(&dir.data_dir).map_err(|e| Failure::runtime(e.to_string()))
}

fn parse_name(raw: &str) -> Result<UserName, Failure> {
    UserName::parse(raw).ok_or_else(|| {
        Failure::usage(format!(
            "'{raw}' is not a valid user name: use user@domain or DOMAIN\\user"
        ))
    })
}

fn read_password(input: &PasswordInput) -> Result<String, Failure> {
    let pw = if input.password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| Failure::runtime(format!("cannot read the password from stdin: {e}")))?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else if std::io::stdin().is_terminal() {
        let a = rpassword::prompt_password("Password: ")
            .map_err(|e| Failure::runtime(format!("cannot read the password: {e}")))?;
        let b = rpassword::prompt_password("Repeat password: ")
            .map_err(|e| Failure::runtime(format!("cannot read the password: {e}")))?;
        if a != b {
            return Err(Failure::usage("the passwords do not match"));
        }
        a
    } else {
        return Err(Failure::usage(
            "no password given: pass --password-stdin and pipe it in, or run in a terminal",
        ));
    };
    if pw.is_empty() {
        return Err(Failure::usage("the password is empty"));
    }
    Ok(pw)
}

pub fn run(cmd: UserCommand) -> Result<(), Failure> {
    // Warnings from the stores (a directory tightened, users.json unreadable) reach stderr.
    crate::session::init_logging();
    match cmd {
        UserCommand::Add {
            name,
            role,
            full_name,
            password,
            dir,
        } => {
            let name = parse_name(&name)?;
            // A wrong directory is refused before the password is asked for, and none is
            // created before there is a password to store.
            if matches!(store_config(&dir)?, StoreConfig::Embedded(_)) {
                crate::check_data_dir_usage(&dir.data_dir)?;
            }
            let pw = read_password(&password)?;
            let users = Directory::open(&dir, true)?;
            let hash = hash_password(&pw).map_err(Failure::runtime)?;
            users.add(User::new(name.clone(), full_name, role, hash))?;
            eprintln!("added {name} ({role})");
            Ok(())
        }
        UserCommand::Passwd {
            name,
            role,
            password,
            dir,
        } => {
            let name = parse_name(&name)?;
            let users = Directory::open(&dir, false)?;
            if users.get(name.as_str())?.is_none() {
                return Err(Failure::runtime(format!(
                    "no user {name}; add it with `vsess user add`"
                )));
            }
            let pw = read_password(&password)?;
            let hash = hash_password(&pw).map_err(Failure::runtime)?;
            users.update(&name, Some(hash), role)?;
            eprintln!("changed {name}");
            Ok(())
        }
        UserCommand::Role { name, role, dir } => {
            let name = parse_name(&name)?;
            Directory::open(&dir, false)?.update(&name, None, Some(role))?;
            eprintln!("{name} is now {}", role.as_str());
            Ok(())
        }
        UserCommand::Rm { name, dir } => {
            let name = parse_name(&name)?;
            Directory::open(&dir, false)?.remove(&name)?;
            eprintln!("removed {name}");
            Ok(())
        }
        UserCommand::Unlock { name, dir } => {
            let name = parse_name(&name)?;
            Directory::open(&dir, false)?.unlock(&name)?;
            eprintln!("unlocked {name}");
            Ok(())
        }
        UserCommand::List { json, dir } => {
            let directory = Directory::open(&dir, false)?;
            let users = directory.list()?;
            let locks = directory.lock_states(&users)?;
            let now = chrono::Utc::now();
            let locked_until = |i: usize| {
                locks
                    .as_ref()
                    .and_then(|l| l[i].locked_until.filter(|_| l[i].locked_at(now)))
            };
            if json {
                let v: Vec<_> = users
                    .iter()
                    .enumerate()
                    .map(|(i, u)| {
                        let mut o = serde_json::json!({
                            "name": u.name.as_str(),
                            "fullName": u.full_name,
                            "role": u.role.as_str(),
                        });
                        if let Some(l) = &locks {
                            o["failedLogins"] = l[i].failures.into();
                            o["lockedUntil"] = locked_until(i)
                                .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                                .into();
                        }
                        o
                    })
                    .collect();
                outln!("{}", serde_json::Value::Array(v))?;
            } else {
                let lock_col = |i: usize| match (&locks, locked_until(i)) {
                    (None, _) => String::new(),
                    (Some(_), Some(t)) => format!(
                        "{:<21} ",
                        format!("until {}", t.format("%Y-%m-%dT%H:%M:%SZ"))
                    ),
                    (Some(l), None) if l[i].failures > 0 => {
                        format!("{:<21} ", format!("{} failed", l[i].failures))
                    }
                    (Some(_), None) => format!("{:<21} ", "no"),
                };
                let head = if locks.is_some() {
                    format!("{:<21} ", "Locked")
                } else {
                    String::new()
                };
                outln!("{:<40} {:<9} {head}Full name", "Name", "Role")?;
                for (i, u) in users.iter().enumerate() {
                    outln!(
                        "{:<40} {:<9} {}{}",
                        u.name.as_str(),
                        u.role.as_str(),
                        lock_col(i),
                        u.full_name
                    )?;
                }
            }
            Ok(())
        }
    }
}
