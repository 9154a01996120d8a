"""Device-to-device variation: per-cell MTJ parameters drawn from a seed.

Diameter variation moves R_P (1/d^2), Delta and I_c0 (both ~ d^2) together, as the physics
says; RA, TMR0, Delta and I_c0 then get their own independent spreads. Sigmas are fractions
of the nominal value (0.05 = 5 %), Gaussian, default off. Cycle-to-cycle randomness is not
here: it is the per-pulse switching thresholds (mtjsim.devices.switching.draw_thresholds).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mtjsim.devices.mtj import MTJParams, mtj_conductance_s
from mtjsim.validation import check_range

# A drawn factor never goes below this, so no device gets a zero or negative size or barrier.
MIN_FACTOR = 0.2


@dataclass(frozen=True)
class Variation:
    """Relative (fractional) standard deviations of device-to-device variation."""

    diameter_sigma_d2d: float = 0.0
    ra_sigma_d2d: float = 0.0
    tmr0_sigma_d2d: float = 0.0
    delta_sigma_d2d: float = 0.0
    i_c0_sigma_d2d: float = 0.0

    def __post_init__(self):
        for name in ("diameter_sigma_d2d", "ra_sigma_d2d", "tmr0_sigma_d2d",
                     "delta_sigma_d2d", "i_c0_sigma_d2d"):
            check_range(name, getattr(self, name), lo=0, hi=0.3, typical="0.01 to 0.1")

    @property
    def is_off(self) -> bool:
        return all(getattr(self, f) == 0 for f in self.__dataclass_fields__)


@dataclass(frozen=True)
class CellDevices:
    """Per-cell MTJ parameters (arrays of one shape), so variation is data and the netlist
    writes each cell's own values."""

    r_p_ohm: np.ndarray
    tmr0: np.ndarray
    v_h_v: np.ndarray
    i_c0_p2ap_a: np.ndarray
    i_c0_ap2p_a: np.ndarray
    delta: np.ndarray
    tau0_s: np.ndarray
    tau_d_s: np.ndarray

    @classmethod
    def sample(cls, device: MTJParams, shape: tuple[int, int], variation: Variation = Variation(),
               seed: int = 0) -> "CellDevices":
        rng = np.random.default_rng(seed)

        def factor(sigma):
            # Draw even when sigma is 0, so switching one sigma on leaves the others' draws alone.
            z = rng.standard_normal(shape)
            return np.maximum(1 + sigma * z, MIN_FACTOR)

        d_rel = factor(variation.diameter_sigma_d2d)
        area_rel = d_rel ** 2
        ra_rel = factor(variation.ra_sigma_d2d)
        full = np.ones(shape)
        return cls(
            r_p_ohm=device.r_p_ohm * ra_rel / area_rel,
            tmr0=device.tmr0 * factor(variation.tmr0_sigma_d2d),
            v_h_v=device.v_h_v * full,
            delta=device.delta * area_rel * factor(variation.delta_sigma_d2d),
            i_c0_p2ap_a=device.i_c0_p2ap_a * area_rel * (f := factor(variation.i_c0_sigma_d2d)),
            i_c0_ap2p_a=device.i_c0_ap2p_a * area_rel * f,
            tau0_s=device.tau0_s * full,
            tau_d_s=device.tau_d_s * full,
        )

    @classmethod
    def uniform(cls, device: MTJParams, shape: tuple[int, int]) -> "CellDevices":
        return cls.sample(device, shape, Variation(), seed=0)

    def conductance_s(self, v_v, states):
        """Smooth MTJ conductance of models/mtj.lib at bias v_v (same shape as the arrays)."""
        return mtj_conductance_s(v_v, states, self.r_p_ohm, self.tmr0, self.v_h_v)
