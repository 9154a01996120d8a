"""Access NMOS of a 1T1R cell: the SPICE level-1 (Shichman-Hodges) equations of models/nmos.lib.

The model card lives in ``models/nmos.lib``; these fields are written onto each instance
(W, L) or checked against the card, so Python and SPICE describe the same transistor.
"""

from __future__ import annotations

from dataclasses import dataclass

from mtjsim.validation import check_range


@dataclass(frozen=True)
class NMOSParams:
    """Level-1 NMOS. kp_a_per_v2 is mu_n*Cox; drain current in saturation is
    ``kp/2 * W/L * (Vgs - Vto)^2 * (1 + lambda*Vds)``. Values match models/nmos.lib."""

    model: str = "nmos_acc"
    w_m: float = 200e-9
    l_m: float = 50e-9
    vto_v: float = 0.4
    kp_a_per_v2: float = 300e-6
    lambda_per_v: float = 0.05

    def __post_init__(self) -> None:
        check_range("w_m", self.w_m, lo=0, lo_open=True, hi=100e-6, typical="100e-9 to 1e-6")
        check_range("l_m", self.l_m, lo=0, lo_open=True, hi=10e-6, typical="22e-9 to 180e-9")

    def r_on_ohm(self, v_gs_v: float) -> float:
        """Small-signal on-resistance in the linear region at Vds -> 0."""
        return 1.0 / (self.kp_a_per_v2 * self.w_m / self.l_m * (v_gs_v - self.vto_v))
