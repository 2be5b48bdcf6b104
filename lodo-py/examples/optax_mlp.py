import jax
import jax.numpy as jnp
import optax

from lodo.optax import lodo

k1, k2, k3 = jax.random.split(jax.random.PRNGKey(0), 3)
params = {"w1": jax.random.normal(k1, (2, 16)) * 0.5, "b1": jnp.zeros(16),
          "w2": jax.random.normal(k2, (16, 1)) * 0.5, "b2": jnp.zeros(1)}
x = jax.random.uniform(k3, (64, 2), minval=-2, maxval=2)
y = jnp.sin(x[:, :1]) * jnp.cos(x[:, 1:])


def loss_fn(p):
    return jnp.mean((jnp.tanh(x @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"] - y) ** 2)


tx = lodo(learning_rate=0.1, seed=1)  # host-side: the Rust step runs on the CPU
state = tx.init(params)


@jax.jit
def step(params, state):
    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, state = tx.update(grads, state, params)  # LODO needs params
    return optax.apply_updates(params, updates), state, loss


for i in range(300):
    params, state, loss = step(params, state)
    if i == 0:
        first = float(loss)
print(f"loss {first:.4f} -> {float(loss):.4f}")
assert float(loss) < 0.25 * first
