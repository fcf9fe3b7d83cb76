"""The rows of a suite's JSONL files: corpus passages and examples, each checked, then kept."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from harness.core.suites.problems import _json_type, _Problems, _show
from harness.core.text import did_you_mean
from harness.core.types import TASKS, Document, Example


# -- the corpus ---------------------------------------------------------------------------------
def _corpus_rows(rows: list[tuple[int, dict[str, Any]]], path: Path,
                 problems: _Problems) -> tuple[list[Document], set[str]]:
    """The corpus's good passages, and the ids of all (a broken line's id still counts for doc_ids)."""
    corpus: list[Document] = []
    corpus_ids: set[str] = set()
    seen_docs: dict[str, int] = {}
    for n, obj in rows:
        if isinstance(obj.get("id"), str):
            corpus_ids.add(obj["id"])
        why = _check_passage(obj)
        for message in why:
            problems.add(path, n, message)
        if why:
            continue
        doc_id = obj["id"]
        if doc_id in seen_docs:
            problems.add(path, n, f"duplicate corpus id '{_show(doc_id)}' (first at line {seen_docs[doc_id]})")
            continue
        seen_docs[doc_id] = n
        corpus.append(Document(doc_id, obj["text"], obj.get("title", "")))
    return corpus, corpus_ids


def _check_passage(obj: dict[str, Any]) -> list[str]:
    """Every problem of one corpus row but a duplicate id (empty when it is valid)."""
    missing = [k for k in ("id", "text") if k not in obj]
    if missing:
        return [f"corpus line without {' and '.join(missing)}"]
    why = [f"corpus '{k}' must be a non-empty string, got {_json_type(obj[k])}"
           for k in ("id", "text") if not isinstance(obj[k], str)]
    why += [f"corpus '{k}' must be a non-empty string" for k in ("id", "text")
            if isinstance(obj[k], str) and not obj[k].strip()]
    if "title" in obj and not isinstance(obj["title"], str):
        why.append(f"corpus 'title' must be a string, got {_json_type(obj['title'])}")
    return why


# -- examples -----------------------------------------------------------------------------------
def _example_rows(rows: list[tuple[int, dict[str, Any]]], path: Path, problems: _Problems,
                  seen_ids: dict[str, str], *, task: str, labels: tuple[str, ...], fields: tuple[str, ...],
                  has_corpus: bool, corpus_ids: set[str] | None) -> list[Example]:
    """The good examples of one split file; `seen_ids` (id -> `file:line`) spans all the splits."""
    examples: list[Example] = []
    for n, obj in rows:
        why = _check_row(obj, task, labels, fields, has_corpus, corpus_ids)
        ex_id = obj.get("id")
        if isinstance(ex_id, str) and ex_id.strip():
            if ex_id in seen_ids:
                why.insert(0, f"duplicate id '{_show(ex_id)}' (first at {seen_ids[ex_id]})")
            else:
                seen_ids[ex_id] = f"{path.name}:{n}"
        for message in why:
            problems.add(path, n, message)
        if not why:
            examples.append(_to_example(obj))
    return examples


def _check_refs(target: Any) -> str | None:
    """Why a qa / generation / classification target is not one or more references."""
    if isinstance(target, str):
        refs = [target]
    elif isinstance(target, list) and target and all(isinstance(t, str) for t in target):
        refs = target
    else:
        got = "" if isinstance(target, list) else f", got {_json_type(target)}"
        return f"target must be a non-empty string or a list of strings{got}"
    if any(not r.strip() for r in refs):
        return "target is empty"
    return None


def _check_target(target: Any, task: str, labels: tuple[str, ...], fields: tuple[str, ...]) -> list[str]:
    """Why a target does not fit the task (empty when it does)."""
    if task == "extraction":
        if not isinstance(target, dict):
            return ["extraction target must be a JSON object of fields"]
        why = []
        for key, value in target.items():
            if not key.strip():
                why.append("extraction target has an empty field name")
            elif fields and key not in fields:
                why.append(f"field '{_show(key)}' is not one of the suite's fields{did_you_mean(key, fields)}")
            if not isinstance(value, str):
                why.append(f"field '{_show(key)}' must be a string, got {_json_type(value)}")
        return why
    if task not in TASKS:  # the task is already reported once; no problem on every line
        return []
    why_refs = _check_refs(target)
    if why_refs:
        return [why_refs]
    if task == "classification" and labels:
        refs = [target] if isinstance(target, str) else target
        outside = [r for r in refs if r not in labels]
        if outside:
            return [f"target '{_show(outside[0])}' is not one of the suite's labels{did_you_mean(outside[0], labels)}"]
    return []


def _check_row(obj: dict[str, Any], task: str, labels: tuple[str, ...], fields: tuple[str, ...],
               has_corpus: bool, corpus_ids: set[str] | None) -> list[str]:
    """Every problem of one example row except duplicate ids (empty when it is valid).

    `corpus_ids` is None when the corpus could not be read: that is reported once, at [corpus].
    """
    missing = [k for k in ("id", "input", "target") if k not in obj]
    if missing:
        return [f"missing {', '.join(repr(k) for k in missing)}"]
    why: list[str] = []
    if not isinstance(obj["id"], str):
        why.append(f"'id' must be a string, got {_json_type(obj['id'])}")
    elif not obj["id"].strip():
        why.append("'id' must be a non-empty string")
    if not isinstance(obj["input"], str) or not obj["input"].strip():
        got = "" if isinstance(obj["input"], str) else f", got {_json_type(obj['input'])}"
        why.append(f"'input' must be a non-empty string{got}")
    why.extend(_check_target(obj["target"], task, labels, fields))
    if "meta" in obj:
        why.extend(_check_meta(obj["meta"]))
    if "doc_ids" in obj:
        why.extend(_check_doc_ids(obj["doc_ids"], has_corpus, corpus_ids))
    return why


def _check_meta(meta: Any) -> list[str]:
    if not isinstance(meta, dict):
        return [f"'meta' must be a JSON object, got {_json_type(meta)}"]
    why = []
    for key, value in meta.items():
        if isinstance(value, list | dict):
            why.append(f"meta '{_show(key)}' must be a string, number, boolean or null "
                       f"(it names a slice), got {_json_type(value)}")
        elif isinstance(value, float) and not math.isfinite(value):  # NaN / Infinity: not JSON
            why.append(f"meta '{_show(key)}' must be a finite number, got {value}")
    return why


def _check_doc_ids(doc_ids: Any, has_corpus: bool, corpus_ids: set[str] | None) -> list[str]:
    if not isinstance(doc_ids, list) or not all(isinstance(d, str) and d.strip() for d in doc_ids):
        return ["'doc_ids' must be a list of corpus ids (strings)"]
    if doc_ids and not has_corpus:
        return ["'doc_ids' given but the suite has no [corpus]"]
    if corpus_ids is not None:
        unknown = [d for d in doc_ids if d not in corpus_ids]
        if unknown:
            return [f"doc_ids name '{_show(unknown[0])}', which is not in the corpus"]
    return []


def _to_example(obj: dict[str, Any]) -> Example:
    target = obj["target"]
    if isinstance(target, list):
        target = tuple(target)
    elif isinstance(target, dict):
        target = dict(target)
    return Example(
        id=obj["id"],
        input=obj["input"],
        target=target,
        meta=dict(obj.get("meta") or {}),
        doc_ids=tuple(obj.get("doc_ids") or ()),
    )
