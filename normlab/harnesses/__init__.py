"""Harnesses: how an LLM agent turns an observation into an action. One class each.

Each harness registers here with its own pydantic `Params` (what a scenario may set under
`harness: {name: react, max_iterations: 8}`; `harness: react` takes the defaults). The table
is static so that scenarios can be checked without importing LangChain."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from pydantic import Field

from normlab.harnesses.base import Harness, HarnessContext, HarnessParams
from normlab.requests import INVALID


class DirectParams(HarnessParams):
    pass


class ToolLoopParams(HarnessParams):
    max_iterations: int = Field(default=8, ge=1, le=1_000, description="Model turns of the tool loop before the turn is invalid")


class ReflectiveParams(HarnessParams):
    memory: int = Field(default=5, ge=0, le=10_000, description="Past (situation, answer, reward, feedback) turns shown in each prompt, across episodes")


@dataclass(frozen=True)
class HarnessInfo:
    entry_point: str
    description: str
    params: type[HarnessParams] = DirectParams
    carries_state: bool = False
    uses_tools: bool = False

    def load(self) -> type[Harness]:
        module_name, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module_name), attr)  # type: ignore[no-any-return]


HARNESSES: dict[str, HarnessInfo] = {
    "direct": HarnessInfo("normlab.harnesses.direct:DirectHarness", "One call per step; the answer is parsed into a legal action, with bounded re-asks."),
    "react": HarnessInfo(
        "normlab.harnesses.react:ReactHarness",
        "Tool-calling loop over env tools, `act` and load_skill; the action is a tool call or a final answer.",
        params=ToolLoopParams,
        uses_tools=True,
    ),
    "reflective": HarnessInfo(
        "normlab.harnesses.reflective:ReflectiveHarness",
        "Direct answers with a window of past (situation, choice, reward, feedback) carried across episodes.",
        params=ReflectiveParams,
        carries_state=True,
    ),
    "langchain": HarnessInfo(
        "normlab.harnesses.langchain:LangChainHarness",
        "A LangChain tool-calling agent over ChatLiteLLM; accepts any LangChain BaseTool.",
        params=ToolLoopParams,
        uses_tools=True,
    ),
}

__all__ = ["HARNESSES", "INVALID", "DirectParams", "Harness", "HarnessContext", "HarnessInfo", "HarnessParams", "ReflectiveParams", "ToolLoopParams"]
