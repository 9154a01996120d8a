"""Each numbered example runs, shortened."""

import importlib.util
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name):
    spec = importlib.util.spec_from_file_location(name, EXAMPLES / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.ngspice
def test_01_read_passive():
    ratios = load("01_read_passive").main(size=6, r_wires_ohm=(0.0, 10.0))
    assert ratios[0] == pytest.approx(1.0, rel=1e-6) and ratios[1] < ratios[0]
