//! Small dense helpers on [`faer::Mat<f64>`]: conversions, the self-adjoint eigendecomposition and
//! singular values used as the reference instrument.

use faer::{Mat, Side};

/// A row-major `rows × cols` slice as a matrix.
#[must_use]
pub fn from_row_major(rows: usize, cols: usize, data: &[f64]) -> Mat<f64> {
    assert_eq!(data.len(), rows * cols, "from_row_major: wrong length");
    Mat::from_fn(rows, cols, |i, j| data[i * cols + j])
}

/// Eigenvalues (nondecreasing) and orthonormal eigenvectors (columns) of the symmetric part of
/// `a` read from its lower triangle.
///
/// # Panics
/// If faer's eigensolver does not converge (never observed on finite input).
#[must_use]
pub fn sym_eigen(a: &Mat<f64>) -> (Vec<f64>, Mat<f64>) {
    let e = a
        .self_adjoint_eigen(Side::Lower)
        .expect("self-adjoint eigendecomposition converges");
    let vals = e.S().column_vector().iter().copied().collect();
    (vals, e.U().to_owned())
}

/// Eigenvalues of the symmetric `a` (nondecreasing), from its lower triangle.
///
/// # Panics
/// If faer's eigensolver does not converge.
#[must_use]
pub fn sym_eigenvalues(a: &Mat<f64>) -> Vec<f64> {
    a.self_adjoint_eigenvalues(Side::Lower)
        .expect("self-adjoint eigenvalues converge")
}

/// Singular values (nonincreasing).
///
/// # Panics
/// If faer's SVD does not converge.
#[must_use]
pub fn singular_values(a: &Mat<f64>) -> Vec<f64> {
    a.singular_values().expect("SVD converges")
}

/// Frobenius norm.
#[must_use]
pub fn frob(a: &Mat<f64>) -> f64 {
    let mut s = 0.0;
    for j in 0..a.ncols() {
        for i in 0..a.nrows() {
            s += a[(i, j)] * a[(i, j)];
        }
    }
    s.sqrt()
}

/// `a − b`.
#[must_use]
pub fn sub(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    Mat::from_fn(a.nrows(), a.ncols(), |i, j| a[(i, j)] - b[(i, j)])
}

/// `a·b`.
#[must_use]
pub fn mul(a: &Mat<f64>, b: &Mat<f64>) -> Mat<f64> {
    a * b
}

/// `aᵀ`.
#[must_use]
pub fn transpose(a: &Mat<f64>) -> Mat<f64> {
    a.transpose().to_owned()
}

/// The `n × n` identity.
#[must_use]
pub fn identity(n: usize) -> Mat<f64> {
    Mat::from_fn(n, n, |i, j| if i == j { 1.0 } else { 0.0 })
}

/// `Q·diag(d)·Qᵀ`.
#[must_use]
pub fn from_eigen(q: &Mat<f64>, d: &[f64]) -> Mat<f64> {
    let qd = Mat::from_fn(q.nrows(), q.ncols(), |i, j| q[(i, j)] * d[j]);
    &qd * q.transpose()
}

/// The symmetric PSD square root of a symmetric matrix (negative eigenvalues clipped to 0).
#[must_use]
pub fn sqrt_psd(a: &Mat<f64>) -> Mat<f64> {
    let (vals, q) = sym_eigen(a);
    let d: Vec<f64> = vals.iter().map(|&v| v.max(0.0).sqrt()).collect();
    from_eigen(&q, &d)
}

/// Cosines of the principal angles between the column spans of the orthonormal `u` and `v`
/// (nonincreasing): the singular values of `uᵀv`.
#[must_use]
pub fn principal_cosines(u: &Mat<f64>, v: &Mat<f64>) -> Vec<f64> {
    singular_values(&(u.transpose() * v))
}

/// A Haar-random `n × n` orthogonal matrix from the seeded stream.
#[must_use]
pub fn random_orthogonal(n: usize, rng: &mut lodo_core::random::Stream) -> Mat<f64> {
    let mut q = vec![0.0; n * n];
    rng.orthogonal(n, &mut q);
    from_row_major(n, n, &q)
}
