"""Raw rows from a local file (JSONL, Parquet, or either inside a zip) or from the Hugging Face Hub.

Every row comes with ``where``, the place to name in an error: ``path:line`` for JSONL (1-based),
``path:row N`` for Parquet, ``hub_id[config]:row N`` for the Hub. Zipped files are read in memory
only; encrypted ones with ``password`` (GPQA's copy uses its authors' public password).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Iterator

Row = tuple[dict, str]  # (row, where)


class MalformedRow(ValueError):
    """A row that is not a JSON object or lacks a field; the message starts with its file and line."""


def read_local(path: str, password: bytes | None = None) -> Iterator[Row]:
    file = Path(path)
    if not file.exists():
        raise FileNotFoundError(f"no such data file: {path}")
    if file.suffix == ".zip":
        yield from _read_zip(file, password)
    elif file.suffix == ".parquet":
        yield from _parquet_rows(file.read_bytes(), str(file))
    elif file.suffix in (".jsonl", ".json"):
        with open(file, "rb") as f:
            yield from _jsonl_rows(f, str(file))
    else:
        raise ValueError(f"{path}: expected a .jsonl, .parquet or .zip file")


def _read_zip(file: Path, password: bytes | None) -> Iterator[Row]:
    with zipfile.ZipFile(file) as archive:
        members = [m for m in archive.namelist() if m.endswith((".jsonl", ".json", ".parquet"))]
        if len(members) != 1:
            raise ValueError(f"{file}: expected one .jsonl or .parquet member, found {archive.namelist()}")
        member = members[0]
        where = f"{file}!{member}"
        with archive.open(member, pwd=password) as f:  # decrypted in memory, never written out
            if member.endswith(".parquet"):
                yield from _parquet_rows(f.read(), where)
            else:
                yield from _jsonl_rows(f, where)


def _jsonl_rows(lines, where: str) -> Iterator[Row]:
    for number, raw in enumerate(lines, start=1):
        if not raw.strip():
            continue
        try:
            row = json.loads(raw)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise MalformedRow(f"{where}:{number}: not valid JSON ({err})") from None
        if not isinstance(row, dict):
            raise MalformedRow(f"{where}:{number}: expected a JSON object, got {type(row).__name__}")
        yield row, f"{where}:{number}"


def _parquet_rows(data: bytes, where: str) -> Iterator[Row]:
    import pyarrow.parquet as pq

    for number, row in enumerate(pq.read_table(io.BytesIO(data)).to_pylist()):
        yield row, f"{where}:row {number}"


def read_hub(hub_id: str, configs: tuple[str | None, ...], split: str) -> Iterator[Row]:
    """Rows of ``hub_id`` (all ``configs`` in turn; each row gets ``_config``) via ``datasets.load_dataset``."""
    from datasets import load_dataset

    for config in configs:
        dataset = load_dataset(hub_id, config, split=split)
        label = f"{hub_id}[{config}]" if config else hub_id
        for number, row in enumerate(dataset):
            yield {**row, "_config": config}, f"{label}:row {number}"
