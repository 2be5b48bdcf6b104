//! Puts the memory maps where the runtimes' linker scripts find them: `memory.x` (mps2-an386,
//! included by cortex-m-rt's `link.x`) and `memory-riscv.x` (virt, passed to the linker before
//! riscv-rt's `link.x` by `.cargo/config.toml`).
use std::{env, fs, path::PathBuf};

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), include_bytes!("memory.x")).expect("write memory.x");
    fs::write(out.join("memory-riscv.x"), include_bytes!("memory-riscv.x"))
        .expect("write memory-riscv.x");
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=memory-riscv.x");
}
