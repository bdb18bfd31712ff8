"""The GPU check (prerl/commands/gpu_check.py): python scripts/gpu_check.py [--size large] [--cpu] [key=value ...]."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from prerl.commands.gpu_check import main

if __name__ == "__main__":  # the guard vLLM needs where it starts worker processes
    sys.exit(main())
