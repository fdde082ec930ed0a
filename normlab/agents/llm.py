"""LLM agents: a model reached through a harness."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces


def check_llm_config(config: Any, action_space: spaces.Space) -> list[tuple[tuple, str]]:
    return [(("kind",), "LLM agents need normlab's model layer, which this version does not have yet")]


def build_llm_agent(config: Any, context: Any) -> Any:
    raise NotImplementedError("LLM agents need normlab's model layer")
