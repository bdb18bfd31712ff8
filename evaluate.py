"""Evaluate a policy on benchmarks: python evaluate.py [model.path=CHECKPOINT_OR_HUB_NAME] [eval=math6|ood] ...

Same config tree as train.py. The command, with examples, is prerl/commands/evaluate.py, which an installed
prerl runs as ``prerl-evaluate``.
"""

from prerl.commands.evaluate import main

if __name__ == "__main__":
    main()
