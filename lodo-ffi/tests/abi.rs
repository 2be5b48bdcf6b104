//! The C functions called from Rust as C calls them: a run that saves and resumes bit for bit
//! (f32 and f64), and every kind of bad input returning its status code.
#![allow(clippy::undocumented_unsafe_blocks)] // Test calls: every pointer is a live local.

use std::ffi::CStr;
use std::ptr::{null, null_mut};

use lodo::*;

mod common;
use common::{reseal, save_f32, save_f64};

/// ½ Σ dᵢ (xᵢ − 1)², dᵢ = 1/(1+i): gradient into `g`.
fn gradient<T: Copy + Into<f64>>(x: &[T], g: &mut [T], from: fn(f64) -> T) {
    for (i, (gi, &xi)) in g.iter_mut().zip(x).enumerate() {
        *gi = from((xi.into() - 1.0) / (1.0 + i as f64));
    }
}

fn config() -> LodoConfigC {
    LodoConfigC {
        alpha0: 0.5,
        ..lodo_config_default()
    }
}

fn new_f32(n: usize) -> *mut LodoF32 {
    let mut status = -1;
    let h = unsafe { lodo_f32_new(n, &config(), 7, &mut status) };
    assert_eq!(status, LODO_OK);
    assert!(!h.is_null());
    h
}

fn load_f32(bytes: &[u8]) -> Result<*mut LodoF32, LodoStatus> {
    let mut status = -1;
    let h = unsafe { lodo_f32_load(bytes.as_ptr(), bytes.len(), &mut status) };
    assert_eq!(
        h.is_null(),
        status != LODO_OK,
        "null handle exactly when the status is an error"
    );
    if status == LODO_OK {
        Ok(h)
    } else {
        Err(status)
    }
}

fn steps_f32(h: *mut LodoF32, x: &mut [f32], steps: usize) {
    let mut g = vec![0.0f32; x.len()];
    for _ in 0..steps {
        gradient(x, &mut g, |v| v as f32);
        assert_eq!(
            unsafe { lodo_f32_step(h, x.as_mut_ptr(), g.as_ptr(), x.len()) },
            LODO_OK
        );
    }
}

fn bits32(x: &[f32]) -> Vec<u32> {
    x.iter().map(|v| v.to_bits()).collect()
}

#[test]
fn f32_minimises_and_resumes_bit_for_bit() {
    let n = 12;
    let h = new_f32(n);
    let mut x = vec![0.0f32; n];
    steps_f32(h, &mut x, 50);
    let saved = save_f32(h);
    let x_saved = x.clone();
    steps_f32(h, &mut x, 150);

    let resumed = load_f32(&saved).expect("own state loads");
    let mut y = x_saved;
    steps_f32(resumed, &mut y, 150);
    assert_eq!(bits32(&x), bits32(&y));
    assert!(x.iter().all(|v| (v - 1.0).abs() < 0.05), "{x:?}");
    let mut d = 0;
    assert_eq!(unsafe { lodo_f32_dim(resumed, &mut d) }, LODO_OK);
    assert_eq!(d, n);
    unsafe {
        lodo_f32_free(h);
        lodo_f32_free(resumed);
    }
}

#[test]
fn f64_minimises_and_resumes_bit_for_bit() {
    let n = 9;
    let mut status = -1;
    let h = unsafe { lodo_f64_new(n, &config(), 3, &mut status) };
    assert_eq!(status, LODO_OK);
    let run = |h: *mut LodoF64, x: &mut [f64], steps: usize| {
        let mut g = vec![0.0; x.len()];
        for _ in 0..steps {
            gradient(x, &mut g, |v| v);
            assert_eq!(
                unsafe { lodo_f64_step(h, x.as_mut_ptr(), g.as_ptr(), x.len()) },
                LODO_OK
            );
        }
    };
    let mut x = vec![0.0f64; n];
    run(h, &mut x, 40);
    let buf = save_f64(h);
    let mut y = x.clone();
    run(h, &mut x, 100);
    let resumed = unsafe { lodo_f64_load(buf.as_ptr(), buf.len(), &mut status) };
    assert_eq!(status, LODO_OK);
    run(resumed, &mut y, 100);
    assert_eq!(
        x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    // An f64 state is refused by the f32 loader, and the other way round.
    assert_eq!(load_f32(&buf).unwrap_err(), LODO_ERR_STATE_WRONG_TYPE);
    let f32_state = save_f32(new_f32(3));
    let h64 = unsafe { lodo_f64_load(f32_state.as_ptr(), f32_state.len(), &mut status) };
    assert!(h64.is_null());
    assert_eq!(status, LODO_ERR_STATE_WRONG_TYPE);
    unsafe {
        lodo_f64_free(h);
        lodo_f64_free(resumed);
    }
}

#[test]
fn construction_errors_are_statuses() {
    let mut status = -1;
    assert!(unsafe { lodo_f32_new(4, null(), 1, &mut status) }.is_null());
    assert_eq!(status, LODO_ERR_NULL_POINTER);
    assert!(unsafe { lodo_f32_new(0, &config(), 1, &mut status) }.is_null());
    assert_eq!(status, LODO_ERR_INVALID_CONFIG);
    let bad = [
        LodoConfigC {
            beta: 1.0,
            ..config()
        },
        LodoConfigC {
            beta: f64::NAN,
            ..config()
        },
        LodoConfigC {
            alpha0: 0.0,
            ..config()
        },
        LodoConfigC {
            alpha0: 1e300,
            ..config()
        }, // ∞ as f32
        LodoConfigC {
            meta_lr: -1.0,
            ..config()
        },
        LodoConfigC {
            adam_beta1: 1.0,
            ..config()
        },
        LodoConfigC {
            adam_beta2: -0.1,
            ..config()
        },
        LodoConfigC {
            adam_epsilon: 0.0,
            ..config()
        },
        LodoConfigC {
            layers: 0,
            ..config()
        },
        LodoConfigC {
            block_size: 0,
            ..config()
        },
        LodoConfigC {
            hidden: 2,
            ..config()
        }, // < n
        LodoConfigC {
            hidden: 10,
            ..config()
        }, // not a multiple of k = 4
        LodoConfigC {
            hidden: usize::MAX,
            ..config()
        },
        LodoConfigC {
            block_size: usize::MAX,
            ..config()
        },
    ];
    for c in bad {
        assert!(
            unsafe { lodo_f32_new(4, &c, 1, &mut status) }.is_null(),
            "{c:?}"
        );
        assert_eq!(status, LODO_ERR_INVALID_CONFIG, "{c:?}");
    }
    // A null status pointer is allowed: the handle alone tells success.
    let h = unsafe { lodo_f32_new(4, &config(), 1, null_mut()) };
    assert!(!h.is_null());
    unsafe { lodo_f32_free(h) };
    unsafe { lodo_f32_free(null_mut()) }; // no-op
    // The memory-size query: lodo-core's formula (itself checked against an allocator).
    let mut bytes = 0;
    assert_eq!(
        unsafe { lodo_f32_memory_size(4, &config(), &mut bytes) },
        LODO_OK
    );
    let core_config = lodo_core::LodoConfig::<f32>::default()
        .with_alpha0(config().alpha0 as f32)
        .unwrap();
    assert_eq!(
        bytes,
        lodo_core::Lodo::<f32>::memory_bytes(4, &core_config).unwrap()
    );
    let mut bytes64 = 0;
    assert_eq!(
        unsafe { lodo_f64_memory_size(4, &config(), &mut bytes64) },
        LODO_OK
    );
    assert!(bytes64 > bytes, "f64 holds more than f32");
    assert_eq!(
        unsafe { lodo_f64_memory_size(0, &config(), &mut bytes) },
        LODO_ERR_INVALID_CONFIG
    );
    assert_eq!(
        unsafe { lodo_f32_memory_size(4, null(), &mut bytes) },
        LODO_ERR_NULL_POINTER
    );
}

#[test]
fn step_errors_are_statuses_and_change_nothing() {
    let n = 8;
    let h = new_f32(n);
    let mut x = vec![0.5f32; n + 1];
    let mut g = vec![0.25f32; n + 1];
    let before = bits32(&x);
    let state = save_f32(h);
    let step = |h, x: *mut f32, g: *const f32, n| unsafe { lodo_f32_step(h, x, g, n) };

    assert_eq!(
        step(null_mut(), x.as_mut_ptr(), g.as_ptr(), n),
        LODO_ERR_NULL_POINTER
    );
    assert_eq!(step(h, null_mut(), g.as_ptr(), n), LODO_ERR_NULL_POINTER);
    assert_eq!(step(h, x.as_mut_ptr(), null(), n), LODO_ERR_NULL_POINTER);
    assert_eq!(
        step(h, x.as_mut_ptr(), g.as_ptr(), n - 1),
        LODO_ERR_WRONG_LENGTH
    );
    assert_eq!(
        step(h, x.as_mut_ptr(), g.as_ptr(), n + 1),
        LODO_ERR_WRONG_LENGTH
    );
    assert_eq!(
        step(h, x.as_mut_ptr(), g.as_ptr(), 0),
        LODO_ERR_WRONG_LENGTH
    );
    let misaligned = x.as_mut_ptr().cast::<u8>().wrapping_add(1).cast::<f32>();
    assert_eq!(
        step(h, misaligned, g.as_ptr(), n),
        LODO_ERR_MISALIGNED_POINTER
    );
    assert_eq!(step(h, x.as_mut_ptr(), x.as_ptr(), n), LODO_ERR_ALIASING);
    assert_eq!(
        step(h, x.as_mut_ptr(), x[1..].as_ptr(), n),
        LODO_ERR_ALIASING
    );
    for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
        g[3] = bad;
        assert_eq!(
            step(h, x.as_mut_ptr(), g.as_ptr(), n),
            LODO_ERR_NON_FINITE_GRADIENT
        );
    }
    // Every refused call above left the parameters and the optimizer's state as they were.
    assert_eq!(bits32(&x), before);
    assert_eq!(save_f32(h), state);
    // Huge but finite gradients: whatever happens is a status (here the meta-update overflows:
    // NON_FINITE_META_UPDATE), never a non-finite parameter, and the state still saves and loads.
    g[3] = f32::MAX;
    for _ in 0..3 {
        let s = step(h, x.as_mut_ptr(), g.as_ptr(), n);
        assert!(
            s == LODO_OK || s == LODO_ERR_NON_FINITE_STEP || s == LODO_ERR_NON_FINITE_META_UPDATE,
            "{s}"
        );
        assert!(x.iter().all(|v| v.is_finite()));
    }
    let reloaded = load_f32(&save_f32(h)).expect("a refused step leaves a loadable state");
    unsafe { lodo_f32_free(reloaded) };
    // save → load → save gives the same bytes.
    let fresh = load_f32(&state).unwrap();
    assert_eq!(save_f32(fresh), state);
    let mut d = 0;
    assert_eq!(
        unsafe { lodo_f32_dim(null(), &mut d) },
        LODO_ERR_NULL_POINTER
    );
    assert_eq!(
        unsafe { lodo_f32_dim(h, null_mut()) },
        LODO_ERR_NULL_POINTER
    );
    unsafe {
        lodo_f32_free(h);
        lodo_f32_free(fresh);
    }
}

#[test]
fn refused_steps_leave_the_state_bits_alone() {
    let h = new_f32(5);
    let mut x = [0.0f32; 5];
    steps_f32(h, &mut x, 3);
    let state = save_f32(h);
    let mut g = [1.0f32; 5];
    g[4] = f32::NAN;
    let mut y = x;
    assert_eq!(
        unsafe { lodo_f32_step(h, y.as_mut_ptr(), g.as_ptr(), 5) },
        LODO_ERR_NON_FINITE_GRADIENT
    );
    assert_eq!(
        unsafe { lodo_f32_step(h, y.as_mut_ptr(), g.as_ptr(), 4) },
        LODO_ERR_WRONG_LENGTH
    );
    assert_eq!(bits32(&x), bits32(&y));
    assert_eq!(save_f32(h), state);
    unsafe { lodo_f32_free(h) };
}

#[test]
fn save_errors_are_statuses() {
    let h = new_f32(6);
    let state = save_f32(h);
    let mut buf = vec![0xAAu8; state.len() - 1];
    let mut written = 0;
    assert_eq!(
        unsafe { lodo_f32_save(h, buf.as_mut_ptr(), buf.len(), &mut written) },
        LODO_ERR_BUFFER_TOO_SMALL
    );
    assert_eq!(written, state.len());
    assert!(buf.iter().all(|&b| b == 0xAA), "buffer untouched");
    assert_eq!(
        unsafe { lodo_f32_save(h, null_mut(), 0, &mut written) },
        LODO_ERR_NULL_POINTER
    );
    assert_eq!(
        unsafe { lodo_f32_save(null(), buf.as_mut_ptr(), buf.len(), &mut written) },
        LODO_ERR_NULL_POINTER
    );
    let mut size = 0usize;
    assert_eq!(
        unsafe { lodo_f32_state_size(null(), &mut size) },
        LODO_ERR_NULL_POINTER
    );
    assert_eq!(
        unsafe { lodo_f32_state_size(h, null_mut()) },
        LODO_ERR_NULL_POINTER
    );
    unsafe { lodo_f32_free(h) };
}

#[test]
fn bad_state_bytes_are_statuses() {
    let h = new_f32(6);
    let mut x = [0.0f32; 6];
    steps_f32(h, &mut x, 5);
    let state = save_f32(h);
    unsafe { lodo_f32_free(h) };

    let mut status = -1;
    assert!(unsafe { lodo_f32_load(null(), 10, &mut status) }.is_null());
    assert_eq!(status, LODO_ERR_NULL_POINTER);
    assert_eq!(load_f32(&[]).unwrap_err(), LODO_ERR_STATE_TRUNCATED);
    // Every strict prefix is truncated.
    for len in 0..state.len() {
        assert_eq!(
            load_f32(&state[..len]).unwrap_err(),
            LODO_ERR_STATE_TRUNCATED,
            "len {len}"
        );
    }
    let mut longer = state.clone();
    longer.push(0);
    assert_eq!(load_f32(&longer).unwrap_err(), LODO_ERR_STATE_CORRUPT);
    assert_eq!(load_f32(b"JSON{}").unwrap_err(), LODO_ERR_STATE_CORRUPT);
    // Every single flipped bit is caught (magic, version, width, reserved, length, hash, payload).
    for i in 0..state.len() {
        for bit in 0..8 {
            let mut s = state.clone();
            s[i] ^= 1 << bit;
            let e = load_f32(&s).unwrap_err();
            assert!(
                e != LODO_OK && e != LODO_ERR_INTERNAL,
                "byte {i} bit {bit}: {e}"
            );
        }
    }
    let mut s = state.clone();
    s[4] = 2;
    assert_eq!(
        load_f32(&s).unwrap_err(),
        LODO_ERR_STATE_UNSUPPORTED_VERSION
    );
    let mut s = state.clone();
    s[6] = 3;
    assert_eq!(load_f32(&s).unwrap_err(), LODO_ERR_STATE_CORRUPT);
    // Forged payloads with a valid hash reach lodo-core's validation: the first field is
    // lodo-core's STATE_FORMAT (a one-byte varint), the second β (4 bytes).
    let mut s = state.clone();
    assert_eq!(s[24], 3, "lodo-core STATE_FORMAT 3");
    s[24] = 9;
    let s = reseal(s);
    assert_eq!(
        load_f32(&s).unwrap_err(),
        LODO_ERR_STATE_UNSUPPORTED_VERSION
    );
    for beta in [f32::NAN, 1.0, -0.5] {
        let mut s = state.clone();
        s[25..29].copy_from_slice(&beta.to_le_bytes());
        let s = reseal(s);
        assert_eq!(
            load_f32(&s).unwrap_err(),
            LODO_ERR_STATE_INVALID,
            "beta {beta}"
        );
    }
}

#[test]
fn every_status_has_a_static_message() {
    let codes = [
        LODO_OK,
        LODO_ERR_NULL_POINTER,
        LODO_ERR_MISALIGNED_POINTER,
        LODO_ERR_ALIASING,
        LODO_ERR_INVALID_CONFIG,
        LODO_ERR_WRONG_LENGTH,
        LODO_ERR_NON_FINITE_GRADIENT,
        LODO_ERR_NON_FINITE_STEP,
        LODO_ERR_BUFFER_TOO_SMALL,
        LODO_ERR_STATE_TRUNCATED,
        LODO_ERR_STATE_CORRUPT,
        LODO_ERR_STATE_WRONG_TYPE,
        LODO_ERR_STATE_UNSUPPORTED_VERSION,
        LODO_ERR_STATE_INVALID,
        LODO_ERR_OUT_OF_MEMORY,
        LODO_ERR_INTERNAL,
        LODO_ERR_NON_FINITE_META_UPDATE,
    ];
    let unknown = unsafe { CStr::from_ptr(lodo_status_message(-1)) };
    let mut seen = std::collections::HashSet::new();
    for (i, &code) in codes.iter().enumerate() {
        assert_eq!(code, i as LodoStatus, "codes are 0..=16 in order");
        let m = unsafe { CStr::from_ptr(lodo_status_message(code)) };
        assert!(!m.is_empty() && m != unknown);
        assert!(seen.insert(m), "distinct messages");
    }
    assert_eq!(unknown.to_str(), Ok("unknown status code"));
    assert_eq!(
        unsafe { CStr::from_ptr(lodo_status_message(i32::MAX)) },
        unknown
    );
}

#[test]
fn default_config_is_lodo_cores() {
    let c = lodo_config_default();
    assert_eq!(c.beta.to_bits(), 0.9f64.to_bits());
    assert_eq!(c.alpha0.to_bits(), 1.0f64.to_bits());
    assert_eq!(c.meta_lr.to_bits(), 1e-3f64.to_bits());
    assert_eq!((c.layers, c.block_size, c.hidden), (16, 4, 0));
    assert_eq!(
        (
            c.adam_beta1.to_bits(),
            c.adam_beta2.to_bits(),
            c.adam_epsilon.to_bits()
        ),
        (0.9f64.to_bits(), 0.999f64.to_bits(), 1e-7f64.to_bits())
    );
}
