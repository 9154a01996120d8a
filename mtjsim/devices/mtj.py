"""Perpendicular STT-MTJ: electrical and magnetic parameters from geometry and materials.

Equations are those of ../shared/PHYSICS.md (copied into docs/models.md):

* ``R_P = RA / A`` with ``A = pi d^2 / 4``
* ``TMR(V) = TMR0 / (1 + (V/V_h)^2)``, ``R_AP(V) = R_P (1 + TMR(V))``
* ``E_b = mu0 Ms Hk V_fl / 2``, ``Delta = E_b / (k_B T)``
* ``I_c0 = 4 e alpha E_b / (hbar eta)`` with ``eta_P = P / (2 (1 + P^2))`` (P->AP)
  and ``eta_AP = P / (2 (1 - P^2))`` (AP->P)
* ``tau_D = (1 + alpha^2) / (alpha gamma mu0 Hk)`` (Sun's precessional time scale)

Diameter therefore sets R_P, Delta and I_c0 together, which is what a device-size sweep explores.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from dataclasses import dataclass
from importlib import resources

import numpy as np

from mtjsim.validation import check_range

MU0 = 4e-7 * math.pi          # vacuum permeability, H/m
E_CHARGE = 1.602176634e-19    # C
HBAR = 1.054571817e-34        # J s
K_B = 1.380649e-23            # J/K
GAMMA_E = 1.760859630e11      # electron gyromagnetic ratio, rad/(s T)


def mtj_conductance_s(v_v, state, r_p_ohm, tmr0, v_h_v):
    """The MTJ conductance of models/mtj.lib and mtj_stt.lib, G = (1-s)/R_P + s/R_AP(V),
    R_AP(V) = R_P (1 + TMR0 / (1 + (V/V_h)^2)). Broadcasts; the one Python copy of it."""
    v = np.asarray(v_v, dtype=float)
    s = np.asarray(state, dtype=float)
    tmr = tmr0 / (1 + (v / v_h_v) ** 2)
    return (1 - s) / r_p_ohm + s / (r_p_ohm * (1 + tmr))


@dataclass(frozen=True)
class MTJParams:
    """One MTJ design. SI units; the unit is in the field name where it could be doubted.

    Defaults are the 40 nm worked example of PHYSICS.md.
    """

    diameter_m: float = 40e-9
    ra_ohm_m2: float = 5e-12            # 5 ohm*um^2
    tmr0: float = 1.5                   # 150 %, ratio not percent
    v_h_v: float = 0.5                  # bias at which TMR halves
    t_fl_m: float = 1.3e-9              # free-layer thickness
    ms_a_per_m: float = 1.1e6           # saturation magnetisation
    hk_a_per_m: float = 2.2011e5        # effective anisotropy field (gives Delta = 60 at 40 nm)
    alpha: float = 0.01                 # Gilbert damping
    polarization: float = 0.6           # spin polarisation P
    tau0_s: float = 1e-9                # thermal attempt time
    temperature_k: float = 300.0
    name: str = "custom"
    source: str = ""

    def __post_init__(self) -> None:
        check_range("diameter_m", self.diameter_m, lo=0, lo_open=True, hi=1e-6,
                    typical="20e-9 to 100e-9")
        check_range("ra_ohm_m2", self.ra_ohm_m2, lo=0, lo_open=True, hi=1e-9,
                    typical="2e-12 to 20e-12")
        check_range("tmr0", self.tmr0, lo=0, hi=10, typical="1.0 to 2.0 (ratio, not %)")
        check_range("v_h_v", self.v_h_v, lo=0, lo_open=True, typical="0.3 to 0.6")
        check_range("t_fl_m", self.t_fl_m, lo=0, lo_open=True, hi=10e-9, typical="1e-9 to 1.5e-9")
        check_range("ms_a_per_m", self.ms_a_per_m, lo=0, lo_open=True, typical="0.8e6 to 1.5e6")
        check_range("hk_a_per_m", self.hk_a_per_m, lo=0, lo_open=True, typical="1e5 to 1e6")
        check_range("alpha", self.alpha, lo=0, lo_open=True, hi=1, typical="0.005 to 0.03")
        check_range("polarization", self.polarization, lo=0, lo_open=True, hi=1, hi_open=True,
                    typical="0.5 to 0.7")
        check_range("tau0_s", self.tau0_s, lo=0, lo_open=True, typical="1e-9")
        check_range("temperature_k", self.temperature_k, lo=0, lo_open=True, hi=1000,
                    typical="300")

    def replace(self, **changes) -> "MTJParams":
        return dataclasses.replace(self, **changes)

    # -- electrical -------------------------------------------------------------------------
    @property
    def area_m2(self) -> float:
        return math.pi * self.diameter_m ** 2 / 4

    @property
    def r_p_ohm(self) -> float:
        return self.ra_ohm_m2 / self.area_m2

    @property
    def r_ap0_ohm(self) -> float:
        """R_AP at zero bias."""
        return self.r_p_ohm * (1 + self.tmr0)

    def resistance_ohm(self, v_v, state):
        """Secant resistance V/I at bias ``v_v`` for ``state`` (0 = P, 1 = AP, or in between).

        Vectorised over numpy arrays; the smooth conductance
        ``G = (1-s)/R_P + s/R_AP(V)`` is the one the SPICE subcircuit uses.
        """
        return 1.0 / self.conductance_s(v_v, state)

    def conductance_s(self, v_v, state):
        return mtj_conductance_s(v_v, state, self.r_p_ohm, self.tmr0, self.v_h_v)

    # -- magnetic ---------------------------------------------------------------------------
    @property
    def volume_m3(self) -> float:
        return self.area_m2 * self.t_fl_m

    @property
    def e_b_j(self) -> float:
        return MU0 * self.ms_a_per_m * self.hk_a_per_m * self.volume_m3 / 2

    @property
    def delta(self) -> float:
        """Thermal stability factor E_b / (k_B T)."""
        return self.e_b_j / (K_B * self.temperature_k)

    @property
    def i_c0_p2ap_a(self) -> float:
        p = self.polarization
        eta = p / (2 * (1 + p * p))
        return 4 * E_CHARGE * self.alpha * self.e_b_j / (HBAR * eta)

    @property
    def i_c0_ap2p_a(self) -> float:
        p = self.polarization
        eta = p / (2 * (1 - p * p))
        return 4 * E_CHARGE * self.alpha * self.e_b_j / (HBAR * eta)

    @property
    def tau_d_s(self) -> float:
        return (1 + self.alpha ** 2) / (self.alpha * GAMMA_E * MU0 * self.hk_a_per_m)

    def summary(self) -> dict:
        """Derived figures a user wants to see next to the inputs."""
        return {
            "r_p_ohm": self.r_p_ohm, "r_ap0_ohm": self.r_ap0_ohm, "delta": self.delta,
            "i_c0_p2ap_a": self.i_c0_p2ap_a, "i_c0_ap2p_a": self.i_c0_ap2p_a,
            "tau_d_s": self.tau_d_s,
        }


def _preset_table() -> dict:
    text = resources.files("mtjsim.devices").joinpath("presets.toml").read_text()
    return tomllib.loads(text)


def preset_names() -> list[str]:
    return sorted(_preset_table())


def load_preset(name: str, **overrides) -> MTJParams:
    """An MTJ preset from ``presets.toml`` (data, with its source), optionally overridden."""
    table = _preset_table()
    if name not in table:
        raise ValueError(f"device preset {name!r}: unknown; choose one of {sorted(table)}")
    fields = dict(table[name])
    fields.update(overrides)
    return MTJParams(name=name, **fields)
