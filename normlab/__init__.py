"""normlab: a sandbox for testing the values and norms of LLM agents.

The stable API is what this module exports; everything else may move. Names are imported on
first use, so `import normlab` stays cheap (the CLI starts fast, LiteLLM loads only when a
model is called).

    import normlab
    scenario = normlab.load_scenario("scenarios/ipd_classic.yaml")
    store = normlab.Store("sqlite:///runs/normlab.db")
    run_id = normlab.run_scenario(scenario, store)
    normlab.resume_run(store, run_id)        # after an interruption
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    # scenarios
    "Scenario": "normlab.scenario",
    "ScenarioError": "normlab.scenario",
    "load_scenario": "normlab.scenario",
    "parse_scenario": "normlab.scenario",
    "Overrides": "normlab.overrides",
    "apply_overrides": "normlab.overrides",
    # running
    "run_scenario": "normlab.run",
    "resume_run": "normlab.run",
    "play_episode": "normlab.episode",
    "RunFailed": "normlab.executors.errors",
    "BudgetStop": "normlab.executors.errors",
    "EpisodeResult": "normlab.results",
    # the store
    "Store": "normlab.store",
    "StoreError": "normlab.store",
    # environments
    "register": "normlab.envs",
    "make": "normlab.envs",
    "specs": "normlab.envs",
    "EnvBase": "normlab.envs",
    "EnvParams": "normlab.envs",
    # what an env asks for each turn
    "INVALID": "normlab.requests",
    "Choice": "normlab.requests",
    "Integer": "normlab.requests",
    "Number": "normlab.requests",
    "Text": "normlab.requests",
    "Tool": "normlab.requests",
    "Tools": "normlab.requests",
    "Composite": "normlab.requests",
    "ToolCall": "normlab.spaces",
    # agents
    "Agent": "normlab.agents",
    "AgentContext": "normlab.agents",
    "AgentError": "normlab.agents",
    "Decision": "normlab.agents",
    # models
    "require_keys": "normlab.models.keys",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'normlab' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
