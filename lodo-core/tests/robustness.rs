//! What hostile input does to the optimizer's state (issue "Nothing hangs, nothing is lost"):
//! huge gradients, edited states and arbitrary field values. The invariant everywhere: no
//! panic, no abort, and nothing non-finite is ever stored (a saved state always reloads).

mod common;

use common::bits;
use lodo_core::random::Stream;
use lodo_core::{
    Adam, BlockPreconditioner, Diagonal, Global, GlobalLodo, Lodo, LodoConfig, LodoState,
    MetaOptimizer, Preconditioner, Real, Residual, Sgd, StateError, StepError, lit,
};
use proptest::prelude::*;
use serde::{Serialize, de::DeserializeOwned};
use serde_json::Value;

/// `∇ℓ(x)_i = (i + 1)·x_i − 1`.
fn grad<T: Real>(x: &[T]) -> Vec<T> {
    x.iter()
        .enumerate()
        .map(|(i, &xi)| lit::<T>(i as f64 + 1.0) * xi - T::one())
        .collect()
}

fn warmed<T, P, M>(n: usize) -> (Lodo<T, P, M>, Vec<T>)
where
    T: Real,
    P: Preconditioner<T>,
    M: MetaOptimizer<T>,
{
    let config = LodoConfig::<T, P::Config, M::Config>::default()
        .with_alpha0(lit(0.3))
        .unwrap();
    let mut lodo = Lodo::<T, P, M>::new(n, config, 5).unwrap();
    let mut x = vec![lit::<T>(0.5); n];
    for _ in 0..6 {
        let g = grad(&x);
        lodo.step(&mut x, &g).unwrap();
    }
    (lodo, x)
}

/// Every number in a JSON state is finite (JSON has no NaN: serde_json writes `null`).
fn all_finite(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Number(n) => n.as_f64().is_some_and(f64::is_finite),
        Value::Array(a) => a.iter().all(all_finite),
        Value::Object(o) => o.values().all(all_finite),
        _ => true,
    }
}

/// A gradient of `huge` (1e160 or f64::MAX in f64; 1e30 or f32::MAX in f32) is refused with a
/// typed error, stores nothing non-finite, keeps `params`, momentum and step count, and the
/// saved state reloads; with `recovers`, the optimizer then converges on ordinary gradients.
/// (Adam's meta-step is scale-free, so it recovers; an SGD meta-step of a 1e160 hypergradient
/// is itself huge and finite, and leaves `θ` where no later step is finite: stored, reloadable,
/// refused with typed errors, but not recovered — the ablation's nature, not a storage fault.)
fn huge_gradient_is_survived<T, P, M>(n: usize, huge: T, recovers: bool)
where
    T: Real + Serialize + DeserializeOwned,
    P: Preconditioner<T> + Serialize + DeserializeOwned,
    M: MetaOptimizer<T> + Serialize + DeserializeOwned,
{
    let (mut lodo, mut x) = warmed::<T, P, M>(n);
    let (x_before, m_before, steps) = (bits(&x), bits(lodo.momentum()), lodo.steps());
    let g = vec![huge; n];
    let err = lodo.step(&mut x, &g).unwrap_err();
    assert!(
        matches!(
            err,
            StepError::NonFiniteMetaUpdate { .. } | StepError::NonFiniteStep { .. }
        ),
        "{err:?}"
    );
    assert_eq!(bits(&x), x_before, "params changed");
    assert_eq!(bits(lodo.momentum()), m_before, "momentum changed");
    assert_eq!(lodo.steps(), steps);
    let saved = serde_json::to_value(lodo.state()).unwrap();
    assert!(
        all_finite(&saved),
        "a non-finite number was stored: {err:?}"
    );
    let state: LodoState<T, P, M> = serde_json::from_value(saved).unwrap();
    let mut resumed = Lodo::from_state(state).unwrap();
    if !recovers {
        let g = grad(&x);
        let _ = resumed.step(&mut x, &g);
        let saved = serde_json::to_value(resumed.state()).unwrap();
        assert!(all_finite(&saved) && x.iter().all(|v| v.is_finite()));
        return;
    }
    // Usable: ordinary steps succeed and approach the minimiser x_i = 1/(i+1).
    for _ in 0..400 {
        let g = grad(&x);
        resumed.step(&mut x, &g).unwrap();
    }
    for (i, &xi) in x.iter().enumerate() {
        let want = 1.0 / (i as f64 + 1.0);
        assert!(
            (xi.to_f64().unwrap() - want).abs() < 0.05,
            "x[{i}] = {xi:?}"
        );
    }
}

#[test]
fn a_huge_gradient_is_refused_and_the_optimizer_recovers() {
    for huge in [1e160, f64::MAX] {
        huge_gradient_is_survived::<f64, BlockPreconditioner<f64>, Adam<f64>>(6, huge, true);
        huge_gradient_is_survived::<f64, BlockPreconditioner<f64>, Sgd<f64>>(6, huge, false);
        huge_gradient_is_survived::<f64, Residual<f64>, Adam<f64>>(6, huge, true);
        huge_gradient_is_survived::<f64, Diagonal<f64>, Adam<f64>>(6, huge, true);
        huge_gradient_is_survived::<f64, Global<f64>, Adam<f64>>(6, huge, true);
    }
    for huge in [1e30, f32::MAX] {
        huge_gradient_is_survived::<f32, BlockPreconditioner<f32>, Adam<f32>>(6, huge, true);
    }
}

#[test]
fn a_gradient_of_1e160_reports_the_weights_it_kept() {
    let (mut lodo, mut x) = warmed::<f64, BlockPreconditioner<f64>, Adam<f64>>(6);
    let t = lodo.meta().steps();
    let err = lodo.step(&mut x, &[1e160; 6]).unwrap_err();
    let StepError::NonFiniteMetaUpdate { kept } = err else {
        panic!("{err:?}")
    };
    assert!(kept > 0 && kept <= lodo.preconditioner().weight_count());
    assert_eq!(
        lodo.meta().steps(),
        t,
        "Adam's bias-correction counter restored"
    );
    assert!(err.to_string().contains("meta-update"), "{err}");
}

fn state_json() -> Value {
    let (lodo, _) = warmed::<f64, BlockPreconditioner<f64>, Adam<f64>>(5);
    serde_json::to_value(lodo.state()).unwrap()
}

fn load(v: &Value) -> Result<Lodo<f64>, StateError> {
    let s: LodoState<f64, BlockPreconditioner<f64>> = serde_json::from_value(v.clone()).unwrap();
    Lodo::from_state(s)
}

#[test]
fn edited_counters_and_moments_are_refused_or_saturate() {
    // Adam's counter at u64::MAX: accepted, and the next step saturates instead of overflowing.
    let mut v = state_json();
    v["meta"]["Adam"]["t"] = u64::MAX.into();
    let mut lodo = load(&v).unwrap();
    let mut x = vec![0.5; 5];
    let g = grad(&x);
    lodo.step(&mut x, &g).unwrap();
    assert_eq!(lodo.meta().steps(), u64::MAX);
    let mut v = state_json();
    v["steps"] = u64::MAX.into();
    let mut lodo = load(&v).unwrap();
    let g = grad(&x);
    lodo.step(&mut x, &g).unwrap();
    assert_eq!(lodo.steps(), u64::MAX);

    // A negative second moment is refused (every later step would divide by √V < 0 = NaN).
    let mut v = state_json();
    v["meta"]["Adam"]["v"][3] = (-1e-3).into();
    assert_eq!(
        load(&v).unwrap_err(),
        StateError::Negative {
            what: "Adam second moment"
        }
    );
}

#[test]
fn an_edited_dimension_is_refused_before_anything_is_allocated() {
    let (lodo, _) = warmed::<f64, Global<f64>, Adam<f64>>(5);
    let good = serde_json::to_value(lodo.state()).unwrap();
    for n in [1u64 << 40, 1 << 62, u64::MAX] {
        let mut v = good.clone();
        v["preconditioner"]["n"] = n.into();
        let s: LodoState<f64, Global<f64>> = serde_json::from_value(v).unwrap();
        let err = GlobalLodo::from_state(s).unwrap_err();
        assert!(
            matches!(
                err,
                StateError::Length {
                    what: "momentum",
                    ..
                }
            ),
            "{err:?}"
        );
    }
    for (field, value) in [
        ("n", 1u64 << 40),
        ("hidden", 1 << 40),
        ("block_size", 1 << 40),
    ] {
        let mut v = state_json();
        v["preconditioner"][field] = value.into();
        assert!(load(&v).is_err(), "{field} = {value} accepted");
    }
}

/// Arbitrary values for one field of a valid state.
fn field_value() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<u64>().prop_map(Value::from),
        prop::sample::select(vec![0u64, 1, 2, 3, 4, 5, 7, 8, 12, 1 << 32, u64::MAX])
            .prop_map(Value::from),
        any::<f64>()
            .prop_filter("JSON numbers", |x| x.is_finite())
            .prop_map(Value::from),
        prop::sample::select(vec![
            0.0,
            -0.0,
            -1.0,
            1e-300,
            1e300,
            -1e300,
            0.999_999_9,
            1.0
        ])
        .prop_map(Value::from),
        Just(Value::Null),
        Just(Value::Array(vec![])),
    ]
}

/// Sets one number somewhere in `v`: the `pick`-th numeric leaf (or container) in document order.
fn set_nth(v: &mut Value, pick: &mut usize, new: &Value) -> bool {
    if *pick == 0 {
        *v = new.clone();
        return true;
    }
    *pick -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| set_nth(x, pick, new)),
        Value::Object(o) => o.values_mut().any(|x| set_nth(x, pick, new)),
        _ => false,
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    /// Any field of a saved state set to any value: `from_state` refuses it with a typed error or
    /// accepts it; an accepted state takes three steps without panicking, and whatever those steps
    /// return, the state then holds only finite numbers and reloads.
    #[test]
    fn arbitrary_field_values_never_break_a_restored_optimizer(
        picks in prop::collection::vec((0usize..400, field_value()), 1..4),
    ) {
        let mut v = state_json();
        for (pick, new) in &picks {
            let mut p = *pick;
            set_nth(&mut v, &mut p, new);
        }
        let Ok(state) = serde_json::from_value::<LodoState<f64, BlockPreconditioner<f64>>>(v) else {
            return Ok(()); // malformed for serde: a typed deserialisation error
        };
        let Ok(mut lodo) = Lodo::from_state(state) else {
            return Ok(());
        };
        let n = lodo.momentum().len();
        let mut x = vec![0.5; n];
        let mut rng = Stream::new(3);
        for _ in 0..3 {
            let g: Vec<f64> = (0..n).map(|_| rng.gaussian()).collect();
            let _ = lodo.step(&mut x, &g);
            prop_assert!(x.iter().all(|xi| xi.is_finite()));
        }
        let saved = serde_json::to_value(lodo.state()).unwrap();
        prop_assert!(all_finite(&saved), "non-finite number stored");
        let state: LodoState<f64, BlockPreconditioner<f64>> = serde_json::from_value(saved).unwrap();
        prop_assert!(Lodo::from_state(state).is_ok());
    }
}
