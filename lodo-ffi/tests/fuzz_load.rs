//! Fuzzing the state loader with proptest, bounded (`LODO_FFI_FUZZ_CASES`, default 512 per
//! property): arbitrary bytes, and mutations of valid states — bit flips, overwritten bytes,
//! truncation, insertion — some with the envelope's hash recomputed so the mutation reaches the
//! postcard decoder and lodo-core's validation. Every call must return a status (never a panic,
//! which would show as `LODO_ERR_INTERNAL`, never a crash); a state that loads must take steps.
#![allow(clippy::undocumented_unsafe_blocks)] // Test calls: every pointer is a live local.

use std::sync::OnceLock;

use lodo::*;
use proptest::prelude::*;

mod common;
use common::{reseal, save_f32, save_f64};

fn cases() -> u32 {
    std::env::var("LODO_FFI_FUZZ_CASES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(512)
}

/// Valid states to mutate: f32 and f64, a small network (2 layers, k = 2) after a few steps,
/// and an f64 one with `θ` held in f32, q8 moments and bf16 activations (the compact state).
fn seeds() -> &'static [Vec<u8>; 3] {
    static SEEDS: OnceLock<[Vec<u8>; 3]> = OnceLock::new();
    SEEDS.get_or_init(|| {
        let config = LodoConfigC {
            layers: 2,
            block_size: 2,
            ..lodo_config_default()
        };
        let compact = LodoConfigC {
            moments: LODO_PRECISION_Q8,
            activations: LODO_PRECISION_BF16,
            weights: LODO_WEIGHTS_F32,
            ..config
        };
        let mut status = -1;
        let h32 = unsafe { lodo_f32_new(3, &config, 5, &mut status) };
        let h64 = unsafe { lodo_f64_new(3, &config, 5, &mut status) };
        let hc = unsafe { lodo_f64_new(3, &compact, 5, &mut status) };
        assert_eq!(status, LODO_OK);
        let mut x32 = [0.0f32; 3];
        let mut x64 = [0.0f64; 3];
        let mut xc = [0.0f64; 3];
        for _ in 0..4 {
            let g32 = x32.map(|v| v - 1.0);
            let g64 = x64.map(|v| v - 1.0);
            let gc = xc.map(|v| v - 1.0);
            assert_eq!(
                unsafe { lodo_f64_step(hc, xc.as_mut_ptr(), gc.as_ptr(), 3) },
                LODO_OK
            );
            assert_eq!(
                unsafe { lodo_f32_step(h32, x32.as_mut_ptr(), g32.as_ptr(), 3) },
                LODO_OK
            );
            assert_eq!(
                unsafe { lodo_f64_step(h64, x64.as_mut_ptr(), g64.as_ptr(), 3) },
                LODO_OK
            );
        }
        let (b32, b64, bc) = (save_f32(h32), save_f64(h64), save_f64(hc));
        unsafe {
            lodo_f32_free(h32);
            lodo_f64_free(h64);
            lodo_f64_free(hc);
        }
        [b32, b64, bc]
    })
}

/// A step of a loaded optimizer succeeds or is refused for a numerical reason (a state with
/// huge but finite values may overflow), never anything else.
fn refused_or_ok(s: LodoStatus) -> bool {
    s == LODO_OK || s == LODO_ERR_NON_FINITE_STEP || s == LODO_ERR_NON_FINITE_META_UPDATE
}

/// Loads `bytes` into both handle types; checks every outcome is a status and that a loaded
/// optimizer steps (any status but an internal error) and saves.
fn load_everything(bytes: &[u8]) -> Result<(), TestCaseError> {
    let mut status = -1;
    let h = unsafe { lodo_f32_load(bytes.as_ptr(), bytes.len(), &mut status) };
    prop_assert_ne!(status, LODO_ERR_INTERNAL);
    prop_assert_eq!(h.is_null(), status != LODO_OK);
    if !h.is_null() {
        let mut n = 0;
        prop_assert_eq!(unsafe { lodo_f32_dim(h, &mut n) }, LODO_OK);
        let mut x = vec![0.5f32; n];
        let g = vec![0.25f32; n];
        for _ in 0..2 {
            let s = unsafe { lodo_f32_step(h, x.as_mut_ptr(), g.as_ptr(), n) };
            prop_assert!(refused_or_ok(s), "step: {}", s);
        }
        let mut size = 0;
        prop_assert_eq!(unsafe { lodo_f32_state_size(h, &mut size) }, LODO_OK);
        unsafe { lodo_f32_free(h) };
    }
    let h = unsafe { lodo_f64_load(bytes.as_ptr(), bytes.len(), &mut status) };
    prop_assert_ne!(status, LODO_ERR_INTERNAL);
    prop_assert_eq!(h.is_null(), status != LODO_OK);
    if !h.is_null() {
        let mut n = 0;
        prop_assert_eq!(unsafe { lodo_f64_dim(h, &mut n) }, LODO_OK);
        let mut x = vec![0.5f64; n];
        let g = vec![0.25f64; n];
        let s = unsafe { lodo_f64_step(h, x.as_mut_ptr(), g.as_ptr(), n) };
        prop_assert!(refused_or_ok(s), "step: {}", s);
        unsafe { lodo_f64_free(h) };
    }
    Ok(())
}

#[derive(Clone, Debug)]
enum Mutation {
    Flip { at: usize, bit: u8 },
    Set { at: usize, byte: u8 },
    Truncate { len: usize },
    Insert { at: usize, byte: u8 },
    Remove { at: usize },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Mutation::Flip { at, bit }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Set { at, byte }),
        any::<usize>().prop_map(|len| Mutation::Truncate { len }),
        (any::<usize>(), any::<u8>()).prop_map(|(at, byte)| Mutation::Insert { at, byte }),
        any::<usize>().prop_map(|at| Mutation::Remove { at }),
    ]
}

/// Applies mutations to the payload (after the 24-byte header) or anywhere.
fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation], payload_only: bool) -> Vec<u8> {
    for m in mutations {
        let lo = if payload_only { 24.min(bytes.len()) } else { 0 };
        let span = bytes.len() - lo;
        if span == 0 {
            break;
        }
        match *m {
            Mutation::Flip { at, bit } => bytes[lo + at % span] ^= 1 << bit,
            Mutation::Set { at, byte } => bytes[lo + at % span] = byte,
            Mutation::Truncate { len } => bytes.truncate(lo + len % span),
            Mutation::Insert { at, byte } => bytes.insert(lo + at % (span + 1), byte),
            Mutation::Remove { at } => {
                bytes.remove(lo + at % span);
            }
        }
    }
    bytes
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_are_a_status(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
        load_everything(&bytes)?;
    }

    #[test]
    fn arbitrary_payload_behind_a_valid_header(
        width in prop_oneof![Just(4u8), Just(8u8)],
        payload in proptest::collection::vec(any::<u8>(), 0..512),
    ) {
        let mut bytes = b"LODO\x01\x00".to_vec();
        bytes.extend_from_slice(&[width, 0]);
        bytes.extend_from_slice(&[0; 16]);
        bytes.extend_from_slice(&payload);
        load_everything(&reseal(bytes))?;
    }

    #[test]
    fn mutated_states_are_a_status(
        which in 0usize..3,
        mutations in proptest::collection::vec(mutation(), 1..4),
        payload_only in any::<bool>(),
        resealed in any::<bool>(),
    ) {
        let bytes = mutate(seeds()[which].clone(), &mutations, payload_only);
        let bytes = if resealed { reseal(bytes) } else { bytes };
        load_everything(&bytes)?;
    }
}

#[test]
fn unmutated_seeds_load() {
    for seed in seeds() {
        load_everything(seed).unwrap();
    }
}
