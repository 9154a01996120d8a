"""Training with circuit-level write outcomes: the weight state is what the circuit wrote.

Modules (each small; see docs/training.md):

* ``datasets``: Wine, digits, MNIST-5k (offline), seeded splits, binary/ternary/analog inputs;
* ``network``: signed weights as MTJ pairs on tiled arrays, activations from the
  differential sense;
* ``rules``: gradients (straight-through), stochastic binary and GXNOR plans, ex-situ
  software training;
* ``programs``: switching requests -> column-parallel pulse programs whose widths realize
  the requested switching probabilities (``estimate``: the currents during each pulse);
* ``backends``: the circuit (read/write on an engine) or ideal writes (the baseline);
* ``loop``: epochs, counters, write-back, checkpoints/resume, ex-situ writes;
* ``report``: the run folder; ``cli``: ``mtjsim train``.
"""

from mtjsim.train.datasets import DatasetName, Encoding, load_dataset  # noqa: F401
from mtjsim.train.loop import TrainConfig, TrainResult, train  # noqa: F401
from mtjsim.train.rules import Rule  # noqa: F401
