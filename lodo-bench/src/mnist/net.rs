//! The authors' autoregressive CNN (`tasks/autoregression_mnist.py`): forward, backward, init.
//!
//! Input `28×28×5` features of one image and one query pixel `(r, c)` (see [`features`]);
//! stem 1×1 conv 5→20; five stages of four residual blocks
//! `x + W₂ᵀ·atan(K ⊛ atan(W₁ᵀx + b₁) + b_d) + b₂` (1×1 conv 20→40, 3×3 depthwise conv with
//! multiplier 3, 1×1 conv 120→20), each stage followed by 2×2 'SAME' average pooling
//! (28→14→7→4→2→1); dense 20→256; softmax cross-entropy on the pixel's byte value.
//!
//! # Parameter layout (one flat vector, the authors' flattening order)
//! | tensor | shape | init std |
//! |---|---|---|
//! | stem `W`, `b` | `5×20`, `20` | `1/√6` |
//! | per block (20 blocks, stage-major): `W₁`, `b₁` | `20×40`, `40` | `1/√21` |
//! | `K`, `b_d` | `3×3×40×3`, `120` | `1/√10` |
//! | `W₂`, `b₂` | `120×20`, `20` | `1/√121` |
//! | dense `W`, `b` | `20×256`, `256` | `1/√21` |
//!
//! Total [`N_PARAMS`] = 94,696. Init is `N(0, σ²)` with `σ = 1/√(fan_in + 1)` for weights and
//! biases alike (the authors' `np.random.normal(0, 1/np.sqrt(fan_in+1))`; the second argument of
//! `np.random.normal` is the standard deviation).

use rayon::prelude::*;

use super::Scalar;
use super::kernels::{self, E};

/// Image side.
pub const SIDE: usize = 28;
/// Pixels per image.
pub const PIX: usize = SIDE * SIDE;
/// Input features per pixel.
pub const FEAT: usize = 5;
/// Residual width.
pub const R: usize = 20;
/// Hidden width before the depthwise convolution.
pub const HID: usize = 40;
/// Residual blocks per stage.
pub const BLOCKS: usize = 4;
/// Pooling stages.
pub const STAGES: usize = 5;
/// Output classes (byte values).
pub const CLASSES: usize = 256;
/// Side of each stage's maps: 28, 14, 7, 4, 2 (then 1 after the last pooling).
pub const SIDES: [usize; STAGES + 1] = [28, 14, 7, 4, 2, 1];

/// Parameters of the stem.
pub const STEM: usize = FEAT * R + R;
/// Offsets within a block.
pub(crate) const W1: usize = 0;
pub(crate) const B1: usize = W1 + R * HID;
pub(crate) const K: usize = B1 + HID;
pub(crate) const BD: usize = K + 9 * E;
pub(crate) const W2: usize = BD + E;
pub(crate) const B2: usize = W2 + E * R;
/// Parameters of one residual block.
pub const BLOCK: usize = B2 + R;
/// Offset of the dense layer.
pub const DENSE: usize = STEM + STAGES * BLOCKS * BLOCK;
/// Total parameter count (94,696).
pub const N_PARAMS: usize = DENSE + R * CLASSES + CLASSES;

/// Floating-point operations of one example's forward + backward pass: 2 per multiply-add of
/// the convolutions and the dense layer (the depthwise taps that fall inside the map only, so
/// `120·(3s−2)²` per block on an `s × s` map), forward once and backward twice (the weight and
/// the input gradients; the stem has no input gradient); `atan`, pooling, biases and the
/// softmax are not counted. 106,254,400 for this network; the GFLOP/s of `benches/mnist.rs`.
#[must_use]
pub const fn flops_per_example() -> u64 {
    let mut fwd = (PIX * FEAT * R + R * CLASSES) as u64;
    let mut s = 0;
    while s < STAGES {
        let side = SIDES[s];
        let taps = (3 * side - 2) * (3 * side - 2);
        fwd += (BLOCKS * (side * side * (R * HID + E * R) + E * taps)) as u64;
        s += 1;
    }
    2 * (3 * fwd - (PIX * FEAT * R) as u64)
}

/// `(offset, length, fan_in)` of every tensor, in flattening order.
#[must_use]
pub fn tensors() -> Vec<(usize, usize, usize)> {
    let mut t = vec![(0, FEAT * R, FEAT), (FEAT * R, R, FEAT)];
    for blk in 0..STAGES * BLOCKS {
        let o = STEM + blk * BLOCK;
        t.extend([
            (o + W1, R * HID, R),
            (o + B1, HID, R),
            (o + K, 9 * E, 9),
            (o + BD, E, 9),
            (o + W2, E * R, E),
            (o + B2, R, E),
        ]);
    }
    t.push((DENSE, R * CLASSES, R));
    t.push((DENSE + R * CLASSES, CLASSES, R));
    t
}

/// The layer groups used by per-layer optimizers (LARS): `(offset, length)` per weight or bias
/// tensor.
#[must_use]
pub fn layers() -> Vec<(usize, usize)> {
    tensors().into_iter().map(|(o, l, _)| (o, l)).collect()
}

/// The authors' initialisation, drawn in `f64` from `seed` and rounded to `T`.
#[must_use]
pub fn init<T: Scalar>(seed: u64) -> Vec<T> {
    let mut rng = lodo_core::random::Stream::new(seed);
    let mut p = vec![T::zero(); N_PARAMS];
    for (o, l, fan_in) in tensors() {
        let std = 1.0 / ((fan_in + 1) as f64).sqrt();
        for v in &mut p[o..o + l] {
            *v = lodo_core::lit(std * rng.gaussian());
        }
    }
    p
}

/// One training example: an image and a query pixel `(row, col)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Query {
    /// Image index.
    pub image: u32,
    /// Query row, `0..28`.
    pub row: u8,
    /// Query column, `0..28`.
    pub col: u8,
}

/// The five input channels at every pixel `(i, j)` for query `(r, c)`:
/// `image·v/256`, `2·[j ≤ c] − 1`, `2·v − 1`, `2i/28 − 1`, `2j/28 − 1`, with
/// `v = [i < r or (i = r and j < c)]` (the pixels already generated in raster order).
///
/// # Panics
/// If `image.len() != 784` or `out.len() != 784·5`.
pub fn features<T: Scalar>(image: &[u8], r: usize, c: usize, out: &mut [T]) {
    assert!(image.len() == PIX && out.len() == PIX * FEAT, "shapes");
    let two = T::one() + T::one();
    let side = T::from(SIDE).expect("small");
    let scale = T::one() / T::from(256).expect("small");
    let pm = |b: bool| if b { T::one() } else { -T::one() };
    for i in 0..SIDE {
        for j in 0..SIDE {
            let p = i * SIDE + j;
            let v = i < r || (i == r && j < c);
            let f = &mut out[p * FEAT..(p + 1) * FEAT];
            f[0] = if v {
                T::from(image[p]).expect("byte") * scale
            } else {
                T::zero()
            };
            f[1] = pm(j <= c);
            f[2] = pm(v);
            f[3] = T::from(i).expect("small") / side * two - T::one();
            f[4] = T::from(j).expect("small") / side * two - T::one();
        }
    }
}

/// Weights prepared for a pass: the parameters and the transposes the backward pass uses.
pub struct Prepared<'a, T> {
    p: &'a [T],
    /// Per block `W₁ᵀ` (40×20).
    w1t: Vec<T>,
    /// Per block `W₂ᵀ` (20×120).
    w2t: Vec<T>,
}

fn transpose<T: Copy>(a: &[T], rows: usize, cols: usize, out: &mut [T]) {
    for i in 0..rows {
        for j in 0..cols {
            out[j * rows + i] = a[i * cols + j];
        }
    }
}

impl<'a, T: Scalar> Prepared<'a, T> {
    /// Prepares `params` (length [`N_PARAMS`]).
    ///
    /// # Panics
    /// If `params.len() != N_PARAMS`.
    #[must_use]
    pub fn new(params: &'a [T]) -> Self {
        assert_eq!(params.len(), N_PARAMS, "parameter vector length");
        let nb = STAGES * BLOCKS;
        let mut w1t = vec![T::zero(); nb * R * HID];
        let mut w2t = vec![T::zero(); nb * E * R];
        for blk in 0..nb {
            let o = STEM + blk * BLOCK;
            transpose(
                &params[o + W1..o + B1],
                R,
                HID,
                &mut w1t[blk * R * HID..(blk + 1) * R * HID],
            );
            transpose(
                &params[o + W2..o + B2],
                E,
                R,
                &mut w2t[blk * E * R..(blk + 1) * E * R],
            );
        }
        Self {
            p: params,
            w1t,
            w2t,
        }
    }

    fn block(&self, blk: usize) -> &'a [T] {
        &self.p[STEM + blk * BLOCK..STEM + (blk + 1) * BLOCK]
    }
}

/// Activations of one example and scratch for its backward pass; reused across examples.
pub struct Tape<T> {
    feats: Vec<T>,
    /// `xs[s][b]`: input of block `b` of stage `s` (`b = 4`: the stage's pre-pooling output).
    xs: Vec<Vec<Vec<T>>>,
    a1e: Vec<Vec<T>>,
    d1: Vec<Vec<T>>,
    a2: Vec<Vec<T>>,
    d2: Vec<Vec<T>>,
    z1: Vec<T>,
    last: Vec<T>,
    logits: Vec<T>,
    // backward scratch
    dcur: Vec<T>,
    dnext: Vec<T>,
    da2: Vec<T>,
    da1e: Vec<T>,
    dz1: Vec<T>,
}

impl<T: Scalar> Default for Tape<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Scalar> Tape<T> {
    /// Buffers for one example.
    #[must_use]
    pub fn new() -> Self {
        let z = |n: usize| vec![T::zero(); n];
        let mut xs = Vec::new();
        let (mut a1e, mut d1, mut a2, mut d2) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for &side in &SIDES[..STAGES] {
            let p = side * side;
            xs.push((0..=BLOCKS).map(|_| z(p * R)).collect());
            for _ in 0..BLOCKS {
                a1e.push(z(p * E));
                d1.push(z(p * HID));
                a2.push(z(p * E));
                d2.push(z(p * E));
            }
        }
        Self {
            feats: z(PIX * FEAT),
            xs,
            a1e,
            d1,
            a2,
            d2,
            z1: z(PIX * HID),
            last: z(R),
            logits: z(CLASSES),
            dcur: z(PIX * R),
            dnext: z(PIX * R),
            da2: z(PIX * E),
            da1e: z(PIX * E),
            dz1: z(PIX * HID),
        }
    }

    /// The logits of the last forward pass.
    #[must_use]
    pub fn logits(&self) -> &[T] {
        &self.logits
    }

    /// Forward pass for `image` and query `(r, c)`; the logits are in [`Tape::logits`].
    ///
    /// # Panics
    /// If `image.len() != 784`.
    pub fn forward(&mut self, w: &Prepared<'_, T>, image: &[u8], r: usize, c: usize) {
        features(image, r, c, &mut self.feats);
        let p = w.p;
        kernels::conv1x1::<T, FEAT, R>(
            &self.feats,
            &p[..FEAT * R],
            &p[FEAT * R..STEM],
            &mut self.xs[0][0],
        );
        for s in 0..STAGES {
            let side = SIDES[s];
            let np = side * side;
            for b in 0..BLOCKS {
                let blk = s * BLOCKS + b;
                let bw = w.block(blk);
                let (lo, hi) = self.xs[s].split_at_mut(b + 1);
                let x = &lo[b];
                let y = &mut hi[0];
                let z1 = &mut self.z1[..np * HID];
                kernels::conv1x1::<T, R, HID>(x, &bw[W1..B1], &bw[B1..K], z1);
                let a1e = &mut self.a1e[blk];
                let d1 = &mut self.d1[blk];
                for ((zp, ap), dp) in z1
                    .as_chunks::<HID>()
                    .0
                    .iter()
                    .zip(a1e.as_chunks_mut::<E>().0)
                    .zip(d1.as_chunks_mut::<HID>().0)
                {
                    for ch in 0..HID {
                        let v = zp[ch];
                        dp[ch] = T::one() / (T::one() + v * v);
                        let a = v.atan_v();
                        ap[3 * ch] = a;
                        ap[3 * ch + 1] = a;
                        ap[3 * ch + 2] = a;
                    }
                }
                let a2 = &mut self.a2[blk];
                kernels::depthwise(a1e, &bw[K..BD], &bw[BD..W2], a2, side);
                for (av, dv) in a2.iter_mut().zip(self.d2[blk].iter_mut()) {
                    let v = *av;
                    *dv = T::one() / (T::one() + v * v);
                    *av = v.atan_v();
                }
                kernels::conv1x1::<T, E, R>(a2, &bw[W2..B2], &bw[B2..BLOCK], y);
                for (yv, &xv) in y.iter_mut().zip(x.iter()) {
                    *yv = *yv + xv;
                }
            }
            if s + 1 < STAGES {
                let (lo, hi) = self.xs.split_at_mut(s + 1);
                kernels::avg_pool::<T, R>(&lo[s][BLOCKS], &mut hi[0][0], side);
            } else {
                kernels::avg_pool::<T, R>(&self.xs[s][BLOCKS], &mut self.last, side);
            }
        }
        let wd = &p[DENSE..DENSE + R * CLASSES];
        let bd = &p[DENSE + R * CLASSES..];
        self.logits.copy_from_slice(bd);
        for (i, &xi) in self.last.iter().enumerate() {
            for (l, &wv) in self
                .logits
                .iter_mut()
                .zip(&wd[i * CLASSES..(i + 1) * CLASSES])
            {
                *l = *l + xi * wv;
            }
        }
    }

    /// Backward pass of the last [`Tape::forward`] given `∂L/∂logits`; adds `∂L/∂θ` to `grad`.
    ///
    /// # Panics
    /// If `dlogits.len() != 256` or `grad.len() != N_PARAMS`.
    pub fn backward(&mut self, w: &Prepared<'_, T>, dlogits: &[T], grad: &mut [T]) {
        assert!(dlogits.len() == CLASSES && grad.len() == N_PARAMS, "shapes");
        let p = w.p;
        // dense
        let wd = &p[DENSE..DENSE + R * CLASSES];
        {
            let (gw, gb) = grad[DENSE..].split_at_mut(R * CLASSES);
            for (g, &d) in gb.iter_mut().zip(dlogits) {
                *g = *g + d;
            }
            for i in 0..R {
                let xi = self.last[i];
                let mut acc = T::zero();
                for ((g, &d), &wv) in gw[i * CLASSES..(i + 1) * CLASSES]
                    .iter_mut()
                    .zip(dlogits)
                    .zip(&wd[i * CLASSES..(i + 1) * CLASSES])
                {
                    *g = *g + xi * d;
                    acc = acc + wv * d;
                }
                self.dnext[i] = acc;
            }
        }
        for s in (0..STAGES).rev() {
            let side = SIDES[s];
            let np = side * side;
            let so = SIDES[s + 1];
            kernels::avg_pool_backward::<T, R>(
                &self.dnext[..so * so * R],
                &mut self.dcur[..np * R],
                side,
            );
            for b in (0..BLOCKS).rev() {
                let blk = s * BLOCKS + b;
                let bw = w.block(blk);
                let go = STEM + blk * BLOCK;
                let gblk = &mut grad[go..go + BLOCK];
                let dy = &mut self.dcur[..np * R];
                let a2 = &self.a2[blk];
                // y = a2·W2 + b2
                {
                    let (gw2, gb2) = gblk[W2..].split_at_mut(E * R);
                    kernels::outer_acc::<T, E, R>(a2, dy, gw2, gb2);
                }
                let da2 = &mut self.da2[..np * E];
                kernels::conv1x1::<T, R, E>(
                    dy,
                    &w.w2t[blk * E * R..(blk + 1) * E * R],
                    &[T::zero(); E],
                    da2,
                );
                for (dv, &sv) in da2.iter_mut().zip(self.d2[blk].iter()) {
                    *dv = *dv * sv;
                }
                // z2 = K ⊛ a1e + bd
                let da1e = &mut self.da1e[..np * E];
                {
                    let (gk, gbd) = gblk[K..W2].split_at_mut(9 * E);
                    kernels::depthwise_backward(
                        &self.a1e[blk],
                        &bw[K..BD],
                        da2,
                        gk,
                        gbd,
                        da1e,
                        side,
                    );
                }
                let dz1 = &mut self.dz1[..np * HID];
                for ((zp, ap), dp) in dz1
                    .as_chunks_mut::<HID>()
                    .0
                    .iter_mut()
                    .zip(da1e.as_chunks::<E>().0)
                    .zip(self.d1[blk].as_chunks::<HID>().0)
                {
                    for ch in 0..HID {
                        zp[ch] = (ap[3 * ch] + ap[3 * ch + 1] + ap[3 * ch + 2]) * dp[ch];
                    }
                }
                // z1 = x·W1 + b1; dx = dy + dz1·W1ᵀ
                {
                    let (gw1, gb1) = gblk[W1..K].split_at_mut(R * HID);
                    kernels::outer_acc::<T, R, HID>(&self.xs[s][b], dz1, gw1, gb1);
                }
                kernels::conv1x1_acc::<T, HID, R>(
                    dz1,
                    &w.w1t[blk * R * HID..(blk + 1) * R * HID],
                    dy,
                );
            }
            if s > 0 {
                std::mem::swap(&mut self.dcur, &mut self.dnext);
            }
        }
        let (gw, gb) = grad[..STEM].split_at_mut(FEAT * R);
        kernels::outer_acc::<T, FEAT, R>(&self.feats, &self.dcur[..PIX * R], gw, gb);
    }
}

/// Cross-entropy `log Σ exp(z) − z[target]` of logits `z`, and (if `dz` is given) writes
/// `scale·(softmax(z) − onehot(target))` to it.
pub fn cross_entropy<T: Scalar>(z: &[T], target: usize, scale: T, dz: Option<&mut [T]>) -> T {
    let m = z.iter().copied().fold(T::neg_infinity(), T::max);
    let mut sum = T::zero();
    for &v in z {
        sum = sum + (v - m).exp();
    }
    let lse = m + sum.ln();
    if let Some(dz) = dz {
        for (d, &v) in dz.iter_mut().zip(z) {
            *d = (v - lse).exp() * scale;
        }
        dz[target] = dz[target] - scale;
    }
    lse - z[target]
}

pub use super::batched::CHUNK;

/// Mean cross-entropy over `batch` and its gradient (written to `grad`), through the fast
/// batched path ([`super::batched::loss_grad`]): chunk-parallel over rayon's current pool,
/// bit-identical for any thread count.
///
/// `images` is `n·784` bytes; `Query::image` indexes it.
///
/// # Panics
/// If `grad.len()` or `params.len()` is not [`N_PARAMS`], the batch is empty, or a query is out
/// of range.
pub fn loss_grad<T: Scalar>(params: &[T], images: &[u8], batch: &[Query], grad: &mut [T]) -> T {
    super::batched::loss_grad(params, images, batch, grad)
}

/// The plain reference for [`loss_grad`]: one example at a time through [`Tape`] (the path the
/// tests check against the authors' graph and finite differences, and the bench's "before"),
/// chunk-parallel, bit-identical for any thread count.
///
/// `images` is `n·784` bytes; `Query::image` indexes it.
///
/// # Panics
/// If `grad.len()` or `params.len()` is not [`N_PARAMS`], the batch is empty, or a query is out
/// of range.
pub fn loss_grad_reference<T: Scalar>(
    params: &[T],
    images: &[u8],
    batch: &[Query],
    grad: &mut [T],
) -> T {
    assert!(grad.len() == N_PARAMS && !batch.is_empty(), "shapes");
    let w = Prepared::new(params);
    let scale = T::one() / T::from(batch.len()).expect("batch size");
    let parts: Vec<(T, Vec<T>)> = batch
        .par_chunks(CHUNK)
        .map_init(Tape::<T>::new, |tape, chunk| {
            let mut g = vec![T::zero(); N_PARAMS];
            let mut loss = T::zero();
            let mut dz = vec![T::zero(); CLASSES];
            for q in chunk {
                let i = q.image as usize;
                tape.forward(
                    &w,
                    &images[i * PIX..(i + 1) * PIX],
                    q.row.into(),
                    q.col.into(),
                );
                let target = images[i * PIX + usize::from(q.row) * SIDE + usize::from(q.col)];
                loss = loss + cross_entropy(&tape.logits, target.into(), scale, Some(&mut dz));
                tape.backward(&w, &dz, &mut g);
            }
            (loss, g)
        })
        .collect();
    grad.iter_mut().for_each(|g| *g = T::zero());
    let mut loss = T::zero();
    for (l, g) in parts {
        loss = loss + l;
        for (a, b) in grad.iter_mut().zip(&g) {
            *a = *a + *b;
        }
    }
    loss * scale
}

/// Sum of cross-entropies (in `f64`) over `queries`, forward only, through the batched path
/// ([`super::batched::loss_sum`]), parallel, thread-count independent.
///
/// # Panics
/// As [`loss_grad`].
pub fn loss_sum<T: Scalar>(params: &[T], images: &[u8], queries: &[Query]) -> f64 {
    super::batched::loss_sum(params, images, queries)
}

/// The dataset loss of the authors' `evaluate_loss_on_dataset`: mean cross-entropy over every
/// image of `images` (`n·784` bytes) and every one of the 784 query positions.
///
/// # Panics
/// As [`loss_grad`].
pub fn dataset_loss<T: Scalar>(params: &[T], images: &[u8]) -> f64 {
    let n = images.len() / PIX;
    let queries: Vec<Query> = (0..n)
        .flat_map(|i| {
            (0..PIX).map(move |p| Query {
                image: i as u32,
                row: (p / SIDE) as u8,
                col: (p % SIDE) as u8,
            })
        })
        .collect();
    loss_sum(params, images, &queries) / queries.len() as f64
}

/// Samples `count` digits pixel by pixel in raster order from the model (the authors'
/// `generate`): each pixel's byte is drawn from the softmax given the pixels before it.
/// Parallel over digits; deterministic for a seed.
#[must_use]
pub fn sample<T: Scalar>(params: &[T], count: usize, seed: u64) -> Vec<u8> {
    let w = Prepared::new(params);
    (0..count)
        .into_par_iter()
        .map_init(Tape::<T>::new, |tape, d| {
            let mut rng = lodo_core::random::Stream::new(
                seed ^ (d as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15),
            );
            let mut img = vec![0u8; PIX];
            for p in 0..PIX {
                tape.forward(&w, &img, p / SIDE, p % SIDE);
                let z = &tape.logits;
                let m = z.iter().copied().fold(T::neg_infinity(), T::max);
                let probs: Vec<f64> = z
                    .iter()
                    .map(|&v| (v - m).exp().to_f64().expect("float"))
                    .collect();
                let total: f64 = probs.iter().sum();
                let u = rng.uniform() * total;
                let mut acc = 0.0;
                let mut pick = CLASSES - 1;
                for (k, &pr) in probs.iter().enumerate() {
                    acc += pr;
                    if u <= acc {
                        pick = k;
                        break;
                    }
                }
                img[p] = pick as u8;
            }
            img
        })
        .collect::<Vec<_>>()
        .concat()
}
