"""LODO as an optax ``GradientTransformation``: :func:`lodo`.

**Host-side.** The step runs in Rust on the CPU host, called from JAX through
``jax.pure_callback``: under ``jax.jit`` the parameters and gradients are copied to the host,
stepped there, and the update copied back. It works with any JAX backend but never runs on an
accelerator, and it cannot be differentiated through or ``vmap``-ed.

The optimizer state is pure data, as optax wants: the whole LODO state (lodo's
``Lodo.state_dict()`` bytes) in a ``uint8`` array of fixed size, so it can be checkpointed,
and ``update`` is a pure function of its inputs (the same ``(updates, state, params)`` give the
same result). To spare decoding the state on every step, the host keeps the optimizer that
produced the last state it returned, and reuses it when it is handed exactly those bytes
again (the common case: ``state = update(...)[1]`` in a loop); any other state is decoded.
Encoding the state is still ``O(|state|)`` per step (about 2 KB per parameter at the
defaults), so this path suits small and medium models; :class:`lodo.Lodo` and
:mod:`lodo.torch` step in place without it.

Flatten order: the leaves of the parameter pytree in ``jax.tree_util`` order, each flattened
row-major; every leaf must have the same dtype (float32 or float64).

``learning_rate`` is LODO's ``alpha0`` (the scale of ``G = alpha0 * I`` at the start).

``update`` needs ``params`` (LODO moves the parameters itself): it returns
``updates = new_params - params``, so ``optax.apply_updates`` gives LODO's new parameters up
to the rounding of that subtraction and addition.
"""

from __future__ import annotations

import threading
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ._lodo import Lodo

# Room for the state's varint fields (step counters) to grow after ``init``.
_SLACK = 64
_HEADER = 8


class LodoOptaxState(NamedTuple):
    """The LODO state bytes: ``blob[:8]`` is their length (little-endian), then the bytes."""

    blob: jax.Array


class _Host:
    """The optimizer behind the last state returned, reused when that state comes back."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last = None  # (bytes, Lodo)

    def restore(self, blob: np.ndarray) -> Lodo:
        length = int(np.frombuffer(blob[:_HEADER].tobytes(), dtype="<u8")[0])
        data = blob[_HEADER : _HEADER + length].tobytes()
        if self.last is not None and self.last[0] == data:
            return self.last[1]
        return Lodo.from_state_dict(data)

    def keep(self, opt: Lodo, size: int) -> np.ndarray:
        data = opt.state_dict()
        if _HEADER + len(data) > size:
            raise ValueError("the LODO state outgrew its buffer")
        self.last = (data, opt)
        return _pack(data, size)


def _pack(data: bytes, size: int) -> np.ndarray:
    out = np.zeros(size, dtype=np.uint8)
    out[:_HEADER] = np.frombuffer(np.array([len(data)], dtype="<u8").tobytes(), dtype=np.uint8)
    out[_HEADER : _HEADER + len(data)] = np.frombuffer(data, dtype=np.uint8)
    return out


def _leaves_info(params):
    leaves = jax.tree_util.tree_leaves(params)
    if not leaves:
        raise ValueError("lodo: no parameters")
    dtypes = {jnp.asarray(x).dtype for x in leaves}
    if len(dtypes) != 1:
        raise TypeError(f"lodo needs parameters of one dtype, got {sorted(map(str, dtypes))}")
    dtype = np.dtype(dtypes.pop())
    if dtype not in (np.dtype(np.float32), np.dtype(np.float64)):
        raise TypeError(f"lodo supports float32 and float64 parameters, got {dtype}")
    n = sum(int(np.prod(np.shape(x), dtype=np.int64)) for x in leaves)
    return leaves, dtype, n


def lodo(learning_rate: float = 1.0, *, seed: int = 0, **options) -> optax.GradientTransformation:
    """LODO as an optax transformation (host-side; see the module docs).

    Args:
        learning_rate: ``alpha0`` (default 1.0, the paper's).
        seed: fixes the permutations and initial blocks.
        **options: any keyword option of :class:`lodo.Lodo` but ``dtype`` and ``alpha0``.
    """
    for key in ("dtype", "alpha0"):
        if key in options:
            raise TypeError(f"lodo takes {key!r} from the parameters and learning_rate")
    host = _Host()

    def init_fn(params):
        _, dtype, n = _leaves_info(params)
        opt = Lodo(n, dtype=dtype, seed=seed, alpha0=learning_rate, **options)
        data = opt.state_dict()
        size = _HEADER + len(data) + _SLACK
        with host.lock:
            blob = host.keep(opt, size)
        return LodoOptaxState(blob=jnp.asarray(blob))

    def update_fn(updates, state, params=None):
        if params is None:
            raise ValueError("lodo's update needs params (LODO moves the parameters itself)")
        leaves, dtype, n = _leaves_info(params)
        g_leaves, treedef = jax.tree_util.tree_flatten(updates)
        flat_x = jnp.concatenate([jnp.ravel(x) for x in leaves])
        flat_g = jnp.concatenate([jnp.ravel(g) for g in g_leaves]).astype(dtype)
        size = state.blob.shape[0]

        def host_step(blob, x, g):
            with host.lock:
                opt = host.restore(np.asarray(blob))
                x = np.array(x, dtype=dtype, copy=True)
                # A refused step may have moved theta (NonFiniteStepError): the object no
                # longer matches the bytes it was kept for.
                host.last = None
                opt.step(x, np.ascontiguousarray(g, dtype=dtype))
                return host.keep(opt, size), x

        shapes = (
            jax.ShapeDtypeStruct((size,), jnp.uint8),
            jax.ShapeDtypeStruct((n,), dtype),
        )
        blob, new_x = jax.pure_callback(host_step, shapes, state.blob, flat_x, flat_g)
        delta = new_x - flat_x
        out, offset = [], 0
        for x in leaves:
            k = int(np.prod(np.shape(x), dtype=np.int64))
            out.append(jnp.reshape(delta[offset : offset + k], np.shape(x)))
            offset += k
        return jax.tree_util.tree_unflatten(treedef, out), LodoOptaxState(blob=blob)

    return optax.GradientTransformation(init_fn, update_fn)
