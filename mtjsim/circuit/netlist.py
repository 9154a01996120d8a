"""The only place that formats SPICE: Circuit + analysis -> ngspice netlist text.

The netlist is standalone: it ``.include``s model files from ``models/`` by a path that works
wherever the netlist is run from (relative when the netlist sits inside the repository, so
checked-in netlists stay portable; absolute otherwise).
"""

from __future__ import annotations

import os
from pathlib import Path

from mtjsim.circuit.elements import (
    Capacitor, Circuit, Comparator, Mosfet, OpAnalysis, Resistor, SubcktInstance,
    TranAnalysis, TransResistance, VSource,
)

REPO_DIR = Path(__file__).resolve().parents[2]
MODELS_DIR = Path(os.environ.get("MTJSIM_MODELS", REPO_DIR / "models")).resolve()


# Which file under models/ defines each subcircuit or device model an element may name.
MODEL_FILES = {"mtj_static": "mtj.lib", "mtj_stt": "mtj_stt.lib", "nmos_acc": "nmos.lib"}


def _model_files(circuit: Circuit) -> list[str]:
    used = {e.subckt for e in circuit.elements if isinstance(e, SubcktInstance)}
    used |= {e.model for e in circuit.elements if isinstance(e, Mosfet)}
    unknown = used - MODEL_FILES.keys()
    if unknown:
        raise ValueError(f"no model file known for {sorted(unknown)}")
    return sorted({MODEL_FILES[u] for u in used})


# Internal nodes of a subcircuit that results need (v(x<name>.<node>) in ngspice's output).
SAVED_INTERNAL_NODES = {"mtj_stt": ("s",)}


def _element_nodes(e) -> tuple[str, ...]:
    match e:
        case Resistor() | Capacitor():
            return (e.n1, e.n2)
        case VSource() | TransResistance():
            return (e.np, e.nn)
        case Comparator():
            return (e.out, e.inp, e.ref)
        case SubcktInstance():
            return e.nodes
        case Mosfet():
            return (e.d, e.g, e.s, e.b)
    raise TypeError(f"no nodes known for element {e!r}")


def _saved_vectors(circuit: Circuit) -> list[str]:
    nodes = dict.fromkeys(n for e in circuit.elements for n in _element_nodes(e) if n != "0")
    out = [f"v({n})" for n in nodes]
    out += [f"i(V{e.name})" for e in circuit.elements if isinstance(e, VSource)]
    out += [f"v(X{e.name}.{node})" for e in circuit.elements if isinstance(e, SubcktInstance)
            for node in SAVED_INTERNAL_NODES.get(e.subckt, ())]
    return out


def _num(x: float) -> str:
    # 12 significant digits keep hand-checkable circuits exact to far better than 1e-6.
    return f"{float(x):.12g}"


def _pwl(points) -> str:
    pairs = " ".join(f"{_num(t)} {_num(v)}" for t, v in points)
    return f"PWL({pairs})"


def _element_line(e) -> str:
    match e:
        case Resistor():
            return f"R{e.name} {e.n1} {e.n2} {_num(e.ohm)}"
        case Capacitor():
            return f"C{e.name} {e.n1} {e.n2} {_num(e.farad)}"
        case VSource(pwl=None):
            return f"V{e.name} {e.np} {e.nn} DC {_num(e.dc_v)}"
        case VSource():
            return f"V{e.name} {e.np} {e.nn} DC {_num(e.dc_v)} {_pwl(e.pwl)}"
        case TransResistance():
            return f"H{e.name} {e.np} {e.nn} V{e.sense_source} {_num(e.ohm)}"
        case Comparator():
            return (f"B{e.name} {e.out} 0 V = {_num(e.vdd_v)}*0.5*(1 + tanh((V({e.inp})"
                    f" - V({e.ref}))/{_num(e.v_width_v)}))")
        case SubcktInstance():
            params = " ".join(f"{k}={_num(v)}" for k, v in e.params)
            return f"X{e.name} {' '.join(e.nodes)} {e.subckt} {params}"
        case Mosfet():
            return f"M{e.name} {e.d} {e.g} {e.s} {e.b} {e.model} W={_num(e.w_m)} L={_num(e.l_m)}"
    raise TypeError(f"no SPICE form for element {e!r}")


def _wrap(line: str, width: int = 200) -> list[str]:
    """Split long lines (PWL sources) with SPICE '+' continuation lines."""
    if len(line) <= width:
        return [line]
    out, cur = [], ""
    for word in line.split(" "):
        if cur and len(cur) + 1 + len(word) > width:
            out.append(cur)
            cur = "+ " + word
        else:
            cur = f"{cur} {word}" if cur else word
    out.append(cur)
    return out


def include_path(model_file: str, netlist_dir: Path | None) -> str:
    target = MODELS_DIR / model_file
    if netlist_dir is not None:
        netlist_dir = Path(netlist_dir).resolve()
        if netlist_dir.is_relative_to(REPO_DIR) and MODELS_DIR.is_relative_to(REPO_DIR):
            return os.path.relpath(target, netlist_dir)
    return str(target)


def to_spice(circuit: Circuit, analysis, netlist_dir: Path | None = None) -> str:
    lines = [f"* {circuit.title}", "* written by mtjsim; runs as it is: ngspice -b <this file>"]
    for model_file in _model_files(circuit):
        lines.append(f".include {include_path(model_file, netlist_dir)}")
    if circuit.options:
        lines.append(".options " + " ".join(
            f"{k}={v if isinstance(v, str) else _num(v)}" for k, v in circuit.options.items()))
    for e in circuit.elements:
        lines.extend(_wrap(_element_line(e)))
    if circuit.save_external_only:
        lines.extend(_wrap(".save " + " ".join(_saved_vectors(circuit))))
    match analysis:
        case OpAnalysis():
            lines.append(".op")
        case TranAnalysis():
            tmax = f" {_num(analysis.max_step_s)}" if analysis.max_step_s else ""
            tmax = f" 0{tmax}" if tmax else ""
            lines.append(f".tran {_num(analysis.step_s)} {_num(analysis.stop_s)}{tmax}")
        case _:
            raise TypeError(f"unknown analysis {analysis!r}")
    lines.append(".end")
    return "\n".join(lines) + "\n"


def write_netlist(circuit: Circuit, analysis, path: Path) -> Path:
    """Write the netlist atomically (temp file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = to_spice(circuit, analysis, netlist_dir=path.parent)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)
    return path
