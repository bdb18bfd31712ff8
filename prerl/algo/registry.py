"""Registries of interchangeable parts: the open axes of an experiment, filled by plug-ins.

Each axis (policy loss, advantage estimator, objective advantage, sample selection, KL estimator,
loss aggregation, rollout correction) is a ``Registry``: a dict from the name a config value uses to the part's function,
filled by a decorator where the part is defined. A part may bring a ``check`` of the knobs it reads,
``check(section, where) -> [one-line errors]`` (``section`` is the config dataclass that names the
part, ``where`` its key, e.g. ``"algorithm"``), so that only the chosen parts' knobs are validated.
A part may read fields of the schema, or declare knobs of its own with defaults
(``knobs={"beta": 0.5}``): a config sets them under the section's ``params``
(``+algorithm.params.beta=0.3``), the part reads them with ``REGISTRY.knob(name, section, "beta")``,
and a key in ``params`` that no chosen part declares is an error.

Parts beyond the core ones live in plug-in modules: every module of the package ``prerl.algo.plugins``
and any module listed in the config's ``plugins``. ``load_plugins`` imports them; a registry loads
the package itself on a lookup of a name it does not hold, so that code which asks for a part by
name (tests, scripts) never depends on who imported what first. ``prerl.launch.choices.check_choices`` is
the one validation step: it loads the plug-ins, then checks every name and every chosen part's knobs
before any model loads. This module imports nothing of ``prerl`` and no third-party package.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Iterable

PLUGIN_PACKAGE = "prerl.algo.plugins"  # every module of it is imported (prerl/algo/plugins/__init__.py)

Check = Callable[[Any, str], Iterable[str]]  # (section config, its key) -> one-line errors


def load_plugins(modules: Iterable[str] = ()) -> None:
    """Import the plug-in package and the named modules (``plugins`` in the config); each registers
    its parts as it is imported. Importing twice is free (Python caches modules)."""
    for name in (PLUGIN_PACKAGE, *modules):
        try:
            importlib.import_module(name)
        except ImportError as err:
            raise ValueError(f"plugins: cannot import {name!r} ({type(err).__name__}: {err})") from err


class Registry(dict):
    """``name -> function`` of one kind of part, with each part's knob check."""

    def __init__(self, kind: str):
        super().__init__()
        self.kind = kind
        self.checks: dict[str, Check] = {}
        self.flags: dict[str, frozenset[str]] = {}  # what a part asks of the run (e.g. "needs_values")
        self.knobs: dict[str, dict[str, Any]] = {}  # the knobs a part declares beyond the schema, with defaults

    def register(
        self, name: str, check: Check | None = None, flags: Iterable[str] = (), knobs: dict[str, Any] | None = None
    ):
        """Decorator: ``@REGISTRY.register("name", check=...)`` adds the function under ``name``."""

        def deco(fn):
            if dict.get(self, name, fn) is not fn:
                raise ValueError(
                    f"{self.kind} {name!r} is registered twice ({fn.__module__} and {self[name].__module__})"
                )
            self[name] = fn
            self.flags[name] = frozenset(flags)
            self.knobs[name] = dict(knobs or {})
            if check is not None:
                self.checks[name] = check
            return fn

        return deco

    def __missing__(self, name: str):
        load_plugins()  # a plug-in's part asked for before anything loaded the package
        if dict.__contains__(self, name):
            return dict.__getitem__(self, name)
        raise KeyError(f"no {self.kind} {name!r}: choose one of {sorted(self)}")

    def flagged(self, name: str, flag: str) -> bool:
        """Whether part ``name`` was registered with ``flag`` (plug-ins loaded on a miss)."""
        self[name]
        return flag in self.flags.get(name, ())

    def knob(self, name: str, section: Any, key: str) -> Any:
        """Part ``name``'s own knob ``key``: ``section.params[key]`` when set, else its declared default."""
        return section.params.get(key, self.knobs[name][key])

    def validate(self, key: str, name: str, section: Any, where: str) -> list[str]:
        """Errors of the config value ``key=name``: an unknown name, else the chosen part's knob check."""
        load_plugins()
        if name not in self:
            return [f"{key}={name!r}: choose one of {sorted(self)}"]
        check = self.checks.get(name)
        return list(check(section, where)) if check is not None else []


def undeclared_params(section: Any, where: str, chosen: list[tuple[Registry, str]]) -> list[str]:
    """Errors for keys of ``section.params`` that none of the ``chosen`` (registry, name) parts declares."""
    declared = sorted({key for registry, name in chosen for key in registry.knobs.get(name, {})})
    return [
        f"{where}.params.{key}: no chosen part declares this knob; they declare {declared}"
        for key in section.params
        if key not in declared
    ]


def in_range(
    where: str, section: Any, name: str, low: float, high: float | None = None, low_open: bool = False
) -> list[str]:
    """``[error]`` when knob ``name`` of ``section`` (a field, else a key of its ``params``: unset there
    means the declared default) is outside [low, high] ((low, high] if ``low_open``)."""
    if not hasattr(section, name):
        if name not in section.params:
            return []
        where, value = f"{where}.params", section.params[name]
    else:
        value = getattr(section, name)
    lo = f"({low}" if low_open else f"[{low}"
    allowed = f"in {lo}, {high}]" if high is not None else (f"> {low}" if low_open else f">= {low}")
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return [f"{where}.{name}={value!r}: must be a number {allowed}"]
    above = value > low if low_open else value >= low
    return [] if above and (high is None or value <= high) else [f"{where}.{name}={value!r}: must be {allowed}"]
