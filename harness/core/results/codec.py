"""Dataclasses to JSON and back, checked against their type hints: the one codec of results.json.

`to_json` turns a record into plain JSON values (tuples become lists, a float that is not finite
becomes null, a field marked `omit` is left out while it is None, an `extra` field's keys are
merged into the object). `from_json(cls, value)` builds the record back and refuses a value of the
wrong type with its JSON path ("strategies.rag.metrics.f1.ci[1]: expected a number, got 'x'"), so
a hand-edited results.json is one line naming what is wrong, never a TypeError deep in a report.
Keys a record does not know are ignored (files from a newer version stay readable), except where
the record keeps them in its `extra` field.
"""

from __future__ import annotations

import dataclasses
import math
import types
import typing
from collections.abc import Mapping
from functools import cache
from typing import Any, TypeVar, Union

T = TypeVar("T")


class ResultsError(ValueError):
    """A value that does not fit its record: `path` says where in the JSON document."""

    def __init__(self, path: str, why: str) -> None:
        super().__init__(f"{path or 'the document'}: {why}")
        self.path, self.why = path, why


def omit(default: Any = None) -> Any:
    """A field left out of the JSON while it holds None (optional sections, additive keys)."""
    return dataclasses.field(default=default, metadata={"omit": True})


def extra() -> Any:
    """The field that keeps the keys its record does not declare (a plugin's own sections)."""
    return dataclasses.field(default_factory=dict, metadata={"extra": True})


def to_json(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        out: dict[str, Any] = {}
        for f in dataclasses.fields(value):
            v = getattr(value, f.name)
            if f.metadata.get("extra"):
                out.update({k: to_json(x) for k, x in v.items() if k not in out})
            elif not (f.metadata.get("omit") and v is None):
                out[f.name] = to_json(v)
        return out
    if isinstance(value, Mapping):
        return {str(k): to_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_json(v) for v in value]
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def from_json(cls: type[T], value: Any, path: str = "") -> T:
    """`value` (parsed JSON) as a `cls` record; ResultsError with the path of the first bad value."""
    return _convert(cls, value, path)  # type: ignore[no-any-return]


def _record(cls: type, value: Any, path: str) -> Any:
    if not isinstance(value, dict):
        raise ResultsError(path, f"expected an object, got {_shown(value)}")
    hints, kwargs, known = _hints(cls), {}, set()
    extra_field = None
    for f in dataclasses.fields(cls):
        known.add(f.name)
        if f.metadata.get("extra"):
            extra_field = f.name
            continue
        where = f"{path}.{f.name}" if path else f.name
        if f.name in value:
            kwargs[f.name] = _convert(hints[f.name], value[f.name], where)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            if not _optional(hints[f.name]):
                raise ResultsError(where, "missing")
            kwargs[f.name] = None
    if extra_field is not None:
        kwargs[extra_field] = {k: v for k, v in value.items() if k not in known}
    return cls(**kwargs)


def _optional(hint: Any) -> bool:
    return _is_union(hint) and type(None) in typing.get_args(hint)


def _is_union(hint: Any) -> bool:
    return typing.get_origin(hint) in (Union, types.UnionType)


def _convert(hint: Any, value: Any, path: str) -> Any:
    # long: one branch per kind of type hint the records use; each says what it expected
    if hint is Any:
        return value
    if isinstance(hint, type) and dataclasses.is_dataclass(hint):
        return _record(hint, value, path)
    if _is_union(hint):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _convert(option, value, path)
            except ResultsError as e:
                errors.append(e.why)
        raise ResultsError(path, errors[0] if len(errors) == 1 else f"no form fits {_shown(value)}")
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ResultsError(path, f"expected a list, got {_shown(value)}")
        if origin is tuple and args and args[-1] is not Ellipsis:
            if len(value) != len(args):
                raise ResultsError(path, f"expected a list of {len(args)}, got {len(value)} items")
            return tuple(_convert(a, v, f"{path}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True)))
        item = args[0] if args else Any
        items = [_convert(item, v, f"{path}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ResultsError(path, f"expected an object, got {_shown(value)}")
        item = args[1] if len(args) == 2 else Any
        return {str(k): _convert(item, v, f"{path}.{k}") for k, v in value.items()}
    return _scalar(hint, value, path)


def _scalar(hint: Any, value: Any, path: str) -> Any:
    if hint is bool:
        if isinstance(value, bool):
            return value
        raise ResultsError(path, f"expected true or false, got {_shown(value)}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ResultsError(path, f"expected a whole number, got {_shown(value)}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise ResultsError(path, f"expected a number, got {_shown(value)}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ResultsError(path, f"expected text, got {_shown(value)}")
    if hint is type(None):
        if value is None:
            return None
        raise ResultsError(path, f"expected null, got {_shown(value)}")
    raise TypeError(f"the results codec has no rule for {hint!r}")  # a record declared with an unknown type


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
