//! Problems shared by the tests and the example: argmin's Rosenbrock and the paper's noisy
//! quadratic bowl.
#![allow(dead_code)]

use std::cell::RefCell;
use std::iter::Sum;
use std::marker::PhantomData;
use std::ops::AddAssign;

use argmin::core::{CostFunction, Error, Gradient};
use argmin_testfunctions::{rosenbrock, rosenbrock_derivative};
use num_traits::{Float, FromPrimitive};

/// argmin-testfunctions' Rosenbrock (`a = 1`, `b = 100`) in any dimension ≥ 2, over `Vec<T>`.
#[derive(Clone, Copy, Debug, Default)]
pub struct Rosenbrock<T = f64>(PhantomData<T>);

impl<T: Float + FromPrimitive> Rosenbrock<T> {
    pub fn new() -> Self {
        Self(PhantomData)
    }

    /// The classic start `(−1.2, 1, −1.2, 1, …)`.
    pub fn start(n: usize) -> Vec<T> {
        (0..n)
            .map(|i| T::from_f64(if i % 2 == 0 { -1.2 } else { 1.0 }).unwrap())
            .collect()
    }
}

impl<T: Float + FromPrimitive + Sum> CostFunction for Rosenbrock<T> {
    type Param = Vec<T>;
    type Output = T;
    fn cost(&self, x: &Vec<T>) -> Result<T, Error> {
        Ok(rosenbrock(x))
    }
}

impl<T: Float + FromPrimitive + AddAssign> Gradient for Rosenbrock<T> {
    type Param = Vec<T>;
    type Gradient = Vec<T>;
    fn gradient(&self, x: &Vec<T>) -> Result<Vec<T>, Error> {
        Ok(rosenbrock_derivative(x))
    }
}

/// SplitMix64 with Box–Muller normals: small, seeded, no dependency.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in (0, 1].
    pub fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 1.0) / (1u64 << 53) as f64
    }
    pub fn gaussian(&mut self) -> f64 {
        let (u, v) = (self.uniform(), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * std::f64::consts::PI * v).cos()
    }
}

/// The paper's noisy quadratic bowl (§5.1, as `lodo-bench`'s): `½(x−c)ᵀH(x−c)` in `n`
/// dimensions, eigenvalues log-spaced in `[1e−3, 1]`, random orthogonal eigenvectors, `x₀ = 0`.
/// **Every `cost` call moves the centre by `N(0, s²I)`** (a fresh sample); `gradient` is taken
/// on the latest centre. So LODO (one `gradient` and one `cost` per iteration) sees one sample
/// per iteration, and a line search sees a new sample at every trial point.
#[derive(Debug)]
pub struct NoisyBowl {
    pub n: usize,
    /// Row-major `H`.
    pub h: Vec<f64>,
    pub noise: f64,
    pub center: RefCell<Vec<f64>>,
    pub rng: RefCell<Rng>,
}

impl NoisyBowl {
    pub fn new(n: usize, noise: f64, seed: u64) -> Self {
        let mut rng = Rng::new(seed);
        // Q: Gram–Schmidt of a Gaussian matrix (rows).
        let mut q: Vec<Vec<f64>> = Vec::with_capacity(n);
        while q.len() < n {
            let mut v: Vec<f64> = (0..n).map(|_| rng.gaussian()).collect();
            for _ in 0..2 {
                for u in &q {
                    let d: f64 = u.iter().zip(&v).map(|(a, b)| a * b).sum();
                    v.iter_mut().zip(u).for_each(|(vi, ui)| *vi -= d * ui);
                }
            }
            let norm = v.iter().map(|a| a * a).sum::<f64>().sqrt();
            if norm > 1e-8 {
                q.push(v.into_iter().map(|a| a / norm).collect());
            }
        }
        let eig: Vec<f64> = (0..n)
            .map(|i| {
                let t = if n == 1 {
                    0.0
                } else {
                    i as f64 / (n - 1) as f64
                };
                10f64.powf(-3.0 + 3.0 * t)
            })
            .collect();
        let mut h = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                h[i * n + j] = (0..n).map(|k| q[k][i] * eig[k] * q[k][j]).sum();
            }
        }
        Self {
            n,
            h,
            noise,
            center: RefCell::new(vec![0.0; n]),
            rng: RefCell::new(rng),
        }
    }

    /// `½·s²·tr(H)`: the expected loss of the best possible tracker (Newton's floor).
    pub fn floor(&self) -> f64 {
        0.5 * self.noise * self.noise * (0..self.n).map(|i| self.h[i * self.n + i]).sum::<f64>()
    }

    fn hd(&self, x: &[f64]) -> (Vec<f64>, Vec<f64>) {
        let c = self.center.borrow();
        let d: Vec<f64> = x.iter().zip(c.iter()).map(|(a, b)| a - b).collect();
        let hd = (0..self.n)
            .map(|i| {
                self.h[i * self.n..(i + 1) * self.n]
                    .iter()
                    .zip(&d)
                    .map(|(a, b)| a * b)
                    .sum()
            })
            .collect();
        (d, hd)
    }
}

impl CostFunction for NoisyBowl {
    type Param = Vec<f64>;
    type Output = f64;
    fn cost(&self, x: &Vec<f64>) -> Result<f64, Error> {
        {
            let mut rng = self.rng.borrow_mut();
            for c in self.center.borrow_mut().iter_mut() {
                *c += self.noise * rng.gaussian();
            }
        }
        let (d, hd) = self.hd(x);
        Ok(0.5 * d.iter().zip(&hd).map(|(a, b)| a * b).sum::<f64>())
    }
}

impl Gradient for NoisyBowl {
    type Param = Vec<f64>;
    type Gradient = Vec<f64>;
    fn gradient(&self, x: &Vec<f64>) -> Result<Vec<f64>, Error> {
        Ok(self.hd(x).1)
    }
}
