//! Helpers shared by the test files.

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
