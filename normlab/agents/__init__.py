"""Agents: scripted strategies, LLM agents and human players, built from scenario configs.

Agent kinds register in `normlab.agents.kinds` (config model, checks, factory)."""

from __future__ import annotations

from typing import Any

from gymnasium import spaces

from normlab.agents.base import Agent, AgentContext, AgentError, Decision
from normlab.agents.kinds import AGENT_KINDS, AgentFactory, AgentKind, resolve_agents
from normlab.agents.scripted import STRATEGIES, ScriptedAgent


def check_config(config: Any, action_space: spaces.Space | None, base: Any = None) -> list[tuple[tuple, str]]:
    """Problems with an agent config that the schema cannot see. `action_space` None (the env
    could not be built) runs only the checks that do not need it."""
    check = AGENT_KINDS[config.kind].check
    return check(config, action_space, base) if check is not None else []


__all__ = [
    "AGENT_KINDS",
    "STRATEGIES",
    "Agent",
    "AgentContext",
    "AgentError",
    "AgentFactory",
    "AgentKind",
    "Decision",
    "ScriptedAgent",
    "check_config",
    "resolve_agents",
]
