"""Run untrusted Python (model-written code) in a throw-away subprocess.

Layers, each a backstop for the others:

* a fresh temporary directory as the working directory (and ``HOME``/``TMPDIR``), deleted afterwards;
* a new session, so the child and anything it starts form one process group, killed with SIGKILL
  when the wall-clock limit passes;
* resource limits set by the child before any untrusted code runs: address space (memory), CPU
  seconds, size of written files, no core dumps;
* a PEP 578 audit hook, installed before the code runs and impossible to remove, that refuses
  sockets, process creation (fork, exec, spawn, subprocess, os.system), ``ctypes`` and writes,
  renames or deletions outside the working directory;
* a private network namespace (``unshare -rn``) where the machine allows one, so that even code that
  slipped past the hook has no network.

This is a guard against accidents in generated code (what HumanEval's own harness protects against),
not a security boundary against a determined attacker; run it in a container for that.
"""

from __future__ import annotations

import functools
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass

# Runs in the child before the untrusted code: limits, then the audit hook, then the program.
_RUNNER = r"""
import os, resource, sys
MEMORY, CPU, FSIZE = {memory}, {cpu}, {fsize}
resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))
resource.setrlimit(resource.RLIMIT_CPU, (CPU, CPU + 1))
resource.setrlimit(resource.RLIMIT_FSIZE, (FSIZE, FSIZE))
resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
ROOT = os.path.realpath(os.getcwd())
source = open("program.py", encoding="utf-8").read()
DENIED = ("socket.", "os.fork", "os.forkpty", "os.exec", "os.posix_spawn", "os.spawn", "os.system",
          "os.kill", "os.killpg", "subprocess.", "pty.", "ctypes.", "os.add_dll_directory", "sys.addaudithook")
PATH_EVENTS = {{"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.chmod", "os.chown", "os.symlink",
               "os.link", "os.truncate", "os.utime", "shutil.rmtree", "shutil.move", "shutil.copyfile"}}
WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC

def inside(path):
    if isinstance(path, int):
        return True  # an already-open descriptor
    if isinstance(path, bytes):
        path = os.fsdecode(path)
    full = os.path.realpath(os.path.join(ROOT, str(path)))
    return full == ROOT or full.startswith(ROOT + os.sep)

def hook(event, args):
    if event.startswith(DENIED):
        raise PermissionError(f"sandbox: {{event}} is not allowed")
    if event == "import" and args[0] in ("ctypes", "_ctypes"):
        raise PermissionError("sandbox: ctypes is not allowed")
    if event == "open" and len(args) >= 3:
        path, mode, flags = args[0], args[1], args[2]
        writes = any(c in (mode or "") for c in "wax+") or bool((flags or 0) & WRITE_FLAGS)
        if writes and not inside(path):
            raise PermissionError(f"sandbox: writing {{path!r}} outside the working directory")
    if event in PATH_EVENTS:
        for arg in args:
            if isinstance(arg, (str, bytes, os.PathLike)) and not inside(os.fspath(arg)):
                raise PermissionError(f"sandbox: {{event}} on {{arg!r}} outside the working directory")

code = compile(source, "program.py", "exec")
sys.addaudithook(hook)
del source
exec(code, {{"__name__": "__main__", "__builtins__": __builtins__}})
"""


@dataclass(frozen=True)
class SandboxResult:
    status: str  # "ok" | "error" | "timeout"
    returncode: int | None
    output: str  # the tail of stdout + stderr
    seconds: float

    @property
    def passed(self) -> bool:
        return self.status == "ok"


@functools.lru_cache(maxsize=1)
def _network_isolation() -> tuple[str, ...]:
    """``unshare -rn`` (a private user + network namespace) when this machine permits it, else nothing."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return ()
    try:
        probe = subprocess.run([unshare, "-rn", "true"], capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return ()
    return (unshare, "-rn") if probe.returncode == 0 else ()


def run_python(
    program: str, timeout_s: float = 10.0, memory_mb: int = 1024, max_file_mb: int = 16, output_chars: int = 2000
) -> SandboxResult:
    """Run ``program`` with the limits above; ``ok`` means it exited with status 0 within ``timeout_s``."""
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="prerl-sandbox-") as workdir:
        with open(os.path.join(workdir, "program.py"), "w", encoding="utf-8") as f:
            f.write(program)
        runner = _RUNNER.format(memory=memory_mb << 20, cpu=max(1, int(timeout_s) + 1), fsize=max_file_mb << 20)
        with open(os.path.join(workdir, "runner.py"), "w", encoding="utf-8") as f:
            f.write(runner)
        env = {"PATH": "/usr/bin:/bin", "HOME": workdir, "TMPDIR": workdir, "LANG": "C.UTF-8", "PYTHONHASHSEED": "0"}
        cmd = [*_network_isolation(), sys.executable, "-I", "-B", "runner.py"]
        proc = subprocess.Popen(
            cmd,
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            out, _ = proc.communicate(timeout=timeout_s)
            status = "ok" if proc.returncode == 0 else "error"
        except subprocess.TimeoutExpired:
            status, out = "timeout", b""
        finally:
            _kill_group(proc)
        if status == "timeout":
            try:  # what it printed before it was killed
                out, _ = proc.communicate(timeout=2)
            except subprocess.TimeoutExpired:
                pass
    text = out.decode("utf-8", errors="replace")[-output_chars:]
    return SandboxResult(status, proc.returncode, text, time.monotonic() - start)


def _kill_group(proc: subprocess.Popen) -> None:
    """SIGKILL the child's whole process group (it leads its own session), then reap the child."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait()
