import torch

from lodo.torch import LODO

torch.manual_seed(0)
model = torch.nn.Sequential(torch.nn.Linear(2, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
x = torch.rand(64, 2) * 4 - 2
y = torch.sin(x[:, :1]) * torch.cos(x[:, 1:])
# One LODO over all parameters (flattened in order); lr is alpha0.
opt = LODO(model.parameters(), lr=0.1, seed=1)
for step in range(300):
    opt.zero_grad()
    loss = torch.nn.functional.mse_loss(model(x), y)
    loss.backward()
    opt.step()
    if step == 0:
        first = loss.item()
print(f"loss {first:.4f} -> {loss.item():.4f}")
assert loss.item() < 0.25 * first
torch.save(opt.state_dict(), "/tmp/lodo_torch_example.pt")  # resumes bit for bit
