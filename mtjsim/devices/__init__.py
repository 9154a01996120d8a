"""Device models: MTJ parameters from geometry and materials, presets, access transistor."""

from mtjsim.devices.mtj import MTJParams, load_preset, preset_names  # noqa: F401
from mtjsim.devices.mosfet import NMOSParams  # noqa: F401
