//! The firmware's problem on the host, reference kernel path forced (as `LODO_KERNEL=reference`
//! does): prints the loss lines and the final `bits` line in the firmware's format.
//!
//! With `--check LOG`, reads a captured firmware log instead and exits non-zero unless its
//! `bits` line equals the host's bit for bit.

#[path = "../../src/problem.rs"]
#[allow(dead_code)]
mod problem;

use std::process::ExitCode;

use lodo_core::{Lodo, LodoConfig};
use lodo_kernels::dispatch::{self, Path};
use problem::{ALPHA0, N, PRINT_EVERY, SEED, STEPS, loss_and_gradient};

/// Runs the problem; returns the log lines (loss lines, then `bits …`).
fn run() -> Result<Vec<String>, Box<dyn std::error::Error>> {
    let mut out = Vec::new();
    let config = LodoConfig::default().with_alpha0(ALPHA0)?;
    let mut lodo = Lodo::<f32>::new(N, config, SEED)?;
    let mut x = [0.0f32; N];
    let mut g = [0.0f32; N];
    for t in 0..STEPS {
        let loss = loss_and_gradient(&x, &mut g);
        if t % PRINT_EVERY == 0 {
            out.push(format!("step {t} loss {loss:e}"));
        }
        lodo.step(&mut x, &g)?;
    }
    let loss = loss_and_gradient(&x, &mut g);
    out.push(format!("step {STEPS} loss {loss:e}"));
    let bits: Vec<String> = x.iter().map(|xi| format!("{:08x}", xi.to_bits())).collect();
    out.push(format!("bits {}", bits.join(" ")));
    Ok(out)
}

fn main() -> ExitCode {
    if let Err(e) = dispatch::force(Path::Reference) {
        eprintln!("cannot force the reference kernel path: {e:?}");
        return ExitCode::FAILURE;
    }
    let host = match run() {
        Ok(lines) => lines,
        Err(e) => {
            eprintln!("host run failed: {e}");
            return ExitCode::FAILURE;
        }
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, log] = args.as_slice() else {
        for line in &host {
            println!("{line}");
        }
        return ExitCode::SUCCESS;
    };
    if flag != "--check" {
        eprintln!("usage: lodo-firmware-host [--check FIRMWARE_LOG]");
        return ExitCode::FAILURE;
    }
    let Ok(text) = std::fs::read_to_string(log) else {
        eprintln!("cannot read {log}");
        return ExitCode::FAILURE;
    };
    // Loss lines and the bits line must all match (the firmware's log may hold other lines).
    let firmware: Vec<&str> = text
        .lines()
        .map(str::trim_end)
        .filter(|l| l.starts_with("step ") || l.starts_with("bits "))
        .collect();
    let host_lines: Vec<&str> = host.iter().map(String::as_str).collect();
    if firmware == host_lines {
        println!("firmware and host agree bit for bit:");
        println!("{}", host.last().map_or("", String::as_str));
        println!("1 passed, 0 failed");
        ExitCode::SUCCESS
    } else {
        println!("firmware and host DIFFER");
        println!("host:\n{}", host.join("\n"));
        println!("firmware:\n{}", firmware.join("\n"));
        println!("0 passed, 1 failed");
        ExitCode::FAILURE
    }
}
