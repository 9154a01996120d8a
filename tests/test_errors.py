"""Bad input gets a clear error naming the parameter; ngspice failures keep the netlist."""

import math

import numpy as np
import pytest

from mtjsim.circuit.crossbar import ArraySpec, Crossbar
from mtjsim.devices.mtj import MTJParams, load_preset
from mtjsim.engines import ngspice
from mtjsim.ops.read import ReadSettings, read


@pytest.mark.parametrize("field,value", [
    ("diameter_m", 0.0), ("diameter_m", -40e-9), ("diameter_m", math.nan),
    ("ra_ohm_m2", 0.0), ("ra_ohm_m2", -1e-12), ("tmr0", -0.1), ("tmr0", math.nan),
    ("v_h_v", 0.0), ("alpha", 0.0), ("polarization", 1.0), ("t_fl_m", -1e-9),
    ("temperature_k", 0.0), ("tau0_s", -1e-9), ("diameter_m", "big"),
])
def test_device_field_errors_name_field_value_and_range(field, value):
    with pytest.raises(ValueError) as e:
        MTJParams(**{field: value})
    msg = str(e.value)
    assert msg.startswith(f"{field}=")
    assert "must be" in msg


@pytest.mark.parametrize("field,value", [
    ("rows", 0), ("cols", -3), ("rows", 2.5), ("r_wire_ohm", -1.0), ("c_wire_f", -1e-15),
    ("r_driver_ohm", math.nan), ("r_sense_ohm", 0.0), ("v_gate_v", -1.0),
])
def test_array_field_errors(field, value):
    with pytest.raises(ValueError, match=f"^{field}="):
        ArraySpec(**{field: value})


def test_unknown_preset_lists_choices():
    with pytest.raises(ValueError, match="pmtj_40nm"):
        load_preset("nope")


def test_states_and_inputs_are_checked():
    spec = ArraySpec(rows=2, cols=2)
    with pytest.raises(ValueError, match="states shape"):
        Crossbar(spec, np.zeros((3, 2)))
    with pytest.raises(ValueError, match="0 \\(P\\) or 1 \\(AP\\)"):
        Crossbar(spec, np.full((2, 2), 2))
    xb = Crossbar(spec, np.zeros((2, 2)))
    with pytest.raises(ValueError, match="inputs_v shape"):
        read(xb, np.zeros(3))
    with pytest.raises(ValueError, match="-5 V to 5 V"):
        read(xb, [10.0, 0.0])
    with pytest.raises(ValueError, match="slot_s="):
        ReadSettings(slot_s=-1)


@pytest.mark.ngspice
def test_unsolvable_netlist_raises_with_netlist_kept(tmp_path):
    net = tmp_path / "bad.cir"
    # two ideal voltage sources in parallel: singular matrix
    net.write_text("* bad\nV1 a 0 DC 1\nV2 a 0 DC 2\nR1 a 0 1k\n.op\n.end\n")
    with pytest.raises(ngspice.NgspiceError) as e:
        ngspice.run(net)
    assert e.value.netlist_path == net
    assert net.exists()
    assert "singular" in str(e.value).lower() or "ngspice failed" in str(e.value)
    assert str(net) in str(e.value)


@pytest.mark.ngspice
def test_syntax_error_in_netlist_is_reported(tmp_path):
    net = tmp_path / "typo.cir"
    net.write_text("* typo\nV1 a 0 DC 1\nX1 a 0 no_such_subckt\n.op\n.end\n")
    with pytest.raises(ngspice.NgspiceError) as e:
        ngspice.run(net)
    assert net.exists()
    assert "no_such_subckt" in e.value.output.lower()
