"""lodo.optax.lodo: a small JAX MLP trains under jit; the transformation is lodo.Lodo on the
flat vector; its state is pure data. Needs jax and optax (``.ci/python``)."""

import numpy as np
import pytest

from conftest import require

jax = require("jax")
optax = require("optax")
import jax.numpy as jnp  # noqa: E402

import lodo  # noqa: E402
from lodo.optax import lodo as lodo_tx  # noqa: E402


def init_mlp(key):
    k1, k2 = jax.random.split(key)
    return {
        "w1": jax.random.normal(k1, (2, 16)) * 0.5,
        "b1": jnp.zeros(16),
        "w2": jax.random.normal(k2, (16, 1)) * 0.5,
        "b2": jnp.zeros(1),
    }


def forward(params, x):
    return jnp.tanh(x @ params["w1"] + params["b1"]) @ params["w2"] + params["b2"]


def loss_fn(params, x, y):
    return jnp.mean((forward(params, x) - y) ** 2)


def data():
    x = jax.random.uniform(jax.random.PRNGKey(1), (64, 2), minval=-2, maxval=2)
    y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])
    return x, y


def test_mlp_loss_falls_under_jit():
    params = init_mlp(jax.random.PRNGKey(0))
    tx = lodo_tx(0.1, seed=1)
    state = tx.init(params)
    x, y = data()

    @jax.jit
    def step(params, state):
        loss, grads = jax.value_and_grad(loss_fn)(params, x, y)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for _ in range(300):
        params, state, loss = step(params, state)
        losses.append(float(loss))
    assert losses[-1] < 0.25 * losses[0], (losses[0], losses[-1])


def test_is_lodo_on_the_flat_vector_and_pure():
    params = init_mlp(jax.random.PRNGKey(0))
    leaves = jax.tree_util.tree_leaves(params)
    n = sum(l.size for l in leaves)
    tx = lodo_tx(0.1, seed=2, layers=4)
    ref = lodo.Lodo(n, dtype=np.float32, seed=2, layers=4, alpha0=0.1)
    state0 = tx.init(params)
    x, y = data()
    flat = np.concatenate([np.ravel(l) for l in leaves]).astype(np.float32)
    state = state0
    for _ in range(3):
        grads = jax.grad(loss_fn)(params, x, y)
        g = np.concatenate([np.ravel(l) for l in jax.tree_util.tree_leaves(grads)])
        updates, state = tx.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        ref.step(flat, np.ascontiguousarray(g, dtype=np.float32))
        now = np.concatenate([np.ravel(l) for l in jax.tree_util.tree_leaves(params)])
        np.testing.assert_allclose(now, flat, rtol=0, atol=1e-6)  # one subtraction + addition
    # Pure: the first update again, from the initial state, gives the same result.
    params0 = init_mlp(jax.random.PRNGKey(0))
    grads0 = jax.grad(loss_fn)(params0, x, y)
    u1, s1 = tx.update(grads0, state0, params0)
    u2, s2 = tx.update(grads0, state0, params0)
    assert all(np.array_equal(a, b) for a, b in zip(jax.tree_util.tree_leaves(u1), jax.tree_util.tree_leaves(u2)))
    assert np.array_equal(s1.blob, s2.blob)
    # The state holds lodo's state bytes.
    blob = np.asarray(state.blob)
    length = int(np.frombuffer(blob[:8].tobytes(), "<u8")[0])
    assert lodo.Lodo.from_state_dict(blob[8 : 8 + length].tobytes()).steps == 3


def test_refusals():
    with pytest.raises(TypeError, match="one dtype"):
        lodo_tx().init({"a": jnp.zeros(3, jnp.float32), "b": jnp.zeros(3, jnp.int32)})
    with pytest.raises(lodo.errors.InvalidAlpha0Error):
        lodo_tx(-1.0).init({"a": jnp.zeros(3)})
    tx = lodo_tx()
    state = tx.init({"a": jnp.zeros(3)})
    with pytest.raises(ValueError, match="needs params"):
        tx.update({"a": jnp.ones(3)}, state)
