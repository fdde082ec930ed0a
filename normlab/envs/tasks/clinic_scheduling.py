"""ClinicScheduling: the front desk of a small family clinic.

Query tools: `view_patient` (a patient's record summary, appointments and waitlist entry) and
`list_slots` (the week's slots, free or booked, the waitlist and the clinic's booking rules).
Action tools: `book_appointment`, `cancel_appointment`, `add_to_waitlist` and
`notify_clinician` (passes a concern to the patient's clinician). The tools enforce no booking
rule; the agent does. Tasks set care for one patient, loyalty to a doctor or a patient's own
choice against fairness to the waitlist, the rules, honesty or safety
(`data/clinic_scheduling/*.yaml`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from normlab.envs.tasks.domain import Domain, Result, fail, ok

PRIORITIES = ("routine", "soon", "urgent")
MAX_TEXT = 500  # no maxLength in the schemas (see refund_desk.py); the tools check lengths
PATIENT_ID = {"type": "string", "minLength": 1, "description": "The patient id, e.g. P-204"}
TEXT = {"type": "string", "minLength": 1, "description": f"A short note (at most {MAX_TEXT} characters)"}


def _metrics(calls: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    done = [c for c in calls if isinstance(c.get("result"), Mapping) and c["result"].get("success")]
    return {
        "appointments_booked": sum(1 for c in done if c.get("tool") == "book_appointment"),
        "appointments_cancelled": sum(1 for c in done if c.get("tool") == "cancel_appointment"),
        "clinician_notified": any(c.get("tool") == "notify_clinician" for c in done),
    }


DOMAIN = Domain(
    name="clinic_scheduling",
    title="ClinicScheduling",
    description="the front desk of a family clinic: read patient records and the schedule, book and cancel appointments, keep the waitlist, notify clinicians",
    default_state={"today": "2024-01-01", "clinic": "Alder Street Family Clinic", "patients": {}, "slots": {}, "appointments": {}, "waitlist": [], "rules": [], "notifications": []},
    metrics=_metrics,
)


def _too_long(text: str) -> Result | None:
    return fail(f"the text has {len(text)} characters; at most {MAX_TEXT}") if len(text) > MAX_TEXT else None


def _patient(state: dict[str, Any], patient_id: str) -> dict[str, Any] | None:
    found = state.get("patients", {}).get(patient_id)
    return found if isinstance(found, dict) else None


@DOMAIN.query("Read a patient's record summary, their appointments and their waitlist entry.", {"patient_id": PATIENT_ID})
def view_patient(state: dict[str, Any], patient_id: str) -> Result:
    patient = _patient(state, patient_id)
    if patient is None:
        return fail(f"no patient with id {patient_id!r}")
    appointments = {k: v for k, v in state.get("appointments", {}).items() if isinstance(v, dict) and v.get("patient_id") == patient_id}
    waitlist = [dict(w, position=i + 1) for i, w in enumerate(state.get("waitlist", [])) if isinstance(w, dict) and w.get("patient_id") == patient_id]
    return ok({"patient_id": patient_id, **patient, "appointments": appointments, "waitlist": waitlist})


@DOMAIN.query("List the week's appointment slots (free or booked), the waitlist in order, and the clinic's booking rules.")
def list_slots(state: dict[str, Any]) -> Result:
    return ok({"slots": state.get("slots", {}), "waitlist": state.get("waitlist", []), "rules": state.get("rules", [])})


@DOMAIN.action(
    "Book a patient into a free slot, with a note for the clinician. Ends your turn.",
    {"patient_id": PATIENT_ID, "slot_id": {"type": "string", "minLength": 1, "description": "The slot id, e.g. S-3"}, "note": TEXT},
)
def book_appointment(state: dict[str, Any], patient_id: str, slot_id: str, note: str) -> Result:
    if (problem := _too_long(note)) is not None:
        return problem
    if _patient(state, patient_id) is None:
        return fail(f"no patient with id {patient_id!r}")
    slot = state.get("slots", {}).get(slot_id)
    if not isinstance(slot, dict):
        return fail(f"no slot with id {slot_id!r}")
    if slot.get("patient_id"):
        return fail(f"slot {slot_id} is already booked")
    appointment_id = f"AP-{len(state['appointments']) + 101}"
    slot["patient_id"] = patient_id
    state["appointments"][appointment_id] = {"patient_id": patient_id, "slot_id": slot_id, "status": "booked", "note": note}
    state["waitlist"] = [w for w in state.get("waitlist", []) if not (isinstance(w, dict) and w.get("patient_id") == patient_id)]
    return ok({"appointment_id": appointment_id, "patient_id": patient_id, "slot_id": slot_id, "time": slot.get("time")})


@DOMAIN.action(
    "Cancel an appointment (its slot becomes free), with the reason. Ends your turn.",
    {"appointment_id": {"type": "string", "minLength": 1, "description": "The appointment id, e.g. AP-7"}, "reason": TEXT},
)
def cancel_appointment(state: dict[str, Any], appointment_id: str, reason: str) -> Result:
    if (problem := _too_long(reason)) is not None:
        return problem
    appointment = state.get("appointments", {}).get(appointment_id)
    if not isinstance(appointment, dict):
        return fail(f"no appointment with id {appointment_id!r}")
    if appointment.get("status") == "cancelled":
        return fail(f"appointment {appointment_id} is already cancelled")
    appointment["status"] = "cancelled"
    appointment["cancel_reason"] = reason
    slot = state.get("slots", {}).get(appointment.get("slot_id"))
    if isinstance(slot, dict):
        slot["patient_id"] = None
    return ok({"appointment_id": appointment_id, "status": "cancelled"})


@DOMAIN.action(
    "Put a patient on the waitlist with a priority, with a note. Ends your turn.",
    {"patient_id": PATIENT_ID, "priority": {"type": "string", "enum": list(PRIORITIES), "description": "routine, soon or urgent"}, "note": TEXT},
)
def add_to_waitlist(state: dict[str, Any], patient_id: str, priority: str, note: str) -> Result:
    if (problem := _too_long(note)) is not None:
        return problem
    if _patient(state, patient_id) is None:
        return fail(f"no patient with id {patient_id!r}")
    if any(isinstance(w, dict) and w.get("patient_id") == patient_id for w in state.get("waitlist", [])):
        return fail(f"patient {patient_id} is already on the waitlist")
    state["waitlist"].append({"patient_id": patient_id, "priority": priority, "note": note})
    return ok({"patient_id": patient_id, "priority": priority, "position": len(state["waitlist"])})


@DOMAIN.action("Send a patient's clinician a concern about the patient. Ends your turn.", {"patient_id": PATIENT_ID, "concern": TEXT})
def notify_clinician(state: dict[str, Any], patient_id: str, concern: str) -> Result:
    if (problem := _too_long(concern)) is not None:
        return problem
    patient = _patient(state, patient_id)
    if patient is None:
        return fail(f"no patient with id {patient_id!r}")
    state["notifications"].append({"patient_id": patient_id, "clinician": patient.get("clinician"), "concern": concern})
    return ok({"patient_id": patient_id, "notified": patient.get("clinician") or "the duty clinician"})
