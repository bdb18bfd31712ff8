"""Data parallelism with ``torchrun`` on CPU (gloo), replicated and FSDP2-sharded: the same update as one
process, and full runs."""

import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import mlflow
import pytest
import torch
from mlflow.tracking import MlflowClient

from prerl.config.schema import MiniModelConfig
from prerl.models.mini_model import ensure_base_model
from prerl.train import checkpoint

ROOT = Path(__file__).resolve().parents[3]
# --standalone: a free rendezvous port (--master_port=0 would hand the workers port 0 and hang)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "MLFLOW_DISABLE_TELEMETRY": "true", "HF_HUB_OFFLINE": "1"}


def run(cmd, timeout=600) -> None:
    """Run ``cmd`` to success; a hang fails the test after ``timeout`` s. torchrun starts its workers in
    sessions of their own and stops them when it gets SIGTERM, so that is what it gets (SIGKILL only if
    it does not exit): no worker is left behind waiting in a collective. Output goes to files, which a
    stray worker cannot keep the test waiting on as it could on a pipe."""
    with tempfile.TemporaryFile("w+") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=ENV, stdout=out, stderr=subprocess.STDOUT, text=True)
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
            proc.terminate()
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.seek(0)
        log = out.read()
    assert proc.returncode == 0, (f"timed out after {timeout} s\n" if timed_out else "") + log[-6000:]


WORKER = str(ROOT / "tests" / "process" / "distributed" / "update_worker.py")
COMPARED = ("train/loss", "train/grad_norm", "train/kept_tokens", "critic/value_loss")


def assert_same_steps(one: dict, two: dict, part: str) -> None:
    """Two ranks sum their gradients' halves, one process sums them whole: the same fp32 terms in another
    order. Compared on the weight change (SGD: proportional to the gradient), within the reordering error
    of sums of ~10^2 terms, n·eps ≈ 1e-5 of the largest change (1e-4 leaves room for the three steps'
    drift); a lost or doubled share of the batch moves the changes by tens of percent."""
    start = one["start"][part]
    changes = {k: (one[part][k] - start[k], two[part][k] - start[k]) for k in start}
    scale = max(float(a.abs().max()) for a, _ in changes.values())
    assert scale > 0, f"{part}: the updates changed nothing"
    for name, (a, b) in changes.items():
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4 * scale, msg=f"{part} {name}")


@pytest.mark.parametrize("strategy", ["replicate", "fsdp2"])
def test_two_processes_take_the_same_step_as_one(tmp_path, strategy):
    run([sys.executable, WORKER, str(tmp_path / "one.pt")])
    run(TORCHRUN + [WORKER, str(tmp_path / "two.pt"), strategy], timeout=300)  # a hang fails, after 300 s
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    for part in ("state", "critic"):  # the policy, and the critic (whose loop pads a micro-batch under fsdp2)
        assert two[part].keys() == one[part].keys()
        assert_same_steps(one, two, part)
    for mode, stats in one["stats"].items():  # the reduced metrics are those of the global batch
        for key in set(COMPARED) & set(stats):
            # sums of ~10^2 fp32 terms in another order (as above)
            assert two["stats"][mode][key] == pytest.approx(stats[key], rel=1e-4, abs=1e-7), (mode, key)
    assert one["stats"]["token-mean/spread"]["train/grad_norm"] > 0  # the batch did train
    assert one["stats"]["token-mean/rank0"]["train/grad_norm"] > 0.05  # ... and the clipped one clipped
    assert two["grads_left"] == [] and one["grads_left"] == []  # freed after the step
    if strategy == "fsdp2":  # one reduce-scatter per unit and optimizer step, not per micro-batch
        assert_one_reduction_per_step(two)


def assert_one_reduction_per_step(result: dict) -> None:
    """Each update's micro-batches (three or four per rank here, with the shared-prompt backward after
    them) send one reduce-scatter per FSDP unit, in the last backward; the critic's two updates likewise."""
    units = result["units"]
    for update, sent in result["reduce_scatters"].items():
        assert sent == (2 * units["critic"] if update == "critic" else units["policy"]), update


def test_fsdp2_computes_in_the_autocast_dtype(tmp_path):
    """With model.autocast=bfloat16, FSDP2 gathers the weights in bfloat16 and computes in them
    (MixedPrecisionPolicy), while the shards and their update stay float32: the same update as one
    process under bf16 autocast, to bf16's precision. bf16 keeps 8 significant bits (unit roundoff 2^-9),
    and a gradient passes through about eight roundings on either side (the forward's matmul inputs and
    saved outputs, the backward's matmul inputs), so the weight changes agree within 8 × 2^-9 = 2^-6 in
    relative L2; a lost or doubled share of the batch moves them by tens of percent."""
    run([sys.executable, WORKER, str(tmp_path / "one.pt"), "replicate", "bfloat16"])
    run(TORCHRUN + [WORKER, str(tmp_path / "two.pt"), "fsdp2", "bfloat16"], timeout=300)
    one, two = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert one["forward_dtypes"] == ["torch.float32"]  # autocast alone casts inside each op
    assert two["forward_dtypes"] == ["torch.bfloat16"] and two["param_dtypes"] == ["torch.float32"]
    assert_one_reduction_per_step(two)
    for part in ("state", "critic"):
        start = one["start"][part]
        diff = sum(float((two[part][k] - one[part][k]).norm()) ** 2 for k in start) ** 0.5
        change = sum(float((one[part][k] - start[k]).norm()) ** 2 for k in start) ** 0.5
        assert change > 0 and diff <= 2**-6 * change, (part, diff / change)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_slurm_tasks_take_the_same_step_as_torchrun(tmp_path):
    """Two processes started as SLURM tasks (what the submitit launcher does) join one group by themselves."""
    worker = WORKER
    run(TORCHRUN + [worker, str(tmp_path / "torchrun.pt")])
    slurm = {
        "SUBMITIT_EXECUTOR": "slurm",
        "SLURM_JOB_ID": "1",
        "SLURM_NTASKS": "2",
        "SLURM_JOB_NUM_NODES": "1",
        "SLURM_NODEID": "0",
        "SLURM_JOB_NODELIST": "localhost",
        "MASTER_PORT": str(free_port()),
    }
    tasks = [
        subprocess.Popen(
            [sys.executable, worker, str(tmp_path / "slurm.pt")],
            cwd=ROOT,
            env={**ENV, **slurm, "SLURM_PROCID": str(r), "SLURM_LOCALID": str(r)},
        )
        for r in range(2)
    ]
    assert [t.wait(timeout=600) for t in tasks] == [0, 0]
    a, b = torch.load(tmp_path / "torchrun.pt"), torch.load(tmp_path / "slurm.pt")
    # bit-exact: the same two-process layout on the same machine runs the same kernels in the same order
    for name, weight in a["state"].items():
        torch.testing.assert_close(b["state"][name], weight, rtol=0, atol=0, msg=name)


def test_torchrun_smoke_run_logs_once_from_rank_zero(tmp_path, cache_dir):
    ensure_base_model(MiniModelConfig.micro(), cache_dir, progress=False)  # not built by two ranks at once
    db, out = tmp_path / "mlflow.db", tmp_path / "out"
    run(
        TORCHRUN
        + [
            "train.py",
            "experiment=smoke",
            f"cache_dir={cache_dir}",
            f"output_dir={out}",
            f"tracking.uri=sqlite:///{db}",
            "checkpoint.every_steps=2",
            f"hydra.run.dir={tmp_path / 'hydra'}",
        ]
    )
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"  # rank 1 opened no run
    history = client.get_metric_history(runs[0].info.run_id, "train/loss")
    assert sorted(m.step for m in history) == [1, 2, 3, 4]  # each step logged once
    solved = client.get_metric_history(runs[0].info.run_id, "train/prompts/solved_at_least_once")
    unsolved = client.get_metric_history(runs[0].info.run_id, "train/prompts/fully_unsolved")
    # prompt counts are summed over ranks: together they cover the global batch of 4 prompts, not 2
    by_step = {m.step: m.value for m in unsolved}
    assert len(solved) == 4 and all(s.value + by_step[s.step] == 4 for s in solved)
    assert [p.name for p in checkpoint.checkpoints(out / "checkpoints")][-1] == "step_000004.pt"
    assert (out / "final_policy" / "config.json").exists()
    assert [o.step for o in runs[0].outputs.model_outputs] == [4]  # the policy, logged once as a model


def test_fsdp2_run_logs_once_and_writes_checkpoints_that_load_anywhere(tmp_path, cache_dir):
    """A sharded run with a KL reference (also sharded; reset at reincarnation after step 1): rank 0
    logs, checkpoints hold whole tensors that an unsharded model and optimizer load, and it resumes."""
    from transformers import AutoModelForCausalLM

    ensure_base_model(MiniModelConfig.micro(), cache_dir, progress=False)
    db, out = tmp_path / "mlflow.db", tmp_path / "out"
    command = TORCHRUN + [
        "train.py",
        "experiment=smoke",
        f"cache_dir={cache_dir}",
        f"output_dir={out}",
        f"tracking.uri=sqlite:///{db}",
        "distributed.strategy=fsdp2",
        "algorithm.kl.placement=loss",
        "warmup_steps=1",
        "checkpoint.every_steps=1",
        f"hydra.run.dir={tmp_path / 'hydra'}",
    ]
    run(command + ["total_steps=2"], timeout=300)
    client = MlflowClient(f"sqlite:///{db}")
    runs = client.search_runs([client.get_experiment_by_name("prerl-smoke").experiment_id])
    assert len(runs) == 1 and runs[0].info.status == "FINISHED"
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss")) == [1, 2]

    state = torch.load(out / "checkpoints" / "step_000002.pt", weights_only=False)
    model = AutoModelForCausalLM.from_pretrained(out / "final_policy")
    model.load_state_dict(state["model"])  # the layout of an unsharded model's state_dict()
    model.load_state_dict(state["reference"])
    torch.optim.AdamW(model.parameters()).load_state_dict(state["optimizer"])
    assert float(state["optimizer"]["state"][0]["step"]) == 2

    run(command + ["total_steps=3"], timeout=300)  # resumes the sharded run from step 2
    resumed = torch.load(out / "checkpoints" / "step_000003.pt", weights_only=False)
    assert float(resumed["optimizer"]["state"][0]["step"]) == 3  # Adam's state was loaded, not restarted
    assert len(client.search_runs([runs[0].info.experiment_id])) == 1
    assert sorted(m.step for m in client.get_metric_history(runs[0].info.run_id, "train/loss")) == [1, 2, 3]
    # the run's model is now the policy of step 3, gathered from the shards, weight for weight (the
    # gathered state also holds the tied head, which a model's own save leaves out)
    (live,) = client.search_logged_models(
        [runs[0].info.experiment_id], filter_string=f"source_run_id = '{runs[0].info.run_id}'"
    )
    steps = {o.model_id: o.step for o in client.get_run(runs[0].info.run_id).outputs.model_outputs}
    assert steps[live.model_id] == 3
    logged = AutoModelForCausalLM.from_pretrained(
        mlflow.artifacts.download_artifacts(f"{live.artifact_location}/model")
    ).state_dict()
    final = AutoModelForCausalLM.from_pretrained(out / "final_policy").state_dict()
    assert logged.keys() == final.keys() and all(torch.equal(final[k], v) for k, v in logged.items())
