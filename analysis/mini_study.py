"""Moved: the mini study is ``analysis/study/`` (``mini.py`` its parts and presets, ``claims.py`` its claims,
``claim_measures.py`` its measurements, ``mini_document.py`` + ``templates/mini.md`` its document).
Running this module, or importing a name from it, says where to go instead."""

MOVED = (
    "analysis.mini_study moved to analysis.study: `python -m analysis.study doc --study mini [--preset quick]` "
    "writes docs/mini-study.md, `python -m analysis.study run --study mini` runs the study (make mini-study), "
    "and its claims and measurements are analysis/study/claims.py and claim_measures.py"
)


def __getattr__(name: str):
    if name.startswith("__"):  # what the import machinery probes for (__path__, __spec__ ...)
        raise AttributeError(name)
    raise ImportError(f"{MOVED} (analysis.mini_study.{name} is gone)")


if __name__ == "__main__":
    raise SystemExit(MOVED)
