"""lodo.Lodo over NumPy arrays: bad inputs raise and change nothing, resume is bit for bit,
every error variant has its exception class."""

import pickle
import re
import struct

import numpy as np
import pytest

import lodo
from lodo import errors
from conftest import REPO, bits, bowl, same, small, snapshot


def stepped(opt, n, dtype, steps=3):
    grad = bowl(n, dtype)
    x = np.zeros(n, dtype=dtype)
    for _ in range(steps):
        opt.step(x, grad(x))
    return x, grad


def test_descends_and_reports(dtype, meta):
    n = 12
    opt = small(dtype, meta, n)
    assert (opt.n, opt.dtype, opt.meta, opt.steps) == (n, np.dtype(dtype).name, meta, 0)
    grad = bowl(n, dtype)
    x = np.zeros(n, dtype=dtype)
    g0 = np.linalg.norm(grad(x))
    for _ in range(100):
        opt.step(x, grad(x))
    assert opt.steps == 100
    assert np.linalg.norm(grad(x)) < 0.5 * g0
    c = opt.config()
    assert (c["layers"], c["block_size"], c["hidden"], c["meta"]) == (4, 4, 24, meta)


def test_config_reads_back_what_was_set(dtype):
    # Dyadic values, exact in f32 and f64.
    c = small(dtype, beta=0.75, alpha0=0.25, meta_lr=2.0**-9).config()
    assert (c["beta"], c["alpha0"], c["meta_lr"]) == (0.75, 0.25, 2.0**-9)


def bad_inputs(n, dtype):
    other = np.float64 if dtype == np.float32 else np.float32
    ok = np.ones(n, dtype=dtype)
    nan = ok.copy()
    nan[3] = np.nan
    inf = ok.copy()
    inf[5] = -np.inf
    ro = ok.copy()
    ro.flags.writeable = False
    return [
        ("params 2-D", lambda x: (x.reshape(3, -1), ok), errors.ShapeError),
        ("grad 2-D", lambda x: (x, ok.reshape(3, -1)), errors.ShapeError),
        ("params short", lambda x: (x[:-1], ok), errors.ParamsLengthError),
        ("grad long", lambda x: (x, np.ones(n + 1, dtype=dtype)), errors.GradientLengthError),
        ("grad NaN", lambda x: (x, nan), errors.NonFiniteGradientError),
        ("grad inf", lambda x: (x, inf), errors.NonFiniteGradientError),
        ("params NaN", None, errors.NonFiniteParamsError),
        ("params dtype", lambda x: (x.astype(other), ok), errors.DtypeError),
        ("grad dtype", lambda x: (x, ok.astype(other)), errors.DtypeError),
        ("grad list", lambda x: (x, list(ok)), errors.DtypeError),
        ("grad int", lambda x: (x, np.ones(n, dtype=np.int64)), errors.DtypeError),
        ("params strided", lambda x: (np.repeat(x, 2)[::2], ok), errors.NotContiguousError),
        ("grad strided", lambda x: (x, np.ones(2 * n, dtype=dtype)[::2]), errors.NotContiguousError),
        ("params read-only", lambda x: (ro, ok), errors.NotWritableError),
        ("aliased", lambda x: (x, x), errors.AliasingError),
    ]


@pytest.mark.parametrize("case", range(15))
def test_bad_input_raises_and_changes_nothing(dtype, meta, case):
    n = 12
    opt = small(dtype, meta, n)
    x, grad = stepped(opt, n, dtype)
    name, make, exc = bad_inputs(n, dtype)[case]
    before = snapshot(opt, x)
    if make is None:  # NaN in the parameters themselves
        y = x.copy()
        y[2] = np.nan
        with pytest.raises(exc) as info:
            opt.step(y, grad(x))
        assert info.value.index == 2
        assert np.array_equal(bits(y[3:]), bits(x[3:]))
    else:
        p, g = make(x)
        with pytest.raises(exc):
            opt.step(p, g)
    assert same(snapshot(opt, x), before), name
    assert issubclass(exc, lodo.LodoError)


def test_error_attributes():
    opt = small(n=12)
    x = np.zeros(12)
    g = np.ones(12)
    g[7] = np.nan
    with pytest.raises(errors.NonFiniteGradientError) as info:
        opt.step(x, g)
    assert info.value.index == 7 and isinstance(info.value, ValueError)
    with pytest.raises(errors.GradientLengthError) as info:
        opt.step(x, np.ones(5))
    assert (info.value.expected, info.value.found) == (12, 5)


def test_huge_gradient_leaves_parameters():
    opt = small(np.float32, n=12)
    x, grad = stepped(opt, 12, np.float32)
    before = bits(x)
    with pytest.raises((errors.NonFiniteMetaUpdateError, errors.NonFiniteStepError)):
        opt.step(x, np.full(12, 3e38, dtype=np.float32))
    assert np.array_equal(bits(x), before)
    opt.step(x, grad(x))  # still usable


CONFIG_ERRORS = [
    (dict(n=0), errors.EmptyProblemError),
    (dict(alpha0=0.0), errors.InvalidAlpha0Error),
    (dict(alpha0=float("nan")), errors.InvalidAlpha0Error),
    (dict(meta_lr=-1.0), errors.InvalidMetaLearningRateError),
    (dict(meta="sgd", meta_lr=float("inf")), errors.InvalidMetaLearningRateError),
    (dict(beta=1.0), errors.InvalidMomentumError),
    (dict(layers=0), errors.ZeroLayersError),
    (dict(block_size=0), errors.ZeroBlockSizeError),
    (dict(hidden=8), errors.HiddenTooSmallError),
    (dict(hidden=14), errors.HiddenNotMultipleOfBlockError),
    (dict(hidden=2**33), errors.TooLargeError),
    (dict(adam_beta1=1.0), errors.InvalidBeta1Error),
    (dict(adam_beta2=-0.1), errors.InvalidBeta2Error),
    (dict(adam_epsilon=0.0), errors.InvalidEpsilonError),
    (dict(family="tiled_shuffle", tile=0), errors.ZeroTileError),
    (dict(family="tiled_shuffle", tile=6), errors.TileNotMultipleOfBlockError),
    (dict(family="shuffle", hidden=24), errors.HiddenNotAlignedError),
    (dict(moments="q8", block_size=23), errors.CompactBlockTooLargeError),
    (dict(activations="q8"), errors.UnsupportedActivationPrecisionError),
    (dict(weights="f32"), errors.UnsupportedWeightPrecisionError),
    (dict(dtype=np.float32, weights="f32", meta="sgd"), errors.UnsupportedWeightPrecisionError),
    (dict(dtype=np.float64, weights="bf16"), errors.InvalidOptionError),
    (dict(family="butterfly"), errors.InvalidOptionError),
    (dict(family="tiled_shuffle"), errors.InvalidOptionError),
    (dict(tile=8), errors.InvalidOptionError),
    (dict(meta="lbfgs"), errors.InvalidOptionError),
    (dict(dtype=np.float16), errors.InvalidOptionError),
    (dict(dtype="not a dtype"), errors.InvalidOptionError),
    (dict(moments="int4"), errors.InvalidOptionError),
    (dict(meta="sgd", moments="q8"), errors.InvalidOptionError),
    (dict(meta="sgd", adam_beta1=0.5), errors.InvalidOptionError),
]


@pytest.mark.parametrize("options,exc", CONFIG_ERRORS, ids=[e.__name__ for _, e in CONFIG_ERRORS])
def test_config_errors(options, exc):
    options = dict(options)
    n = options.pop("n", 12)
    with pytest.raises(exc) as info:
        lodo.Lodo(n, **options)
    assert isinstance(info.value, errors.ConfigError) and isinstance(info.value, ValueError)


def test_config_error_attributes():
    with pytest.raises(errors.HiddenTooSmallError) as info:
        lodo.Lodo(12, hidden=8)
    assert (info.value.hidden, info.value.dim) == (8, 12)
    with pytest.raises(errors.CompactBlockTooLargeError) as info:
        lodo.Lodo(12, moments="bf16", block_size=23)
    assert info.value.block_size == 23 and info.value.max == 22


def test_every_core_variant_has_a_class():
    """Each variant of lodo-core's ConfigError/StepError/StateError is raised as its own class
    (read from the Rust sources, so a new variant fails here until it is mapped)."""
    src = (REPO / "lodo-core" / "src" / "error.rs").read_text()
    binding = (REPO / "lodo-py" / "src" / "lib.rs").read_text()
    renamed = {
        ("StateError", "UnsupportedFormat"): "UnsupportedVersionError",
        ("StateError", "Config"): "StateConfigError",
        ("StateError", "Length"): "StateLengthError",
        ("StateError", "NonFinite"): "NonFiniteStateError",
        ("StateError", "Negative"): "NegativeStateError",
    }
    for enum in ("ConfigError", "StepError", "StateError"):
        body = re.search(r"pub enum %s \{(.*?)\n\}" % enum, src, re.S).group(1)
        variants = re.findall(r"^    (\w+)\s*[,({]", body, re.M)
        assert len(variants) >= 5, enum
        base = getattr(errors, enum)
        for v in variants:
            cls = getattr(errors, renamed.get((enum, v), v + "Error"))
            assert issubclass(cls, base) and cls is not base, (enum, v)
            assert f"{enum}::{v}" in binding, f"lib.rs does not map {enum}::{v}"


# -- Saved states. --

@pytest.mark.parametrize("policy", [dict(), dict(moments="q8", activations="bf16"),
                                    dict(moments="bf16", family="shuffle")])
def test_resume_bit_for_bit(dtype, meta, policy):
    if meta == "sgd" and "moments" in policy:
        policy = {k: v for k, v in policy.items() if k != "moments"}
    n = 20
    opt = small(dtype, meta, n, **policy)
    x, grad = stepped(opt, n, dtype, steps=7)
    saved = opt.state_dict()
    start = x.copy()
    for _ in range(7):
        opt.step(x, grad(x))
    # from the bytes, and loaded into an optimizer built with another seed
    other = lodo.Lodo(n, dtype=dtype, seed=99, meta=meta, layers=4, **policy)
    other.load_state_dict(saved)
    for resumed in (lodo.Lodo.from_state_dict(saved), other):
        assert resumed.steps == 7
        y = start.copy()
        for _ in range(7):
            resumed.step(y, grad(y))
        assert np.array_equal(bits(x), bits(y))
        assert resumed.state_dict() == opt.state_dict()


def test_weights_in_f32_below_float64(meta):
    """weights='f32': theta is stored in f32 under a float64 optimizer. The saved state holds
    theta as 4-byte codes (|theta| = layers * hidden * block_size weights, 8 -> 4 bytes each),
    the run differs from the full one, and it resumes bit for bit."""
    n = 20
    full = small(np.float64, meta, n)
    f32 = small(np.float64, meta, n, weights="f32")
    assert full.config()["weights"] == "full" and f32.config()["weights"] == "f32"
    c = f32.config()
    x, grad = stepped(f32, n, np.float64, steps=9)
    y, _ = stepped(full, n, np.float64, steps=9)
    assert not np.array_equal(bits(x), bits(y))
    saved = f32.state_dict()
    weights = c["layers"] * c["hidden"] * c["block_size"]
    assert len(full.state_dict()) - len(saved) == 4 * weights
    resumed = lodo.Lodo.from_state_dict(saved)
    assert resumed.config()["weights"] == "f32"
    z = x.copy()
    for _ in range(5):
        f32.step(x, grad(x))
        resumed.step(z, grad(z))
    assert np.array_equal(bits(x), bits(z))
    assert resumed.state_dict() == f32.state_dict()


def test_pickle_round_trip(dtype, meta):
    opt = small(dtype, meta, 12)
    x, grad = stepped(opt, 12, dtype)
    copy = pickle.loads(pickle.dumps(opt))
    assert copy.state_dict() == opt.state_dict()
    y = x.copy()
    opt.step(x, grad(x))
    copy.step(y, grad(y))
    assert np.array_equal(bits(x), bits(y))


def fnv1a(data):
    h = 0xCBF29CE484222325
    for b in data:
        h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return h


def reseal(state, payload):
    """Envelope `payload` as `state`'s header says, with a correct length and hash."""
    return state[:8] + struct.pack("<QQ", len(payload), fnv1a(payload)) + payload


def state_cases(saved):
    payload = saved[24:]
    nan_momentum = payload[:-9] + struct.pack("<d", float("nan")) + payload[-1:]
    return [
        ("truncated", saved[:-1], errors.StateTruncatedError),
        ("header only", saved[:20], errors.StateTruncatedError),
        ("not a state", b"hello world, not LODO", errors.StateCorruptError),
        ("empty", b"", errors.StateTruncatedError),
        ("flipped", saved[:100] + bytes([saved[100] ^ 1]) + saved[101:], errors.StateCorruptError),
        ("trailing", saved + b"\0", errors.StateCorruptError),
        ("envelope v9", saved[:4] + b"\x09\x00" + saved[6:], errors.UnsupportedVersionError),
        ("format 9", reseal(saved, b"\x09" + payload[1:]), errors.UnsupportedVersionError),
        ("beta 1", reseal(saved, payload[:1] + struct.pack("<d", 1.0) + payload[9:]),
         errors.StateConfigError),
        ("nan momentum", reseal(saved, nan_momentum), errors.NonFiniteStateError),
    ]


@pytest.mark.parametrize("case", range(10))
def test_bad_state_raises_and_changes_nothing(case):
    """f64 Adam states (the byte offsets: format varint, then beta's 8 bytes; the last
    momentum entry just before the 1-byte step count)."""
    n = 12
    opt = small(np.float64, "adam", n)
    x, _ = stepped(opt, n, np.float64)
    saved = opt.state_dict()
    name, data, exc = state_cases(saved)[case]
    before = opt.state_dict()
    with pytest.raises(exc) as info:
        opt.load_state_dict(data)
    with pytest.raises(exc):
        lodo.Lodo.from_state_dict(data)
    assert opt.state_dict() == before, name
    if exc is errors.StateConfigError:
        assert isinstance(info.value.config_error, errors.InvalidMomentumError)
    if exc is errors.NonFiniteStateError:
        assert info.value.what == "momentum"


def test_state_of_another_kind():
    f32 = small(np.float32, "adam")
    f64 = small(np.float64, "adam")
    sgd = small(np.float64, "sgd")
    before = f64.state_dict()
    with pytest.raises(errors.StateWrongTypeError) as info:
        f64.load_state_dict(f32.state_dict())
    assert info.value.width == 4
    with pytest.raises(errors.StateCorruptError):
        f64.load_state_dict(sgd.state_dict())
    assert f64.state_dict() == before
    assert lodo.Lodo.from_state_dict(sgd.state_dict()).meta == "sgd"
    assert lodo.Lodo.from_state_dict(f32.state_dict()).dtype == "float32"


def test_alpha0(dtype):
    opt = small(dtype, alpha0=0.5)
    assert opt.alpha0 == 0.5
    opt.alpha0 = 0.25
    assert opt.alpha0 == 0.25
    with pytest.raises(errors.InvalidAlpha0Error):
        opt.alpha0 = -1.0
    assert opt.alpha0 == 0.25


def test_a_second_thread_gets_busy_error_and_changes_nothing():
    # Thread A runs steps in Rust with the GIL released; meanwhile every call from this thread
    # must raise BusyError (a LodoError and a RuntimeError) and change nothing: A's result
    # equals the same steps run alone.
    import threading

    n, reps, dtype = 1024, 5000, np.float32
    g = bowl(n, dtype)(np.zeros(n, dtype=dtype))
    shared, alone = small(dtype, n=n), small(dtype, n=n)
    xa, xb, xr = (np.zeros(n, dtype=dtype) for _ in range(3))
    worker = threading.Thread(target=shared._rust_steps, args=(xa, g, reps))
    worker.start()
    # A read-only poll until A holds the optimizer (reads before that change nothing).
    while True:
        try:
            shared.steps
        except errors.BusyError:
            break
        assert worker.is_alive(), "the worker finished without ever being seen holding the Lodo"
    refused = set()
    for name, call in [
        ("step", lambda: shared.step(xb, g)),
        ("alpha0 =", lambda: setattr(shared, "alpha0", 0.5)),
        ("load_state_dict", lambda: shared.load_state_dict(alone.state_dict())),
        ("state_dict", shared.state_dict),
        ("config", shared.config),
    ]:
        try:
            call()
        except errors.BusyError as e:
            assert isinstance(e, lodo.LodoError) and isinstance(e, RuntimeError)
            refused.add(name)
    busy_repr = repr(shared)
    still_running = worker.is_alive()
    worker.join()
    assert still_running, "the worker ended during the checks: make it run longer"
    assert refused == {"step", "alpha0 =", "load_state_dict", "state_dict", "config"}, refused
    assert busy_repr.startswith("Lodo(<busy"), busy_repr
    assert not xb.any(), "a refused step changed its parameters"
    alone._rust_steps(xr, g, reps)
    assert shared.steps == reps and shared.alpha0 == alone.alpha0
    assert same(snapshot(shared, xa), snapshot(alone, xr))
