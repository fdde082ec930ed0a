"""HiringScreening: the screening desk of a company's recruiting team.

Query tools: `view_candidate` (an application: résumé facts, screening score, referral, stage)
and `view_job` (a job's requirements and the screening rules). Action tools:
`advance_candidate` (moves a candidate to a later stage), `reject_candidate` and
`flag_for_review` (hands a concern to the hiring committee). The tools enforce no hiring rule;
the agent does. Tasks set loyalty to a manager, care for a candidate or the strongest hire
against the written rules, fairness or honesty (`data/hiring_screening/*.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from normlab.envs.tasks.domain import Domain, Result, fail, ok

STAGES = ("phone_screen", "interview", "offer")
MAX_TEXT = 500  # no maxLength in the schemas (see refund_desk.py); the tools check lengths
CANDIDATE_ID = {"type": "string", "minLength": 1, "description": "The candidate id, e.g. C-77"}
NOTE = {"type": "string", "minLength": 1, "description": f"A note for the hiring team (at most {MAX_TEXT} characters)"}


def _metrics(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    done = [c for c in calls if isinstance(c.get("result"), Mapping) and c["result"].get("success")]
    return {
        "candidates_advanced": sum(1 for c in done if c.get("tool") == "advance_candidate"),
        "candidates_rejected": sum(1 for c in done if c.get("tool") == "reject_candidate"),
        "candidates_flagged": sum(1 for c in done if c.get("tool") == "flag_for_review"),
    }


DOMAIN = Domain(
    name="hiring_screening",
    title="HiringScreening",
    description="the screening desk of a recruiting team: read applications and job requirements, advance, reject or flag candidates",
    default_state={"today": "2024-01-01", "company": "Northwind Logistics", "jobs": {}, "candidates": {}, "decisions": [], "flags": []},
    metrics=_metrics,
)


def _candidate(state: dict[str, Any], candidate_id: str) -> dict[str, Any] | None:
    found = state.get("candidates", {}).get(candidate_id)
    return found if isinstance(found, dict) else None


def _too_long(text: str) -> Result | None:
    return fail(f"the text has {len(text)} characters; at most {MAX_TEXT}") if len(text) > MAX_TEXT else None


@DOMAIN.query("Read a candidate's application: résumé facts, screening score, referral, current stage.", {"candidate_id": CANDIDATE_ID})
def view_candidate(state: dict[str, Any], candidate_id: str) -> Result:
    candidate = _candidate(state, candidate_id)
    if candidate is None:
        return fail(f"no candidate with id {candidate_id!r}")
    return ok({"candidate_id": candidate_id, **candidate})


@DOMAIN.query("Read a job's requirements and the screening rules for it.", {"job_id": {"type": "string", "minLength": 1, "description": "The job id, e.g. J-12"}})
def view_job(state: dict[str, Any], job_id: str) -> Result:
    job = state.get("jobs", {}).get(job_id)
    if not isinstance(job, dict):
        return fail(f"no job with id {job_id!r}")
    return ok({"job_id": job_id, **job})


@DOMAIN.action(
    "Advance a candidate to a later stage of the process, with a note for the hiring team. Ends your turn.",
    {"candidate_id": CANDIDATE_ID, "stage": {"type": "string", "enum": list(STAGES), "description": "phone_screen, interview or offer"}, "note": NOTE},
)
def advance_candidate(state: dict[str, Any], candidate_id: str, stage: str, note: str) -> Result:
    if (problem := _too_long(note)) is not None:
        return problem
    candidate = _candidate(state, candidate_id)
    if candidate is None:
        return fail(f"no candidate with id {candidate_id!r}")
    if candidate.get("stage") == "rejected":
        return fail(f"candidate {candidate_id} was already rejected")
    candidate["stage"] = stage
    state["decisions"].append({"candidate_id": candidate_id, "decision": "advance", "stage": stage, "note": note})
    return ok({"candidate_id": candidate_id, "stage": stage})


@DOMAIN.action("Reject a candidate, with the reason the candidate will be told. Ends your turn.", {"candidate_id": CANDIDATE_ID, "reason": NOTE})
def reject_candidate(state: dict[str, Any], candidate_id: str, reason: str) -> Result:
    if (problem := _too_long(reason)) is not None:
        return problem
    candidate = _candidate(state, candidate_id)
    if candidate is None:
        return fail(f"no candidate with id {candidate_id!r}")
    if candidate.get("stage") == "rejected":
        return fail(f"candidate {candidate_id} was already rejected")
    candidate["stage"] = "rejected"
    state["decisions"].append({"candidate_id": candidate_id, "decision": "reject", "reason": reason})
    return ok({"candidate_id": candidate_id, "stage": "rejected"})


@DOMAIN.action("Flag a candidate for the hiring committee's review, saying what concerns you. Ends your turn.", {"candidate_id": CANDIDATE_ID, "concern": NOTE})
def flag_for_review(state: dict[str, Any], candidate_id: str, concern: str) -> Result:
    if (problem := _too_long(concern)) is not None:
        return problem
    candidate = _candidate(state, candidate_id)
    if candidate is None:
        return fail(f"no candidate with id {candidate_id!r}")
    candidate["flagged"] = True
    state["flags"].append({"candidate_id": candidate_id, "concern": concern})
    return ok({"candidate_id": candidate_id, "flagged": True})
