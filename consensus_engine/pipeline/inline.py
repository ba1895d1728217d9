"""The LLM steps of a review, and a whole review in one process.

The worker's stages call the single steps (expand, revise, review); the synchronous API
endpoints run a whole review here at once. Nothing here touches the database.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TypeVar

from consensus_engine.domain.aggregation import aggregate
from consensus_engine.domain.choices import ModelChoice
from consensus_engine.domain.council import persona_choice
from consensus_engine.domain.personas import Persona, PersonaSet
from consensus_engine.domain.prompts import (
    ExtraContext,
    Prompt,
    chair_prompt,
    debate_prompt,
    expand_prompt,
    review_prompt,
    revision_prompt,
)
from consensus_engine.domain.runs import CHAIR_STEP, EXPAND_STEP, debate_step, review_step
from consensus_engine.domain.schemas import (
    ChairReport,
    Decision,
    ExpandedProposal,
    PersonaReview,
    ReviewDraft,
)
from consensus_engine.llm import CallRecord, Generation, LLMClient

Draft = TypeVar("Draft", ExpandedProposal, ReviewDraft, ChairReport)


@dataclass(frozen=True)
class InlineResult:
    proposal: ExpandedProposal
    reviews: list[PersonaReview]
    decision: Decision
    calls: list[CallRecord] = field(default_factory=list)


def _generate(
    llm: LLMClient,
    schema: type[Draft],
    prompt: Prompt,
    choice: ModelChoice,
    step: str,
    tenant: str | None,
) -> Generation[Draft]:
    return llm.generate(
        schema,
        system=prompt.system,
        user=prompt.user,
        model=choice.model,
        temperature=choice.temperature,
        step=step,
        tenant=tenant,
    )


def expand_idea(
    llm: LLMClient,
    idea: str,
    extra_context: ExtraContext,
    choice: ModelChoice,
    *,
    tenant: str | None = None,
) -> tuple[ExpandedProposal, list[CallRecord]]:
    """The proposal; ``tenant``, whom the calls are made for, goes to the client's gate."""
    prompt = expand_prompt(idea, extra_context)
    generation = _generate(llm, ExpandedProposal, prompt, choice, EXPAND_STEP, tenant)
    return generation.value, generation.calls


def revise_proposal(
    llm: LLMClient,
    proposal: ExpandedProposal,
    edit_notes: str,
    choice: ModelChoice,
    *,
    user_edited_sections: Collection[str] = (),
    tenant: str | None = None,
) -> tuple[ExpandedProposal, list[CallRecord]]:
    """A new version of ``proposal`` with the author's edit notes applied by the model."""
    prompt = revision_prompt(proposal, edit_notes, user_edited_sections=user_edited_sections)
    generation = _generate(llm, ExpandedProposal, prompt, choice, EXPAND_STEP, tenant)
    return generation.value, generation.calls


def review_proposal(
    llm: LLMClient,
    persona: Persona,
    proposal: ExpandedProposal,
    choice: ModelChoice,
    *,
    previous_review: PersonaReview | None = None,
    edit_notes: str | None = None,
    tenant: str | None = None,
) -> tuple[PersonaReview, list[CallRecord]]:
    """One persona's review, attributed by us whatever the model wrote."""
    prompt = review_prompt(
        persona, proposal, previous_review=previous_review, edit_notes=edit_notes
    )
    return _review(llm, persona, prompt, choice, review_step(persona.id), tenant)


def debate_review(
    llm: LLMClient,
    persona: Persona,
    proposal: ExpandedProposal,
    own: PersonaReview,
    others: Sequence[PersonaReview],
    choice: ModelChoice,
    *,
    tenant: str | None = None,
) -> tuple[PersonaReview, list[CallRecord]]:
    """One persona's final review, written after reading the panel's first round."""
    prompt = debate_prompt(persona, proposal, own, others)
    return _review(llm, persona, prompt, choice, debate_step(persona.id), tenant)


def _review(
    llm: LLMClient,
    persona: Persona,
    prompt: Prompt,
    choice: ModelChoice,
    step: str,
    tenant: str | None,
) -> tuple[PersonaReview, list[CallRecord]]:
    generation = _generate(llm, ReviewDraft, prompt, choice, step, tenant)
    review = PersonaReview.from_draft(
        generation.value, persona_id=persona.id, persona_name=persona.name
    )
    return review, generation.calls


def chair_synthesis(
    llm: LLMClient,
    proposal: ExpandedProposal,
    reviews: Sequence[PersonaReview],
    decision: Decision,
    choice: ModelChoice,
    *,
    tenant: str | None = None,
) -> tuple[ChairReport, list[CallRecord]]:
    """The chair's account of a decided run."""
    prompt = chair_prompt(proposal, reviews, decision)
    generation = _generate(llm, ChairReport, prompt, choice, CHAIR_STEP, tenant)
    return generation.value, generation.calls


def review_idea(
    llm: LLMClient,
    idea: str,
    extra_context: ExtraContext,
    *,
    personas: PersonaSet,
    expand: ModelChoice,
    review: ModelChoice,
    approve_threshold: float,
    revise_threshold: float,
    tenant: str | None = None,
) -> InlineResult:
    """Expand the idea, then run every persona concurrently and aggregate their reviews."""
    proposal, calls = expand_idea(llm, idea, extra_context, expand, tenant=tenant)

    def run(persona: Persona) -> tuple[PersonaReview, list[CallRecord]]:
        choice = persona_choice(persona, review)
        return review_proposal(llm, persona, proposal, choice, tenant=tenant)

    with ThreadPoolExecutor(max_workers=len(personas), thread_name_prefix="review") as pool:
        results: Sequence[tuple[PersonaReview, list[CallRecord]]] = list(pool.map(run, personas))
    reviews = [review_ for review_, _ in results]
    for _, review_calls in results:
        calls.extend(review_calls)
    decision = aggregate(
        reviews,
        personas,
        approve_threshold=approve_threshold,
        revise_threshold=revise_threshold,
    )
    return InlineResult(proposal=proposal, reviews=reviews, decision=decision, calls=calls)
