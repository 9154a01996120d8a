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


@pytest.mark.slow
def test_02_wine_exsitu_passive(tmp_path):
    res = load("02_wine_exsitu_passive").main(n_sets=3, r_wires_ohm=(1.0,), diameters_nm=(40.0,),
                                              epochs=3, out=tmp_path)
    assert isinstance(res, dict) and res


@pytest.mark.slow
def test_03_stochastic_binary_insitu(tmp_path):
    res = load("03_stochastic_binary_insitu").main(epochs=1, out=tmp_path, progress=False)
    assert set(res) == {"passive", "1t1r"}


@pytest.mark.slow
def test_04_gxnor_mnist5k(tmp_path):
    res = load("04_gxnor_mnist5k").main(epochs=1, dataset="digits", hidden=(16,), tile=(32, 32),
                                        max_train=100, max_test=50, out=tmp_path,
                                        progress=False)
    assert isinstance(res, dict) and res


@pytest.mark.slow
def test_05_wine_seeds(tmp_path):
    s = load("05_wine_seeds").main(seeds=2, epochs=1, out=tmp_path, progress=False)
    assert s["seeds"] == 2 and (tmp_path / "gaps.png").stat().st_size > 0
    assert 0 <= s["circuit_minus_baseline"]["within"] <= 2
