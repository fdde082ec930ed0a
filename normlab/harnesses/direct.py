"""`direct`: one call per decision, answer parsed into a legal action."""

from __future__ import annotations

from typing import Any

from normlab.harnesses.base import Harness
from normlab.requests import Request


class DirectHarness(Harness):
    """Each decision is a fresh two-message prompt (system, observation): the env's text
    observation carries whatever history the env shows, so prompts stay short and every
    step is reproducible on its own."""

    name = "direct"
    description = "One model call per step; the answer is parsed into a legal action, with bounded re-asks."

    async def decide(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        self.use(request)
        messages = [self.system_message(), {"role": "user", "content": self.user_text(observation)}]
        return await self.ask_for_action(messages)
