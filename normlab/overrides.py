"""Command-line overrides of a scenario (`run --model ...`, `resume --cache ...`), applied
the same way by every entry point and re-validated like the file itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from normlab.scenario import Problem, Scenario, ScenarioError, check_semantics, scenario_from_config


class OverrideError(ValueError):
    """An override that cannot apply (one line for the user)."""


@dataclass
class Overrides:
    episodes: int | None = None
    seed: int | None = None
    cache: str | None = None
    model: str | None = None
    api_base: str | None = None
    budget_tokens: int | None = None
    budget_usd: float | None = None

    def empty(self) -> bool:
        return all(value is None for value in vars(self).values())


def apply_overrides(scenario: Scenario, overrides: Overrides) -> tuple[Scenario, list[str]]:
    """The scenario with the overrides applied, and notes to show the user (one line each).

    A model override drops the agents' own `api_base` unless `api_base` is given too: the
    new provider's key must never be sent to the server the old model was served from.
    """
    notes: list[str] = []
    if overrides.empty():
        return scenario, notes
    config = scenario.model_dump(mode="json")
    for key in ("episodes", "seed", "cache"):
        if getattr(overrides, key) is not None:
            config[key] = getattr(overrides, key)
    llm_agents = [agent_id for agent_id, cfg in scenario.agents.items() if cfg.kind == "llm"]
    if overrides.model is not None or overrides.api_base is not None:
        if not llm_agents:
            raise OverrideError("--model and --api-base swap the model of LLM agents, and this scenario has none")
        varied = [p for p in scenario.matrix or {} if p.startswith("agents.") and p.rsplit(".", 1)[-1] in ("model", "api_base")]
        if varied:
            raise OverrideError(f"the scenario's matrix varies {', '.join(varied)}: --model and --api-base would be overridden by it; edit the matrix instead")
        dropped = []
        for agent_id in llm_agents:
            agent = config["agents"][agent_id]
            if overrides.model is not None:
                if agent.get("api_base") and overrides.api_base is None and overrides.model != agent["model"]:
                    dropped.append(f"{agent_id} ({agent['api_base']})")
                    agent["api_base"] = None
                agent["model"] = overrides.model
            if overrides.api_base is not None:
                agent["api_base"] = overrides.api_base or None
        if dropped:
            notes.append(
                f"--model replaces the model served at its own api_base for {', '.join(dropped)}: "
                "that api_base is dropped (give --api-base to use a server)"
            )
    if overrides.model is not None:
        from normlab.agents.llm_checks import check_model_string

        problem = check_model_string(overrides.model)
        if problem:
            raise OverrideError(f"--model: {problem}")
    if overrides.budget_tokens is not None or overrides.budget_usd is not None:
        budget = dict(config.get("budget") or {})
        if overrides.budget_tokens is not None:
            budget["tokens"] = overrides.budget_tokens
        if overrides.budget_usd is not None:
            budget["usd"] = overrides.budget_usd
        config["budget"] = budget
    try:
        changed = scenario_from_config(config, scenario.source_text, scenario.source_path)
    except ValueError as exc:
        raise OverrideError(f"invalid override: {_first_error(exc)}") from None
    problems = check_semantics(changed)
    if problems:
        raise ScenarioError([Problem(scenario.source_path, 1, 1, ".".join(map(str, loc)), msg) for loc, msg in problems])
    return changed, notes


def _first_error(exc: ValueError) -> str:
    """Pydantic's first error as `field.path: message`, not its multi-line report."""
    from normlab.scenario import pydantic_message

    errors = getattr(exc, "errors", None)
    if callable(errors):
        first: dict[str, Any] = errors()[0]
        where = ".".join(str(part) for part in first.get("loc", ()))
        return f"{where}: {pydantic_message(first)}" if where else pydantic_message(first)
    return str(exc).splitlines()[0]
