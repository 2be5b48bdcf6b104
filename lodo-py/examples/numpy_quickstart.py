import numpy as np

import lodo

# Minimise the ill-conditioned bowl f(x) = ½ Σ dᵢ (xᵢ − 1)², dᵢ from 1 to 100, in 50 dimensions.
n = 50
d = np.geomspace(1.0, 100.0, n)
x = np.zeros(n)  # float64: the optimizer below is float64 too
opt = lodo.Lodo(n, dtype=np.float64, seed=42, alpha0=0.01)
for _ in range(500):
    opt.step(x, d * (x - 1.0))  # in place; the GIL is released during the step
print(f"after {opt.steps} steps: max |x - 1| = {np.abs(x - 1).max():.2e}")
assert np.abs(x - 1).max() < 1e-3

# Save and resume: the continuation is bit-for-bit identical.
saved = opt.state_dict()  # bytes
twin, y = lodo.Lodo.from_state_dict(saved), x.copy()
for _ in range(10):
    opt.step(x, d * (x - 1.0))
    twin.step(y, d * (y - 1.0))
assert x.tobytes() == y.tobytes()

# Every failure is a typed exception under lodo.LodoError; the step changed nothing.
try:
    opt.step(x, np.full(n, np.nan))
except lodo.errors.NonFiniteGradientError as e:
    print("refused:", e)
