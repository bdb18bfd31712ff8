"""The plan as text: one table row per phase, the verdict, and the other strategies' peaks."""

from __future__ import annotations

from dataclasses import replace

from prerl.config.schema import STRATEGY_NAMES
from prerl.plan import Plan, plan_for, refusal
from prerl.plan.memory import CATEGORIES, gib


def describe(plan: Plan) -> str:
    x = plan.setup
    cfg, s, t = x.cfg, x.shape, x.target
    m = cfg.model
    device = f"{gib(t.device_bytes)} GiB ({t.kind})" if t.device_bytes else f"unknown ({t.kind})"
    count = f"{s.params / 1e9:.3g} B" if s.params >= 1e9 else f"{s.params / 1e6:.3g} M"
    lines = [
        f"memory plan per device: {s.name}, {count} parameters (config: {plan.source})",
        f"{t.ranks} rank(s), distributed.strategy={cfg.distributed.strategy}, rollout={cfg.rollout.engine}, "
        f"model.dtype={m.dtype}, model.autocast={m.autocast}, gradient checkpointing "
        f"{'on' if m.gradient_checkpointing else 'off'}, optim.micro_batch_tokens={cfg.optim.micro_batch_tokens}",
        f"device: {device}",
    ]
    if not s.derived:
        lines.append(
            f"note: activations are derived for {', '.join(('qwen3', 'qwen2', 'llama'))} layers, not {s.model_type}"
        )
    return "\n".join(lines)


def phase_table(plan: Plan) -> str:
    """Markdown: a row per phase, a column per category that any phase spends on (GiB, MiB below 2 GiB)."""
    used = [c for c in CATEGORIES if any(p.by_category()[c] for p in plan.phases)]
    unit, scale = ("GiB", 2**30) if plan.peak.total >= 2 * 2**30 else ("MiB", 2**20)
    head = [f"phase ({unit})", *used, "total"]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for phase in plan.phases:
        cells = phase.by_category()
        values = [f"{cells[c] / scale:.1f}" if cells[c] else "–" for c in used]
        rows.append("| " + " | ".join([phase.name, *values, f"{phase.total / scale:.1f}"]) + " |")
    return "\n".join(rows)


def verdict(plan: Plan, margin: float, explain: bool = True) -> str:
    peak, device, over = plan.peak, plan.device_bytes, plan.over()
    head = f"peak: {peak.name}, {gib(peak.total)} GiB"
    reason = refusal(plan, margin)  # a phase the code refuses is refused on any device
    if reason is not None:
        of = f" of {gib(device)} GiB" if device is not None else ""
        word = "refused" if any(p.refused for p in plan.phases) else "does NOT fit"
        return f"{head}{of}: {word}" + (f". {reason}" if explain else "")
    if device is None or over is None:
        return head + " (device memory unknown: pass --device-memory)"
    if over > 0:
        return f"{head} of {gib(device)} GiB: over by {gib(over)} GiB, within plan.margin={margin} (a warning)"
    return f"{head} of {gib(device)} GiB: fits ({gib(-over)} GiB left)"


def strategies(plan: Plan) -> str:
    """The peak under each strategy over the same ranks."""
    x = plan.setup
    lines = []
    for name in STRATEGY_NAMES:
        cfg = replace(x.cfg, distributed=replace(x.cfg.distributed, strategy=name))
        other = plan_for(cfg, x.target, (x.shape, plan.source))
        lines.append(f"  {name} over {x.target.ranks} rank(s): {verdict(other, x.cfg.plan.margin, explain=False)}")
    return "under each strategy:\n" + "\n".join(lines)


def report(plan: Plan) -> str:
    notes = [f"  {p.name}: {n}" for p in plan.phases for n in p.notes]
    parts = [describe(plan), "", phase_table(plan), "", verdict(plan, plan.setup.cfg.plan.margin)]
    if notes:
        parts += ["notes:", *notes]
    return "\n".join(parts + [strategies(plan)])
