"""Chat messages per problem kind. Rendering (the chat template) happens later, with the tokenizer.

Math uses the paper's system prompt (docs/paper.md#prompt-and-chat-template); with Qwen3's template and
``enable_thinking=False`` (``model.chat_template_kwargs``) the prompt ends in an empty think block.
The out-of-distribution sets ask for a closing line their scorers can read.
"""

from __future__ import annotations

import string

MATH_SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
CHOICE_SYSTEM = (
    'Please reason step by step, and finish your response with "The answer is (X)" '
    "where X is the letter of the correct option."
)
BBH_SYSTEM = 'Please reason step by step, and finish your response with "So the answer is <answer>."'
CODE_SYSTEM = "You are an expert Python programmer."
CODE_USER = (
    "Complete the following Python function. Reply with the complete function, including the "
    "signature, in a single ```python code block.\n\n```python\n{prompt}```"
)


def _chat(system: str, user: str) -> list[dict]:
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def math(problem: str) -> list[dict]:
    return _chat(MATH_SYSTEM, problem)


def multiple_choice(question: str, options: list[str]) -> list[dict]:
    lines = [f"({letter}) {option}" for letter, option in zip(string.ascii_uppercase, options)]
    return _chat(CHOICE_SYSTEM, question.strip() + "\n\n" + "\n".join(lines))


def bbh(task_input: str) -> list[dict]:
    return _chat(BBH_SYSTEM, task_input)


def code(prompt: str) -> list[dict]:
    return _chat(CODE_SYSTEM, CODE_USER.format(prompt=prompt))
