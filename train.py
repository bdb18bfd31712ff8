"""Train one run (or a sweep with -m): python train.py [group=option ...] [key=value ...].

``python train.py --help`` lists every option with its help; ``--plan`` prints the memory plan. The command
is prerl/commands/train.py (its docstring says more), which an installed prerl runs as ``prerl-train``.
"""

from prerl.commands.train import main

if __name__ == "__main__":
    main()
