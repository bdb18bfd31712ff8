"""How logging survives a store that goes away, against a fake client: an outage queues every step on
disk and sends it in order when the store is back, a killed process leaves its queue for the resumed run,
and a rejected request is an error, not an outage (prerl/tracking/tracker.py; real stores:
tests/integration/test_tracking_store.py)."""

import json

import pytest
from helpers import FlakyClient
from mlflow.exceptions import MlflowException

from prerl.tracking.tracker import Outbox, is_outage


def test_an_outage_queues_every_step_on_disk_and_sends_it_in_order_when_back(tmp_path):
    client, spill = FlakyClient(), tmp_path / "pending.jsonl"
    outbox = Outbox(client, "run1", spill)
    for step in (1, 2, 3, 4):
        client.down = step in (2, 3)
        outbox.put({"kind": "metrics", "step": step, "time": 0, "metrics": {"train/loss": step / 10}})
        if step == 3:
            outbox.put({"kind": "dict", "data": {"a": 1}, "artifact": "per_problem/test.json"})
        outbox.flush(force=True)
        if client.down:  # what waits is on disk, for a resumed process
            assert [json.loads(line)["kind"] for line in spill.read_text().splitlines()][0] == "metrics"
            assert "steps 2.." in outbox.describe()
    assert client.metrics == [
        (1, "train/loss", 0.1),
        (2, "train/loss", 0.2),
        (3, "train/loss", 0.3),
        (4, "train/loss", 0.4),
    ]
    assert client.artifacts == ["per_problem/test.json"] and not outbox.items and not spill.exists()


def test_a_killed_process_leaves_its_queue_for_the_resumed_run(tmp_path):
    client, spill = FlakyClient(), tmp_path / "pending.jsonl"
    client.down = True
    first = Outbox(client, "run1", spill)
    for step in (5, 6):
        first.put({"kind": "metrics", "step": step, "time": 0, "metrics": {"x": float(step)}})
        first.flush(force=True)
    client.down = False
    assert Outbox(client, "another-run", spill).items == []  # only the run's own records are replayed
    resumed = Outbox(client, "run1", spill)
    assert resumed.flush(force=True)
    assert client.metrics == [(5, "x", 5.0), (6, "x", 6.0)] and not spill.exists()


def test_a_rejected_request_is_an_error_not_an_outage(tmp_path):
    class Rejecting(FlakyClient):
        def log_batch(self, run_id, metrics=()):
            raise MlflowException("Invalid value 'avg@8' for parameter 'name'", error_code="INVALID_PARAMETER_VALUE")

    outbox = Outbox(Rejecting(), "run1", None)
    outbox.put({"kind": "metrics", "step": 1, "time": 0, "metrics": {"avg@8": 1.0}})
    with pytest.raises(MlflowException, match="Invalid value"):
        outbox.flush(force=True)
    assert not is_outage(MlflowException("Invalid value")) and is_outage(
        MlflowException("API request to http://h/x failed with timeout exception")
    )
