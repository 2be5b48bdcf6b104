//! Oracles shared by lodo-core's tests: dense matrices written as the paper's formulas read,
//! a textbook LODO step, random problems. Everything here is plain f64 and independent of the
//! optimized code paths (it only reads the permutations and weights).
#![allow(dead_code)]

use lodo_core::random::Stream;
use lodo_core::{BlockPreconditioner, Preconditioner, PreconditionerConfig as _, Real, lit};

/// Row-major dense matrix.
#[derive(Clone, Debug)]
pub struct Dense {
    pub rows: usize,
    pub cols: usize,
    pub a: Vec<f64>,
}

impl Dense {
    pub fn zeros(rows: usize, cols: usize) -> Self {
        Self {
            rows,
            cols,
            a: vec![0.0; rows * cols],
        }
    }
    pub fn identity(n: usize) -> Self {
        let mut d = Self::zeros(n, n);
        for i in 0..n {
            d.a[i * n + i] = 1.0;
        }
        d
    }
    pub fn at(&self, i: usize, j: usize) -> f64 {
        self.a[i * self.cols + j]
    }
    pub fn set(&mut self, i: usize, j: usize, v: f64) {
        self.a[i * self.cols + j] = v;
    }
    pub fn matmul(&self, b: &Dense) -> Dense {
        assert_eq!(self.cols, b.rows);
        let mut c = Dense::zeros(self.rows, b.cols);
        for i in 0..self.rows {
            for k in 0..self.cols {
                let aik = self.at(i, k);
                for j in 0..b.cols {
                    c.a[i * b.cols + j] += aik * b.at(k, j);
                }
            }
        }
        c
    }
    pub fn transpose(&self) -> Dense {
        let mut t = Dense::zeros(self.cols, self.rows);
        for i in 0..self.rows {
            for j in 0..self.cols {
                t.set(j, i, self.at(i, j));
            }
        }
        t
    }
    pub fn matvec(&self, v: &[f64]) -> Vec<f64> {
        assert_eq!(self.cols, v.len());
        (0..self.rows)
            .map(|i| (0..self.cols).map(|j| self.at(i, j) * v[j]).sum())
            .collect()
    }
    pub fn max_abs(&self) -> f64 {
        self.a.iter().fold(0.0, |m, x| m.max(x.abs()))
    }
}

/// The permutation matrix `P` with `(P x)[j] = x[π(j)]`: `P[j][π(j)] = 1`.
pub fn permutation_matrix(pi: &[u32]) -> Dense {
    let h = pi.len();
    let mut p = Dense::zeros(h, h);
    for (j, &pj) in pi.iter().enumerate() {
        p.set(j, pj as usize, 1.0);
    }
    p
}

/// The block-diagonal matrix of one layer's weights (`h·k` numbers, row-major blocks).
pub fn block_matrix(w: &[f64], h: usize, k: usize) -> Dense {
    let mut b = Dense::zeros(h, h);
    for blk in 0..h / k {
        for r in 0..k {
            for c in 0..k {
                b.set(blk * k + r, blk * k + c, w[blk * k * k + r * k + c]);
            }
        }
    }
    b
}

/// `Π`: the `h × n` zero-padding.
pub fn padding(h: usize, n: usize) -> Dense {
    let mut p = Dense::zeros(h, n);
    for i in 0..n {
        p.set(i, i, 1.0);
    }
    p
}

/// The block network as dense factors: `layers[l] = B_l P_l`, in f64.
pub struct DenseNetwork {
    pub n: usize,
    pub h: usize,
    pub k: usize,
    pub alpha0: f64,
    pub perms: Vec<Dense>,
    pub blocks: Vec<Dense>,
}

impl DenseNetwork {
    pub fn of<T: Real>(p: &BlockPreconditioner<T>) -> Self {
        let (h, k) = (p.hidden(), p.block_size());
        let w: Vec<f64> = p.weights().iter().map(|x| x.to_f64().unwrap()).collect();
        Self {
            n: p.dim(),
            h,
            k,
            alpha0: p.alpha0().to_f64().unwrap(),
            perms: p
                .permutations()
                .expect("memory")
                .iter()
                .map(|q| permutation_matrix(q.forward()))
                .collect(),
            blocks: (0..p.layers())
                .map(|l| block_matrix(&w[l * h * k..(l + 1) * h * k], h, k))
                .collect(),
        }
    }

    pub fn layers(&self) -> usize {
        self.blocks.len()
    }

    /// The same network with the flat weights `w` (optimizer layout).
    pub fn with_weights(&self, w: &[f64]) -> Self {
        let (h, k) = (self.h, self.k);
        Self {
            n: self.n,
            h,
            k,
            alpha0: self.alpha0,
            perms: self.perms.clone(),
            blocks: (0..self.layers())
                .map(|l| block_matrix(&w[l * h * k..(l + 1) * h * k], h, k))
                .collect(),
        }
    }

    /// `B_l P_l ⋯ B_1 P_1` for layers `0..upto` (identity for `upto = 0`).
    pub fn prefix(&self, upto: usize) -> Dense {
        let mut m = Dense::identity(self.h);
        for l in 0..upto {
            m = self.blocks[l].matmul(&self.perms[l]).matmul(&m);
        }
        m
    }

    /// `B_N P_N ⋯ B_{l+2} P_{l+2}` — the layers after layer `l` (0-based).
    pub fn suffix(&self, l: usize) -> Dense {
        let mut m = Dense::identity(self.h);
        for j in l + 1..self.layers() {
            m = self.blocks[j].matmul(&self.perms[j]).matmul(&m);
        }
        m
    }

    /// `A = B_N P_N ⋯ B_1 P_1`.
    pub fn a(&self) -> Dense {
        self.prefix(self.layers())
    }

    /// `G = α₀ Πᵀ Aᵀ A Π`.
    pub fn g(&self) -> Dense {
        let api = self.a().matmul(&padding(self.h, self.n));
        let mut g = api.transpose().matmul(&api);
        g.a.iter_mut().for_each(|x| *x *= self.alpha0);
        g
    }

    /// `−∇_θ ⟨g, G m⟩` by the dense formula: for layer `l` with `L = suffix(l)`,
    /// `R = P_l · prefix(l)`, `∇_{B_l} = α₀ (Lᵀ A Π m)(R Π g)ᵀ + α₀ (Lᵀ A Π g)(R Π m)ᵀ`, kept on the
    /// blocks. Returned in the optimizer's weight layout.
    pub fn hypergradient(&self, g: &[f64], m: &[f64]) -> Vec<f64> {
        let (h, k) = (self.h, self.k);
        let pi = padding(h, self.n);
        let (pg, pm) = (pi.matvec(g), pi.matvec(m));
        let a = self.a();
        let (apg, apm) = (a.matvec(&pg), a.matvec(&pm));
        let mut out = Vec::with_capacity(self.layers() * h * k);
        for l in 0..self.layers() {
            let lt = self.suffix(l).transpose();
            let r = self.perms[l].matmul(&self.prefix(l));
            let (wm, wg) = (lt.matvec(&apm), lt.matvec(&apg));
            let (rg, rm) = (r.matvec(&pg), r.matvec(&pm));
            for blk in 0..h / k {
                for row in 0..k {
                    for col in 0..k {
                        let (i, j) = (blk * k + row, blk * k + col);
                        out.push(-self.alpha0 * (wm[i] * rg[j] + wg[i] * rm[j]));
                    }
                }
            }
        }
        out
    }
}

/// A random symmetric positive definite matrix with eigenvalues in `[lo, hi]`.
pub fn random_spd(n: usize, lo: f64, hi: f64, rng: &mut Stream) -> Dense {
    let mut q = vec![0.0; n * n];
    rng.orthogonal(n, &mut q);
    let q = Dense {
        rows: n,
        cols: n,
        a: q,
    };
    let mut d = Dense::zeros(n, n);
    for i in 0..n {
        let t = if n == 1 {
            0.0
        } else {
            i as f64 / (n - 1) as f64
        };
        d.set(i, i, lo * (hi / lo).powf(t));
    }
    q.matmul(&d).matmul(&q.transpose())
}

pub fn gaussians(n: usize, scale: f64, rng: &mut Stream) -> Vec<f64> {
    (0..n).map(|_| scale * rng.gaussian()).collect()
}

pub fn cast<T: Real>(v: &[f64]) -> Vec<T> {
    v.iter().map(|&x| lit::<T>(x)).collect()
}

pub fn to_f64<T: Real>(v: &[T]) -> Vec<f64> {
    v.iter().map(|x| x.to_f64().unwrap()).collect()
}

/// `max |a − b| / max(1, max |b|)`.
pub fn rel_err(a: &[f64], b: &[f64]) -> f64 {
    assert_eq!(a.len(), b.len());
    let scale = b.iter().fold(1.0f64, |m, x| m.max(x.abs()));
    a.iter()
        .zip(b)
        .fold(0.0f64, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// Cholesky of a symmetric matrix; `false` if it is not positive definite.
pub fn is_positive_definite(m: &Dense) -> bool {
    let n = m.rows;
    let mut l = vec![0.0; n * n];
    for j in 0..n {
        let mut d = m.at(j, j);
        for p in 0..j {
            d -= l[j * n + p] * l[j * n + p];
        }
        if d <= 0.0 || !d.is_finite() {
            return false;
        }
        let djj = d.sqrt();
        l[j * n + j] = djj;
        for i in j + 1..n {
            let mut s = m.at(i, j);
            for p in 0..j {
                s -= l[i * n + p] * l[j * n + p];
            }
            l[i * n + j] = s / djj;
        }
    }
    true
}

/// Bits of a float slice, for exact comparisons.
pub fn bits<T: Real>(v: &[T]) -> Vec<u64> {
    v.iter().map(|x| x.to_f64().unwrap().to_bits()).collect()
}

/// A preconditioner configuration built from the shape the tests sweep: block size `k` (block
/// network only), layers `N` (block and residual networks) and `α₀`.
pub trait Shaped<T: Real>: lodo_core::PreconditionerConfig<T> {
    /// The configuration with this shape (panics on an invalid one: test inputs are valid).
    fn shaped(k: usize, layers: usize, alpha0: f64) -> Self;
}

impl<T: Real> Shaped<T> for lodo_core::BlockConfig<T> {
    fn shaped(k: usize, layers: usize, alpha0: f64) -> Self {
        Self::default()
            .with_block_size(k)
            .and_then(|c| c.with_layers(layers))
            .and_then(|c| c.with_alpha0(lit(alpha0)))
            .expect("valid shape")
    }
}

impl<T: Real> Shaped<T> for lodo_core::ResidualConfig<T> {
    fn shaped(_k: usize, layers: usize, alpha0: f64) -> Self {
        Self::default()
            .with_layers(layers)
            .and_then(|c| c.with_alpha0(lit(alpha0)))
            .expect("valid shape")
    }
}

impl<T: Real> Shaped<T> for lodo_core::DiagonalConfig<T> {
    fn shaped(_k: usize, _layers: usize, alpha0: f64) -> Self {
        Self::default().with_alpha0(lit(alpha0)).expect("valid α₀")
    }
}

impl<T: Real> Shaped<T> for lodo_core::GlobalConfig<T> {
    fn shaped(_k: usize, _layers: usize, alpha0: f64) -> Self {
        Self::default().with_alpha0(lit(alpha0)).expect("valid α₀")
    }
}
