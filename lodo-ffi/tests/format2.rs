//! States of format 2, written by lodo-ffi before the compact state (commit `c5a5d6e`, checked
//! in under `tests/data`), and of format 3 (commit `b0e4042`, before `θ` in `f32`), still load
//! and continue bit for bit, and are saved in the current format; damaged older payloads are
//! status codes.
//!
//! The fixtures: `n = 6`, `lodo_config_default()`, seed 7, the gradient
//! `∇ℓ(x)_i = (i + 1)·x_i − 1` from `x = 0`, saved after 5 steps; the `.expected` files hold
//! the parameters at the save and after 4 more steps, as bits, recorded by `c5a5d6e` with
//! `LODO_KERNEL=reference`. A test binary of its own: it forces the reference kernel path
//! (process-wide) so the continuation can be compared on bits.
#![allow(clippy::undocumented_unsafe_blocks)] // Test calls: every pointer is a live local.

use lodo::*;

mod common;
use common::{reseal, save_f32, save_f64};

fn reference_path() {
    lodo_kernels::dispatch::force(lodo_kernels::Path::Reference)
        .expect("the reference path exists everywhere");
}

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The bits of one `.expected` line.
fn expected(name: &str, line: &str) -> Vec<u64> {
    let text = String::from_utf8(data(name)).unwrap();
    let row = text
        .lines()
        .find_map(|l| l.strip_prefix(line))
        .unwrap_or_else(|| panic!("no {line} in {name}"));
    row.split_whitespace()
        .map(|h| u64::from_str_radix(h.trim_start_matches("0x"), 16).unwrap())
        .collect()
}

/// lodo-core's `format`: the payload's first byte (a postcard varint below 128).
fn format_of(state: &[u8]) -> u8 {
    state[24]
}

fn grad32(x: &[f32]) -> Vec<f32> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| (i as f32 + 1.0) * v - 1.0)
        .collect()
}

fn grad64(x: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &v)| (i as f64 + 1.0) * v - 1.0)
        .collect()
}

fn load32(bytes: &[u8]) -> Result<*mut LodoF32, LodoStatus> {
    let mut status = -1;
    let h = unsafe { lodo_f32_load(bytes.as_ptr(), bytes.len(), &mut status) };
    assert_eq!(h.is_null(), status != LODO_OK);
    if status == LODO_OK {
        Ok(h)
    } else {
        Err(status)
    }
}

#[test]
fn an_f32_state_of_format_2_loads_and_continues_bit_for_bit() {
    reference_path();
    let old = data("state-v2-f32.bin");
    assert_eq!(format_of(&old), 2);
    let h = load32(&old).expect("a format-2 state loads");
    let mut x: Vec<f32> = expected("state-v2-f32.expected", "params_at_save ")
        .into_iter()
        .map(|b| f32::from_bits(u32::try_from(b).unwrap()))
        .collect();
    let mut d = 0;
    assert_eq!(unsafe { lodo_f32_dim(h, &mut d) }, LODO_OK);
    assert_eq!(d, x.len());
    for _ in 0..4 {
        let g = grad32(&x);
        assert_eq!(
            unsafe { lodo_f32_step(h, x.as_mut_ptr(), g.as_ptr(), x.len()) },
            LODO_OK
        );
    }
    let bits: Vec<u64> = x.iter().map(|v| u64::from(v.to_bits())).collect();
    assert_eq!(
        bits,
        expected("state-v2-f32.expected", "params_after_4_steps ")
    );
    // Saved in the current format, which loads again.
    let new = save_f32(h);
    assert_eq!(u32::from(format_of(&new)), lodo_core::STATE_FORMAT);
    unsafe {
        lodo_f32_free(load32(&new).expect("the re-saved state loads"));
        lodo_f32_free(h);
    }
}

#[test]
fn an_f64_state_of_format_2_loads_and_continues_bit_for_bit() {
    reference_path();
    let old = data("state-v2-f64.bin");
    assert_eq!(format_of(&old), 2);
    let mut status = -1;
    let h = unsafe { lodo_f64_load(old.as_ptr(), old.len(), &mut status) };
    assert_eq!(status, LODO_OK);
    let mut x: Vec<f64> = expected("state-v2-f64.expected", "params_at_save ")
        .into_iter()
        .map(f64::from_bits)
        .collect();
    for _ in 0..4 {
        let g = grad64(&x);
        assert_eq!(
            unsafe { lodo_f64_step(h, x.as_mut_ptr(), g.as_ptr(), x.len()) },
            LODO_OK
        );
    }
    let bits: Vec<u64> = x.iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        bits,
        expected("state-v2-f64.expected", "params_after_4_steps ")
    );
    assert_eq!(u32::from(format_of(&save_f64(h))), lodo_core::STATE_FORMAT);
    // The f32 loader refuses it by its envelope, before the payload.
    assert_eq!(load32(&old).unwrap_err(), LODO_ERR_STATE_WRONG_TYPE);
    unsafe { lodo_f64_free(h) };
}

#[test]
fn damaged_format_2_payloads_are_status_codes() {
    let old = data("state-v2-f32.bin");
    // Cut short inside the payload (hash recomputed): undecodable.
    let cut = reseal(old[..old.len() - 7].to_vec());
    assert_eq!(load32(&cut).unwrap_err(), LODO_ERR_STATE_CORRUPT);
    // A trailing byte inside the payload.
    let mut longer = old.clone();
    longer.push(0);
    assert_eq!(load32(&reseal(longer)).unwrap_err(), LODO_ERR_STATE_CORRUPT);
    // A format-3 payload marked as format 2: its extra fields make it undecodable as format 2.
    let mut h_status = -1;
    let config = lodo_config_default();
    let h = unsafe { lodo_f32_new(6, &config, 7, &mut h_status) };
    assert_eq!(h_status, LODO_OK);
    let mut current = save_f32(h);
    assert_eq!(u32::from(format_of(&current)), lodo_core::STATE_FORMAT);
    current[24] = 2;
    assert_eq!(
        load32(&reseal(current)).unwrap_err(),
        LODO_ERR_STATE_CORRUPT
    );
    // A format-2 payload marked as format 3 is not decoded by the format-3 layout either.
    let mut relabelled = old.clone();
    relabelled[24] = 3;
    assert_eq!(
        load32(&reseal(relabelled)).unwrap_err(),
        LODO_ERR_STATE_CORRUPT
    );
    // A format-2 payload with a wrong value is refused by lodo-core's validation: the payload
    // ends with the momentum's last f32 and `steps` (5, one varint byte); that f32 made NaN.
    let mut nan = old.clone();
    let end = nan.len() - 1;
    nan[end - 4..end].copy_from_slice(&f32::NAN.to_le_bytes());
    assert_eq!(load32(&reseal(nan)).unwrap_err(), LODO_ERR_STATE_INVALID);
    unsafe { lodo_f32_free(h) };
}

/// States of format 3 (written by lodo-ffi at commit `b0e4042`, before `θ` could be held in
/// `f32`; generated there with `LODO_KERNEL` forced to the reference path): `n = 6`, seed 7,
/// the same gradient, saved after 5 steps; f32 with q8 moments and bf16 activations, f64 with
/// the default (full) state. They load through the format-3 mirror, continue bit for bit as
/// `b0e4042` recorded, and are saved in the current format.
#[test]
fn states_of_format_3_load_and_continue_bit_for_bit() {
    reference_path();
    let old = data("state-v3-f32.bin");
    assert_eq!(format_of(&old), 3);
    let h = load32(&old).expect("a format-3 state loads");
    let mut x: Vec<f32> = expected("state-v3-f32.expected", "params_at_save ")
        .into_iter()
        .map(|b| f32::from_bits(u32::try_from(b).unwrap()))
        .collect();
    for _ in 0..4 {
        let g = grad32(&x);
        assert_eq!(
            unsafe { lodo_f32_step(h, x.as_mut_ptr(), g.as_ptr(), x.len()) },
            LODO_OK
        );
    }
    let bits: Vec<u64> = x.iter().map(|v| u64::from(v.to_bits())).collect();
    assert_eq!(
        bits,
        expected("state-v3-f32.expected", "params_after_4_steps ")
    );
    let new = save_f32(h);
    assert_eq!(u32::from(format_of(&new)), lodo_core::STATE_FORMAT);
    unsafe {
        lodo_f32_free(load32(&new).expect("the re-saved state loads"));
        lodo_f32_free(h);
    }

    let old = data("state-v3-f64.bin");
    assert_eq!(format_of(&old), 3);
    let mut status = -1;
    let h = unsafe { lodo_f64_load(old.as_ptr(), old.len(), &mut status) };
    assert_eq!(status, LODO_OK);
    let mut x: Vec<f64> = expected("state-v3-f64.expected", "params_at_save ")
        .into_iter()
        .map(f64::from_bits)
        .collect();
    for _ in 0..4 {
        let g = grad64(&x);
        assert_eq!(
            unsafe { lodo_f64_step(h, x.as_mut_ptr(), g.as_ptr(), x.len()) },
            LODO_OK
        );
    }
    let bits: Vec<u64> = x.iter().map(|v| v.to_bits()).collect();
    assert_eq!(
        bits,
        expected("state-v3-f64.expected", "params_after_4_steps ")
    );
    assert_eq!(u32::from(format_of(&save_f64(h))), lodo_core::STATE_FORMAT);
    unsafe { lodo_f64_free(h) };
    // A truncated format-3 payload is a status code.
    let mut cut = data("state-v3-f32.bin");
    cut.truncate(cut.len() - 9);
    assert_eq!(load32(&reseal(cut)).unwrap_err(), LODO_ERR_STATE_CORRUPT);
}
