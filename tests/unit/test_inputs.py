"""Input limits: enforced with a message that names the field."""

from __future__ import annotations

import pytest

from consensus_engine.domain.inputs import InputError, validate_extra_context, validate_idea


@pytest.mark.parametrize(
    ("idea", "fragment"),
    [
        ("", "must not be empty"),
        ("   \n", "must not be empty"),
        (42, "must be a string, got int"),
        (None, "must be a string, got NoneType"),
        ("x" * 11, "11 characters long; the limit is 10"),
    ],
    ids=["empty", "blank", "int", "none", "too-long"],
)
def test_bad_ideas(idea: object, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        validate_idea(idea, max_length=10)


def test_idea_is_stripped_and_the_limit_is_inclusive() -> None:
    assert validate_idea("  " + "x" * 10 + "  ", max_length=10) == "x" * 10


@pytest.mark.parametrize(
    ("context", "fragment"),
    [
        ("y" * 21, "extra_context is 21 characters long; the limit is 20"),
        ({"k": "v" * 20}, "extra_context is 29 characters long"),
        ([1, 2], "must be a string or an object, got list"),
        ({"k": {1, 2}}, "not JSON-serialisable"),
    ],
    ids=["long-text", "long-object", "list", "unserialisable"],
)
def test_bad_extra_context(context: object, fragment: str) -> None:
    with pytest.raises(InputError, match=fragment):
        validate_extra_context(context, max_length=20)


@pytest.mark.parametrize(
    ("context", "expected"),
    [(None, None), ("  ", None), (" note ", "note"), ({"a": 1}, {"a": 1})],
    ids=["none", "blank", "text", "object"],
)
def test_good_extra_context(context: object, expected: object) -> None:
    assert validate_extra_context(context, max_length=20) == expected
