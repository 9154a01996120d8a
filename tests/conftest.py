import shutil

import pytest


@pytest.fixture(scope="session", autouse=True)
def _require_ngspice():
    # CI installs ngspice (make test); a missing ngspice must fail loudly, not skip.
    if shutil.which("ngspice") is None:
        pytest.fail("ngspice is not installed: run `make test` (it installs Debian's ngspice)")
