//! `ferrule migrate mosquitto.conf [-o ferrule.yaml]`: writes the equivalent ferrule config
//! and reports every option it cannot honour.
//!
//! Exit codes: 0 every option mapped (or needs nothing); [`EXIT_UNHONOURED`] the config was
//! written but some options are not honoured (listed with file:line); 1 the Mosquitto config
//! cannot be read or the output cannot be written; 2 bad usage.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;

use super::args::MigrateArgs;
use crate::config::{self, Origin};
use crate::migrate;

/// Exit code when the config was written but some options cannot be honoured.
pub const EXIT_UNHONOURED: u8 = 3;

pub fn main(args: &MigrateArgs) -> ExitCode {
    match run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &MigrateArgs) -> anyhow::Result<ExitCode> {
    let directives = migrate::read(&args.file)?;
    let output_dir = args.output.as_ref().map(|o| match o.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    });
    let options = migrate::Options {
        site: args.site.clone(),
        output_dir: output_dir.clone(),
    };
    let m = migrate::translate(&directives, &args.file, &options);
    // The output must load: checked with ferrule's own loader before it is written.
    let origin = Origin {
        name: args
            .output
            .as_ref()
            .map_or("<migrated config>".into(), |o| o.display().to_string()),
        base_dir: output_dir.clone().unwrap_or_else(|| PathBuf::from(".")),
        state_dir: std::env::temp_dir(),
    };
    if let Err(e) = config::parse(&m.yaml, &origin) {
        anyhow::bail!(
            "the migrated config does not load (a bug in `ferrule migrate`, please report it):\n{e}\n--- migrated config ---\n{}",
            m.yaml
        );
    }
    match (&args.output, &output_dir) {
        (Some(out), Some(dir)) => {
            refuse_overwrite(out, args.force)?;
            for (name, contents) in &m.secrets {
                let path = dir.join(name);
                refuse_overwrite(&path, args.force)?;
                write_secret(&path, contents)?;
            }
            std::fs::write(out, &m.yaml)
                .with_context(|| format!("cannot write {}", out.display()))?;
        }
        _ => {
            std::io::stdout()
                .write_all(m.yaml.as_bytes())
                .context("cannot write to standard output")?;
        }
    }
    let to = args
        .output
        .as_ref()
        .map_or("standard output".into(), |o| o.display().to_string());
    eprintln!(
        "{}: {} option(s) mapped to {to}, {} need nothing in ferrule, {} not honoured",
        args.file.display(),
        m.mapped,
        m.not_needed,
        m.unhonoured.len()
    );
    for u in &m.unhonoured {
        eprintln!("{}: not honoured: `{}`: {}", u.at, u.text, u.why);
    }
    for n in &m.notes {
        eprintln!("note: {n}");
    }
    if let Some(out) = &args.output {
        eprintln!("next: ferrule check {}", out.display());
    }
    Ok(if m.unhonoured.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(EXIT_UNHONOURED)
    })
}

fn refuse_overwrite(path: &Path, force: bool) -> anyhow::Result<()> {
    if path.exists() && !force {
        anyhow::bail!("{} exists; use --force to overwrite it", path.display());
    }
    Ok(())
}

/// Writes a secret readable by its owner only.
fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
