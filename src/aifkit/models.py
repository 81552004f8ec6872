"""Typed configuration and records: aifkit's pydantic base models and its one validation entry.

Every configuration file (catalog, site profiles, facts, hub config) and every JSON record
(grading jobs and results, the validation state) is a model derived from ``Model`` (read-only)
or ``MutableModel`` (records filled in as work proceeds). Both refuse unknown keys, so a typo
is an error, and take types strictly: ``"2"`` is not a whole number and ``1`` is not text.

``validate`` is how files become models. It turns pydantic's errors into aifkit's message
style, one line per problem: which file, which key, what is wrong and what is expected::

    hub-config/factory/config.yml: profiles[1].gpus: needs a whole number, got 'two'

A field's ``description`` is what the message says it needs; without one its type is
described. Validators on the models raise ``ValueError`` with the text to show: one problem per
line, each line may start with its own key path.
"""

from __future__ import annotations

import difflib
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, Union

from pydantic import BaseModel, ConfigDict, Field, Strict, StringConstraints, ValidationError
from pydantic.fields import FieldInfo

from aifkit.errors import AifkitError

M = TypeVar("M", bound=BaseModel)
T = TypeVar("T")
Loc = tuple[str | int, ...]

# A list in the file kept as an immutable tuple (strict mode alone accepts only real tuples).
Items = Annotated[tuple[T, ...], Strict(False)]
# Text a person wrote: surrounding blanks dropped, and something left.
Text = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1), Field(description="non-empty text")
]

_KEY = "[key]"  # pydantic's marker for a problem with a mapping's key rather than its value
_LONGEST_VALUE = 60


class Model(BaseModel):
    """Base of aifkit's configuration: read-only, unknown keys refused, no silent coercion."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class MutableModel(Model):
    """Base of aifkit's records, which the code fills in field by field."""

    model_config = ConfigDict(frozen=False)


def validate(
    model: type[M],
    data: Any,
    *,
    source: str | Path,
    error: type[AifkitError],
    from_json: bool = False,
    hint: str = "",
) -> M:
    """``data`` (parsed YAML, or JSON text when ``from_json``) as a ``model``; else ``error``.

    The error lists every problem, one per line, as ``<source>: <key path>: <problem>``, then
    ``hint`` (how to recover, for records a person does not write by hand) when given.
    """
    try:
        if from_json:
            return model.model_validate_json(data)
        return model.model_validate(data)
    except ValidationError as exc:
        lines = problems(exc, model, None if from_json else data, source=str(source))
        raise error("\n".join([*lines, hint] if hint else lines)) from None


def name_entries(data: Any, key: str) -> Any:
    """``data`` with each entry of its ``key`` mapping given its own key as ``name``.

    YAML files name entries by their keys (``partitions: {gpu: {...}}``); the models carry the
    name inside each entry. Anything that is not such a mapping is left for validation to report.
    """
    if not isinstance(data, dict) or not isinstance(data.get(key), dict):
        return data
    named = {
        name: {**entry, "name": name} if isinstance(entry, dict) else entry
        for name, entry in data[key].items()
    }
    return {**data, key: named}


def load_json(
    model: type[M], path: Path, *, what: str, error: type[AifkitError], hint: str = ""
) -> M:
    """The ``model`` saved as JSON in ``path`` (``what`` names it in messages); else ``error``.

    Missing, unreadable and corrupt files alike raise ``error`` naming the file; ``hint`` says
    how to recover.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    return validate(model, text, source=path, error=error, from_json=True, hint=hint)


def problems(exc: ValidationError, model: type[BaseModel], data: Any, *, source: str) -> list[str]:
    """One ``<source>: <key path>: <problem>`` line per problem in ``exc``.

    ``data`` is what was validated (None when unknown): a problem inside a choice between
    types (``'all' or a list of names``) is reported once, with the value it was given.
    """
    entries: list[tuple[Loc, str | None]] = []
    missing: dict[Loc, list[str]] = {}
    for item in exc.errors(include_url=False):
        loc, kind = tuple(item["loc"]), item["type"]
        about_a_key = kind in ("missing", "extra_forbidden")  # located at the key's mapping
        place = _locate(model, loc[:-1] if about_a_key else loc)
        if kind == "missing" and not place.choice:
            if place.path not in missing:
                entries.append((place.path, None))  # "lacks ..." once per place, written below
            missing.setdefault(place.path, []).append(str(loc[-1]))
        elif kind == "extra_forbidden" and not place.choice:
            entries.append((place.path, _unknown_key(str(loc[-1]), place.annotation)))
        else:
            entries.append((place.path, _message(item, place, data)))
    lines: list[str] = []
    for path, message in entries:
        if message is None:
            needs = ", ".join(_required(_locate(model, path).annotation))
            message = f"lacks {', '.join(missing[path])} (needs {needs})"
        where = f"{_display(path)}: " if path else ""
        for part in message.splitlines():
            line = f"{source}: {where}{part}"
            if line not in lines:
                lines.append(line)
    return lines


@dataclass(frozen=True)
class _Place:
    """Where an error sits: its key path, the type expected there and its description."""

    path: Loc
    annotation: Any = None  # None: not known (a key the model does not have)
    description: str = ""
    choice: bool = False  # a union: the error belongs to the whole choice, not one option


def _locate(model: type[BaseModel], loc: Loc) -> _Place:
    """Follow ``loc`` through the model's fields, lists and mappings."""
    annotation, description = _unwrap(model)
    path: list[str | int] = []
    index = 0
    while index < len(loc):
        part = loc[index]
        if _is_union(annotation):  # pydantic adds the option's name to the location
            return _Place(tuple(path), annotation, description, choice=True)
        origin, args = typing.get_origin(annotation), typing.get_args(annotation)
        if _is_model(annotation) and isinstance(part, str):
            field = annotation.model_fields.get(part)
            if field is None:
                return _Place((*path, *_plain(loc[index:])))
            annotation, nested = _unwrap(field.annotation)
            description = field.description or nested
        elif origin in (dict, Mapping) and len(args) == 2:
            if loc[index + 1 : index + 2] == (_KEY,):
                annotation, description = _unwrap(args[0])
                index += 1
            else:
                annotation, description = _unwrap(args[1])
        elif origin in (list, tuple, Sequence) and args:
            annotation, description = _unwrap(args[0])
        else:
            return _Place((*path, *_plain(loc[index:])))
        path.append(part)
        index += 1
    return _Place(tuple(path), annotation, description)


def _plain(loc: Loc) -> Loc:
    return tuple(part for part in loc if part != _KEY)


def _unwrap(annotation: Any) -> tuple[Any, str]:
    """The type under ``Annotated[...]`` and ``X | None``, with any description it carries."""
    description = ""
    while True:
        if typing.get_origin(annotation) is Annotated:
            for meta in annotation.__metadata__:
                if isinstance(meta, FieldInfo) and meta.description:
                    description = meta.description
            annotation = annotation.__origin__
        elif _is_union(annotation, counting_none=True) and not _is_union(annotation):
            annotation = next(a for a in typing.get_args(annotation) if a is not type(None))
        else:
            return annotation, description


def _is_union(annotation: Any, *, counting_none: bool = False) -> bool:
    if typing.get_origin(annotation) not in (Union, types.UnionType):
        return False
    options = [a for a in typing.get_args(annotation) if counting_none or a is not type(None)]
    return len(options) > 1


def _is_model(annotation: Any) -> bool:
    return isinstance(annotation, type) and issubclass(annotation, BaseModel)


def _file_keys(annotation: Any, *, required: bool = False) -> list[str]:
    """The keys a file may (or must) write for a model; fields marked exclude are derived."""
    if not _is_model(annotation):
        return []
    fields: dict[str, FieldInfo] = annotation.model_fields
    return [
        name
        for name, field in fields.items()
        if not field.exclude and (field.is_required() or not required)
    ]


def _required(annotation: Any) -> list[str]:
    return _file_keys(annotation, required=True)


def _unknown_key(key: str, annotation: Any) -> str:
    allowed = sorted(_file_keys(annotation))
    if not allowed:
        return f"unknown key {key!r}"
    close = difflib.get_close_matches(key, allowed, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"unknown key {key!r} ({hint}allowed: {', '.join(allowed)})"


def _message(item: Any, place: _Place, data: Any) -> str:
    kind: str = item["type"]
    value = item.get("input")
    if place.choice:
        given = _value_at(data, place.path) if data is not None else value
        return f"needs {_describe(place.annotation)}, got {_short(given)}"
    if kind in ("value_error", "assertion_error"):
        return str(item["ctx"]["error"])
    if kind == "json_invalid":
        return f"not valid JSON: {item['ctx']['error']}"
    if place.description:
        return f"needs {place.description}, got {_short(value)}"
    if kind == "literal_error":
        return f"got {_short(value)}; use {item['ctx']['expected']}"
    if kind.endswith(("_type", "_parsing")) or kind == "int_from_float":
        return f"needs {_describe(place.annotation)}, got {_short(value)}"
    text: str = item["msg"]
    text = text.removeprefix("Input ") if text.startswith("Input ") else text[:1].lower() + text[1:]
    return f"{text}, got {_short(value)}"


def _describe(annotation: Any) -> str:
    """What a value of this type looks like, in the words of a configuration file."""
    annotation, description = _unwrap(annotation)
    if description:
        return description
    if _is_union(annotation):
        return _either([_describe(a) for a in typing.get_args(annotation) if a is not type(None)])
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return _either([repr(a) for a in typing.get_args(annotation)])
    if origin in (dict, Mapping) or _is_model(annotation):
        return "a mapping"
    if origin in (list, tuple, Sequence):
        return "a list"
    names = {bool: "true or false", int: "a whole number", float: "a number", str: "text"}
    return names.get(annotation, "a path" if annotation is Path else "a value")


def _either(options: list[str]) -> str:
    return options[0] if len(options) == 1 else f"{', '.join(options[:-1])} or {options[-1]}"


def _value_at(data: Any, path: Loc) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _display(path: Loc) -> str:
    """``tracks[0].assignments[1].minutes``: mapping keys joined by dots, list indexes bracketed."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else f".{part}" if text else str(part)
    return text


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= _LONGEST_VALUE else text[: _LONGEST_VALUE - 3] + "..."
