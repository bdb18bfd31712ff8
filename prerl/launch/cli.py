"""The command line's first second: compose the config, check it, and answer bad input in one line.

``train.py`` calls ``preflight`` before Hydra runs the job and before anything heavy (torch,
transformers, MLflow) is imported, so a typo costs about a second. Every error that composing or
checking can raise — Hydra's (unknown group option, unparsable override), OmegaConf's (unknown key,
wrong type) and ``prerl.config.schema.ConfigError`` (a value out of range, a missing local path, a length
past the model's positions) — becomes one line naming the key, the value and what is allowed.
``HYDRA_FULL_ERROR=1`` skips all of this and shows Hydra's own traceback.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import sys
import typing
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Mapping, Optional, Sequence

from hydra import compose, initialize_config_dir
from hydra.core.hydra_config import HydraConfig
from hydra.errors import HydraException, MissingConfigException, OverrideParseException
from omegaconf import DictConfig, OmegaConf, open_dict
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from prerl.config.docs import CONF, group_options, nested_dataclass
from prerl.config.schema import ConfigError, TrainConfig, register_configs
from prerl.launch.choices import check_choices

EXIT_BAD_CONFIG = 2


def _first_line(text: str) -> str:
    return " ".join(text.strip().splitlines()[0].split()) if text.strip() else ""


def _schema_at(path: str) -> Optional[type]:
    """The dataclass that holds ``path``'s keys (``rollout.vllm`` -> VLLMConfig), or None below a dict."""
    cls: Optional[type] = TrainConfig
    for part in [p for p in path.split(".") if p]:
        hints = typing.get_type_hints(cls) if cls is not None else {}
        if part not in hints:
            return None
        cls = nested_dataclass(hints[part])
    return cls


def _unknown_key(full_key: str) -> str:
    parent, _, leaf = full_key.rpartition(".")
    cls = _schema_at(parent)
    if cls is None:
        return f"{full_key}: unknown key"
    keys = [f.name for f in dataclasses.fields(cls)]
    near = difflib.get_close_matches(leaf, keys, n=1, cutoff=0.5)
    hint = f"did you mean {(parent + '.' if parent else '') + near[0]}? " if near else ""
    where = f"{parent}'s keys" if parent else "top-level keys"
    return f"{full_key}: unknown key; {hint}{where}: {', '.join(keys)} (--help explains each)"


def one_line(exc: BaseException) -> str:
    """One line for a config error of Hydra, OmegaConf or prerl: the key, the value, what is allowed."""
    if isinstance(exc, ConfigError):
        return _first_line(str(exc))
    if isinstance(exc, MissingConfigException):
        missing = exc.missing_cfg_file or ""
        group, _, option = missing.rpartition("/")
        if group and exc.options:
            return f"{group}={option}: no such option. Available options: {', '.join(exc.options)}"
        return _first_line(str(exc))
    if isinstance(exc, OverrideParseException):
        return (
            f"{exc.override}: cannot parse the override ({_first_line(exc.message)}; "
            "https://hydra.cc/docs/advanced/override_grammar/basic)"
        )
    cause = exc.__cause__ if isinstance(exc, HydraException) and exc.__cause__ is not None else exc
    if isinstance(cause, OmegaConfBaseException):
        key = getattr(cause, "full_key", None)
        if isinstance(cause, (ConfigKeyError, AttributeError)) and key:
            return _unknown_key(key)
        message = _first_line(getattr(cause, "msg", None) or str(cause))
        return f"{key}: {message}" if key else message
    return "; ".join(line.strip() for line in str(exc).strip().splitlines() if line.strip())


def _check_unknown_keys(cfg: DictConfig, path: str = "") -> None:
    """Keys added with ``+key=...`` that the schema does not know (OmegaConf lets them through)."""
    cls = _schema_at(path)
    if cls is None:
        return
    names = {f.name for f in dataclasses.fields(cls)}
    for key in map(str, cfg):
        full = f"{path}.{key}" if path else key
        if key not in names:
            raise ConfigError(_unknown_key(full))
        child = cfg._get_node(key)
        if isinstance(child, DictConfig) and not child._is_none() and not child._is_interpolation():
            _check_unknown_keys(child, full)


def _check_group_choices(choices: Mapping[str, Optional[str]]) -> None:
    """An ``optional`` group (``experiment``) silently ignores an option without a file; refuse it."""
    for group, option in choices.items():
        if option is None or group.startswith("hydra") or not (CONF / group).is_dir():
            continue
        if option not in group_options(group):
            raise ConfigError(f"{group}={option}: no such option. Available options: {', '.join(group_options(group))}")


def to_train_config(cfg: DictConfig, choices: Optional[Mapping[str, Optional[str]]] = None) -> TrainConfig:
    """The checked dataclasses of a composed config; every failure is a one-line ``ConfigError``."""
    try:
        _check_group_choices(choices or {})
        _check_unknown_keys(cfg)
        run_cfg: TrainConfig = OmegaConf.to_object(cfg)  # type: ignore[assignment]
        check_choices(run_cfg)  # registered names and their parts' knobs, once the plug-ins load
        return run_cfg
    except ConfigError:
        raise
    except (OmegaConfBaseException, HydraException) as e:
        raise ConfigError(one_line(e)) from e


def compose_checked(overrides: Sequence[str], config_name: str = "config", config_dir: Path = CONF) -> TrainConfig:
    """Compose ``config_name`` with ``overrides`` as ``train.py`` would and check it (no job is run)."""
    register_configs()
    try:
        with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
            cfg = compose(config_name, overrides=list(overrides), return_hydra_config=True)
    except HydraException as e:
        raise ConfigError(one_line(e)) from e
    # What Hydra does before a job: the run folder is known, then the hydra node leaves the config.
    cfg.hydra.runtime.output_dir = os.path.abspath(str(cfg.hydra.run.dir))
    HydraConfig.instance().set_config(cfg)
    choices = dict(cfg.hydra.runtime.choices)
    with open_dict(cfg):
        del cfg["hydra"]
    return to_train_config(cfg, choices)


def full_error() -> bool:
    return os.environ.get("HYDRA_FULL_ERROR") == "1"


@contextmanager
def exit_on_config_error() -> Iterator[None]:
    """A ``ConfigError`` becomes one line on stderr and exit status 2 (a traceback with HYDRA_FULL_ERROR=1)."""
    try:
        yield
    except ConfigError as e:
        if full_error():
            raise
        print(f"config error: {one_line(e)}", file=sys.stderr)
        sys.exit(EXIT_BAD_CONFIG)


def preflight(argv: Sequence[str], config_name: str = "config") -> None:
    """Check a single run's command line before Hydra runs it. Left to Hydra: multiruns (each job is
    checked as it starts), --help/--cfg/--info and the like, and HYDRA_FULL_ERROR=1."""
    from hydra._internal.utils import get_args_parser  # Hydra's own parser of its command line

    args, _ = get_args_parser().parse_known_args(list(argv))
    informational = (
        args.help,
        args.hydra_help,
        args.cfg,
        args.info,
        args.shell_completion,
        args.experimental_rerun,
        args.multirun,
        args.config_dir,
        args.config_path,
    )
    if full_error() or any(informational):
        return
    with exit_on_config_error():
        compose_checked(args.overrides, args.config_name or config_name)
