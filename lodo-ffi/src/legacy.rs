//! Payloads of formats 2 (lodo-ffi before the compact state, lodo-core 0.2 up to commit
//! `c5a5d6e`) and 3 (before `θ` could be held in `f32`, up to commit `b0e4042`).
//!
//! postcard is positional: a struct is its fields in order, with no names and no lengths, so a
//! field that a later format added cannot take its serde default when an older payload is
//! decoded as lodo-core's current [`lodo_core::LodoState`]. Format 3 added Adam's `compact`
//! after `v` and the network's `activations` after its `blocks`; format 4 added the network's
//! `blocks_f32` after `blocks` and `weights` after `activations`. This module decodes an older
//! payload into a mirror of its layout, then re-encodes it in the format-4 layout with the
//! added fields at their older meaning (moments, activations and `θ` in the working float:
//! `Full`, no `f32` weights), for lodo-core's own decoder and validation. The mirrors only move
//! fields: every value (shapes, permutations, finiteness, hyperparameters) is still validated
//! by `Lodo::from_state`.

use std::collections::BTreeMap;

use lodo_core::{PermutationFamily, Precision, WeightPrecision};
use serde::de::DeserializeOwned;
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

/// The format-3 layout, field for field (lodo-core's `LodoState` at `STATE_FORMAT` 3); `M` is
/// the meta-optimizer's saved state, unchanged since format 3 (lodo-core's own type).
#[derive(Serialize, Deserialize)]
struct StateV3<T, M> {
    format: u32,
    beta: T,
    preconditioner: BlockV3<T>,
    meta: BTreeMap<String, M>,
    momentum: Vec<T>,
    steps: u64,
}

#[derive(Serialize, Deserialize)]
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

/// The format-4 layout: format 3 with the network's `blocks_f32` and `weights`.
#[derive(Serialize)]
struct StateV4<T, M> {
    format: u32,
    beta: T,
    preconditioner: BlockV4<T>,
    meta: BTreeMap<String, M>,
    momentum: Vec<T>,
    steps: u64,
}

#[derive(Serialize)]
struct BlockV4<T> {
    n: usize,
    hidden: usize,
    block_size: usize,
    alpha0: T,
    family: PermutationFamily,
    permutations: Vec<Forward>,
    blocks: Vec<T>,
    blocks_f32: Vec<f32>,
    activations: Precision,
    weights: WeightPrecision,
}

impl<T, M> StateV3<T, M> {
    /// The same state in the format-4 layout (`θ` in `T`, no `f32` weights).
    fn into_v4(self) -> StateV4<T, M> {
        let p = self.preconditioner;
        StateV4 {
            format: self.format,
            beta: self.beta,
            preconditioner: BlockV4 {
                n: p.n,
                hidden: p.hidden,
                block_size: p.block_size,
                alpha0: p.alpha0,
                family: p.family,
                permutations: p.permutations,
                blocks: p.blocks,
                blocks_f32: Vec::new(),
                activations: p.activations,
                weights: WeightPrecision::Full,
            },
            meta: self.meta,
            momentum: self.momentum,
            steps: self.steps,
        }
    }
}

/// The format-3 `payload` (of any meta-optimizer `M`, lodo-core's saved type) re-encoded in the
/// format-4 postcard layout (the `format` field is kept). Bytes that are not a format-3 payload
/// are [`LODO_ERR_STATE_CORRUPT`].
pub(crate) fn upgrade_v3<T, M>(payload: &[u8]) -> Result<Vec<u8>, LodoStatus>
where
    T: Serialize + DeserializeOwned,
    M: Serialize + DeserializeOwned,
{
    let (old, unread): (StateV3<T, M>, _) =
        postcard::take_from_bytes(payload).map_err(|_| LODO_ERR_STATE_CORRUPT)?;
    if !unread.is_empty() {
        return Err(LODO_ERR_STATE_CORRUPT);
    }
    postcard::to_allocvec(&old.into_v4()).map_err(|_| LODO_ERR_STATE_CORRUPT)
}

/// lodo-core's `AdamMoments::Full` (variant 0): the moments are `m`, `v` in `T`.
#[derive(Serialize, Deserialize)]
enum Compact {
    Full,
}

#[derive(Serialize, Deserialize)]
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

/// The format-2 `payload` re-encoded in the format-4 postcard layout (the `format` field is
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
            ADAM.to_owned(),
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
    postcard::to_allocvec(&new.into_v4()).map_err(|_| LODO_ERR_STATE_CORRUPT)
}
