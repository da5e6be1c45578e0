//! `vsess user add|passwd|rm|list`: the user directory of a data directory.
use crate::Failure;
use clap::{Args, Subcommand};
use std::io::{BufRead, IsTerminal};
use std::path::PathBuf;
use vsess_core::password::hash_password;
use vsess_core::{Role, User, UserName};
use vsess_store::{ensure_private_dir, UserFile};

#[derive(Args)]
pub struct DataDir {
    /// Data directory of the server whose users to manage.
    #[arg(long, default_value = "vsess-data", env = "VSESS_DATA_DIR")]
    data_dir: PathBuf,
}

#[derive(Args)]
pub struct PasswordInput {
    /// Read the password from standard input (one line) instead of prompting.
    #[arg(long)]
    password_stdin: bool,
}

#[derive(Subcommand)]
#[command(after_long_help = "\
Names: user@domain or DOMAIN\\user (the same account); stored in lower case.
Roles: Admin (every privilege), ReadOnly (System.Anonymous, System.View, System.Read),
       NoAccess (cannot log in).
A running server picks up changes on the next login; no restart needed.

Examples:
  printf '%s\\n' \"$PW\" | vsess user add ops@vsphere.local --role ReadOnly --password-stdin
  vsess user passwd ops@vsphere.local
  vsess user list --json")]
pub enum UserCommand {
    /// Add a user.
    Add {
        /// user@domain or DOMAIN\user
        name: String,
        /// Admin, ReadOnly or NoAccess.
        #[arg(long)]
        role: Role,
        /// Display name (UserSession.fullName); defaults to the user name.
        #[arg(long, default_value = "")]
        full_name: String,
        #[command(flatten)]
        password: PasswordInput,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Change a user's password (and optionally role).
    Passwd {
        name: String,
        /// Also change the role.
        #[arg(long)]
        role: Option<Role>,
        #[command(flatten)]
        password: PasswordInput,
        #[command(flatten)]
        dir: DataDir,
    },
    /// Remove a user.
    Rm {
        name: String,
        #[command(flatten)]
        dir: DataDir,
    },
    /// List users and their roles.
    List {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        dir: DataDir,
    },
}

fn open(dir: &DataDir) -> Result<UserFile, Failure> {
    ensure_private_dir(&dir.data_dir).map_err(|e| {
        Failure::runtime(format!(
            "cannot use data directory {}: {e}",
            dir.data_dir.display()
        ))
    })?;
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
    match cmd {
        UserCommand::Add {
            name,
            role,
            full_name,
            password,
            dir,
        } => {
            let name = parse_name(&name)?;
            let pw = read_password(&password)?;
            let hash = hash_password(&pw).map_err(Failure::runtime)?;
            let users = open(&dir)?;
            let n = name.clone();
            users
                .modify(move |u| {
                    if u.contains_key(n.as_str()) {
                        return Err(format!(
                            "user {n} already exists; change it with `vsess user passwd` or remove it with `vsess user rm`"
                        ));
                    }
                    u.insert(
                        n.as_str().to_owned(),
                        User {
                            name: n.clone(),
                            full_name,
                            role,
                            password_hash: hash,
                        },
                    );
                    Ok(())
                })
                .map_err(|e| Failure::runtime(e.to_string()))?;
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
            let users = open(&dir)?;
            if users
                .get(name.as_str())
                .map_err(|e| Failure::runtime(e.to_string()))?
                .is_none()
            {
                return Err(Failure::runtime(format!(
                    "no user {name}; add it with `vsess user add`"
                )));
            }
            let pw = read_password(&password)?;
            let hash = hash_password(&pw).map_err(Failure::runtime)?;
            let n = name.clone();
            users
                .modify(move |u| {
                    let user = u
                        .get_mut(n.as_str())
                        .ok_or_else(|| format!("no user {n}"))?;
                    user.password_hash = hash;
                    if let Some(r) = role {
                        user.role = r;
                    }
                    Ok(())
                })
                .map_err(|e| Failure::runtime(e.to_string()))?;
            eprintln!("changed {name}");
            Ok(())
        }
        UserCommand::Rm { name, dir } => {
            let name = parse_name(&name)?;
            let users = open(&dir)?;
            let n = name.clone();
            users
                .modify(move |u| {
                    u.remove(n.as_str())
                        .map(|_| ())
                        .ok_or_else(|| format!("no user {n}"))
                })
                .map_err(|e| Failure::runtime(e.to_string()))?;
            eprintln!("removed {name}");
            Ok(())
        }
        UserCommand::List { json, dir } => {
            let users = open(&dir)?
                .list()
                .map_err(|e| Failure::runtime(e.to_string()))?;
            if json {
                let v: Vec<_> = users
                    .iter()
                    .map(|u| {
                        serde_json::json!({
                            "name": u.name.as_str(),
                            "fullName": u.full_name,
                            "role": u.role.as_str(),
                        })
                    })
                    .collect();
                println!("{}", serde_json::Value::Array(v));
            } else {
                println!("{:<40} {:<9} Full name", "Name", "Role");
                for u in users {
                    println!(
                        "{:<40} {:<9} {}",
                        u.name.as_str(),
                        u.role.as_str(),
                        u.full_name
                    );
                }
            }
            Ok(())
        }
    }
}
