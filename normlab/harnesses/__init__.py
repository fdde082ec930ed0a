"""Harnesses: how an LLM agent turns an observation into an action. One class each.

The table below is static so that scenarios can be checked without importing LangChain."""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from normlab.harnesses.base import INVALID, Harness, HarnessContext


@dataclass(frozen=True)
class HarnessInfo:
    entry_point: str
    description: str
    carries_state: bool = False
    uses_tools: bool = False

    def load(self) -> type[Harness]:
        module_name, _, attr = self.entry_point.partition(":")
        return getattr(importlib.import_module(module_name), attr)


HARNESSES: dict[str, HarnessInfo] = {
    "direct": HarnessInfo("normlab.harnesses.direct:DirectHarness", "One call per step; the answer is parsed into a legal action, with bounded re-asks."),
    "react": HarnessInfo("normlab.harnesses.react:ReactHarness", "Tool-calling loop over env tools, `act` and load_skill; the action is a tool call or a final answer.", uses_tools=True),
    "reflective": HarnessInfo("normlab.harnesses.reflective:ReflectiveHarness", "Direct answers with a window of past (situation, choice, reward, feedback) carried across episodes.", carries_state=True),
    "langchain": HarnessInfo("normlab.harnesses.langchain:LangChainHarness", "A LangChain tool-calling agent over ChatLiteLLM; accepts any LangChain BaseTool.", uses_tools=True),
}

__all__ = ["HARNESSES", "INVALID", "Harness", "HarnessContext", "HarnessInfo"]
