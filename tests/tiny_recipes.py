"""The smallest recipe the core tests train (digits, T = 4, one ANN and one SNN epoch), as text."""
from __future__ import annotations

BODY = """timesteps = 4
[data]
name = "digits"
test_fraction = 0.1
[model]
name = "digits_convnet"
[train.ann]
epochs = 1
[train.snn]
epochs = 1
"""


def tiny_recipe(name: str, tables: str = "", seed: int | None = None) -> str:
    """A recipe named ``name`` with the tiny training above, then ``tables`` ([attack], [deploy]...)."""
    head = f'name = "{name}"\n' + (f"seed = {seed}\n" if seed is not None else "")
    return "\n" + head + BODY + tables.lstrip("\n")
