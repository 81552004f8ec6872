"""Facts about the AI Factory, with their units and sources: the one place for factory numbers.

Notebooks never write ``989e12`` or ``2100`` themselves; they ask this module::

    from aifkit.course import facts
    peak = facts.value("h100_bf16_dense")          # 9.89e14 (FLOP/s)
    gpus = facts.get("factory_accelerators")        # Fact(name=..., value=2100.0, unit=..., ...)
    print(facts.describe("factory_accelerators", "h100_bf16_dense"))

The data live in ``aifkit/data/facts.yml`` (package data). Each entry is either a ``fact``
(stated by a vendor, the site or a publication) or an ``assumption`` (our estimate; a site
replaces it with its own number), so a learner can always tell which is which.
"""

from __future__ import annotations

import difflib
import math
from collections.abc import Hashable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any, Final, Literal, cast

import yaml

from aifkit.errors import FactsError

Kind = Literal["fact", "assumption"]
KINDS: Final[tuple[str, ...]] = ("fact", "assumption")
_REQUIRED: Final[frozenset[str]] = frozenset({"value", "unit", "source", "kind"})
_ALLOWED: Final[frozenset[str]] = _REQUIRED | {"note"}


@dataclass(frozen=True)
class Fact:
    """One number about the factory, with what it measures and where it comes from."""

    name: str
    value: float
    unit: str
    source: str
    kind: Kind
    note: str = ""

    @property
    def is_assumption(self) -> bool:
        """True for our own estimates, which a site should check against its machine."""
        return self.kind == "assumption"

    def __str__(self) -> str:
        label = " [assumption]" if self.is_assumption else ""
        return f"{self.name} = {self.value:g} {self.unit}{label}"


def data_path() -> Path:
    """Where the packaged facts file lives."""
    return Path(str(resources.files("aifkit") / "data" / "facts.yml"))


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise FactsError(
                f"duplicate key {key!r} at line {key_node.start_mark.line + 1}: "
                "each fact (and each field of a fact) may appear only once"
            )
        seen.add(key)
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_unique_mapping
)


def _number(name: str, raw: object, where: str) -> float:
    """Read a fact's value: a YAML number, or a string like '989e12' (YAML 1.1 reads it as text)."""
    if isinstance(raw, bool) or not isinstance(raw, int | float | str):
        raise FactsError(f"{where}: fact {name!r} has value {raw!r}; write a number such as 989e12")
    try:
        number = float(raw)
    except ValueError:
        raise FactsError(
            f"{where}: fact {name!r} has value {raw!r}; write a number such as 989e12"
        ) from None
    if not math.isfinite(number) or number <= 0:
        raise FactsError(f"{where}: fact {name!r} must be a positive finite number, got {raw!r}")
    return number


def _text(name: str, entry: Mapping[str, object], key: str, where: str) -> str:
    raw = entry.get(key, "")
    if raw is None:
        raw = ""
    if not isinstance(raw, str):
        raise FactsError(f"{where}: fact {name!r} field {key!r} must be text, got {raw!r}")
    return raw.strip()


def _parse_fact(name: object, entry: object, where: str) -> Fact:
    if not isinstance(name, str) or not name.isidentifier():
        raise FactsError(f"{where}: fact name {name!r} must be a snake_case identifier")
    if not isinstance(entry, Mapping):
        raise FactsError(f"{where}: fact {name!r} must be a mapping of value, unit, source, kind")
    keys = set(entry)
    missing = sorted(_REQUIRED - keys)
    if missing:
        raise FactsError(f"{where}: fact {name!r} lacks {', '.join(missing)}")
    unknown = sorted(str(key) for key in keys - _ALLOWED)
    if unknown:
        raise FactsError(
            f"{where}: fact {name!r} has unknown field(s) {', '.join(unknown)}; "
            f"allowed: {', '.join(sorted(_ALLOWED))}"
        )
    fields = cast(Mapping[str, object], entry)
    value = _number(name, fields["value"], where)
    unit = _text(name, fields, "unit", where)
    source = _text(name, fields, "source", where)
    kind = _text(name, fields, "kind", where)
    note = _text(name, fields, "note", where)
    if not unit:
        raise FactsError(f"{where}: fact {name!r} needs a unit")
    if not source:
        raise FactsError(f"{where}: fact {name!r} needs a source (a URL or a document name)")
    if kind not in KINDS:
        raise FactsError(f"{where}: fact {name!r} has kind {kind!r}; use 'fact' or 'assumption'")
    if kind == "assumption" and not note:
        raise FactsError(
            f"{where}: assumption {name!r} needs a note saying what is assumed and why"
        )
    return Fact(name=name, value=value, unit=unit, source=source, kind=cast(Kind, kind), note=note)


def load(path: str | Path | None = None) -> Mapping[str, Fact]:
    """Read and check a facts file (default: the packaged one); uncached, read-only result."""
    target = data_path() if path is None else Path(path)
    try:
        text = target.read_text(encoding="utf-8")
    except OSError as exc:
        raise FactsError(
            f"cannot read the facts file {target}: {exc.strerror or exc}; "
            "reinstall aifkit (the file is package data)"
        ) from exc
    try:
        document = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise FactsError(f"{target} is not valid YAML: {exc}") from exc
    if not isinstance(document, Mapping) or not isinstance(document.get("facts"), Mapping):
        raise FactsError(f"{target} must have a top-level 'facts:' mapping of name -> fact")
    entries = cast(Mapping[object, object], document["facts"])
    if not entries:
        raise FactsError(f"{target} defines no facts")
    parsed = {str(name): _parse_fact(name, entry, str(target)) for name, entry in entries.items()}
    return MappingProxyType(parsed)


@lru_cache(maxsize=1)
def all_facts() -> Mapping[str, Fact]:
    """Every fact of the packaged file, by name (read once, then cached)."""
    return load()


def names() -> tuple[str, ...]:
    """The names of every fact, sorted."""
    return tuple(sorted(all_facts()))


def get(name: str) -> Fact:
    """The fact called ``name``; FactsError naming close matches when there is none."""
    known = all_facts()
    try:
        return known[name]
    except (KeyError, TypeError):
        pass
    query = str(name).strip().lower()
    containing = [known_name for known_name in sorted(known) if query and query in known_name]
    similar = difflib.get_close_matches(query, list(known), n=5, cutoff=0.5)
    close = list(dict.fromkeys(containing + similar))[:5]
    hint = f"did you mean {', '.join(close)}?" if close else "see aifkit.course.facts.names()"
    raise FactsError(f"unknown fact {name!r}: {hint} (facts live in {data_path()})")


def value(name: str) -> float:
    """The value of the fact called ``name``, in the unit the fact states (SI base units)."""
    return get(name).value


def describe(*fact_names: str) -> str:
    """One line per fact: value, unit, fact/assumption and source; for 'On the factory' cells."""
    selected = [get(name) for name in fact_names] if fact_names else list(all_facts().values())
    lines = []
    for fact in selected:
        label = "ASSUMPTION" if fact.is_assumption else "fact"
        note = f" - {fact.note}" if fact.note else ""
        lines.append(f"{fact.name} = {fact.value:g} {fact.unit}{note} [{label}; {fact.source}]")
    return "\n".join(lines)
