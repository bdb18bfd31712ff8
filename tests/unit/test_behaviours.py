"""Behaviour counters on hand-written texts, and the LLM-judge path on canned replies (no network)."""

import io
import json
import math
import random
import urllib.request

import pytest

from analysis import judge
from analysis.behaviour_table import compare, summarise, table
from prerl.data import mini_task as task
from prerl.eval.behaviours import Lexicon, behaviour_metrics, count_behaviours, thoughts

MINI_REPAIR = (
    "7+5=11, write 1 carry 1. wait, check 7+5=12, write 2 carry 1. 1+3+1=5, write 5. So the answer is \\boxed{52}."
)
MINI_RECHECK = "7+5=12, write 2 carry 1. check 7+5=12 ok. 1+3+1=5, write 5. So the answer is \\boxed{52}."
PLAIN = "7+5=12, write 2 carry 1. 1+3+1=5, write 5. So the answer is \\boxed{52}."
PROSE = (
    "First, we need to find x. Wait, that is wrong. Alternatively, let's try another approach. "
    "Case 1: x is even. Case 2: x is odd; otherwise nothing. Let me verify this by substituting back.\n"
    "Hmm, actually I made a mistake; let me double-check the sum."
)


def test_thoughts_split_at_sentence_ends_and_newlines():
    assert thoughts("a=1, b. c? d!\ne; f") == ["a=1, b.", "c?", "d!", "e;", "f"]


def test_mini_corpus_markers_are_counted():
    repair = count_behaviours(MINI_REPAIR)
    assert repair["transitions"] == 1 and repair["reflections"] == 1  # "wait, check ..." is one thought
    assert repair["backtracking"] == 1 and repair["verification"] == 1
    recheck = count_behaviours(MINI_RECHECK)
    assert recheck["transitions"] == 0 and recheck["reflections"] == 1 and recheck["verification"] == 1
    assert recheck["backtracking"] == 0
    assert all(v == 0 for v in count_behaviours(PLAIN).values())


def test_mini_corpus_solutions_with_repairs_show_signal():
    rng = random.Random(0)
    flaws = task.FlawRates(slip=0.5, drop_carry=0.5, repair=1.0, recheck=0.0)
    texts = [task.solve(task.sample_problem(rng, task.Difficulty(3, 3, 3, 3)), rng, flaws) for _ in range(50)]
    expected = sum(t.count("wait, check") for t in texts)
    assert expected > 0
    assert sum(count_behaviours(t)["transitions"] for t in texts) == expected


def test_prose_counts_each_category():
    c = count_behaviours(PROSE)
    assert c["transitions"] == 3  # wait / alternatively / hmm+actually (one thought)
    assert c["reflections"] == 2  # verify / double-check
    assert c["subgoal_setting"] == 1
    assert c["enumeration"] == 3  # "Case 1", "Case 2", "otherwise" ("x is odd;" ends a thought)
    assert c["backtracking"] == 2  # "that is wrong", "I made a mistake"
    assert c["verification"] == 2


def test_counting_is_case_insensitive_and_word_bounded():
    assert count_behaviours("WAIT. Await the checkout.")["transitions"] == 1
    assert count_behaviours("WAIT. Await the checkout.")["reflections"] == 0


def test_metrics_are_means_per_response_and_shares():
    m = behaviour_metrics([MINI_REPAIR, MINI_RECHECK, PLAIN, PLAIN])
    assert m["train/behaviour/reflections"] == pytest.approx(0.5)
    assert m["train/behaviour/transitions"] == pytest.approx(0.25)
    assert m["train/behaviour/transitions_frac"] == pytest.approx(0.25)
    assert behaviour_metrics([]) == {}


def test_lexicon_from_file_replaces_only_given_categories(tmp_path):
    path = tmp_path / "lex.yaml"
    path.write_text("transitions: ['\\bmeanwhile\\b']\n")
    lex = Lexicon.from_file(path)
    assert lex.count("transitions", "wait. meanwhile. meanwhile") == 2
    assert lex.count("reflections", MINI_RECHECK) == 1  # default kept
    (tmp_path / "bad.json").write_text(json.dumps({"transition": ["x"]}))
    with pytest.raises(ValueError, match="unknown categories"):
        Lexicon.from_file(tmp_path / "bad.json")


def test_ratio_against_base():
    base = summarise([MINI_RECHECK, PLAIN])
    after = summarise([MINI_REPAIR, MINI_REPAIR])
    r = compare(after, base)
    assert r["reflections"] == pytest.approx(2.0)
    assert math.isinf(r["transitions"])  # base has none
    assert math.isnan(r["enumeration"])  # neither has any
    assert "×2.00" in table({"base": base, "after": after}, "base")


# --- the judge, on canned replies ----------------------------------------------------------

CANNED = """The reasoning shows two behaviours.
```json
[
  {"behaviour": "Verification", "example": "check 7+5=12 ok"},
  {"behaviour": "Backtracking", "example": "wait, check 7+5=12"}
]
```
and also
```json
{"behaviour": "Subgoal Setting", "example": "column by column"}
```"""


def test_parse_reply_counts_listed_behaviours():
    c = judge.parse_reply(CANNED)
    assert c == {"backtracking": 1, "verification": 1, "subgoal_setting": 1, "enumeration": 0}
    assert judge.parse_reply("No beneficial behaviours. ```json\n[]\n```") == dict.fromkeys(c, 0)
    assert (
        judge.parse_reply('{"behavior": "(4) enumeration", "example": ""} {"behaviour": "Analogy"}')["enumeration"] == 1
    )
    assert judge.parse_reply("not json at all {") == dict.fromkeys(c, 0)


def test_judge_prompt_wraps_the_response():
    prompt = judge.judge_prompt("MY REASONING")
    assert "<start_of_reasoning>\nMY REASONING\n<end_of_reasoning>" in prompt
    assert '"behaviour": ""' in prompt and "(4) Enumeration" in prompt


def test_summarise_uses_the_judge_for_the_four_behaviours():
    seen = []

    def fake(prompt):
        seen.append(prompt)
        return CANNED

    stats = summarise([PLAIN, PLAIN], complete=fake)
    assert len(seen) == 2 and PLAIN in seen[0]
    assert stats["verification"] == 1.0 and stats["subgoal_setting"] == 1.0 and stats["enumeration"] == 0.0
    assert stats["reflections"] == 0.0  # keyword counters are unchanged by the judge


def test_openai_client_posts_chat_completion(monkeypatch):
    captured = {}

    def fake_urlopen(request, timeout):
        captured["url"], captured["body"] = request.full_url, json.loads(request.data)
        captured["auth"] = request.get_header("Authorization")
        reply = {"choices": [{"message": {"role": "assistant", "content": CANNED}}]}
        return io.BytesIO(json.dumps(reply).encode())

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    complete = judge.openai_complete("http://judge.local/v1/", "gpt-4o", api_key="sk-test")
    counts = judge.judge_counts([MINI_REPAIR], complete)
    assert captured["url"] == "http://judge.local/v1/chat/completions"
    assert captured["body"]["model"] == "gpt-4o" and captured["body"]["temperature"] == 0.0
    assert MINI_REPAIR in captured["body"]["messages"][0]["content"]
    assert captured["auth"] == "Bearer sk-test"
    assert counts == [{"backtracking": 1, "verification": 1, "subgoal_setting": 1, "enumeration": 0}]


def test_cli_on_saved_completions(tmp_path):
    from analysis.behaviour_table import main

    base, after = tmp_path / "base.jsonl", tmp_path / "after.jsonl"
    base.write_text("\n".join(json.dumps({"response": t}) for t in [MINI_RECHECK, PLAIN, PLAIN, PLAIN]) + "\n")
    table_json = {"columns": ["step", "response"], "data": [[0, MINI_REPAIR], [0, MINI_RECHECK]]}
    after.with_suffix(".json").write_text(json.dumps(table_json))  # a training run's samples/*.json table
    rows = main(
        ["--base-responses", str(base), "--responses", str(after.with_suffix(".json")), "--out", str(tmp_path / "out")]
    )
    result = json.loads((tmp_path / "out" / "behaviours.json").read_text())
    assert rows[str(base)]["reflections"] == pytest.approx(0.25)
    assert result["ratios"][str(after.with_suffix(".json"))]["reflections"] == pytest.approx(4.0)
    assert "reflections" in (tmp_path / "out" / "behaviours.md").read_text()


def test_the_papers_own_markers_are_counted_apart():
    """paper_transitions counts only "wait", "alternatively", "but"; paper_reflections only "let me check"
    and "verify" (the words the paper names), one per thought, whatever the broader lists count."""
    text = (
        "But the sum is 12. Wait, alternatively it is 13. However, that is odd. "
        "Let me check: 7+5=12. I double-check it. We verify the answer; butter is not a marker."
    )
    c = count_behaviours(text)
    assert c["paper_transitions"] == 2  # "But ...", "Wait, alternatively ..." (one thought); not "However"
    assert c["paper_reflections"] == 2  # "Let me check", "verify"; not "double-check"
    assert c["transitions"] == 2 and c["reflections"] == 3  # the broader lists: wait+alternatively, however
    m = behaviour_metrics([text, PLAIN])
    assert m["train/behaviour/paper_transitions"] == pytest.approx(1.0)
    assert m["train/behaviour/paper_reflections_frac"] == pytest.approx(0.5)
