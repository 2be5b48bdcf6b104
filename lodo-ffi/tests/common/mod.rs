//! Helpers shared by the test files.
#![allow(dead_code, clippy::undocumented_unsafe_blocks)] // Each test file uses a part.

use lodo::*;

/// FNV-1a 64, the envelope's hash, to forge states whose payload passes the hash check.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Rewrites the header's payload length and hash to match the payload after it.
pub fn reseal(mut bytes: Vec<u8>) -> Vec<u8> {
    if bytes.len() >= 24 {
        let len = (bytes.len() - 24) as u64;
        let hash = fnv1a(&bytes[24..]);
        bytes[8..16].copy_from_slice(&len.to_le_bytes());
        bytes[16..24].copy_from_slice(&hash.to_le_bytes());
    }
    bytes
}

/// The f32 handle's state bytes, through `lodo_f32_state_size` and `lodo_f32_save`.
pub fn save_f32(h: *const LodoF32) -> Vec<u8> {
    let mut size = 0;
    assert_eq!(unsafe { lodo_f32_state_size(h, &mut size) }, LODO_OK);
    let mut buf = vec![0u8; size];
    let mut written = 0;
    assert_eq!(
        unsafe { lodo_f32_save(h, buf.as_mut_ptr(), size, &mut written) },
        LODO_OK
    );
    assert_eq!(written, size);
    buf
}

/// The f64 handle's state bytes (no `written` pointer: null is allowed).
pub fn save_f64(h: *const LodoF64) -> Vec<u8> {
    let mut size = 0;
    assert_eq!(unsafe { lodo_f64_state_size(h, &mut size) }, LODO_OK);
    let mut buf = vec![0u8; size];
    assert_eq!(
        unsafe { lodo_f64_save(h, buf.as_mut_ptr(), size, std::ptr::null_mut()) },
        LODO_OK
    );
    buf
}
