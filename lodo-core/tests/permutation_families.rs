//! The structured permutation families in the optimizer (issue 12): held compactly, saved as
//! whole permutations in the one state format, restored (compacted again) and continued bit for
//! bit; states holding whole structured permutations at a width the family cannot stream still
//! load; widths and tiles the streaming kernels cannot take are typed errors.

mod common;

use common::bits;
use lodo_core::{
    BlockConfig, BlockPreconditioner, ConfigError, Lodo, LodoConfig, LodoState, PermutationFamily,
    StateError,
};
use serde_json::Value;

/// `∇ℓ(x)_i = (i mod 5 + 1)·x_i − 1`.
fn grad(x: &[f64]) -> Vec<f64> {
    x.iter()
        .enumerate()
        .map(|(i, &xi)| ((i % 5) as f64 + 1.0) * xi - 1.0)
        .collect()
}

fn config(family: PermutationFamily) -> LodoConfig<f64> {
    LodoConfig::default()
        .with_alpha0(0.2)
        .and_then(|c| c.with_meta_lr(1e-3))
        .unwrap()
        .with_preconditioner(BlockConfig::default().with_permutations(family).unwrap())
}

/// `σ(j) = (j mod r)·k + ⌊j/r⌋`.
fn sigma(h: usize, k: usize) -> Vec<u32> {
    let r = h / k;
    (0..h).map(|j| ((j % r) * k + j / r) as u32).collect()
}

#[test]
fn a_structured_state_saves_whole_permutations_and_resumes_bit_for_bit() {
    // 2n = 74 rounded up to k² = 16; the tiles of 8 do not divide r = h/k = 20 (each
    // segment's last tile has 4 outputs).
    for (family, h_want) in [
        (PermutationFamily::Shuffle, 80),
        (PermutationFamily::TiledShuffle { tile: 8 }, 80),
    ] {
        let mut lodo = Lodo::<f64>::new(37, config(family), 11).unwrap();
        let h = lodo.preconditioner().hidden();
        assert_eq!(h, h_want, "{family:?}");
        let mut x = vec![0.25; 37];
        for _ in 0..5 {
            let g = grad(&x);
            lodo.step(&mut x, &g).unwrap();
        }
        let json = serde_json::to_string(lodo.state()).unwrap();
        // One format for every family: the whole forward index of each layer.
        let value: Value = serde_json::from_str(&json).unwrap();
        let layers = value
            .pointer("/preconditioner/permutations")
            .and_then(Value::as_array)
            .expect("permutations saved");
        assert_eq!(layers.len(), 16);
        let whole = lodo.preconditioner().permutations().unwrap();
        for (saved, p) in layers.iter().zip(&whole) {
            let forward: Vec<u32> = serde_json::from_value(saved["forward"].clone()).unwrap();
            assert_eq!(forward, p.forward());
            assert!(family.contains(p, 4));
        }
        if family == PermutationFamily::Shuffle {
            assert!(whole.iter().all(|p| p.forward() == sigma(h, 4)));
        }
        let state: LodoState<f64, BlockPreconditioner<f64>> = serde_json::from_str(&json).unwrap();
        let mut resumed = Lodo::<f64>::from_state(state).unwrap();
        assert_eq!(resumed.preconditioner().permutation_family(), family);
        assert_eq!(resumed.preconditioner().permutations().unwrap(), whole);
        let mut y = x.clone();
        for _ in 0..3 {
            let (g, h) = (grad(&x), grad(&y));
            lodo.step(&mut x, &g).unwrap();
            resumed.step(&mut y, &h).unwrap();
        }
        assert_eq!(bits(&x), bits(&y), "{family:?}");
    }
}

/// A state whose structured permutations were saved whole at a width the family cannot stream
/// (as lodo-core wrote before the streaming kernels) loads, keeps its indices and steps; a
/// permutation outside the claimed family is refused.
#[test]
fn whole_structured_permutations_at_an_unaligned_width_still_load() {
    // h = 10, k = 2: k² = 4 does not divide h.
    let pc = BlockConfig::default()
        .with_block_size(2)
        .and_then(|c| c.with_hidden(10))
        .unwrap();
    let lodo = Lodo::<f64>::new(5, LodoConfig::default().with_preconditioner(pc), 3).unwrap();
    let mut value: Value = serde_json::to_value(lodo.state()).unwrap();
    value["preconditioner"]["family"] = Value::from("Shuffle");
    for layer in value["preconditioner"]["permutations"]
        .as_array_mut()
        .unwrap()
    {
        layer["forward"] = serde_json::to_value(sigma(10, 2)).unwrap();
    }
    let state: LodoState<f64, BlockPreconditioner<f64>> =
        serde_json::from_value(value.clone()).unwrap();
    let mut restored = Lodo::<f64>::from_state(state).unwrap();
    let perms = restored.preconditioner().permutations().unwrap();
    assert!(perms.iter().all(|p| p.forward() == sigma(10, 2)));
    let mut x = vec![0.5; 5];
    for _ in 0..3 {
        let g = grad(&x);
        restored.step(&mut x, &g).unwrap();
    }
    assert!(x.iter().all(|v| v.is_finite()));

    // Layer 2 holds the identity, which is not σ: refused, naming the layer.
    value["preconditioner"]["permutations"][2]["forward"] =
        serde_json::to_value((0..10u32).collect::<Vec<_>>()).unwrap();
    let state: LodoState<f64, BlockPreconditioner<f64>> = serde_json::from_value(value).unwrap();
    assert!(matches!(
        Lodo::<f64>::from_state(state),
        Err(StateError::NotAPermutation { layer: 2 })
    ));
}

#[test]
fn widths_and_tiles_the_kernels_cannot_stream_are_refused() {
    let shuffle = BlockConfig::<f64>::default()
        .with_permutations(PermutationFamily::Shuffle)
        .unwrap();
    // An explicit width must be a multiple of k² = 16 …
    let c = shuffle.with_hidden(24).unwrap();
    assert_eq!(
        c.hidden_for(10),
        Err(ConfigError::HiddenNotAligned {
            hidden: 24,
            multiple: 16
        })
    );
    assert_eq!(shuffle.with_hidden(32).unwrap().hidden_for(10), Ok(32));
    // … the default 2n is rounded up to it (Random keeps k·⌈2n/k⌉).
    assert_eq!(shuffle.hidden_for(10), Ok(32));
    assert_eq!(BlockConfig::<f64>::default().hidden_for(10), Ok(20));
    // A tile must be a multiple of k.
    let tiled = BlockConfig::<f64>::default()
        .with_permutations(PermutationFamily::TiledShuffle { tile: 6 })
        .unwrap();
    assert_eq!(
        tiled.hidden_for(10),
        Err(ConfigError::TileNotMultipleOfBlock {
            tile: 6,
            block_size: 4
        })
    );
    assert!(Lodo::<f64>::new(10, LodoConfig::default().with_preconditioner(tiled), 1).is_err());
}
