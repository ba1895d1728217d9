"""Who is calling, and what this deployment lets them ask for: what a client needs before it
can draw a sign-in, a new-run form or a revision form without guessing."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel, Field

from consensus_engine.api.openapi import errors
from consensus_engine.api.schemas import PersonaOut
from consensus_engine.api.state import PrincipalDep, StateDep
from consensus_engine.domain.runs import Priority

router = APIRouter(prefix="/v1", tags=["account"])


class Me(BaseModel):
    tenant: str


class ModelOptions(BaseModel):
    allowed: list[str] = Field(description="the models a run may name")
    expand: str = Field(description="the expand model a run gets when it names none")
    review: str = Field(description="the review model a run gets when it names none")


class SizeLimits(BaseModel):
    """Characters (JSON text for objects) each field may hold."""

    idea: int
    extra_context: int
    edited_proposal: int
    edit_notes: int


class PersonaCount(BaseModel):
    min: int
    max: int


class Options(BaseModel):
    personas: list[PersonaOut] = Field(description="the configured personas, in review order")
    persona_count: PersonaCount = Field(description="how many personas a run may choose")
    models: ModelOptions
    limits: SizeLimits
    priorities: list[Priority]


@router.get("/me", summary="The tenant the API key belongs to", responses=errors())
async def me(principal: PrincipalDep) -> Me:
    return Me(tenant=principal.tenant)


@router.get(
    "/options", summary="The personas, models and size limits runs may use", responses=errors()
)
async def options(state: StateDep, principal: PrincipalDep) -> Options:
    settings = state.settings
    return Options(
        personas=[PersonaOut.model_validate(p, from_attributes=True) for p in state.personas],
        persona_count=PersonaCount(min=settings.min_persona_count, max=settings.max_persona_count),
        models=ModelOptions(
            allowed=list(state.catalogue.names),
            expand=settings.expand_model,
            review=settings.review_model,
        ),
        limits=SizeLimits(
            idea=settings.max_idea_length,
            extra_context=settings.max_extra_context_length,
            edited_proposal=settings.max_edited_proposal_length,
            edit_notes=settings.max_edit_notes_length,
        ),
        priorities=list(Priority),
    )
