"""``python -m mtjsim.sweep FILE --out DIR [--workers N | --scheduler ADDRESS]``."""

import sys

from mtjsim.sweep.cli import main

if __name__ == "__main__":
    sys.exit(main())
