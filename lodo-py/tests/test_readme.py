"""The README's Python examples are the files in lodo-py/examples/, and they run."""

import re
import subprocess
import sys

import pytest

from conftest import CRATE, REPO, require

EXAMPLES = {"numpy_quickstart.py": None, "torch_mlp.py": "torch", "optax_mlp.py": "jax"}


def readme_blocks():
    text = (REPO / "README.md").read_text()
    blocks = {}
    for body in re.findall(r"```python\n(.*?)```", text, re.S):
        first, _, rest = body.partition("\n")
        m = re.fullmatch(r"# lodo-py/examples/(\w+\.py)", first)
        if m:
            blocks[m.group(1)] = rest
    return blocks


def test_readme_quotes_each_example():
    blocks = readme_blocks()
    assert sorted(blocks) == sorted(EXAMPLES)
    for name in EXAMPLES:
        assert blocks[name] == (CRATE / "examples" / name).read_text(), name


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_example_runs(name, tmp_path):
    if EXAMPLES[name]:
        require(EXAMPLES[name])
    subprocess.run([sys.executable, str(CRATE / "examples" / name)], check=True, cwd=tmp_path)
