"""Hugging Face datasets through the `datasets` library (imported lazily): a `save_to_disk` folder,
local data files (`load_dataset("csv" | "json" | "parquet", data_files=...)`, streamed), or a
hub name. Its readers are used as they are; this module only maps splits, turns ClassLabel ids
into their names and numbers the rows for `file:row N` messages.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import HarnessError, MissingPackageError
from harness.core.importing.readers import PROGRESS_EVERY
from harness.core.importing.rows import ProgressFn, Record
from harness.core.suites.problems import _show

# A DatasetDict's split names -> the suite's (other splits, like IMDB's "unsupervised", are left out).
SPLIT_NAMES = {"train": "train", "test": "test", "validation": "validation", "valid": "validation",
               "val": "validation", "dev": "validation"}
BUILDERS = {".csv": "csv", ".tsv": "csv", ".json": "json", ".jsonl": "json", ".parquet": "parquet"}


@dataclass(frozen=True)
class HFSplit:
    """One split of a dataset: what it is called in messages, its rows, and how many (None: unknown)."""

    split: str  # train | test | validation, "all" (one split the importer splits itself), "" (left out)
    where: str  # "name[split]" or the file
    dataset: Any  # a datasets.Dataset or IterableDataset
    total: int | None


def _datasets() -> Any:
    try:
        import datasets
    except ImportError:
        raise MissingPackageError("the datasets package (for Parquet files and Hugging Face datasets)",
                                  'pip install "datasets>=3"') from None
    return datasets


def is_saved_dataset(path: Path) -> bool:
    """A folder written by `Dataset.save_to_disk` or `DatasetDict.save_to_disk`."""
    return (path / "dataset_dict.json").is_file() or (path / "state.json").is_file()


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return _show(text[0] if text else type(e).__name__, 300)


def open_saved(path: Path, split: str | None) -> list[HFSplit]:
    datasets = _datasets()
    try:
        loaded = datasets.load_from_disk(str(path))
    except Exception as e:  # whatever the library raises for a broken folder: one line
        raise HarnessError(f"{path}: not a readable save_to_disk folder ({_first_line(e)})") from None
    return _splits(loaded, str(path), split)


def open_files(path: Path, split: str | None) -> list[HFSplit]:
    """A local data file read by a `datasets` builder, streamed (no Arrow copy in the cache)."""
    datasets = _datasets()
    builder = BUILDERS.get(path.suffix.lower())
    if builder is None:
        raise HarnessError(f"{path}: datasets reads .csv, .tsv, .json, .jsonl and .parquet files; "
                           f"this one ends in '{_show(path.suffix)}'")
    extra = {"delimiter": "\t"} if path.suffix.lower() == ".tsv" else {}
    try:
        loaded = datasets.load_dataset(builder, data_files=str(path), split="train", streaming=True, **extra)
    except Exception as e:
        raise HarnessError(f"{path}: datasets cannot read it as {builder} ({_first_line(e)})") from None
    total = _parquet_rows(path) if builder == "parquet" else None
    return [HFSplit("all", str(path), loaded, total)]


def _parquet_rows(path: Path) -> int | None:
    try:
        import pyarrow.parquet as pq

        return int(pq.read_metadata(str(path)).num_rows)
    except Exception:  # only the progress bar's total: datasets reports a bad file itself
        return None


def open_hub(name: str, config: str | None, split: str | None) -> list[HFSplit]:
    datasets = _datasets()
    try:
        loaded = datasets.load_dataset(name, config, split=split)
    except ConnectionError as e:
        offline = os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on")
        why = "HF_HUB_OFFLINE is set" if offline else "no network"
        raise HarnessError(f"'{_show(name)}' is no local file or folder, and the Hugging Face Hub cannot be reached "
                           f"({why}: {_first_line(e)}); give a local data file or a save_to_disk folder") from None
    except Exception as e:
        raise HarnessError(f"hub dataset '{_show(name)}': cannot be loaded ({_first_line(e)})") from None
    return _splits(loaded, name, split)


def _splits(loaded: Any, where: str, split: str | None) -> list[HFSplit]:
    """A Dataset (one split, or the one --split chose) or the train/test/validation of a DatasetDict."""
    if not hasattr(loaded, "keys"):  # a single Dataset
        return [HFSplit("all", f"{where}[{split}]" if split else where, loaded, len(loaded))]
    names = list(loaded.keys())
    if split is not None:
        if split not in names:
            raise HarnessError(f"{where}: no split '{_show(split)}'; splits: {', '.join(names)}")
        return [HFSplit("all", f"{where}[{split}]", loaded[split], len(loaded[split]))]
    kept = [HFSplit(SPLIT_NAMES[n], f"{where}[{n}]", loaded[n], len(loaded[n])) for n in names if n in SPLIT_NAMES]
    kept += [HFSplit("", f"{where}[{n}]", loaded[n], len(loaded[n])) for n in names if n not in SPLIT_NAMES]
    if len({s.split for s in kept if s.split}) < len([s for s in kept if s.split]):
        raise HarnessError(f"{where}: splits {', '.join(names)} name the validation split twice; choose one with --split")
    if not any(s.split == "train" for s in kept):
        raise HarnessError(f"{where}: no train split (splits: {', '.join(names)}); pick one with --split NAME "
                           "and it is split into train, test and validation")
    return kept


def records(part: HFSplit, progress: ProgressFn) -> Iterator[Record]:
    """Every row as a Record (`where:row N`), ClassLabel ids as their names (-1, unlabelled: None)."""
    names = _label_names(getattr(part.dataset, "features", None))
    what = f"reading {part.where}"
    n = 0
    try:
        for n, row in enumerate(part.dataset, 1):
            if n % PROGRESS_EVERY == 0:
                progress(what, n, part.total)
            for col, labels in names.items():
                value = row.get(col)
                if isinstance(value, int) and not isinstance(value, bool):
                    row[col] = labels[value] if 0 <= value < len(labels) else None
            yield Record(f"{part.where}:row {n}", n, row)
    except HarnessError:
        raise
    except Exception as e:  # a file that breaks mid-way: the library's reason, one line
        raise HarnessError(f"{part.where}: reading stopped after row {n} ({_first_line(e)})") from None
    progress(what, n, part.total if part.total is not None else n)


def _label_names(features: Any) -> dict[str, list[str]]:
    if not features:
        return {}
    datasets = _datasets()
    return {col: list(f.names) for col, f in features.items() if isinstance(f, datasets.ClassLabel)}
