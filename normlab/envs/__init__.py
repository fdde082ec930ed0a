"""Environments. A new env is one module plus one `register` line here."""

from normlab.envs.registry import (
    SINGLE_AGENT_ID,
    EnvSpec,
    UnknownEnvError,
    action_meanings,
    agent_ids_and_action_spaces,
    api_of,
    make,
    register,
    rules,
    spec,
    specs,
    tools,
)

register(
    "normlab/IteratedPrisonersDilemma-v0",
    "normlab.envs.dilemmas.prisoners_dilemma:IteratedPrisonersDilemmaEnv",
    "parallel",
    "Two players choose cooperate or defect for a number of rounds (T/R/P/S payoffs, noise).",
)
register(
    "normlab/SupervisedShortcut-v0",
    "normlab.envs.conflicts.supervised_shortcut:SupervisedShortcutEnv",
    "gymnasium",
    "One workplace dilemma: follow the rule or take a better-paying shortcut, watched or not.",
)

__all__ = [
    "SINGLE_AGENT_ID",
    "EnvSpec",
    "UnknownEnvError",
    "action_meanings",
    "agent_ids_and_action_spaces",
    "api_of",
    "make",
    "register",
    "rules",
    "spec",
    "specs",
    "tools",
]
