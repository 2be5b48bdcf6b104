"""The binding against the Rust crate's own results, bit for bit.

Each case is run by the Rust example ``reference_run`` (configured with lodo-core's builder API)
and here through ``lodo.Lodo``'s keyword options: the final parameters and the saved state
bytes must be identical.
"""

import subprocess

import numpy as np
import pytest

import lodo
from conftest import REPO, bits, bowl

STEPS = 30

# The same cases as examples/reference_run.rs, as keyword options: (n, dtype, options).
CASES = {
    "adam-f64": (37, np.float64, dict(seed=7, alpha0=0.5)),
    "adam-f32-shuffle-q8": (
        50,
        np.float32,
        dict(seed=11, layers=8, block_size=3, family="shuffle", activations="bf16",
             moments="q8", alpha0=0.25),
    ),
    "sgd-f32-tiled": (
        29,
        np.float32,
        dict(seed=3, meta="sgd", family="tiled_shuffle", tile=8, beta=0.5, alpha0=0.1,
             meta_lr=1e-3),
    ),
    "adam-f64-custom": (
        30,
        np.float64,
        dict(seed=5, layers=4, block_size=2, hidden=64, adam_beta1=0.8, adam_beta2=0.99,
             adam_epsilon=1e-8, alpha0=0.2, meta_lr=3e-3),
    ),
    "adam-f64-theta32": (
        41,
        np.float64,
        dict(seed=13, family="shuffle", activations="bf16", moments="q8", weights="f32",
             alpha0=0.3),
    ),
}


def rust(case):
    out = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "lodo-ffi", "--example", "reference_run",
         "--", case],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split("\n")
    return out[0].split(), bytes.fromhex(out[1])


def test_cases_match_the_rust_example():
    listed = subprocess.run(
        ["cargo", "run", "--release", "-q", "-p", "lodo-ffi", "--example", "reference_run",
         "--", "list"],
        cwd=REPO, check=True, capture_output=True, text=True,
    ).stdout.split()
    assert sorted(listed) == sorted(CASES)


@pytest.mark.parametrize("case", sorted(CASES))
def test_bits_equal_rust(case):
    n, dtype, options = CASES[case]
    opt = lodo.Lodo(n, dtype=dtype, **options)
    grad = bowl(n, dtype)
    x = np.zeros(n, dtype=dtype)
    for _ in range(STEPS):
        opt.step(x, grad(x))
    expected_bits, expected_state = rust(case)
    width = 8 if dtype == np.float32 else 16
    assert [f"{b:0{width}x}" for b in bits(x)] == expected_bits
    assert opt.state_dict() == expected_state
    # The Rust state loads here and continues as this one does.
    resumed = lodo.Lodo.from_state_dict(expected_state)
    y = x.copy()
    opt.step(x, grad(x))
    resumed.step(y, grad(y))
    assert np.array_equal(bits(x), bits(y))
