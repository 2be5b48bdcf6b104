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
    let mut x = vec![0.0f64; n];
    steps_f64(h, &mut x, 40);
    let buf = save_f64(h);
    let mut y = x.clone();
    steps_f64(h, &mut x, 100);
    let resumed = unsafe { lodo_f64_load(buf.as_ptr(), buf.len(), &mut status) };
    assert_eq!(status, LODO_OK);
    steps_f64(resumed, &mut y, 100);
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
    assert_eq!(s[24], 4, "lodo-core STATE_FORMAT 4");
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
        LODO_ERR_COMPACT_BLOCK_TOO_LARGE,
        LODO_ERR_UNSUPPORTED_ACTIVATION_PRECISION,
        LODO_ERR_UNSUPPORTED_WEIGHT_PRECISION,
    ];
    let unknown = unsafe { CStr::from_ptr(lodo_status_message(-1)) };
    let mut seen = std::collections::HashSet::new();
    for (i, &code) in codes.iter().enumerate() {
        assert_eq!(code, i as LodoStatus, "codes are 0..=19 in order");
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
    assert_eq!(
        (c.moments, c.activations),
        (LODO_PRECISION_FULL, LODO_PRECISION_FULL)
    );
    assert_eq!(
        (LODO_PRECISION_FULL, LODO_PRECISION_BF16, LODO_PRECISION_Q8),
        (0, 1, 2)
    );
    assert_eq!(c.weights, LODO_WEIGHTS_FULL);
    assert_eq!((LODO_WEIGHTS_FULL, LODO_WEIGHTS_F32), (0, 1));
}

// The compact state: `LodoConfigC::moments` and `LodoConfigC::activations`.

/// `config()` with the given policy.
fn with_policy(moments: LodoPrecision, activations: LodoPrecision) -> LodoConfigC {
    LodoConfigC {
        moments,
        activations,
        ..config()
    }
}

fn precision(code: LodoPrecision) -> lodo_core::Precision {
    match code {
        LODO_PRECISION_FULL => lodo_core::Precision::Full,
        LODO_PRECISION_BF16 => lodo_core::Precision::Bf16,
        LODO_PRECISION_Q8 => lodo_core::Precision::Q8,
        _ => unreachable!("a test policy"),
    }
}

fn weight_precision(code: LodoWeightPrecision) -> lodo_core::WeightPrecision {
    match code {
        LODO_WEIGHTS_FULL => lodo_core::WeightPrecision::Full,
        LODO_WEIGHTS_F32 => lodo_core::WeightPrecision::F32,
        _ => unreachable!("a test policy"),
    }
}

/// lodo-core's configuration of `with_policy(moments, activations)`, built independently.
fn core_config<T: lodo_core::Real>(
    moments: LodoPrecision,
    activations: LodoPrecision,
) -> lodo_core::LodoConfig<T> {
    core_config_weights(moments, activations, LODO_WEIGHTS_FULL)
}

/// [`core_config`] with the weights held as `weights` says.
fn core_config_weights<T: lodo_core::Real>(
    moments: LodoPrecision,
    activations: LodoPrecision,
    weights: LodoWeightPrecision,
) -> lodo_core::LodoConfig<T> {
    let c = lodo_core::LodoConfig::<T>::default()
        .with_alpha0(T::from(config().alpha0).unwrap())
        .unwrap();
    let network = c
        .preconditioner()
        .with_activations(precision(activations))
        .and_then(|b| b.with_weights(weight_precision(weights)))
        .unwrap();
    let meta = c.meta().with_precision(precision(moments));
    c.with_preconditioner(network).with_meta(meta)
}

const POLICIES: [(LodoPrecision, LodoPrecision); 6] = [
    (LODO_PRECISION_FULL, LODO_PRECISION_FULL),
    (LODO_PRECISION_BF16, LODO_PRECISION_FULL),
    (LODO_PRECISION_Q8, LODO_PRECISION_FULL),
    (LODO_PRECISION_FULL, LODO_PRECISION_BF16),
    (LODO_PRECISION_BF16, LODO_PRECISION_BF16),
    (LODO_PRECISION_Q8, LODO_PRECISION_BF16),
];

#[test]
fn compact_states_train_save_compact_and_resume_bit_for_bit() {
    let n = 12;
    let plain = new_f32(n);
    let full_size = save_f32(plain).len();
    unsafe { lodo_f32_free(plain) };
    for (moments, activations) in POLICIES {
        let c = with_policy(moments, activations);
        let mut status = -1;
        let h = unsafe { lodo_f32_new(n, &c, 7, &mut status) };
        assert_eq!(status, LODO_OK, "{c:?}");
        let mut x = vec![0.0f32; n];
        steps_f32(h, &mut x, 50);
        let saved = save_f32(h);
        let x_saved = x.clone();
        steps_f32(h, &mut x, 150);
        let resumed = load_f32(&saved).expect("a compact state loads");
        let mut y = x_saved;
        steps_f32(resumed, &mut y, 150);
        assert_eq!(bits32(&x), bits32(&y), "{c:?}");
        // The two handles are in the same state, compact policy included.
        assert_eq!(save_f32(h), save_f32(resumed), "{c:?}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 0.05), "{c:?}: {x:?}");
        // Compact moments save compact: M and V take 2 or 1 byte(s) a weight instead of 4 (the
        // activations are not saved).
        if moments == LODO_PRECISION_FULL {
            assert_eq!(saved.len(), full_size, "{c:?}");
        } else {
            assert!(
                saved.len() < full_size,
                "{c:?}: {} !< {full_size}",
                saved.len()
            );
        }
        unsafe {
            lodo_f32_free(h);
            lodo_f32_free(resumed);
        }
    }
    // f64: q8 moments, bf16 activations.
    let c = with_policy(LODO_PRECISION_Q8, LODO_PRECISION_BF16);
    let mut status = -1;
    let h = unsafe { lodo_f64_new(n, &c, 3, &mut status) };
    assert_eq!(status, LODO_OK);
    let mut x = vec![0.0f64; n];
    steps_f64(h, &mut x, 40);
    let buf = save_f64(h);
    let mut y = x.clone();
    steps_f64(h, &mut x, 100);
    let resumed = unsafe { lodo_f64_load(buf.as_ptr(), buf.len(), &mut status) };
    assert_eq!(status, LODO_OK);
    steps_f64(resumed, &mut y, 100);
    assert_eq!(
        x.iter().map(|v| v.to_bits()).collect::<Vec<_>>(),
        y.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
    );
    assert_eq!(save_f64(h), save_f64(resumed));
    unsafe {
        lodo_f64_free(h);
        lodo_f64_free(resumed);
    }
}

/// The bytes of the crate docs' table for `n` parameters at the default shape (`N = 16`,
/// `k = 4`, `h = 2n` rounded up to a multiple of 4), `s`-byte floats, minus what every policy
/// holds alike: Adam's moments and the kept activations.
fn policy_bytes(n: usize, s: usize, moments: LodoPrecision, activations: LodoPrecision) -> usize {
    let (layers, k) = (16, 4);
    let h = (2 * n).div_ceil(k) * k;
    let theta = layers * h * k;
    // A q8 tile: the whole k × k blocks that fit 512 entries, within one layer's h·k weights.
    let tile = 512 / (k * k) * (k * k);
    let moments = match moments {
        LODO_PRECISION_FULL => 2 * theta * s,
        LODO_PRECISION_BF16 => 4 * theta,
        _ => 2 * theta + 8 * layers * (h * k).div_ceil(tile),
    };
    let activations = match activations {
        LODO_PRECISION_FULL => 2 * layers * h * s,
        _ => 4 * layers * h,
    };
    moments + activations
}

#[test]
fn memory_size_follows_the_policy() {
    for n in [1, 5, 1000] {
        let (mut full32, mut full64) = (0, 0);
        for (moments, activations) in POLICIES {
            let c = with_policy(moments, activations);
            let (mut b32, mut b64) = (0, 0);
            assert_eq!(unsafe { lodo_f32_memory_size(n, &c, &mut b32) }, LODO_OK);
            assert_eq!(unsafe { lodo_f64_memory_size(n, &c, &mut b64) }, LODO_OK);
            let core32 = core_config::<f32>(moments, activations);
            let core64 = core_config::<f64>(moments, activations);
            assert_eq!(
                b32,
                lodo_core::Lodo::<f32>::memory_bytes(n, &core32).unwrap()
            );
            assert_eq!(
                b64,
                lodo_core::Lodo::<f64>::memory_bytes(n, &core64).unwrap()
            );
            if (moments, activations) == POLICIES[0] {
                (full32, full64) = (b32, b64);
            }
            // Only the policy's two parts change, by the docs' formula.
            let full = |s| policy_bytes(n, s, LODO_PRECISION_FULL, LODO_PRECISION_FULL);
            assert_eq!(
                full32 - b32,
                full(4) - policy_bytes(n, 4, moments, activations),
                "n = {n}, {c:?}"
            );
            assert_eq!(
                full64 - b64,
                full(8) - policy_bytes(n, 8, moments, activations),
                "n = {n}, {c:?}"
            );
        }
    }
}

#[test]
fn precision_refusals_are_statuses() {
    let cases = [
        // q8 activations: refused by lodo-core with its own error.
        (
            with_policy(LODO_PRECISION_FULL, LODO_PRECISION_Q8),
            LODO_ERR_UNSUPPORTED_ACTIVATION_PRECISION,
        ),
        (
            with_policy(LODO_PRECISION_Q8, LODO_PRECISION_Q8),
            LODO_ERR_UNSUPPORTED_ACTIVATION_PRECISION,
        ),
        // Compact moments with k = 23 (h = 23 for n = 4).
        (
            LodoConfigC {
                block_size: 23,
                ..with_policy(LODO_PRECISION_BF16, LODO_PRECISION_FULL)
            },
            LODO_ERR_COMPACT_BLOCK_TOO_LARGE,
        ),
        (
            LodoConfigC {
                block_size: 23,
                ..with_policy(LODO_PRECISION_Q8, LODO_PRECISION_BF16)
            },
            LODO_ERR_COMPACT_BLOCK_TOO_LARGE,
        ),
        // Values that name no policy.
        (with_policy(3, LODO_PRECISION_FULL), LODO_ERR_INVALID_CONFIG),
        (with_policy(LODO_PRECISION_FULL, 3), LODO_ERR_INVALID_CONFIG),
        (with_policy(u32::MAX, u32::MAX), LODO_ERR_INVALID_CONFIG),
        (
            LodoConfigC {
                weights: 2,
                ..config()
            },
            LODO_ERR_INVALID_CONFIG,
        ),
        (
            LodoConfigC {
                weights: u32::MAX,
                ..with_policy(LODO_PRECISION_Q8, LODO_PRECISION_BF16)
            },
            LODO_ERR_INVALID_CONFIG,
        ),
    ];
    for (c, want) in cases {
        let mut status = -1;
        assert!(unsafe { lodo_f32_new(4, &c, 1, &mut status) }.is_null());
        assert_eq!(status, want, "{c:?}");
        assert!(unsafe { lodo_f64_new(4, &c, 1, &mut status) }.is_null());
        assert_eq!(status, want, "{c:?}");
        let mut bytes = 0;
        assert_eq!(unsafe { lodo_f32_memory_size(4, &c, &mut bytes) }, want);
        assert_eq!(unsafe { lodo_f64_memory_size(4, &c, &mut bytes) }, want);
        assert_eq!(bytes, 0, "nothing written");
    }
    // The limits: k = 22 with compact moments, k = 23 with moments in full precision.
    for c in [
        LodoConfigC {
            block_size: 22,
            ..with_policy(LODO_PRECISION_Q8, LODO_PRECISION_BF16)
        },
        LodoConfigC {
            block_size: 23,
            ..with_policy(LODO_PRECISION_FULL, LODO_PRECISION_BF16)
        },
    ] {
        let mut status = -1;
        let h = unsafe { lodo_f32_new(4, &c, 1, &mut status) };
        assert_eq!(status, LODO_OK, "{c:?}");
        unsafe { lodo_f32_free(h) };
    }
}

// θ held in f32 below an f64 handle: `LodoConfigC::weights`.

/// `with_policy(moments, activations)` with `θ` in f32.
fn with_f32_weights(moments: LodoPrecision, activations: LodoPrecision) -> LodoConfigC {
    LodoConfigC {
        weights: LODO_WEIGHTS_F32,
        ..with_policy(moments, activations)
    }
}

fn bits64(x: &[f64]) -> Vec<u64> {
    x.iter().map(|v| v.to_bits()).collect()
}

/// `steps` steps of the f64 handle on the quadratic of [`gradient`].
fn steps_f64(h: *mut LodoF64, x: &mut [f64], steps: usize) {
    let mut g = vec![0.0; x.len()];
    for _ in 0..steps {
        gradient(x, &mut g, |v| v);
        assert_eq!(
            unsafe { lodo_f64_step(h, x.as_mut_ptr(), g.as_ptr(), x.len()) },
            LODO_OK
        );
    }
}

fn new_f64(n: usize, c: &LodoConfigC, seed: u64) -> *mut LodoF64 {
    let mut status = -1;
    let h = unsafe { lodo_f64_new(n, c, seed, &mut status) };
    assert_eq!(status, LODO_OK, "{c:?}");
    assert!(!h.is_null());
    h
}

/// An f64 handle with `θ` in f32 runs lodo-core's `Lodo` with that policy (same bits), saves
/// `θ` as f32 (exactly `4·|θ|` bytes fewer than the same state with `θ` in f64) and resumes bit
/// for bit through `lodo_f64_save` / `lodo_f64_load`; with every moment and activation policy.
#[test]
fn f32_weights_train_save_compact_and_resume_bit_for_bit() {
    let (n, seed) = (12, 5);
    for (moments, activations) in POLICIES {
        let c = with_f32_weights(moments, activations);
        let h = new_f64(n, &c, seed);
        let wide = new_f64(n, &with_policy(moments, activations), seed);
        let mut core = lodo_core::Lodo::<f64>::new(
            n,
            core_config_weights(moments, activations, LODO_WEIGHTS_F32),
            seed,
        )
        .unwrap();
        assert_eq!(
            core.preconditioner().weight_precision(),
            lodo_core::WeightPrecision::F32
        );
        let (mut x, mut z, mut w) = (vec![0.0f64; n], vec![0.0f64; n], vec![0.0f64; n]);
        steps_f64(h, &mut x, 40);
        steps_f64(wide, &mut w, 40);
        let mut g = vec![0.0; n];
        for _ in 0..40 {
            gradient(&z, &mut g, |v| v);
            core.step(&mut z, &g).unwrap();
        }
        // The C handle is lodo-core's θ-in-f32 optimizer, and the policy changes the run.
        assert_eq!(bits64(&x), bits64(&z), "{c:?}");
        assert_ne!(bits64(&x), bits64(&w), "{c:?}: θ in f32 rounds");

        let saved = save_f64(h);
        let saved_wide = save_f64(wide);
        // postcard: `blocks` (f64) empty and `blocks_f32` holding |θ| f32, against the other way
        // round; the length prefixes (varints of 0 and |θ|) and the `weights` tag take the same
        // bytes, so the difference is 4 bytes a weight.
        let theta = lodo_core::Preconditioner::weight_count(core.preconditioner());
        assert_eq!(saved_wide.len() - saved.len(), 4 * theta, "{c:?}");
        let restored = lodo::decode_state::<f64, lodo_core::Adam<f64>>(&saved).unwrap();
        assert_eq!(
            restored.preconditioner().weight_precision(),
            lodo_core::WeightPrecision::F32
        );

        let x_saved = x.clone();
        steps_f64(h, &mut x, 100);
        let mut status = -1;
        let resumed = unsafe { lodo_f64_load(saved.as_ptr(), saved.len(), &mut status) };
        assert_eq!(status, LODO_OK, "{c:?}");
        let mut y = x_saved;
        steps_f64(resumed, &mut y, 100);
        assert_eq!(bits64(&x), bits64(&y), "{c:?}");
        // The two handles are in the same state, θ's policy included.
        assert_eq!(save_f64(h), save_f64(resumed), "{c:?}");
        assert!(x.iter().all(|v| (v - 1.0).abs() < 0.05), "{c:?}: {x:?}");
        // An f64 state is still refused by the f32 loader.
        assert_eq!(load_f32(&saved).unwrap_err(), LODO_ERR_STATE_WRONG_TYPE);
        unsafe {
            lodo_f64_free(h);
            lodo_f64_free(wide);
            lodo_f64_free(resumed);
        }
    }
}

/// `lodo_f64_memory_size` with `θ` in f32 is lodo-core's figure for the same configuration, and
/// smaller than with `θ` in f64; an f32 handle refuses the policy with its own status.
#[test]
fn f32_weights_memory_size_and_refusal() {
    for n in [1, 5, 1000] {
        for (moments, activations) in POLICIES {
            let c = with_f32_weights(moments, activations);
            let (mut small, mut wide) = (0, 0);
            assert_eq!(unsafe { lodo_f64_memory_size(n, &c, &mut small) }, LODO_OK);
            assert_eq!(
                unsafe { lodo_f64_memory_size(n, &with_policy(moments, activations), &mut wide) },
                LODO_OK
            );
            let core = core_config_weights::<f64>(moments, activations, LODO_WEIGHTS_F32);
            assert_eq!(
                small,
                lodo_core::Lodo::<f64>::memory_bytes(n, &core).unwrap(),
                "n = {n}, {c:?}"
            );
            assert!(small < wide, "n = {n}, {c:?}: {small} !< {wide}");
            // f32: refused, nothing written, nothing created.
            let mut bytes = 0;
            assert_eq!(
                unsafe { lodo_f32_memory_size(n, &c, &mut bytes) },
                LODO_ERR_UNSUPPORTED_WEIGHT_PRECISION
            );
            assert_eq!(bytes, 0);
            let mut status = -1;
            assert!(unsafe { lodo_f32_new(n, &c, 1, &mut status) }.is_null());
            assert_eq!(status, LODO_ERR_UNSUPPORTED_WEIGHT_PRECISION, "{c:?}");
        }
    }
    // lodo-core refuses the same policy for f32 with the error the status stands for.
    assert_eq!(
        lodo_core::BlockConfig::<f32>::default()
            .with_weights(lodo_core::WeightPrecision::F32)
            .err(),
        Some(lodo_core::ConfigError::UnsupportedWeightPrecision)
    );
    let m = unsafe { CStr::from_ptr(lodo_status_message(LODO_ERR_UNSUPPORTED_WEIGHT_PRECISION)) };
    assert!(m.to_str().unwrap().contains("f64"), "{m:?}");
}

/// An f32 state whose `weights` tag claims `θ` in f32 is refused by lodo-core's validation:
/// [`LODO_ERR_STATE_INVALID`], as every state lodo-core refuses (a state is not a
/// configuration: the typed configuration status is for `lodo_f32_new` and the memory query).
#[test]
fn f32_state_claiming_f32_weights_is_invalid() {
    let h = new_f32(6);
    let mut x = vec![0.0f32; 6];
    steps_f32(h, &mut x, 3);
    let saved = save_f32(h);
    unsafe { lodo_f32_free(h) };
    // postcard is positional: the network's last field, `weights` (variant 0 = Full), comes
    // right before `meta`, a map of one entry (length 1) named "Adam" (length 4).
    let tag = b"\x01\x04Adam";
    let at: Vec<usize> = (24..saved.len() - tag.len())
        .filter(|&i| &saved[i..i + tag.len()] == tag)
        .collect();
    assert_eq!(at.len(), 1, "one `meta` map");
    let weights = at[0] - 1;
    assert_eq!(saved[weights], 0, "WeightPrecision::Full");
    let mut forged = saved.clone();
    forged[weights] = 1; // WeightPrecision::F32
    assert_eq!(
        load_f32(&reseal(forged)).unwrap_err(),
        LODO_ERR_STATE_INVALID
    );
    // The unforged bytes, resealed, still load (the edit, not the resealing, is refused).
    let h = load_f32(&reseal(saved)).unwrap();
    unsafe { lodo_f32_free(h) };
}
