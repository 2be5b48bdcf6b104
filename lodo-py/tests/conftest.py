"""Shared helpers of lodo's pytest suite."""

import os
import pathlib
import subprocess

import numpy as np
import pytest

import lodo

CRATE = pathlib.Path(__file__).resolve().parents[1]
REPO = CRATE.parent


def bowl(n, dtype):
    """The bowl of the Rust reference (lodo-ffi/examples/reference_run.rs): g = d * (x - c)."""
    i = np.arange(n)
    d = (1 + i % 5).astype(dtype)
    c = ((i % 7) - 3).astype(dtype)
    return lambda x: d * (x - c)


def bits(x):
    """The IEEE bits of a float array (exact comparison)."""
    return x.view(np.uint32 if x.dtype == np.float32 else np.uint64).copy()


def snapshot(opt, x):
    """Everything a step could change: parameter bits and the optimizer's state bytes."""
    return bits(x), opt.state_dict()


def same(a, b):
    return np.array_equal(a[0], b[0]) and a[1] == b[1]


def require(module):
    """Import `module`, or skip, unless LODO_REQUIRE_<MODULE>=1 (CI): then its absence fails."""
    if os.environ.get(f"LODO_REQUIRE_{module.upper()}") == "1":
        return __import__(module)
    return pytest.importorskip(module)


@pytest.fixture(params=[np.float32, np.float64], ids=["f32", "f64"])
def dtype(request):
    return request.param


@pytest.fixture(params=["adam", "sgd"])
def meta(request):
    return request.param


def small(dtype=np.float64, meta="adam", n=12, **kw):
    kw.setdefault("alpha0", 0.3)
    return lodo.Lodo(n, dtype=dtype, seed=4, meta=meta, layers=4, **kw)
