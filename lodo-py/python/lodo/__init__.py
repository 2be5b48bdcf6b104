"""LODO, the learned quasi-Newton optimizer of Liao et al. (*Learning to Optimize Quasi-Newton
Methods*, TMLR 2023), from the Rust crate lodo-core.

LODO steps ``x <- x - G(theta) m``, with ``m`` an exponential average of gradients and the
preconditioner ``G = alpha0 * Pi^T A^T A Pi``, ``A = B_N P_N ... B_1 P_1`` (block-diagonal
``k x k`` blocks ``B_l``, fixed permutations ``P_l``; paper section 3), whose weights ``theta``
are trained online by Adam (or SGD) on the hypergradient of the loss.

- :class:`Lodo`: over one 1-D NumPy array (float32 or float64), in place, GIL released.
- :mod:`lodo.torch`: ``LODO(params, ...)``, a ``torch.optim.Optimizer``.
- :mod:`lodo.optax`: ``lodo(...)``, an optax ``GradientTransformation`` (host-side).
- :mod:`lodo.errors`: the exception classes, under :class:`LodoError`.
"""

from . import errors
from ._lodo import STATE_ENVELOPE_VERSION, STATE_FORMAT, Lodo
from .errors import ConfigError, LodoError, StateError, StepError

__all__ = [
    "Lodo",
    "LodoError",
    "ConfigError",
    "StepError",
    "StateError",
    "errors",
    "STATE_FORMAT",
    "STATE_ENVELOPE_VERSION",
]
