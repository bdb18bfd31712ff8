"""The sandbox stops generated code that escapes its directory, opens sockets, forks, loops or hogs memory."""

import socket
import threading
import time

import pytest

from prerl.scoring.sandbox import run_python


def test_a_correct_program_passes_and_may_use_its_own_directory():
    result = run_python("open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())", timeout_s=5)
    assert result.passed and result.output.strip() == "ok"
    assert not run_python("assert 1 == 2", timeout_s=5).passed


def test_writes_outside_the_directory_are_refused(tmp_path):
    target = tmp_path / "escaped.txt"
    for program in (
        f"open({str(target)!r}, 'w').write('x')",
        f"import os; os.open({str(target)!r}, os.O_WRONLY | os.O_CREAT)",
        f"import os; os.rename('program.py', {str(target)!r})",
        "import os; os.remove('/etc/hostname')",
    ):
        result = run_python(program, timeout_s=5)
        assert result.status == "error" and "sandbox:" in result.output, program
    assert not target.exists()


def test_sockets_are_refused():
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen()
    server.settimeout(0.5)
    port = server.getsockname()[1]
    result = run_python(f"import socket; socket.create_connection(('127.0.0.1', {port}), timeout=2)", timeout_s=5)
    assert result.status == "error" and "socket" in result.output
    with pytest.raises(socket.timeout):  # nothing ever connected
        server.accept()
    server.close()


@pytest.mark.parametrize(
    "program",
    [
        "import os\nwhile True:\n    os.fork()",
        "import multiprocessing as mp\nwhile True:\n    mp.Process(target=print).start()",
        "import subprocess\nsubprocess.Popen(['sh', '-c', ':(){ :|:& };:'])",
        "import os\nos.system('sleep 100 &')",
    ],
)
def test_fork_bombs_are_stopped(program):
    result = run_python(program, timeout_s=5)
    assert result.status == "error" and "is not allowed" in result.output


def test_infinite_loops_are_killed_at_the_time_limit():
    start = time.monotonic()
    result = run_python(
        "import threading\nthreading.Thread(target=lambda: [0 for _ in iter(int, 1)]).start()\nwhile True:\n    pass",
        timeout_s=1.5,
    )
    assert result.status == "timeout" and time.monotonic() - start < 6


def test_memory_is_limited():
    result = run_python("x = bytearray(8 << 30)", timeout_s=5, memory_mb=512)
    assert result.status == "error" and "MemoryError" in result.output


def test_runs_in_parallel_threads():
    results = [None] * 4

    def work(i):
        results[i] = run_python(f"print({i} * 2)", timeout_s=5)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert [r.output.strip() for r in results] == ["0", "2", "4", "6"]
