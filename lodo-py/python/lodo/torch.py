"""LODO as a ``torch.optim.Optimizer``: :class:`LODO`.

One LODO preconditions **all** the parameters given, across tensors and groups: they are
flattened into one vector, so the learned ``G(theta)`` mixes them (as lodo-candle does).

Flatten order
    The parameters of ``param_groups[0]`` in the order given, then those of group 1, ...; each
    tensor's elements in row-major (``reshape(-1)``) order. :attr:`LODO.layout` lists the
    ``(offset, shape)`` of each. The order is part of a saved state: ``load_state_dict`` refuses
    a state whose shapes differ.

Gradients
    A parameter whose ``.grad`` is ``None`` counts as a zero gradient (it still moves: the
    momentum and the off-diagonal part of ``G`` carry the other gradients into it). Sparse
    gradients are refused.

Learning rate
    ``lr`` is LODO's ``alpha0``, the scale of the preconditioner (``G = alpha0 * I`` at the
    start; paper section 3). A scheduler that changes ``param_groups[i]["lr"]`` changes
    ``alpha0`` at the next ``step`` (later steps are ``lr_new / lr_old`` times larger for the
    same ``theta`` and momentum). There is one ``alpha0``: every group must have the same
    ``lr``.

Supported tensors
    CPU tensors of one dtype, float32 or float64 (anything else raises ``TypeError`` or
    ``ValueError`` at construction: a CUDA tensor, mixed dtypes, float16, ...).

Cost
    Each ``step`` copies the parameters and gradients into one contiguous buffer and the new
    parameters back (``O(n)``, small next to LODO's own ``O(N h k)`` step); the Rust step runs
    with the GIL released.

State
    ``state_dict()`` is torch's dictionary with the whole LODO state as ``bytes`` under
    ``"lodo"`` (lodo's ``Lodo.state_dict()``) and the shapes under ``"lodo_layout"``; it goes
    through ``torch.save``/``torch.load`` (also ``weights_only=True``), and a loaded state
    continues the run bit for bit.
"""

from __future__ import annotations

import numpy as np
import torch

from ._lodo import Lodo

_DTYPES = {torch.float32: np.float32, torch.float64: np.float64}


class LODO(torch.optim.Optimizer):
    """LODO over all ``params`` (tensors or parameter groups).

    Args:
        params: an iterable of tensors or of dicts (parameter groups).
        lr: ``alpha0``, the initial scale of ``G`` (default 1.0, the paper's).
        seed: fixes the permutations and initial blocks.
        **options: any keyword option of :class:`lodo.Lodo` (``meta``, ``layers``,
            ``block_size``, ``hidden``, ``family``, ``tile``, ``beta``, ``meta_lr``,
            ``adam_beta1``, ``adam_beta2``, ``adam_epsilon``, ``moments``, ``activations``);
            ``dtype`` and ``alpha0`` come from the parameters and ``lr``.
    """

    def __init__(self, params, lr: float = 1.0, *, seed: int = 0, **options):
        for key in ("dtype", "alpha0"):
            if key in options:
                raise TypeError(f"LODO takes {key!r} from the parameters and lr, not as an option")
        super().__init__(params, {"lr": lr})
        tensors = self._tensors()
        if not tensors:
            raise ValueError("LODO got no parameters")
        for t in tensors:
            if t.device.type != "cpu":
                raise ValueError(
                    f"LODO runs on the CPU: a parameter is on {t.device} (move the model "
                    "to the CPU, or use another optimizer on the accelerator)"
                )
        dtypes = {t.dtype for t in tensors}
        if len(dtypes) != 1:
            names = sorted(str(d) for d in dtypes)
            raise TypeError(f"LODO needs parameters of one dtype, got {names}")
        dtype = dtypes.pop()
        if dtype not in _DTYPES:
            raise TypeError(f"LODO supports float32 and float64 parameters, got {dtype}")
        lr = self._common_lr()
        self._np_dtype = _DTYPES[dtype]
        self._shapes = [tuple(t.shape) for t in tensors]
        n = sum(t.numel() for t in tensors)
        self._lodo = Lodo(n, dtype=self._np_dtype, seed=seed, alpha0=lr, **options)
        self._lr = lr
        # One contiguous buffer each for parameters and gradients, shared with torch views.
        self._flat_x = np.empty(n, dtype=self._np_dtype)
        self._flat_g = np.empty(n, dtype=self._np_dtype)
        self._tx = torch.from_numpy(self._flat_x)
        self._tg = torch.from_numpy(self._flat_g)

    def _tensors(self):
        return [p for group in self.param_groups for p in group["params"]]

    def _common_lr(self) -> float:
        lrs = {float(group["lr"]) for group in self.param_groups}
        if len(lrs) != 1:
            raise ValueError(f"LODO has one alpha0: every group needs the same lr, got {sorted(lrs)}")
        return lrs.pop()

    @property
    def lodo(self) -> Lodo:
        """The underlying :class:`lodo.Lodo`."""
        return self._lodo

    @property
    def layout(self):
        """``[(offset, shape), ...]`` of each parameter in the flat vector."""
        out, offset = [], 0
        for shape in self._shapes:
            out.append((offset, shape))
            offset += int(np.prod(shape, dtype=np.int64))
        return out

    @torch.no_grad()
    def step(self, closure=None):
        """One LODO step on all parameters. On an error no parameter is written."""
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        lr = self._common_lr()
        if lr != self._lr:
            self._lodo.alpha0 = lr
            self._lr = lr
        tensors = self._tensors()
        if [tuple(t.shape) for t in tensors] != self._shapes:
            raise ValueError("the parameters changed shape or number since LODO was built")
        offset = 0
        for t in tensors:
            k = t.numel()
            self._tx[offset : offset + k].copy_(t.reshape(-1))
            g = t.grad
            if g is None:
                self._tg[offset : offset + k].zero_()
            else:
                if g.is_sparse:
                    raise ValueError("LODO does not support sparse gradients")
                self._tg[offset : offset + k].copy_(g.reshape(-1))
            offset += k
        self._lodo.step(self._flat_x, self._flat_g)
        offset = 0
        for t in tensors:
            k = t.numel()
            t.copy_(self._tx[offset : offset + k].view(t.shape))
            offset += k
        return loss

    def state_dict(self):
        """torch's optimizer state with the LODO state bytes under ``"lodo"``."""
        sd = super().state_dict()
        sd["lodo"] = self._lodo.state_dict()
        sd["lodo_layout"] = [list(s) for s in self._shapes]
        return sd

    def load_state_dict(self, state_dict):
        """Restores a state from :meth:`state_dict`; on any error nothing changed."""
        state_dict = dict(state_dict)
        blob = state_dict.pop("lodo", None)
        layout = state_dict.pop("lodo_layout", None)
        if blob is None or layout is None:
            raise ValueError("not a lodo.torch.LODO state (no 'lodo' entry)")
        if [tuple(s) for s in layout] != self._shapes:
            raise ValueError(
                f"the state is for parameters of shapes {layout}, these are {self._shapes}"
            )
        restored = Lodo.from_state_dict(bytes(blob))
        if restored.dtype != self._lodo.dtype or restored.n != self._lodo.n:
            raise ValueError(
                f"the state is of a {restored.dtype} LODO of n = {restored.n}, "
                f"this one is {self._lodo.dtype} of n = {self._lodo.n}"
            )
        super().load_state_dict(state_dict)
        self._lodo = restored
        self._lr = self._common_lr()
        if self._lr != restored.alpha0:
            self._lodo.alpha0 = self._lr
