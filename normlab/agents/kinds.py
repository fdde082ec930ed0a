"""The agent kinds a scenario may seat: each registers its config model (the scenario's
agent union and JSON Schema are built from these), its checks, and a factory.

A seat's config is resolved once per run (strategy looked up; for LLM agents the harness
class and params, skills, tools and the model's structured-output form) into an
`AgentFactory`, whose `new_episode(context)` builds the episode's agent cheaply.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from gymnasium import spaces
from pydantic import BaseModel

from normlab.agents.base import Agent, AgentContext
from normlab.agents.configs import HumanAgentConfig, LLMAgentConfig, ScriptedAgentConfig

Problems = list[tuple[tuple[Any, ...], str]]


class AgentFactory(Protocol):
    """A seat's resolved config: builds that seat's agent for each episode."""

    def new_episode(self, context: AgentContext) -> Agent: ...


@dataclass(frozen=True)
class AgentKind:
    name: str
    description: str
    #: the scenario's config model of this kind (its `kind` field is `Literal[name]`)
    config: type[BaseModel]
    #: (config, seat, run assets) -> AgentFactory, called once per run
    resolve: Callable[[Any, str, Any], AgentFactory]
    #: (config, the seat's action space or None, scenario folder) -> problems the schema cannot see
    check: Callable[[Any, spaces.Space | None, Path | None], Problems] | None = None


# --- the built-in kinds -------------------------------------------------------------------


def _check_scripted(config: Any, action_space: spaces.Space | None, base: Path | None) -> Problems:
    from normlab.agents.scripted import STRATEGIES

    cls = STRATEGIES.get(config.strategy)
    if cls is None:
        import difflib

        close = difflib.get_close_matches(config.strategy, list(STRATEGIES), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return [(("strategy",), f"must be one of {', '.join(STRATEGIES)}{hint}")]
    return cls.check(config.params, action_space)


@dataclass(frozen=True)
class ScriptedFactory:
    cls: Any
    params: dict[str, Any]

    def new_episode(self, context: AgentContext) -> Agent:
        return self.cls(context.action_space, self.params)  # type: ignore[no-any-return]


def _resolve_scripted(config: Any, seat: str, assets: Any) -> AgentFactory:
    from normlab.agents.scripted import STRATEGIES

    return ScriptedFactory(STRATEGIES[config.strategy], dict(config.params))


@dataclass(frozen=True)
class HumanFactory:
    name: str | None

    def new_episode(self, context: AgentContext) -> Agent:
        from normlab.agents.human import HumanAgent

        return HumanAgent(context, name=self.name)


def _resolve_human(config: Any, seat: str, assets: Any) -> AgentFactory:
    return HumanFactory(config.name)


def _check_llm(config: Any, action_space: spaces.Space | None, base: Path | None) -> Problems:
    from normlab.agents.llm_checks import check_llm_config

    return check_llm_config(config, action_space, base)


def _resolve_llm(config: Any, seat: str, assets: Any) -> AgentFactory:
    from normlab.agents.llm import LLMAgentFactory

    return LLMAgentFactory.resolve(config, seat, assets)


AGENT_KINDS: dict[str, AgentKind] = {
    kind.name: kind
    for kind in (
        AgentKind("scripted", "A fixed strategy (see the list below), pure and seeded.", ScriptedAgentConfig, _resolve_scripted, _check_scripted),
        AgentKind("llm", "A language model through a harness (direct, react, reflective, langchain).", LLMAgentConfig, _resolve_llm, _check_llm),
        AgentKind("human", "A person at the terminal, asked for a legal action each turn.", HumanAgentConfig, _resolve_human),
    )
}


def resolve_agents(agents: dict[str, Any], assets: Any) -> dict[str, AgentFactory]:
    """Each seat's factory, resolved once for a run."""
    return {seat: AGENT_KINDS[config.kind].resolve(config, seat, assets) for seat, config in agents.items()}
