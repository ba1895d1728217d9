"""Personas: the defaults, validation messages, per-run selection and custom files."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from consensus_engine.domain.personas import (
    DEFAULT_PERSONAS,
    Persona,
    PersonaConfigError,
    PersonaSet,
    load_persona_set,
)
from consensus_engine.domain.schemas import PROPOSAL_SECTIONS

DEFAULT_IDS = ("architect", "critic", "optimist", "security_guardian", "user_advocate")


def persona_dict(persona_id: str, weight: float, **extra: Any) -> dict[str, Any]:
    return {
        "id": persona_id,
        "name": persona_id.title(),
        "weight": weight,
        "focus": "something specific",
        "instructions": "Review carefully.",
        **extra,
    }


def write(tmp_path: Path, data: object) -> Path:
    path = tmp_path / "personas.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


def test_defaults_match_the_documented_panel() -> None:
    assert DEFAULT_PERSONAS.ids == DEFAULT_IDS
    assert DEFAULT_PERSONAS.weights == {
        "architect": 0.25,
        "critic": 0.25,
        "optimist": 0.15,
        "security_guardian": 0.20,
        "user_advocate": 0.15,
    }
    assert [p.name for p in DEFAULT_PERSONAS] == [
        "Architect",
        "Critic",
        "Optimist",
        "Security Guardian",
        "User Advocate",
    ]
    assert [p.id for p in DEFAULT_PERSONAS if p.security_veto] == ["security_guardian"]


def test_default_instructions_are_substantial_and_distinct() -> None:
    instructions = [p.instructions for p in DEFAULT_PERSONAS]
    assert len(set(instructions)) == len(instructions)
    assert all(len(text) > 200 for text in instructions)
    assert all(
        set(p.cares_about) <= set(PROPOSAL_SECTIONS) and p.cares_about for p in DEFAULT_PERSONAS
    )


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        pytest.param({"id": "Architect"}, "invalid persona id 'Architect'", id="uppercase-id"),
        pytest.param({"id": "a"}, "invalid persona id 'a'", id="id-too-short"),
        pytest.param({"id": "1critic"}, "invalid persona id", id="id-starts-with-digit"),
        pytest.param({"id": "x" * 51}, "invalid persona id", id="id-too-long"),
        pytest.param({"weight": 0.0}, r"weight must be in \(0, 1\], got 0.0", id="zero-weight"),
        pytest.param({"weight": 1.5}, r"weight must be in \(0, 1\]", id="weight-above-one"),
        pytest.param({"weight": math.nan}, r"weight must be in \(0, 1\]", id="nan-weight"),
        pytest.param({"weight": True}, "weight must be a number", id="bool-weight"),
        pytest.param({"weight": "0.5"}, "weight must be a number", id="string-weight"),
        pytest.param({"name": "  "}, "name must be a non-empty string", id="blank-name"),
        pytest.param({"instructions": ""}, "instructions must be", id="empty-instructions"),
        pytest.param(
            {"cares_about": ("solution",)}, "unknown section.*'solution'", id="unknown-section"
        ),
        pytest.param(
            {"cares_about": ("title", "title")}, "lists a section twice", id="duplicate-section"
        ),
        pytest.param({"security_veto": "yes"}, "security_veto must be", id="non-bool-veto"),
    ],
)
def test_persona_rejects_invalid_fields(changes: dict[str, Any], message: str) -> None:
    fields: dict[str, Any] = {
        "id": "critic",
        "name": "Critic",
        "weight": 0.5,
        "focus": "risks",
        "instructions": "Find risks.",
        **changes,
    }
    with pytest.raises(PersonaConfigError, match=message):
        Persona(**fields)


def test_persona_integer_weight_becomes_float() -> None:
    persona = Persona(id="solo", name="Solo", weight=1, focus="all", instructions="Review.")
    assert isinstance(persona.weight, float)
    assert persona.cares_about == PROPOSAL_SECTIONS


@pytest.mark.parametrize(
    ("weights", "message"),
    [
        pytest.param([0.5, 0.4], r"weights sum to 0\.9, must sum to 1\.0", id="sum-below-one"),
        pytest.param([0.6, 0.6], r"weights sum to 1\.2, must sum to 1\.0", id="sum-above-one"),
        pytest.param([0.5, 0.5 + 2e-6], r"sum to 1\.000002,", id="just-outside-tolerance"),
    ],
)
def test_set_rejects_weights_not_summing_to_one(weights: list[float], message: str) -> None:
    personas = [Persona.from_dict(persona_dict(f"p{i}_x", w)) for i, w in enumerate(weights)]
    with pytest.raises(PersonaConfigError, match=message):
        PersonaSet(personas)


def test_set_accepts_weights_within_tolerance() -> None:
    personas = [persona_dict("one", 0.5), persona_dict("two", 0.5 + 5e-7)]
    assert len(PersonaSet(Persona.from_dict(p) for p in personas)) == 2


def test_set_rejects_duplicate_ids() -> None:
    persona = Persona.from_dict(persona_dict("critic", 0.5))
    with pytest.raises(PersonaConfigError, match="duplicate persona id 'critic'"):
        PersonaSet([persona, persona])


@pytest.mark.parametrize(
    ("count", "min_count", "max_count"),
    [
        pytest.param(0, 1, 10, id="empty"),
        pytest.param(3, 1, 2, id="too-many"),
        pytest.param(2, 3, 10, id="too-few"),
    ],
)
def test_set_enforces_count_limits(count: int, min_count: int, max_count: int) -> None:
    personas = [Persona.from_dict(persona_dict(f"p{i}_x", 1 / count)) for i in range(count)]
    with pytest.raises(PersonaConfigError, match=f"between {min_count} and {max_count} personas"):
        PersonaSet(personas, min_count=min_count, max_count=max_count)


@pytest.mark.parametrize(
    ("ids", "expected"),
    [
        pytest.param(["architect", "critic"], {"architect": 0.5, "critic": 0.5}, id="equal-pair"),
        pytest.param(
            ["security_guardian", "architect"],
            {"architect": 0.25 / 0.45, "security_guardian": 0.20 / 0.45},
            id="reordered-input-keeps-set-order",
        ),
        pytest.param(["optimist"], {"optimist": 1.0}, id="single"),
        pytest.param(list(DEFAULT_IDS), DEFAULT_PERSONAS.weights, id="all"),
    ],
)
def test_select_renormalises_weights(ids: list[str], expected: dict[str, float]) -> None:
    chosen = DEFAULT_PERSONAS.select(ids)
    assert list(chosen.weights) == list(expected)
    for persona_id, weight in expected.items():
        assert chosen.weights[persona_id] == pytest.approx(weight)
    assert chosen[ids[0]].instructions == DEFAULT_PERSONAS[ids[0]].instructions


def test_select_with_explicit_weights() -> None:
    chosen = DEFAULT_PERSONAS.select(
        ["critic", "security_guardian"], {"critic": 0.3, "security_guardian": 0.7}
    )
    assert chosen.weights == {"critic": 0.3, "security_guardian": 0.7}
    assert chosen["security_guardian"].security_veto


@pytest.mark.parametrize(
    ("ids", "weights", "message"),
    [
        pytest.param(
            ["archtect", "critic", "nobody"],
            None,
            r"^2 unknown persona id\(s\); known: architect, critic, optimist, "
            "security_guardian, user_advocate$",
            id="unknown-ids-counted-not-quoted",
        ),
        pytest.param(["critic", "critic"], None, "chosen twice: critic", id="duplicate-id"),
        pytest.param([], None, "between 1 and 50 personas, got 0", id="empty"),
        pytest.param("critic", None, "not a string", id="string-not-list"),
        pytest.param(
            ["critic"], {"critic": 0.5, "optimist": 0.5}, "not selected: optimist", id="extra"
        ),
        pytest.param(
            ["critic", "optimist"], {"critic": 1.0}, "no weight given.*optimist", id="missing"
        ),
        pytest.param(
            ["critic", "optimist"],
            {"critic": 0.5, "optimist": 0.4},
            r"weights sum to 0\.9",
            id="explicit-bad-sum",
        ),
    ],
)
def test_select_errors(ids: Any, weights: dict[str, float] | None, message: str) -> None:
    with pytest.raises(PersonaConfigError, match=message):
        DEFAULT_PERSONAS.select(ids, weights)


def test_select_respects_max_count() -> None:
    with pytest.raises(PersonaConfigError, match="between 1 and 2 personas, got 3"):
        DEFAULT_PERSONAS.select(["architect", "critic", "optimist"], max_count=2)


def test_getitem_unknown_id_names_the_known_ones() -> None:
    with pytest.raises(PersonaConfigError, match="unknown persona id 'nobody'; known: architect"):
        DEFAULT_PERSONAS["nobody"]
    assert DEFAULT_PERSONAS.get("nobody") is None
    assert "critic" in DEFAULT_PERSONAS


def test_round_trip_through_json() -> None:
    data = json.loads(json.dumps(DEFAULT_PERSONAS.to_dict()))
    restored = PersonaSet.from_dict(data)
    assert restored == DEFAULT_PERSONAS
    assert hash(restored) == hash(DEFAULT_PERSONAS)
    assert data["personas"][3]["security_veto"] is True


def test_load_custom_set(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        {
            "personas": [
                persona_dict("legal", 0.4, security_veto=True, cares_about=["scope_non_goals"]),
                persona_dict("finance", 0.6),
            ]
        },
    )
    loaded = load_persona_set(path, min_count=1, max_count=5)
    assert loaded.ids == ("legal", "finance")
    assert loaded["legal"].security_veto
    assert loaded["legal"].cares_about == ("scope_non_goals",)
    assert loaded["finance"].cares_about == PROPOSAL_SECTIONS
    assert not loaded["finance"].security_veto


@pytest.mark.parametrize(
    ("content", "message"),
    [
        pytest.param(
            {"personas": [persona_dict("solo", 1.0, temperature=0.2)]},
            "unknown key.*'temperature'",
            id="unknown-persona-key",
        ),
        pytest.param(
            {"personas": [persona_dict("solo", 1.0)], "version": 2},
            "unknown key.*'version'",
            id="unknown-top-level-key",
        ),
        pytest.param(
            {"personas": [persona_dict("one", 0.5), persona_dict("two", 0.4)]},
            r"weights sum to 0\.9, must sum to 1\.0",
            id="weights-not-summing",
        ),
        pytest.param(
            {"personas": [persona_dict("one", 0.5), persona_dict("one", 0.5)]},
            "duplicate persona id 'one'",
            id="duplicate-ids",
        ),
        pytest.param(
            {"personas": [persona_dict(f"p{i}_x", 0.25) for i in range(4)]},
            "between 1 and 3 personas, got 4",
            id="too-many-personas",
        ),
        pytest.param(
            {"personas": [{"id": "solo", "weight": 1.0}]},
            "missing key.*'focus'.*'instructions'.*'name'",
            id="missing-keys",
        ),
        pytest.param(
            {"personas": [persona_dict("solo", 1.0, cares_about="title")]},
            "cares_about must be a list",
            id="cares-about-string",
        ),
        pytest.param([persona_dict("solo", 1.0)], "must be a JSON object", id="bare-list"),
        pytest.param({"personas": "solo"}, "'personas' must be a list", id="personas-not-list"),
        pytest.param({"personas": ["solo"]}, "each persona must be a JSON object", id="str-item"),
    ],
)
def test_load_rejects_bad_files(tmp_path: Path, content: object, message: str) -> None:
    path = write(tmp_path, content)
    with pytest.raises(PersonaConfigError, match=message) as caught:
        load_persona_set(path, min_count=1, max_count=3)
    assert str(path) in str(caught.value)


def test_load_reports_invalid_json_position(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{"personas": [\n  {"id": }\n]}', encoding="utf-8")
    with pytest.raises(PersonaConfigError, match=r"not valid JSON.*line 2"):
        load_persona_set(path, min_count=1, max_count=3)


def test_load_reports_missing_file(tmp_path: Path) -> None:
    with pytest.raises(PersonaConfigError, match="cannot read persona file"):
        load_persona_set(tmp_path / "absent.json", min_count=1, max_count=3)
