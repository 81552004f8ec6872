"""The one validation entry (aifkit.models.validate): pydantic's errors in aifkit's words."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field, model_validator

from aifkit.errors import AifkitError
from aifkit.models import Items, Model, MutableModel, validate


class Part(Model):
    name: str
    size: int = Field(default=1, ge=1, description="a whole number of parts >= 1")


class Whole(Model):
    kind: Literal["small", "large"]
    parts: Items[Part] = ()
    labels: dict[str, float] = Field(default_factory=dict)
    mode: Literal["auto"] | Items[str] = "auto"

    @model_validator(mode="after")
    def _large_has_parts(self) -> Whole:
        if self.kind == "large" and not self.parts:
            raise ValueError("parts: a large whole needs parts\nkind: or make it small")
        return self


class Counter(MutableModel):
    count: int = 0


def problems(data: object) -> list[str]:
    with pytest.raises(AifkitError) as info:
        validate(Whole, data, source="whole.yml", error=AifkitError)
    return str(info.value).splitlines()


def test_valid_data_becomes_a_read_only_model() -> None:
    """Does valid data come back typed, lists as tuples, and refuse changes?"""
    whole = validate(
        Whole, {"kind": "large", "parts": [{"name": "a"}]}, source="x", error=AifkitError
    )
    assert whole.parts == (Part(name="a", size=1),)
    with pytest.raises(ValueError, match="frozen"):
        whole.kind = "small"  # type: ignore[misc]
    counter = Counter()
    counter.count += 1  # records are filled in as work proceeds
    assert counter.count == 1


def test_every_problem_has_file_key_path_and_what_is_expected() -> None:
    """Are nested problems reported one per line, each with its key path and the value given?"""
    assert problems(
        {"kind": "tiny", "parts": [{"name": "a", "size": "2"}, {"size": 0}], "labels": {"x": "1"}}
    ) == [
        "whole.yml: kind: got 'tiny'; use 'small' or 'large'",
        "whole.yml: parts[0].size: needs a whole number of parts >= 1, got '2'",
        "whole.yml: parts[1]: lacks name (needs name)",
        "whole.yml: parts[1].size: needs a whole number of parts >= 1, got 0",
        "whole.yml: labels.x: needs a number, got '1'",
    ]


def test_missing_keys_are_one_line_and_unknown_keys_suggest_the_right_one() -> None:
    """Are missing keys gathered per place, and is a misspelt key offered its correct spelling?"""
    assert problems({"parts": [{"nme": "a"}]}) == [
        "whole.yml: lacks kind (needs kind)",
        "whole.yml: parts[0]: lacks name (needs name)",
        "whole.yml: parts[0]: unknown key 'nme' (did you mean 'name'? allowed: name, size)",
    ]


def test_a_choice_of_types_is_one_problem_with_the_value_given() -> None:
    """Is a value that fits no option of a choice reported once, listing the options?"""
    assert problems({"kind": "small", "mode": ["a", 3]}) == [
        "whole.yml: mode: needs 'auto' or a list, got ['a', 3]"
    ]


def test_validator_messages_keep_their_own_key_paths() -> None:
    """Does a model's own check (one problem per line) come out under the file's name?"""
    assert problems({"kind": "large"}) == [
        "whole.yml: parts: a large whole needs parts",
        "whole.yml: kind: or make it small",
    ]


def test_not_a_mapping_and_bad_json() -> None:
    """Is a file that is not a mapping, or not JSON at all, one clear line?"""
    assert problems([1, 2]) == ["whole.yml: needs a mapping, got [1, 2]"]
    with pytest.raises(AifkitError, match=r"^rec\.json: not valid JSON: .*\nrerun it$"):
        validate(
            Whole,
            '{"kind": ',
            source="rec.json",
            error=AifkitError,
            from_json=True,
            hint="rerun it",
        )


def test_long_values_are_shortened() -> None:
    """Is a huge wrong value cut short rather than flooding the message?"""
    (line,) = problems({"kind": "x" * 500})
    assert len(line) < 140 and line.endswith("...; use 'small' or 'large'")
