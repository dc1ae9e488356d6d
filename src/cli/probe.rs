//! `ferrule probe TARGET --holding ADDRESS`: raw registers or bits of a device, with every
//! interpretation of them, to find a point's type and order.

use std::process::ExitCode;

use crate::config::RegisterKind;
use crate::field::{plan, probe};

use super::args::ProbeArgs;
use super::common::{report, EXIT_INVALID};

/// Reads once and prints; exit 2 for bad arguments, 1 when the device cannot be read.
pub fn main(args: &ProbeArgs) -> ExitCode {
    let usage = |message: String| {
        eprintln!("error: {message}");
        ExitCode::from(EXIT_INVALID)
    };
    let target = match probe::parse_target(&args.target) {
        Ok(t) => t,
        Err(e) => return usage(e),
    };
    let (kind, address) = match (args.holding, args.input, args.coils, args.discrete) {
        (Some(a), ..) => (RegisterKind::Holding, a),
        (_, Some(a), ..) => (RegisterKind::Input, a),
        (_, _, Some(a), _) => (RegisterKind::Coil, a),
        (.., Some(a)) => (RegisterKind::Discrete, a),
        _ => return usage("give one of --holding, --input, --coils, --discrete".into()),
    };
    let max = if kind.is_bit() {
        plan::MAX_BITS
    } else {
        plan::MAX_REGISTERS
    };
    if args.count == 0 || args.count > max {
        return usage(format!(
            "--count {} is out of range; one read fetches 1 to {max} {}",
            args.count,
            if kind.is_bit() { "bits" } else { "registers" }
        ));
    }
    if u32::from(address) + u32::from(args.count) > 65_536 {
        return usage(format!(
            "--count {} from address {address} passes the end of the address space (65535)",
            args.count
        ));
    }
    let req = probe::Request {
        unit: args.unit,
        kind,
        address,
        count: args.count,
        timeout: args.timeout,
    };
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return report(&anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match rt.block_on(probe::read(&target, &req)) {
        Ok(data) => {
            print!("{}", probe::render(&target, &req, &data));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
