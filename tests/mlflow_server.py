"""A real MLflow tracking server on a free localhost port, as ``make mlflow-server`` starts it (SQLite
backend, local artifact root served by the server, one worker, no job runner), which tests can stop
and start again on the same port and store."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

MLFLOW = str(Path(sys.executable).with_name("mlflow"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_command(db: Path, artifacts: Path | None, port: int) -> list[str]:
    """``make mlflow-server`` (artifacts served through it), or ``make mlflow-ui`` when ``artifacts`` is None."""
    where = ["server", "--artifacts-destination", str(artifacts)] if artifacts else ["ui"]
    return [
        MLFLOW,
        *where,
        "--backend-store-uri",
        f"sqlite:///{db}",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        "1",
    ]


class MlflowServer:
    def __init__(self, folder: Path, port: int | None = None, ui_only: bool = False):
        self.folder, self.port, self.ui_only = folder, port or free_port(), ui_only
        self.uri = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen | None = None
        self.log = folder / "server.log"

    def start(self, timeout_s: float = 240) -> "MlflowServer":
        self.folder.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", "MLFLOW_DISABLE_TELEMETRY": "true"}
        with open(self.log, "a") as log:
            artifacts = None if self.ui_only else self.folder / "artifacts"
            self.proc = subprocess.Popen(
                server_command(self.folder / "mlflow.db", artifacts, self.port),
                cwd=self.folder,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow server exited: {self.log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(f"{self.uri}/health", timeout=2) as answer:
                    if answer.status == 200:
                        return self
            except OSError:
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"mlflow server not up after {timeout_s} s: {self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """SIGKILL to the server's process group: it goes away as a crashed or unplugged server would."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
        self.proc = None
