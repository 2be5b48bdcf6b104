//! The Python extension module `lodo._lodo`: LODO ([`lodo_core`]) over NumPy arrays.
//!
//! The Python package `lodo` (in `python/lodo/`) re-exports [`PyLodo`] as `lodo.Lodo` and adds
//! `lodo.torch.LODO` (a `torch.optim.Optimizer`) and `lodo.optax.lodo` (an optax
//! `GradientTransformation`), both thin Python layers over this class.
//!
//! One `Lodo` object is one of four optimizers: `f32` or `f64`, meta-optimizer Adam (the
//! paper's) or SGD (§5.3's "LODO-SGD"), always with the paper's block preconditioner
//! `G = α₀·Πᵀ·AᵀA·Π` (§3). `Lodo.step` works in place on the caller's parameter array:
//! no copy in or out (the arrays must be 1-D, C-contiguous, writable, of the optimizer's
//! dtype), and the GIL is released while the Rust step runs.
//!
//! Every lodo-core error variant ([`ConfigError`], [`StepError`], [`StateError`]) and every
//! state-envelope error ([`EnvelopeError`]) is raised as its own Python exception class, defined
//! in `lodo/errors.py` under the base `lodo.LodoError`; the payload of the variant (index,
//! expected and found lengths, …) is set as attributes of the exception.
//!
//! The saved state (`state_dict()`) is lodo-ffi's state envelope (its crate docs' "State
//! bytes"): the same bytes a C program saves with `lodo_f32_save`, for Adam; an SGD state is the
//! same envelope around an `{"Sgd": …}` payload.
#![warn(missing_docs)]

use lodo::{EnvelopeError, FfiFloat, decode_state, encode_state, state_float_width};
use lodo_core::{
    Adam, AdamConfig, BlockConfig, BlockPreconditioner, ConfigError, Lodo, LodoConfig, MetaConfig,
    MetaOptimizer, Optimizer, PermutationFamily, Precision, Sgd, SgdConfig, StateError, StepError,
    WeightPrecision,
};
use numpy::{
    BorrowError, Element, PyArray1, PyArrayDescrMethods, PyArrayMethods, PyUntypedArray,
    PyUntypedArrayMethods,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyTuple};
use serde::Serialize;
use std::sync::{Mutex, MutexGuard, TryLockError};

// ---------------------------------------------------------------------------------------------
// Exceptions: classes live in `lodo.errors` (Python, so they can also derive from ValueError,
// TypeError or MemoryError); Rust raises them by name with the variant's fields as attributes.

/// A `lodo.errors.<class>` exception with `message` and the attributes `attrs`.
fn raise(py: Python<'_>, class: &str, message: String, attrs: &[(&str, Py<PyAny>)]) -> PyErr {
    let build = || -> PyResult<PyErr> {
        let cls = py.import("lodo.errors")?.getattr(class)?;
        let value = cls.call1((message.clone(),))?;
        for (name, v) in attrs {
            value.setattr(*name, v.bind(py))?;
        }
        Ok(PyErr::from_value(value))
    };
    build().unwrap_or_else(|e| e)
}

fn int(py: Python<'_>, v: usize) -> Py<PyAny> {
    v.into_pyobject(py)
        .map(|o| o.into_any().unbind())
        .unwrap_or_else(|_| py.None())
}

fn text(py: Python<'_>, v: &str) -> Py<PyAny> {
    pyo3::types::PyString::new(py, v).into_any().unbind()
}

/// The exception of a [`ConfigError`] (the base `ConfigError` for variants added later).
fn config_err(py: Python<'_>, e: ConfigError) -> PyErr {
    let msg = e.to_string();
    match e {
        ConfigError::EmptyProblem => raise(py, "EmptyProblemError", msg, &[]),
        ConfigError::InvalidAlpha0 => raise(py, "InvalidAlpha0Error", msg, &[]),
        ConfigError::InvalidMetaLearningRate => raise(py, "InvalidMetaLearningRateError", msg, &[]),
        ConfigError::InvalidMomentum => raise(py, "InvalidMomentumError", msg, &[]),
        ConfigError::ZeroLayers => raise(py, "ZeroLayersError", msg, &[]),
        ConfigError::ZeroBlockSize => raise(py, "ZeroBlockSizeError", msg, &[]),
        ConfigError::HiddenTooSmall { hidden, dim } => raise(
            py,
            "HiddenTooSmallError",
            msg,
            &[("hidden", int(py, hidden)), ("dim", int(py, dim))],
        ),
        ConfigError::HiddenNotMultipleOfBlock { hidden, block_size } => raise(
            py,
            "HiddenNotMultipleOfBlockError",
            msg,
            &[
                ("hidden", int(py, hidden)),
                ("block_size", int(py, block_size)),
            ],
        ),
        ConfigError::TooLarge => raise(py, "TooLargeError", msg, &[]),
        ConfigError::InvalidBeta1 => raise(py, "InvalidBeta1Error", msg, &[]),
        ConfigError::InvalidBeta2 => raise(py, "InvalidBeta2Error", msg, &[]),
        ConfigError::InvalidEpsilon => raise(py, "InvalidEpsilonError", msg, &[]),
        ConfigError::InvalidLearningRate => raise(py, "InvalidLearningRateError", msg, &[]),
        ConfigError::ZeroTile => raise(py, "ZeroTileError", msg, &[]),
        ConfigError::TileNotMultipleOfBlock { tile, block_size } => raise(
            py,
            "TileNotMultipleOfBlockError",
            msg,
            &[("tile", int(py, tile)), ("block_size", int(py, block_size))],
        ),
        ConfigError::HiddenNotAligned { hidden, multiple } => raise(
            py,
            "HiddenNotAlignedError",
            msg,
            &[("hidden", int(py, hidden)), ("multiple", int(py, multiple))],
        ),
        ConfigError::CompactBlockTooLarge { block_size, max } => raise(
            py,
            "CompactBlockTooLargeError",
            msg,
            &[("block_size", int(py, block_size)), ("max", int(py, max))],
        ),
        ConfigError::UnsupportedActivationPrecision => {
            raise(py, "UnsupportedActivationPrecisionError", msg, &[])
        }
        ConfigError::UnsupportedWeightPrecision => {
            raise(py, "UnsupportedWeightPrecisionError", msg, &[])
        }
        ConfigError::OutOfMemory { bytes } => {
            raise(py, "OutOfMemoryError", msg, &[("bytes", int(py, bytes))])
        }
        _ => raise(py, "ConfigError", msg, &[]),
    }
}

/// The exception of a [`StepError`] (the base `StepError` for variants added later).
fn step_err(py: Python<'_>, e: StepError) -> PyErr {
    let msg = e.to_string();
    match e {
        StepError::GradientLength { expected, found } => raise(
            py,
            "GradientLengthError",
            msg,
            &[("expected", int(py, expected)), ("found", int(py, found))],
        ),
        StepError::ParamsLength { expected, found } => raise(
            py,
            "ParamsLengthError",
            msg,
            &[("expected", int(py, expected)), ("found", int(py, found))],
        ),
        StepError::NonFiniteGradient { index } => raise(
            py,
            "NonFiniteGradientError",
            msg,
            &[("index", int(py, index))],
        ),
        StepError::NonFiniteStep { index } => {
            raise(py, "NonFiniteStepError", msg, &[("index", int(py, index))])
        }
        StepError::NonFiniteMetaUpdate { kept } => raise(
            py,
            "NonFiniteMetaUpdateError",
            msg,
            &[("kept", int(py, kept))],
        ),
        _ => raise(py, "StepError", msg, &[]),
    }
}

/// The exception of a [`StateError`] (the base `StateError` for variants added later).
fn state_err(py: Python<'_>, e: StateError) -> PyErr {
    let msg = e.to_string();
    match e {
        StateError::UnsupportedFormat { found } => raise(
            py,
            "UnsupportedVersionError",
            msg,
            &[("found", int(py, found as usize))],
        ),
        StateError::Config(c) => {
            let cause = config_err(py, c).into_value(py).into_any();
            raise(py, "StateConfigError", msg, &[("config_error", cause)])
        }
        StateError::Length {
            what,
            expected,
            found,
        } => raise(
            py,
            "StateLengthError",
            msg,
            &[
                ("what", text(py, what)),
                ("expected", int(py, expected)),
                ("found", int(py, found)),
            ],
        ),
        StateError::NotAPermutation { layer } => raise(
            py,
            "NotAPermutationError",
            msg,
            &[("layer", int(py, layer))],
        ),
        StateError::NonFinite { what } => {
            raise(py, "NonFiniteStateError", msg, &[("what", text(py, what))])
        }
        StateError::Negative { what } => {
            raise(py, "NegativeStateError", msg, &[("what", text(py, what))])
        }
        _ => raise(py, "StateError", msg, &[]),
    }
}

/// The exception of an [`EnvelopeError`] (lodo-core's refusals go through [`state_err`]).
fn envelope_err(py: Python<'_>, e: EnvelopeError) -> PyErr {
    let msg = e.to_string();
    match e {
        EnvelopeError::Truncated => raise(py, "StateTruncatedError", msg, &[]),
        EnvelopeError::Corrupt => raise(py, "StateCorruptError", msg, &[]),
        EnvelopeError::WrongType { width } => raise(
            py,
            "StateWrongTypeError",
            msg,
            &[("width", int(py, width as usize))],
        ),
        EnvelopeError::UnsupportedEnvelope { version } => raise(
            py,
            "UnsupportedVersionError",
            msg,
            &[("found", int(py, version as usize))],
        ),
        EnvelopeError::State(s) => state_err(py, s),
        _ => raise(py, "StateError", msg, &[]),
    }
}

/// A binding-level configuration refusal (an unknown name, an option of another part).
fn option_err(py: Python<'_>, message: String) -> PyErr {
    raise(py, "InvalidOptionError", message, &[])
}

// ---------------------------------------------------------------------------------------------
// The optimizer: four concrete types behind one Python class.

/// LODO with Adam (the paper's) or SGD meta-optimizer.
type AdamLodo<T> = Lodo<T, BlockPreconditioner<T>, Adam<T>>;
type SgdLodo<T> = Lodo<T, BlockPreconditioner<T>, Sgd<T>>;

enum Inner {
    F32Adam(AdamLodo<f32>),
    F64Adam(AdamLodo<f64>),
    F32Sgd(SgdLodo<f32>),
    F64Sgd(SgdLodo<f64>),
}

/// Runs `$body` with `$l` bound to the concrete optimizer.
macro_rules! each {
    ($inner:expr, $l:ident => $body:expr) => {
        match $inner {
            Inner::F32Adam($l) => $body,
            Inner::F64Adam($l) => $body,
            Inner::F32Sgd($l) => $body,
            Inner::F64Sgd($l) => $body,
        }
    };
}

impl Inner {
    fn dtype(&self) -> &'static str {
        match self {
            Self::F32Adam(_) | Self::F32Sgd(_) => "float32",
            Self::F64Adam(_) | Self::F64Sgd(_) => "float64",
        }
    }

    fn meta(&self) -> &'static str {
        match self {
            Self::F32Adam(_) | Self::F64Adam(_) => "adam",
            Self::F32Sgd(_) | Self::F64Sgd(_) => "sgd",
        }
    }
}

/// The keyword options of `Lodo(...)`; `None` means lodo-core's default.
struct Options<'a> {
    layers: Option<usize>,
    block_size: Option<usize>,
    hidden: Option<usize>,
    family: &'a str,
    tile: Option<usize>,
    beta: Option<f64>,
    alpha0: Option<f64>,
    meta_lr: Option<f64>,
    adam_beta1: Option<f64>,
    adam_beta2: Option<f64>,
    adam_epsilon: Option<f64>,
    moments: &'a str,
    activations: &'a str,
    weights: &'a str,
}

fn precision(py: Python<'_>, what: &str, name: &str) -> PyResult<Precision> {
    match name {
        "full" | "bf16" | "q8" => Precision::from_name(name)
            .ok_or_else(|| option_err(py, format!("unknown {what} precision {name:?}"))),
        _ => Err(option_err(
            py,
            format!("{what} must be 'full', 'bf16' or 'q8', got {name:?}"),
        )),
    }
}

fn network<T: FfiFloat>(py: Python<'_>, o: &Options<'_>) -> PyResult<BlockConfig<T>> {
    let family = match (o.family, o.tile) {
        ("random", None) => PermutationFamily::Random,
        ("shuffle", None) => PermutationFamily::Shuffle,
        ("tiled_shuffle", Some(tile)) => PermutationFamily::TiledShuffle { tile },
        ("tiled_shuffle", None) => {
            return Err(option_err(py, "family='tiled_shuffle' needs tile=".into()));
        }
        ("random" | "shuffle", Some(_)) => {
            return Err(option_err(
                py,
                "tile= applies to family='tiled_shuffle' only".into(),
            ));
        }
        (other, _) => {
            return Err(option_err(
                py,
                format!("family must be 'random', 'shuffle' or 'tiled_shuffle', got {other:?}"),
            ));
        }
    };
    let activations = precision(py, "activations", o.activations)?;
    let weights = WeightPrecision::from_name(o.weights).ok_or_else(|| {
        option_err(
            py,
            format!("weights must be 'full' or 'f32', got {:?}", o.weights),
        )
    })?;
    let mut b = BlockConfig::<T>::default();
    let c = |r: Result<BlockConfig<T>, ConfigError>| r.map_err(|e| config_err(py, e));
    if let Some(layers) = o.layers {
        b = c(b.with_layers(layers))?;
    }
    if let Some(k) = o.block_size {
        b = c(b.with_block_size(k))?;
    }
    b = c(b.with_permutations(family))?;
    b = c(b.with_activations(activations))?;
    b = c(b.with_weights(weights))?;
    if let Some(h) = o.hidden {
        b = c(b.with_hidden(h))?;
    }
    Ok(b)
}

fn lodo_config<T: FfiFloat, MC: MetaConfig<T>>(
    py: Python<'_>,
    o: &Options<'_>,
    b: BlockConfig<T>,
    meta: MC,
) -> PyResult<LodoConfig<T, BlockConfig<T>, MC>> {
    let mut c = LodoConfig::new(b, meta);
    let e = |e| config_err(py, e);
    if let Some(beta) = o.beta {
        c = c.with_beta(T::from_c(beta)).map_err(e)?;
    }
    if let Some(alpha0) = o.alpha0 {
        c = c.with_alpha0(T::from_c(alpha0)).map_err(e)?;
    }
    if let Some(lr) = o.meta_lr {
        c = c.with_meta_lr(T::from_c(lr)).map_err(e)?;
    }
    Ok(c)
}

fn new_adam<T: FfiFloat>(
    py: Python<'_>,
    n: usize,
    o: &Options<'_>,
    seed: u64,
) -> PyResult<AdamLodo<T>> {
    let d = AdamConfig::<T>::default();
    let adam = d
        .with_moments(
            o.adam_beta1.map_or(d.beta1(), T::from_c),
            o.adam_beta2.map_or(d.beta2(), T::from_c),
            o.adam_epsilon.map_or(d.epsilon(), T::from_c),
        )
        .map_err(|e| config_err(py, e))?
        .with_precision(precision(py, "moments", o.moments)?);
    let config = lodo_config(py, o, network(py, o)?, adam)?;
    Lodo::new(n, config, seed).map_err(|e| config_err(py, e))
}

fn new_sgd<T: FfiFloat>(
    py: Python<'_>,
    n: usize,
    o: &Options<'_>,
    seed: u64,
) -> PyResult<SgdLodo<T>> {
    if o.adam_beta1.is_some() || o.adam_beta2.is_some() || o.adam_epsilon.is_some() {
        return Err(option_err(
            py,
            "adam_beta1, adam_beta2 and adam_epsilon apply to meta='adam' only".into(),
        ));
    }
    if precision(py, "moments", o.moments)? != Precision::Full {
        return Err(option_err(
            py,
            "moments= (Adam's moments) applies to meta='adam' only; SGD keeps none".into(),
        ));
    }
    let config = lodo_config(py, o, network(py, o)?, SgdConfig::<T>::default())?;
    Lodo::new(n, config, seed).map_err(|e| config_err(py, e))
}

/// The array `obj` as a 1-D `T` array of length `n`, checked for type, dtype, shape and layout.
fn checked_array<'py, T: Element>(
    py: Python<'py>,
    obj: &Bound<'py, PyAny>,
    what: &str,
    n: usize,
) -> PyResult<Bound<'py, PyArray1<T>>> {
    let Ok(untyped) = obj.cast::<PyUntypedArray>() else {
        let found = obj
            .get_type()
            .name()
            .map(|s| s.to_string())
            .unwrap_or_default();
        return Err(raise(
            py,
            "DtypeError",
            format!("{what} must be a numpy.ndarray, got {found}"),
            &[],
        ));
    };
    let expected = numpy::PyArrayDescr::of::<T>(py);
    let dtype = untyped.dtype();
    if !dtype.is_equiv_to(&expected) {
        return Err(raise(
            py,
            "DtypeError",
            format!("{what} has dtype {dtype}, the optimizer's is {expected}"),
            &[],
        ));
    }
    if untyped.ndim() != 1 {
        return Err(raise(
            py,
            "ShapeError",
            format!(
                "{what} must be 1-D (flatten it), got shape {:?}",
                untyped.shape()
            ),
            &[],
        ));
    }
    if untyped.len() != n {
        let class = if what == "grad" {
            "GradientLengthError"
        } else {
            "ParamsLengthError"
        };
        return Err(raise(
            py,
            class,
            format!("{what} has length {}, expected {n}", untyped.len()),
            &[("expected", int(py, n)), ("found", int(py, untyped.len()))],
        ));
    }
    if !untyped.is_c_contiguous() {
        return Err(raise(
            py,
            "NotContiguousError",
            format!("{what} is not contiguous (use numpy.ascontiguousarray)"),
            &[],
        ));
    }
    Ok(untyped.cast::<PyArray1<T>>()?.clone())
}

fn borrow_err(py: Python<'_>, e: BorrowError, what: &str) -> PyErr {
    match e {
        BorrowError::NotWriteable => {
            raise(py, "NotWritableError", format!("{what} is read-only"), &[])
        }
        _ => raise(
            py,
            "AliasingError",
            format!("{what} overlaps the other array (or is borrowed elsewhere)"),
            &[],
        ),
    }
}

/// One step in place: checks, then the Rust step with the GIL released.
fn step_typed<T, M>(
    py: Python<'_>,
    lodo: &mut Lodo<T, BlockPreconditioner<T>, M>,
    params: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
) -> PyResult<()>
where
    T: FfiFloat + Element,
    M: MetaOptimizer<T> + Send,
{
    let n = lodo.dim();
    let p = checked_array::<T>(py, params, "params", n)?;
    let g = checked_array::<T>(py, grad, "grad", n)?;
    let g = g.try_readonly().map_err(|e| borrow_err(py, e, "grad"))?;
    let mut p = p.try_readwrite().map_err(|e| borrow_err(py, e, "params"))?;
    let gs = g.as_slice()?;
    let ps = p.as_slice_mut()?;
    // A non-finite parameter would only show as a non-finite step, after the meta-step on θ:
    // refused here first, so that nothing changes.
    enum Refused {
        Params(usize),
        Step(StepError),
    }
    let result = py.detach(|| {
        if let Some(index) = ps.iter().position(|x| !x.is_finite()) {
            return Err(Refused::Params(index));
        }
        lodo.step(ps, gs).map_err(Refused::Step)
    });
    match result {
        Ok(()) => Ok(()),
        Err(Refused::Params(index)) => Err(raise(
            py,
            "NonFiniteParamsError",
            format!("parameter {index} is not finite; nothing changed"),
            &[("index", int(py, index))],
        )),
        Err(Refused::Step(e)) => Err(step_err(py, e)),
    }
}

/// `reps` plain `Lodo::step` calls, timed in Rust ([`PyLodo::_rust_steps`]).
fn rust_steps<T, M>(
    py: Python<'_>,
    lodo: &mut Lodo<T, BlockPreconditioner<T>, M>,
    params: &Bound<'_, PyAny>,
    grad: &Bound<'_, PyAny>,
    reps: usize,
) -> PyResult<f64>
where
    T: FfiFloat + Element,
    M: MetaOptimizer<T> + Send,
{
    let n = lodo.dim();
    let p = checked_array::<T>(py, params, "params", n)?;
    let g = checked_array::<T>(py, grad, "grad", n)?;
    let g = g.try_readonly().map_err(|e| borrow_err(py, e, "grad"))?;
    let mut p = p.try_readwrite().map_err(|e| borrow_err(py, e, "params"))?;
    let gs = g.as_slice()?;
    let ps = p.as_slice_mut()?;
    let (seconds, result) = py.detach(|| {
        let start = std::time::Instant::now();
        let mut result = Ok(());
        for _ in 0..reps {
            result = lodo.step(ps, gs);
            if result.is_err() {
                break;
            }
        }
        (start.elapsed().as_secs_f64(), result)
    });
    result.map_err(|e| step_err(py, e))?;
    Ok(seconds)
}

fn encode<T: FfiFloat, M: MetaOptimizer<T> + Serialize>(
    py: Python<'_>,
    lodo: &Lodo<T, BlockPreconditioner<T>, M>,
) -> PyResult<Vec<u8>> {
    encode_state(lodo).map_err(|e| envelope_err(py, e))
}

/// Decodes with meta-optimizer `M`, reporting the more telling of the two attempts' errors.
fn decode_any<T: FfiFloat>(bytes: &[u8]) -> Result<Inner, EnvelopeError>
where
    Inner: From<AdamLodo<T>> + From<SgdLodo<T>>,
{
    match decode_state::<T, Adam<T>>(bytes) {
        Ok(l) => Ok(l.into()),
        Err(EnvelopeError::Corrupt) => decode_state::<T, Sgd<T>>(bytes).map(Inner::from),
        Err(e) => Err(e),
    }
}

impl From<AdamLodo<f32>> for Inner {
    fn from(l: AdamLodo<f32>) -> Self {
        Self::F32Adam(l)
    }
}
impl From<AdamLodo<f64>> for Inner {
    fn from(l: AdamLodo<f64>) -> Self {
        Self::F64Adam(l)
    }
}
impl From<SgdLodo<f32>> for Inner {
    fn from(l: SgdLodo<f32>) -> Self {
        Self::F32Sgd(l)
    }
}
impl From<SgdLodo<f64>> for Inner {
    fn from(l: SgdLodo<f64>) -> Self {
        Self::F64Sgd(l)
    }
}

/// The optimizer of any saved state: its float width picks `f32` or `f64`, its payload Adam or
/// SGD.
fn decode(py: Python<'_>, bytes: &[u8]) -> PyResult<Inner> {
    let r = match state_float_width(bytes) {
        Some(8) => decode_any::<f64>(bytes),
        _ => decode_any::<f32>(bytes),
    };
    r.map_err(|e| envelope_err(py, e))
}

/// LODO over a 1-D NumPy array of `n` parameters (see the package docs for every option).
///
/// `Lodo(n, *, dtype=numpy.float32, seed=0, meta="adam", ...)`; `step(params, grad)` updates
/// `params` in place: `params ← params − G(θ)·m` after the meta-step on `θ` (paper §3,
/// Algorithm 1).
///
/// One `Lodo` may be shared between Python threads, but it runs one call at a time: a call made
/// while another thread's call holds it (a `step` runs with the GIL released) raises
/// `BusyError` (a `LodoError` and a `RuntimeError`) and changes nothing.
#[pyclass(name = "Lodo", module = "lodo._lodo", frozen)]
pub struct PyLodo {
    inner: Mutex<Inner>,
}

impl PyLodo {
    fn wrap(inner: Inner) -> Self {
        Self {
            inner: Mutex::new(inner),
        }
    }

    /// The optimizer, or `BusyError` while another thread's call holds it. A poisoned lock (a
    /// panic inside a call, which lodo-core's contract rules out) still yields the optimizer.
    fn lock(&self, py: Python<'_>) -> PyResult<MutexGuard<'_, Inner>> {
        match self.inner.try_lock() {
            Ok(guard) => Ok(guard),
            Err(TryLockError::Poisoned(p)) => Ok(p.into_inner()),
            Err(TryLockError::WouldBlock) => Err(raise(
                py,
                "BusyError",
                "this Lodo is in use by another thread (one call at a time); nothing changed"
                    .to_string(),
                &[],
            )),
        }
    }
}

#[pymethods]
impl PyLodo {
    /// A fresh optimizer for `n` parameters; `seed` alone fixes its permutations and initial
    /// blocks. Options left at `None` take lodo-core's defaults (the paper's: `β = 0.9`,
    /// `α₀ = 1`, `N = 16`, `k = 4`, `h = 2n`, Adam `η = 1e-3`, `β₁ = 0.9`, `β₂ = 0.999`,
    /// `ε = 1e-7`).
    #[new]
    #[pyo3(signature = (
        n, *, dtype = None, seed = 0, meta = "adam", layers = None, block_size = None,
        hidden = None, family = "random", tile = None, beta = None, alpha0 = None,
        meta_lr = None, adam_beta1 = None, adam_beta2 = None, adam_epsilon = None,
        moments = "full", activations = "full", weights = "full"
    ))]
    #[allow(clippy::too_many_arguments)]
    fn new(
        py: Python<'_>,
        n: usize,
        dtype: Option<&Bound<'_, PyAny>>,
        seed: u64,
        meta: &str,
        layers: Option<usize>,
        block_size: Option<usize>,
        hidden: Option<usize>,
        family: &str,
        tile: Option<usize>,
        beta: Option<f64>,
        alpha0: Option<f64>,
        meta_lr: Option<f64>,
        adam_beta1: Option<f64>,
        adam_beta2: Option<f64>,
        adam_epsilon: Option<f64>,
        moments: &str,
        activations: &str,
        weights: &str,
    ) -> PyResult<Self> {
        let o = Options {
            layers,
            block_size,
            hidden,
            family,
            tile,
            beta,
            alpha0,
            meta_lr,
            adam_beta1,
            adam_beta2,
            adam_epsilon,
            moments,
            activations,
            weights,
        };
        // Anything numpy.dtype() accepts: "float32", numpy.float32, numpy.dtype("f8"), …
        let dt = match dtype {
            None => numpy::PyArrayDescr::of::<f32>(py),
            Some(d) => numpy::PyArrayDescr::new(py, d).map_err(|_| {
                option_err(py, format!("dtype must be float32 or float64, got {d}"))
            })?,
        };
        let is = |d: Bound<'_, numpy::PyArrayDescr>| dt.is_equiv_to(&d);
        let f64_ = if is(numpy::PyArrayDescr::of::<f32>(py)) {
            false
        } else if is(numpy::PyArrayDescr::of::<f64>(py)) {
            true
        } else {
            return Err(option_err(
                py,
                format!("dtype must be float32 or float64, got {dt}"),
            ));
        };
        let inner = match (meta, f64_) {
            ("adam", false) => Inner::F32Adam(new_adam(py, n, &o, seed)?),
            ("adam", true) => Inner::F64Adam(new_adam(py, n, &o, seed)?),
            ("sgd", false) => Inner::F32Sgd(new_sgd(py, n, &o, seed)?),
            ("sgd", true) => Inner::F64Sgd(new_sgd(py, n, &o, seed)?),
            (other, _) => {
                return Err(option_err(
                    py,
                    format!("meta must be 'adam' or 'sgd', got {other:?}"),
                ));
            }
        };
        Ok(Self::wrap(inner))
    }

    /// One LODO step, in place on `params` (1-D, C-contiguous, writable, of the optimizer's
    /// dtype, length `n`); `grad = ∇ℓ(params)` (1-D, C-contiguous, same dtype and length, not
    /// overlapping `params`). Releases the GIL while the Rust step runs.
    ///
    /// On any exception nothing changed, except that `NonFiniteStepError` and
    /// `NonFiniteMetaUpdateError` (a finite gradient too large for the arithmetic) leave the
    /// preconditioner's weights after their (finite) meta-step, as lodo-core documents.
    fn step(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyAny>,
        grad: &Bound<'_, PyAny>,
    ) -> PyResult<()> {
        each!(&mut *self.lock(py)?, l => step_typed(py, l, params, grad))
    }

    /// Benchmark aid (for `bench/overhead.py`): `reps` steps in a Rust loop on the same
    /// arrays, after the checks of [`PyLodo::step`] once, with the GIL released; returns the
    /// seconds the loop took (Rust's monotonic clock). Same errors as `step`; a failed step
    /// ends the loop.
    fn _rust_steps(
        &self,
        py: Python<'_>,
        params: &Bound<'_, PyAny>,
        grad: &Bound<'_, PyAny>,
        reps: usize,
    ) -> PyResult<f64> {
        each!(&mut *self.lock(py)?, l => rust_steps(py, l, params, grad, reps))
    }

    /// The number of parameters `n`.
    #[getter]
    fn n(&self, py: Python<'_>) -> PyResult<usize> {
        Ok(each!(&*self.lock(py)?, l => l.dim()))
    }

    /// `"float32"` or `"float64"`.
    #[getter]
    fn dtype(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.lock(py)?.dtype())
    }

    /// `"adam"` or `"sgd"`.
    #[getter]
    fn meta(&self, py: Python<'_>) -> PyResult<&'static str> {
        Ok(self.lock(py)?.meta())
    }

    /// Steps taken.
    #[getter]
    fn steps(&self, py: Python<'_>) -> PyResult<u64> {
        Ok(each!(&*self.lock(py)?, l => l.steps()))
    }

    /// `α₀`, the scale of `G` (`G = α₀·I` at the start); what `lodo.torch.LODO`'s `lr` is.
    #[getter]
    fn alpha0(&self, py: Python<'_>) -> PyResult<f64> {
        Ok(each!(&*self.lock(py)?, l => wide(l.learning_rate())))
    }

    /// Sets `α₀` (rounded to the dtype): later steps are `α_new/α_old` times larger for the
    /// same `θ` and momentum. `InvalidAlpha0Error` unless finite and > 0 (then unchanged).
    #[setter]
    fn set_alpha0(&self, py: Python<'_>, alpha0: f64) -> PyResult<()> {
        each!(&mut *self.lock(py)?, l => l
            .set_learning_rate(FfiFloat::from_c(alpha0))
            .map_err(|e| config_err(py, e)))
    }

    /// The network's shape and options: `layers`, `block_size`, `hidden`, `family`, `tile`,
    /// `activations`, `weights`, `moments`, `alpha0`, `meta_lr`, `beta` (the momentum coefficient), and
    /// Adam's `adam_beta1`, `adam_beta2`, `adam_epsilon` (meta = "adam").
    fn config<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyDict>> {
        let inner = self.lock(py)?;
        let d = PyDict::new(py);
        d.set_item("n", each!(&*inner, l => l.dim()))?;
        d.set_item("dtype", inner.dtype())?;
        d.set_item("meta", inner.meta())?;
        each!(&*inner, l => {
            let p = l.preconditioner();
            d.set_item("layers", p.layers())?;
            d.set_item("block_size", p.block_size())?;
            d.set_item("hidden", p.hidden())?;
            let (family, tile) = match p.permutation_family() {
                PermutationFamily::Random => ("random", None),
                PermutationFamily::Shuffle => ("shuffle", None),
                PermutationFamily::TiledShuffle { tile } => ("tiled_shuffle", Some(tile)),
            };
            d.set_item("family", family)?;
            d.set_item("tile", tile)?;
            d.set_item("activations", p.activations().name())?;
            d.set_item("weights", p.weight_precision().name())?;
            d.set_item("alpha0", wide(p.alpha0()))?;
            d.set_item("meta_lr", wide(MetaOptimizer::learning_rate(l.meta())))?;
            d.set_item("beta", wide(l.beta()))?;
        });
        match &*inner {
            Inner::F32Adam(l) => adam_items(&d, l.meta())?,
            Inner::F64Adam(l) => adam_items(&d, l.meta())?,
            Inner::F32Sgd(_) | Inner::F64Sgd(_) => d.set_item("moments", "full")?,
        }
        Ok(d)
    }

    /// The whole state as bytes (lodo-ffi's envelope: a 24-byte header and lodo-core's state in
    /// postcard; floats as their IEEE bytes). `Lodo.from_state_dict` or `load_state_dict` of
    /// these bytes continues the run bit for bit (same CPU kernel path, on any platform).
    fn state_dict<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let bytes = each!(&*self.lock(py)?, l => encode(py, l))?;
        Ok(PyBytes::new(py, &bytes))
    }

    /// Replaces this optimizer's state by the saved one, which must be of the same dtype
    /// (`StateWrongTypeError`) and meta-optimizer (`StateCorruptError`); on any error nothing
    /// changed.
    fn load_state_dict(&self, py: Python<'_>, state: &[u8]) -> PyResult<()> {
        let mut current = self.lock(py)?;
        let inner = decode(py, state)?;
        if inner.dtype() != current.dtype() {
            let width = if inner.dtype() == "float64" { 8 } else { 4 };
            return Err(envelope_err(py, EnvelopeError::WrongType { width }));
        }
        if inner.meta() != current.meta() {
            return Err(raise(
                py,
                "StateCorruptError",
                format!(
                    "the state is of a LODO with meta={:?}, this one has meta={:?}",
                    inner.meta(),
                    current.meta()
                ),
                &[],
            ));
        }
        *current = inner;
        Ok(())
    }

    /// The optimizer of saved state bytes (any dtype, any meta-optimizer).
    #[staticmethod]
    fn from_state_dict(py: Python<'_>, state: &[u8]) -> PyResult<Self> {
        Ok(Self::wrap(decode(py, state)?))
    }

    /// Pickling: the state bytes.
    fn __reduce__<'py>(slf: &Bound<'py, Self>) -> PyResult<Bound<'py, PyTuple>> {
        let py = slf.py();
        let ctor = py.get_type::<Self>().getattr("from_state_dict")?;
        let state = slf.get().state_dict(py)?;
        PyTuple::new(py, [ctor, PyTuple::new(py, [state])?.into_any()])
    }

    /// Never raises: while another thread's call holds the optimizer, `Lodo(<busy>)`.
    fn __repr__(&self) -> String {
        let Ok(inner) = self.inner.try_lock() else {
            return "Lodo(<busy: in use by another thread>)".to_string();
        };
        let (n, layers, k, h, steps) = each!(&*inner, l => {
            let p = l.preconditioner();
            (l.dim(), p.layers(), p.block_size(), p.hidden(), l.steps())
        });
        format!(
            "Lodo(n={n}, dtype={:?}, meta={:?}, layers={layers}, block_size={k}, hidden={h}, steps={steps})",
            inner.dtype(),
            inner.meta(),
        )
    }
}

fn adam_items<T: FfiFloat>(d: &Bound<'_, PyDict>, adam: &Adam<T>) -> PyResult<()> {
    let c = adam.config();
    d.set_item("moments", adam.precision().name())?;
    d.set_item("adam_beta1", wide(c.beta1()))?;
    d.set_item("adam_beta2", wide(c.beta2()))?;
    d.set_item("adam_epsilon", wide(c.epsilon()))?;
    Ok(())
}

/// `x` as an `f64` (exact for `f32` and `f64`).
fn wide<T: FfiFloat>(x: T) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

/// The module `lodo._lodo`.
#[pymodule]
fn _lodo(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyLodo>()?;
    m.add("STATE_FORMAT", lodo_core::STATE_FORMAT)?;
    m.add("STATE_ENVELOPE_VERSION", lodo::LODO_STATE_ENVELOPE_VERSION)?;
    Ok(())
}
