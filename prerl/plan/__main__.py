"""``python -m prerl.plan``: prerl/plan/cli.py."""

import sys

from prerl.plan.cli import main

sys.exit(main())
