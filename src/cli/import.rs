//! `ferrule import csv MAP.csv --profile NAME [-o FILE]`: a register map exported from a
//! spreadsheet → a profile file for `profiles_dir`.
//!
//! Exit codes: 0 written; 2 bad rows (each reported with its CSV line:column and value) or bad
//! usage; 1 the files cannot be read or written.

use std::io::Write as _;
use std::process::ExitCode;

use super::args::ImportCommand;
use crate::config::import::{csv_to_profile, ImportOptions, KEYS};

pub fn main(cmd: &ImportCommand) -> ExitCode {
    let ImportCommand::Csv(args) = cmd;
    let mut columns = Vec::new();
    for c in &args.columns {
        match c.split_once('=') {
            Some((k, h)) => columns.push((k.trim().to_owned(), h.trim().to_owned())),
            None => {
                eprintln!(
                    "error: --columns {c}: expected KEY=HEADER, KEY one of {}",
                    KEYS.join(", ")
                );
                return ExitCode::from(super::common::EXIT_INVALID);
            }
        }
    }
    let name = args.file.display().to_string();
    let text = match std::fs::read_to_string(&args.file) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: cannot read {name}: {e}");
            return ExitCode::FAILURE;
        }
    };
    let options = ImportOptions {
        profile: args.profile.clone(),
        columns,
        kind: args.kind,
        order: args.order,
    };
    let imported = match csv_to_profile(&name, &text, &options) {
        Ok(p) => p,
        Err(problems) => {
            for p in &problems {
                eprintln!("{p}");
            }
            eprintln!("{} error(s); no profile written", problems.len());
            return ExitCode::from(super::common::EXIT_INVALID);
        }
    };
    let written = match &args.output {
        Some(out) => {
            if out.exists() && !args.force {
                eprintln!(
                    "error: {} exists; use --force to overwrite it",
                    out.display()
                );
                return ExitCode::FAILURE;
            }
            std::fs::write(out, &imported.yaml)
                .map(|()| out.display().to_string())
                .map_err(|e| format!("cannot write {}: {e}", out.display()))
        }
        None => std::io::stdout()
            .write_all(imported.yaml.as_bytes())
            .map(|()| "standard output".to_owned())
            .map_err(|e| format!("cannot write to standard output: {e}")),
    };
    match written {
        Ok(to) => {
            eprintln!(
                "{name}: profile `{}` with {} point(s) written to {to}",
                args.profile, imported.points
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
