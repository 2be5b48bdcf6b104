//! Format-2 payloads (lodo-ffi before the compact state, lodo-core 0.2 up to commit `c5a5d6e`).
//!
//! postcard is positional: a struct is its fields in order, with no names and no lengths, so a
//! field that format 3 added (Adam's `compact` after `v`, the network's `activations` after
//! its `blocks`) cannot take its serde default when a format-2 payload is decoded as
//! lodo-core's current [`lodo_core::LodoState`]. This module decodes a format-2 payload into a
//! mirror of the format-2 layout, then re-encodes it in the format-3 layout with those two
//! fields at their format-2 meaning (moments and activations in the working float: `Full`),
//! for lodo-core's own decoder and validation. The mirror only moves fields: every value
//! (shapes, permutations, finiteness, hyperparameters) is still validated by
//! `Lodo::from_state`.

use std::collections::BTreeMap;

use lodo_core::{PermutationFamily, Precision};
use serde::{Deserialize, Serialize};

use crate::{LODO_ERR_STATE_CORRUPT, LodoStatus};

/// The Adam state's name in the tagged `meta` field (lodo-core's `MetaOptimizer::NAME`).
const ADAM: &str = "Adam";

/// A permutation as saved: its forward indices (lodo-core's `Permutation`, one field).
#[derive(Serialize, Deserialize)]
struct Forward {
    forward: Vec<u32>,
}

/// `LodoState<T, BlockPreconditioner<T>, Adam<T>>` in format 2.
#[derive(Deserialize)]
struct StateV2<T> {
    format: u32,
    beta: T,
    preconditioner: BlockV2<T>,
    /// `{"Adam": …}`: a map with one entry (lodo-core's `meta::tagged`).
    meta: BTreeMap<String, AdamV2<T>>,
    momentum: Vec<T>,
    steps: u64,
}

/// `BlockPreconditioner<T>` in format 2 (since commit `1fbaf3b`, which added `family`).
#[derive(Deserialize)]
struct BlockV2<T> {
    n: usize,
    hidden: usize,
    block_size: usize,
    alpha0: T,
    family: PermutationFamily,
    permutations: Vec<Forward>,
    blocks: Vec<T>,
}

/// `Adam<T>` in format 2.
#[derive(Deserialize)]
struct AdamV2<T> {
    learning_rate: T,
    beta1: T,
    beta2: T,
    epsilon: T,
    t: u64,
    m: Vec<T>,
    v: Vec<T>,
}

/// The format-3 layout, field for field (lodo-core's `LodoState` at `STATE_FORMAT` 3).
#[derive(Serialize)]
struct StateV3<T> {
    format: u32,
    beta: T,
    preconditioner: BlockV3<T>,
    meta: BTreeMap<&'static str, AdamV3<T>>,
    momentum: Vec<T>,
    steps: u64,
}

#[derive(Serialize)]
struct BlockV3<T> {
    n: usize,
    hidden: usize,
    block_size: usize,
    alpha0: T,
    family: PermutationFamily,
    permutations: Vec<Forward>,
    blocks: Vec<T>,
    activations: Precision,
}

/// lodo-core's `AdamMoments::Full` (variant 0): the moments are `m`, `v` in `T`.
#[derive(Serialize)]
enum Compact {
    Full,
}

#[derive(Serialize)]
struct AdamV3<T> {
    learning_rate: T,
    beta1: T,
    beta2: T,
    epsilon: T,
    t: u64,
    m: Vec<T>,
    v: Vec<T>,
    compact: Compact,
}

/// The format-2 `payload` re-encoded in the format-3 postcard layout (the `format` field is
/// kept: lodo-core reads it, checks it is one it supports, and saves in its current format).
/// Bytes that are not a format-2 payload (undecodable, trailing bytes, `meta` not exactly one
/// `Adam` entry) are [`LODO_ERR_STATE_CORRUPT`].
pub(crate) fn upgrade<T>(payload: &[u8]) -> Result<Vec<u8>, LodoStatus>
where
    T: Serialize + for<'de> Deserialize<'de>,
{
    let (old, unread): (StateV2<T>, _) =
        postcard::take_from_bytes(payload).map_err(|_| LODO_ERR_STATE_CORRUPT)?;
    if !unread.is_empty() || old.meta.len() != 1 {
        return Err(LODO_ERR_STATE_CORRUPT);
    }
    let Some((name, adam)) = old.meta.into_iter().next() else {
        return Err(LODO_ERR_STATE_CORRUPT);
    };
    if name != ADAM {
        return Err(LODO_ERR_STATE_CORRUPT);
    }
    let p = old.preconditioner;
    let new = StateV3 {
        format: old.format,
        beta: old.beta,
        preconditioner: BlockV3 {
            n: p.n,
            hidden: p.hidden,
            block_size: p.block_size,
            alpha0: p.alpha0,
            family: p.family,
            permutations: p.permutations,
            blocks: p.blocks,
            activations: Precision::Full,
        },
        meta: BTreeMap::from([(
            ADAM,
            AdamV3 {
                learning_rate: adam.learning_rate,
                beta1: adam.beta1,
                beta2: adam.beta2,
                epsilon: adam.epsilon,
                t: adam.t,
                m: adam.m,
                v: adam.v,
                compact: Compact::Full,
            },
        )]),
        momentum: old.momentum,
        steps: old.steps,
    };
    postcard::to_allocvec(&new).map_err(|_| LODO_ERR_STATE_CORRUPT)
}
