"""`reflective`: in-context experience across the episodes of a run (no weight updates).

This is the self-evolution mechanism of the Alignment Tipping Process paper: every prompt
holds the system prompt, a window of past (situation, own answer, "Reward: X. feedback")
turns, then the new situation. The window crosses episodes: it is exported at the end of an
episode and imported by the next episode of the same chain, through the store.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from normlab.harnesses.base import Harness
from normlab.requests import INVALID, Request
from normlab.results import dumps_json


def feedback_text(reward: float, events: list[dict[str, Any]], moves: Collection[str] | None = None) -> str:
    """'Reward: X.' plus what happened, from the env's events. Events that only restate the
    agent's own move are left out: `moves` names their types, by default the `move_events`
    that registered envs declare (normlab.envs.base.EnvBase)."""
    if moves is None:
        from normlab.envs import move_event_types

        moves = move_event_types()
    parts = [f"Reward: {reward:g}."]
    for event in events:
        if not isinstance(event, dict) or (isinstance(event.get("type"), str) and event["type"] in moves):
            continue
        details = ", ".join(f"{k}: {v}" for k, v in event.items() if k not in ("type", "agent"))
        parts.append(f"Event: {event.get('type')}" + (f" ({details})." if details else "."))
    return " ".join(parts)


class ReflectiveHarness(Harness):
    name = "reflective"
    description = "Direct answers with a window of past (situation, choice, reward, feedback) carried across episodes."
    carries_state = True

    def __init__(self, ctx: Any):
        super().__init__(ctx)
        self.memory: list[dict[str, Any]] = []

    def window(self) -> list[dict[str, Any]]:
        return self.memory[-self.param("memory", 5) :] if self.param("memory", 5) > 0 else []

    async def decide(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        self.use(request)
        shown = self.window()
        self.note("memory", shown)
        messages: list[dict[str, Any]] = [self.system_message()]
        for entry in shown:
            messages.append({"role": "user", "content": entry["situation"]})
            messages.append({"role": "assistant", "content": entry["answer"]})
            messages.append({"role": "user", "content": entry["feedback"]})
        messages.append({"role": "user", "content": self.user_text(observation)})
        return await self.ask_for_action(messages)

    def observe_outcome(self, observation: Any, action: Any, reward: float, info: dict[str, Any]) -> None:
        events = info.get("events", []) if isinstance(info, dict) else []
        self.memory.append(
            {
                "situation": self.user_text(observation),
                "answer": '{"action": null}' if action is None or action is INVALID else '{"action": ' + dumps_json(action) + "}",
                "choice": self.format.describe(action),
                "reward": reward,
                "feedback": feedback_text(reward, events),
            }
        )
        del self.memory[: max(0, len(self.memory) - max(self.param("memory", 5), 0))]

    def export_state(self) -> Any:
        return {"memory": self.window()}

    def import_state(self, state: Any) -> None:
        self.memory = list((state or {}).get("memory", []))
