"""analysis.objective_curves on a fixture MLflow store whose values are known."""

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from analysis import objective_curves


def log_run(client, exp_id, task, objective, seed, test, length, status="FINISHED"):
    run = client.create_run(exp_id, tags={"sweep": "objectives"})
    params = {"model.mini.name": task, "objective.name": objective, "seed": str(seed), "total_steps": "10"}
    metrics = [Metric("eval/test/avg_at_8", v, 0, s) for s, v in test.items()]
    metrics += [Metric("train/response_length", v, 0, s) for s, v in length.items()]
    client.log_batch(run.info.run_id, params=[Param(k, v) for k, v in params.items()], metrics=metrics)
    client.set_terminated(run.info.run_id, status=status)


def test_curves_table_and_figure_from_the_logged_values(tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(uri)
    exp = client.create_experiment("fx")
    log_run(client, exp, "mini", "nsr_prerl", 0, {0: 0.30, 10: 0.10}, {1: 50.0, 10: 40.0})
    log_run(client, exp, "mini", "nsr_prerl", 1, {0: 0.30, 10: 0.20}, {1: 52.0, 10: 44.0})
    log_run(client, exp, "mini_styles", "psr_prerl", 0, {0: 0.25, 10: 0.50}, {1: 20.0, 10: 30.0})
    log_run(client, exp, "mini", "nsr_prerl", 2, {0: 0.9, 10: 0.9}, {1: 1.0}, status="FAILED")  # never read
    text = objective_curves.main(["--experiment", "fx", "--uri", uri, "--sets", "test", "--out", str(tmp_path)])
    accuracy, length = text.split("\n\n")  # Avg@8 in %, then the response length
    assert "| mini / nsr_prerl | 2 | 30.0 ± 0.0 (30.0, 30.0) | 15.0 ± 7.1 (10.0, 20.0) |" in accuracy
    assert "| mini_styles / psr_prerl | 1 | 25.0 (25.0) | 50.0 (50.0) |" in accuracy
    assert "| mini / nsr_prerl | 51.0 ± 1.4 (50.0, 52.0) | 42.0 ± 2.8 (40.0, 44.0) |" in length  # steps 1 and 10
    assert (tmp_path / "fx_curves.png").stat().st_size > 0 and (tmp_path / "fx_curves.md").exists()
