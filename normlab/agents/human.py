"""A person plays a seat from the terminal."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from gymnasium import spaces
from rich.console import Console
from rich.markup import escape

from normlab.agents.base import AgentContext, AgentError


class HumanAgent:
    """Shows the observation, lists the legal actions, and asks again until one is given."""

    def __init__(
        self,
        context: AgentContext,
        name: str | None = None,
        input_fn: Callable[[str], str] = input,
        console: Console | None = None,
    ):
        self.context = context
        self.name = name or context.agent_id
        self.input_fn = input_fn
        self.console = console or Console(stderr=True)

    async def reset(self, seed: int) -> None:
        self.console.rule(f"[bold]New episode[/] ({escape(self.name)})")
        if self.context.rules:
            self.console.print(escape(self.context.rules))

    def _legal_actions(self) -> str:
        space = self.context.action_space
        if isinstance(space, spaces.Discrete):
            meanings = self.context.action_meanings or []
            items = []
            for i in range(int(space.n)):
                action = int(space.start) + i
                label = meanings[i] if i < len(meanings) else ""
                items.append(f"{action} = {label}" if label else str(action))
            return ", ".join(items)
        return str(space)

    async def act(self, observation: Any, info: dict[str, Any]) -> Any:
        text = observation.get("text") if isinstance(observation, dict) else None
        rules = self.context.rules
        if text is not None and rules and text.startswith(rules):
            text = text[len(rules) :].lstrip()  # the rules were shown when the episode began
        self.console.print(escape(text if text is not None else repr(observation)))
        prompt = f"{self.name}, your action ({self._legal_actions()}): "
        while True:
            try:
                answer = await asyncio.to_thread(self.input_fn, prompt)
            except EOFError:
                raise AgentError(f"{self.name}: the human player's input closed") from None
            action = self._parse(answer)
            if action is not None:
                return action
            self.console.print(f"[red]{escape(answer.strip()) or '(empty)'} is not a legal action.[/]")

    def _parse(self, answer: str) -> Any:
        space = self.context.action_space
        answer = answer.strip()
        if isinstance(space, spaces.Discrete):
            meanings = [m.lower() for m in (self.context.action_meanings or [])]
            if answer.lower() in meanings:
                return int(space.start) + meanings.index(answer.lower())
            try:
                action = int(answer)
            except ValueError:
                return None
            return action if space.contains(action) else None
        return None
