"""Things built once into the cache folder and reused: the mini base models, dequantized GGUF models."""

from __future__ import annotations

import fcntl
from pathlib import Path
from typing import Callable

from prerl.tracking.fingerprint import BUILD_INFO


def build_once(folder: Path, build: Callable[[Path], object]) -> Path:
    """``folder``, built by ``build(folder)`` first unless a finished build (its ``prerl_build.json``) is
    there. Parallel sweep jobs share the cache: one builds under a file lock, the others wait and reuse it."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    with open(folder.with_name(folder.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / BUILD_INFO).exists():
            build(folder)
    return folder
