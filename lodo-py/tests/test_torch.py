"""lodo.torch.LODO: a small MLP trains, save/resume through torch.save is bit for bit, and the
flattening matches lodo.Lodo on the flat vector. Needs torch (``.ci/python-torch``)."""

import io

import numpy as np
import pytest

from conftest import require

torch = require("torch")
import lodo  # noqa: E402
from lodo.torch import LODO  # noqa: E402


def mlp(seed, dtype=torch.float32):
    torch.manual_seed(seed)
    return torch.nn.Sequential(
        torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1)
    ).to(dtype)


def data(dtype=torch.float32):
    g = torch.Generator().manual_seed(0)
    x = torch.rand(64, 2, generator=g, dtype=dtype) * 4 - 2
    y = torch.sin(x[:, :1]) * torch.cos(x[:, 1:])
    return x, y


def train(model, opt, x, y, steps):
    losses = []
    for _ in range(steps):
        def closure():
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(model(x), y)
            loss.backward()
            return loss
        losses.append(float(opt.step(closure).detach()))
    return losses


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mlp_loss_falls(dtype):
    model = mlp(0, dtype)
    opt = LODO(model.parameters(), lr=0.1, seed=1)
    x, y = data(dtype)
    losses = train(model, opt, x, y, 300)
    assert losses[-1] < 0.25 * losses[0], (losses[0], losses[-1])


def test_same_as_numpy_on_the_flat_vector():
    """The torch step is lodo.Lodo on the parameters flattened in the documented order."""
    model = mlp(0)
    params = list(model.parameters())
    opt = LODO(params, lr=0.1, seed=3, layers=4)
    flat = lodo.Lodo(sum(p.numel() for p in params), dtype=np.float32, seed=3, layers=4, alpha0=0.1)
    x = torch.cat([p.detach().reshape(-1) for p in params]).numpy().copy()
    xs, ys = data()
    for _ in range(5):
        opt.zero_grad()
        torch.nn.functional.mse_loss(model(xs), ys).backward()
        g = torch.cat([p.grad.reshape(-1) for p in params]).numpy().copy()
        opt.step()
        flat.step(x, g)
    now = torch.cat([p.detach().reshape(-1) for p in params]).numpy()
    assert np.array_equal(now.view(np.uint32), x.view(np.uint32))
    assert [o for o, _ in opt.layout] == [0, 32, 48, 64]


def test_resume_through_torch_save():
    x, y = data()
    model = mlp(0)
    opt = LODO(model.parameters(), lr=0.1, seed=1)
    train(model, opt, x, y, 10)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "opt": opt.state_dict()}, buf)
    a = train(model, opt, x, y, 10)
    buf.seek(0)
    saved = torch.load(buf, weights_only=True)
    model2 = mlp(5)
    model2.load_state_dict(saved["model"])
    opt2 = LODO(model2.parameters(), lr=0.1, seed=99)
    opt2.load_state_dict(saved["opt"])
    b = train(model2, opt2, x, y, 10)
    assert a == b
    for p, q in zip(model.parameters(), model2.parameters()):
        assert torch.equal(p, q)


def test_lr_is_alpha0_and_follows_a_scheduler():
    model = mlp(0)
    opt = LODO(model.parameters(), lr=0.2)
    assert opt.lodo.alpha0 == pytest.approx(0.2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=1, gamma=0.5)
    x, y = data()
    train(model, opt, x, y, 1)
    sched.step()
    train(model, opt, x, y, 1)
    assert opt.lodo.alpha0 == pytest.approx(0.1)


def test_refusals():
    model = mlp(0)
    with pytest.raises(TypeError, match="one dtype"):
        LODO([torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(3, dtype=torch.float64))])
    with pytest.raises(TypeError, match="float32 and float64"):
        LODO([torch.nn.Parameter(torch.zeros(3, dtype=torch.float16))])
    with pytest.raises(ValueError, match="same lr"):
        LODO([{"params": [model[0].weight], "lr": 0.1}, {"params": [model[2].weight], "lr": 0.2}])
    with pytest.raises(ValueError, match="empty parameter list"):
        LODO([])
    if torch.cuda.is_available():
        with pytest.raises(ValueError, match="CPU"):
            LODO([torch.nn.Parameter(torch.zeros(3, device="cuda"))])
    meta = torch.nn.Parameter(torch.zeros(3, device="meta"))
    with pytest.raises(ValueError, match="CPU"):
        LODO([meta])
    with pytest.raises(lodo.errors.InvalidAlpha0Error):
        LODO(model.parameters(), lr=-1.0)


def test_nan_gradient_changes_no_parameter():
    model = mlp(0)
    opt = LODO(model.parameters(), lr=0.1)
    x, y = data()
    train(model, opt, x, y, 2)
    before = [p.detach().clone() for p in model.parameters()]
    state = opt.lodo.state_dict()
    for p in model.parameters():
        p.grad = torch.full_like(p, float("nan"))
    with pytest.raises(lodo.errors.NonFiniteGradientError):
        opt.step()
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))
    assert opt.lodo.state_dict() == state
