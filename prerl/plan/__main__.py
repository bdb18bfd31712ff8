"""``python -m prerl.plan``: prerl/plan/cli.py."""

import sys

from prerl.plan.cli import main

if __name__ == "__main__":
    sys.exit(main())
