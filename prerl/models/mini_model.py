"""Build the mini setting's base model: tokenizer + tiny Qwen3 decoder pre-trained on the corpus.

The corpus is chat-formatted solutions of column-addition problems (``prerl.data.mini_task``) with
flaws and reflections, plus a share of *prompt-free* documents (``<|im_start|>`` + solution) so
that the pre-train-space marginal P(y) is something the model has actually seen. The build is a
pure function of its ``MiniModelConfig``; the result is saved with ``save_pretrained`` into a
folder whose name carries a hash of that config, so changing any knob builds a new model and a
finished build is reused.

The builds of ``VARIANTS`` (mini, micro, mini_styles) ship with prerl (``prerl/models/shipped/``):
floats differ between CPUs and compound over hundreds of pre-training steps, so a model rebuilt on another machine is another
model. A recipe that matches a shipped build loads it (its weights' sha256 checked); any other recipe
is built once and cached. ``python -m prerl.models.mini_model --rebuild`` (``make base-model``) builds
the recipe again from scratch and says whether it reproduced the shipped weights bit for bit.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import torch
from tqdm.auto import tqdm
from transformers import AutoModelForCausalLM, AutoTokenizer, Qwen3Config, Qwen3ForCausalLM

from prerl.config.schema import MiniModelConfig
from prerl.data import mini_styles as styles
from prerl.data import mini_task as task
from prerl.models.build_cache import build_once
from prerl.models.mini_tokenizer import IM_END, IM_START, train_tokenizer
from prerl.tracking import fingerprint
from prerl.tracking.fingerprint import BUILD_INFO

WEIGHTS = "model.safetensors"
SHIPPED = Path(__file__).with_name("shipped")
# Bump when the build code changes what a recipe produces, so stale caches are not reused.
BUILD_VERSION = 3


def build_dir(cfg: MiniModelConfig, cache_dir: str | os.PathLike) -> Path:
    recipe = {"build_version": BUILD_VERSION, **asdict(cfg)}
    digest = hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:10]
    return Path(cache_dir) / f"{cfg.name}-{digest}"


def read_build_info(path: str | os.PathLike) -> dict | None:
    info = Path(path) / BUILD_INFO
    return json.loads(info.read_text()) if info.exists() else None


def shipped_build(cfg: MiniModelConfig) -> Path | None:
    """The shipped build of exactly this recipe, after checking its weights against the recorded hash."""
    path = build_dir(cfg, SHIPPED)
    info = read_build_info(path)
    if info is None:
        return None
    actual = fingerprint.sha256_file(path / WEIGHTS)
    if actual != info["weights_sha256"]:
        raise RuntimeError(
            f"the shipped base model {path} is damaged: its weights hash to {actual}, "
            f"{BUILD_INFO} records {info['weights_sha256']}; restore it with git checkout"
        )
    return path


def _addition(problem: task.Problem, rng: random.Random, cfg: MiniModelConfig) -> str:
    return task.solve(
        problem, rng, task.FlawRates(cfg.slip_rate, cfg.drop_carry_rate, cfg.repair_rate, cfg.recheck_rate)
    )


# How each mini task's corpus writes a solution (``MiniModelConfig.task``).
SOLVERS = {
    "addition": _addition,  # prerl.data.mini_task: one method, flaws at the recipe's rates
    "styles": lambda problem, rng, cfg: styles.solve(problem, rng),  # prerl.data.mini_styles: its own fixed rates
}


def corpus_texts(cfg: MiniModelConfig, rng: random.Random) -> list[str]:
    """The pre-training documents, already in chat format (or prompt-free for a share of them)."""
    difficulty = task.Difficulty(
        cfg.corpus_min_operands, cfg.corpus_max_operands, cfg.corpus_min_digits, cfg.corpus_max_digits
    )
    solve = SOLVERS[cfg.task]
    docs = []
    for _ in range(cfg.corpus_documents):
        problem = task.sample_problem(rng, difficulty)
        solution = solve(problem, rng, cfg)
        if rng.random() < cfg.prompt_free_fraction:
            docs.append(f"{IM_START}{solution}{IM_END}")
        else:
            (user_msg,) = task.messages(problem)
            docs.append(f"{IM_START}user\n{user_msg['content']}{IM_END}\n{IM_START}assistant\n{solution}{IM_END}")
    return docs


def recipe_config(cfg: MiniModelConfig, vocab_size: int, **token_ids) -> Qwen3Config:
    """The architecture of the recipe's model with ``vocab_size`` tokens (the trained tokenizer's
    size, at most ``cfg.vocab_size``); ``token_ids``: pad, eos and bos ids, when known."""
    return Qwen3Config(
        vocab_size=vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers,
        num_attention_heads=cfg.num_heads,
        num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.hidden_size // cfg.num_heads,
        max_position_embeddings=cfg.max_positions,
        tie_word_embeddings=True,
        **token_ids,
    )


def make_model(cfg: MiniModelConfig, tokenizer) -> Qwen3ForCausalLM:
    ids = {"pad_token_id": tokenizer.pad_token_id, "eos_token_id": tokenizer.eos_token_id}
    return Qwen3ForCausalLM(
        recipe_config(cfg, len(tokenizer), bos_token_id=tokenizer.convert_tokens_to_ids(IM_START), **ids)
    )


def _batches(ids: list[list[int]], batch_size: int, steps: int, rng: random.Random, pad_id: int, pool: int = 1):
    """Random batches. ``pool`` > 1 sorts that many batches' worth of documents by length before
    cutting them (less padding) — measured: it slows learning here (batches become homogeneous)."""
    ready: list[list[int]] = []
    for _ in range(steps):
        if not ready:
            drawn = sorted((rng.randrange(len(ids)) for _ in range(pool * batch_size)), key=lambda i: len(ids[i]))
            ready = [drawn[i : i + batch_size] for i in range(0, len(drawn), batch_size)]
            rng.shuffle(ready)
        rows = [ids[i] for i in ready.pop()]
        width = max(len(r) for r in rows)
        x = torch.full((batch_size, width), pad_id, dtype=torch.long)
        mask = torch.zeros((batch_size, width), dtype=torch.long)
        for i, r in enumerate(rows):
            x[i, : len(r)] = torch.tensor(r)
            mask[i, : len(r)] = 1
        yield x, mask


def pretrain(cfg: MiniModelConfig, out_dir: str | os.PathLike, progress: bool = True) -> Path:
    """Build tokenizer and model from ``cfg`` and save them to ``out_dir`` (atomically)."""
    started = time.perf_counter()
    rng = random.Random(cfg.seed)
    torch.manual_seed(cfg.seed)
    docs = corpus_texts(cfg, rng)
    tokenizer = train_tokenizer(docs, vocab_size=cfg.vocab_size)
    ids = tokenizer(docs)["input_ids"]
    model = make_model(cfg, tokenizer)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.01, betas=(0.9, 0.98))
    warm = max(1, cfg.train_steps // 20)

    def lr_at(step: int) -> float:  # linear warm-up, cosine decay to 10%
        if step < warm:
            return (step + 1) / warm
        frac = (step - warm) / max(1, cfg.train_steps - warm)
        return 0.1 + 0.45 * (1 + math.cos(math.pi * frac))

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_at)
    model.train()
    bar = tqdm(
        _batches(ids, cfg.batch_size, cfg.train_steps, rng, tokenizer.pad_token_id),
        total=cfg.train_steps,
        desc="pre-training mini base model",
        disable=not progress,
    )
    for x, mask in bar:
        labels = x.masked_fill(mask == 0, -100)
        loss = model(input_ids=x, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        bar.set_postfix(loss=f"{loss.item():.3f}")

    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out_dir.parent, prefix=f".{out_dir.name}."))
    model.eval()
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    info = {
        "config": asdict(cfg),
        "build_version": BUILD_VERSION,
        "final_loss": loss.item(),
        "build_seconds": time.perf_counter() - started,
        "weights_sha256": fingerprint.sha256_file(tmp / WEIGHTS),
        "built_on": fingerprint.machine(),
        "packages": fingerprint.packages(),
    }
    (tmp / BUILD_INFO).write_text(json.dumps(info, indent=2))
    if out_dir.exists():
        shutil.rmtree(out_dir)
    os.replace(tmp, out_dir)
    return out_dir


def ensure_base_model(cfg: MiniModelConfig, cache_dir: str | os.PathLike, progress: bool = True) -> Path:
    """The shipped build for ``cfg``, else the cached one, building it first if it is missing."""
    shipped = shipped_build(cfg)
    if shipped is not None:
        return shipped
    return build_once(build_dir(cfg, cache_dir), lambda path: pretrain(cfg, path, progress=progress))


def load(path: str | os.PathLike):
    return AutoModelForCausalLM.from_pretrained(path), AutoTokenizer.from_pretrained(path)


# The shipped recipes, as conf/model/{mini,micro,mini_styles}.yaml compose them.
VARIANTS = {
    "mini": MiniModelConfig,
    "micro": MiniModelConfig.micro,
    "mini_styles": lambda: MiniModelConfig(name="mini_styles", task="styles", train_steps=1200),
}


def rebuild(cfg: MiniModelConfig, cache_dir: str | os.PathLike, progress: bool = True) -> tuple[Path, str]:
    """Build ``cfg`` from scratch (never the shipped or cached copy) and compare it with the shipped build."""
    path = pretrain(cfg, build_dir(cfg, Path(cache_dir) / "rebuilt"), progress=progress)
    built = read_build_info(path)
    assert built is not None, f"{path}: pretrain() wrote no {BUILD_INFO}"
    shipped = read_build_info(build_dir(cfg, SHIPPED))
    if shipped is None:
        return path, f"no shipped build of this recipe to compare with (weights sha256 {built['weights_sha256']})"
    if built["weights_sha256"] == shipped["weights_sha256"]:
        return path, f"matches the shipped build bit for bit (sha256 {built['weights_sha256']})"
    return path, (
        f"differs from the shipped build: sha256 {built['weights_sha256']} here, "
        f"{shipped['weights_sha256']} shipped (built on {shipped['built_on']['cpu']} with "
        f"{shipped['built_on']['torch_threads']} threads; here {built['built_on']['cpu']} with "
        f"{built['built_on']['torch_threads']}). Float rounding differs between CPUs and thread "
        "counts and compounds over the pre-training steps; runs load the shipped build."
    )


def ship(path: Path) -> Path:
    """Copy a finished build into ``prerl/models/shipped/`` (how the shipped builds were made)."""
    target = SHIPPED / path.name
    if target.exists():
        shutil.rmtree(target)
    shutil.copytree(path, target)
    return target


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=list(VARIANTS), default="mini")
    parser.add_argument("--cache-dir", default=os.environ.get("PRERL_CACHE", ".cache/prerl"))
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="build from the recipe even when shipped or cached, and compare with the shipped build",
    )
    parser.add_argument("--ship", action="store_true", help="with --rebuild: copy the build into prerl/models/shipped/")
    args = parser.parse_args()
    variant = VARIANTS[args.variant]()
    if not args.rebuild:
        print(ensure_base_model(variant, args.cache_dir))
    else:
        built, verdict = rebuild(variant, args.cache_dir)
        print(f"{built}: {verdict}")
        if args.ship:
            print(f"shipped as {ship(built)}")
