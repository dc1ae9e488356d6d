//! `ferrule passwd [-c | -D] FILE USER`: edits a Mosquitto password file, like
//! `mosquitto_passwd` (prompts, standard input, batch mode, exit 2 on a mismatch).

use std::process::ExitCode;

use anyhow::Context as _;

use crate::broker;

use super::args::PasswdArgs;
use super::common::report;

/// Adds, changes or deletes the user.
pub fn main(args: &PasswdArgs) -> ExitCode {
    match passwd(args) {
        Ok(()) => ExitCode::SUCCESS,
        // As mosquitto_passwd: 2 when the two passwords differ.
        Err(e) if e.is::<Mismatch>() => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
        Err(e) => report(&e),
    }
}

fn passwd(args: &PasswdArgs) -> anyhow::Result<()> {
    use broker::passwd::{edit, Change};
    let iterations =
        std::num::NonZeroU32::new(args.iterations).context("iterations must be at least 1")?;
    if !args.create && !args.file.exists() {
        anyhow::bail!(
            "{} does not exist; use -c to create it",
            args.file.display()
        );
    }
    let password = if args.delete {
        String::new()
    } else if let Some(p) = args.password.as_ref().filter(|_| args.batch) {
        p.clone()
    } else if !std::io::IsTerminal::is_terminal(&std::io::stdin()) && !args.stdin {
        // No terminal (a pipe, a script): both lines from standard input, prompts on
        // standard output, as mosquitto_passwd.
        let first = stdin_line("Password: ")?;
        if stdin_line("Reenter password: ")? != first {
            return Err(Mismatch.into());
        }
        first
    } else if args.stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .context("cannot read the password from standard input")?;
        line.trim_end_matches(['\n', '\r']).to_owned()
    } else {
        let first = prompt("Password: ")?;
        if prompt("Reenter password: ")? != first {
            return Err(Mismatch.into());
        }
        first
    };
    if !args.delete && password.is_empty() {
        anyhow::bail!("the password is empty");
    }
    let change = if args.delete {
        Change::Delete
    } else if args.create {
        Change::Create {
            password: &password,
            iterations,
        }
    } else {
        Change::Set {
            password: &password,
            iterations,
        }
    };
    edit(&args.file, &args.user, change)?;
    Ok(())
}

/// The password and its repetition differ.
#[derive(Debug, thiserror::Error)]
#[error("passwords do not match")]
struct Mismatch;

/// Prints `text` on standard output and reads one line from standard input.
fn stdin_line(text: &str) -> anyhow::Result<String> {
    use std::io::Write as _;
    let mut out = std::io::stdout();
    out.write_all(text.as_bytes())?;
    out.write_all(b"\n")?;
    out.flush()?;
    let mut line = String::new();
    std::io::stdin()
        .read_line(&mut line)
        .context("cannot read the password from standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

/// Reads a line from the terminal without echoing it (`stty -echo` around the read).
fn prompt(text: &str) -> anyhow::Result<String> {
    use std::io::{BufRead as _, Write as _};
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
        .context("no terminal to ask for the password on; use --stdin")?;
    let stty = |arg: &str| {
        std::process::Command::new("stty")
            .arg(arg)
            .stdin(tty.try_clone()?)
            .status()
    };
    (&tty).write_all(text.as_bytes())?;
    let echo_off = stty("-echo").is_ok_and(|s| s.success());
    let mut line = String::new();
    let read = std::io::BufReader::new(&tty).read_line(&mut line);
    if echo_off {
        let _ = stty("echo");
    }
    (&tty).write_all(b"\n")?;
    read.context("cannot read the password")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
