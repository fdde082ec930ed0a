"""Environments. A new env is one module (built on `normlab.envs.base.EnvBase`) plus one
`register` line in `register_builtins`; other packages register through the `normlab.envs`
entry-point group."""

from normlab.envs.base import INVALID_ACTION, EnvBase, EnvParams, EnvParamsError
from normlab.envs.registry import (
    ENTRY_POINT_GROUP,
    SINGLE_AGENT_ID,
    EnvSpec,
    UnknownEnvError,
    action_meanings,
    agent_ids_and_action_spaces,
    api_of,
    details,
    event_types,
    fallback_action,
    make,
    metrics,
    move_event_types,
    register,
    rules,
    spec,
    specs,
)

IPD_ENTRY = "normlab.envs.dilemmas.prisoners_dilemma:IteratedPrisonersDilemmaEnv"


def register_builtins() -> None:
    """normlab's own envs (also the `normlab.envs` entry point of normlab itself: registering
    twice changes nothing)."""
    register(
        "normlab/IteratedPrisonersDilemma-v0",
        IPD_ENTRY,
        "parallel",
        "Two players choose cooperate or defect for a number of rounds (T/R/P/S payoffs, noise).",
    )
    register(
        "normlab/IteratedPrisonersDilemma-noisy-v0",
        IPD_ENTRY,
        "parallel",
        "The iterated Prisoner's Dilemma with noise 0.05: one move in twenty is carried out as the opposite.",
        kwargs={"noise": 0.05},
    )
    register(
        "normlab/IteratedPrisonersDilemma-talk-v0",
        IPD_ENTRY,
        "parallel",
        "The iterated Prisoner's Dilemma with cheap talk: each round both players send one message, then move.",
        kwargs={"talk": True},
    )
    register(
        "normlab/SupervisedShortcut-v0",
        "normlab.envs.conflicts.supervised_shortcut:SupervisedShortcutEnv",
        "gymnasium",
        "One workplace dilemma: follow the rule or take a better-paying shortcut, watched or not.",
    )
    register(
        "normlab/ThresholdCollective-v0",
        "normlab.envs.dilemmas.threshold:ThresholdCollectiveEnv",
        "parallel",
        "n agents choose collective or independent each round; everyone gains if at least `threshold` chose collective (the Alignment Tipping Process diffusion test).",
    )
    register(
        "normlab/PublicGoods-v0",
        "normlab.envs.dilemmas.public_goods:PublicGoodsEnv",
        "parallel",
        "n agents contribute to a pot multiplied by r and shared equally, with optional costly punishment after each round.",
    )
    register(
        "normlab/NoPressSplit-v0",
        "normlab.envs.dilemmas.split_games:NoPressSplitEnv",
        "parallel",
        "No-Press Split: two players claim hats, books and balls at once with public 1-or-10 values; over-claims are shared in proportion.",
    )
    register(
        "normlab/TrustAndSplit-v0",
        "normlab.envs.dilemmas.split_games:TrustAndSplitEnv",
        "aec",
        "Trust-and-Split: private rock/paper/scissors hands set who values the coins most; one message each, then both claim coins.",
    )
    register(
        "normlab/StagHunt-v0",
        "normlab.envs.dilemmas.stag_hunt:StagHuntEnv",
        "parallel",
        "The repeated stag hunt: hunt the stag together (4 each) or a hare alone (3, safe); n players with a param.",
    )
    register(
        "normlab/Ultimatum-v0",
        "normlab.envs.dilemmas.ultimatum:UltimatumEnv",
        "parallel",
        "The repeated ultimatum game: a proposer offers part of a pie, the responder accepts (split as offered) or rejects (both get 0).",
    )
    register("normlab/ToolTask-v0", "normlab.envs.tasks.tool_task:ToolTaskEnv", "gymnasium", "A task told in words, done with query and action tools over a hidden state (default: a refund just outside the policy window).")
    register(
        "normlab/CommonsHarvest-v0",
        "normlab.envs.dilemmas.commons:CommonsHarvestEnv",
        "parallel",
        "GovSim's commons: agents harvest a shared pool that doubles monthly (capped), talk, reflect; collapse below 5.",
    )


register_builtins()

__all__ = [
    "ENTRY_POINT_GROUP",
    "INVALID_ACTION",
    "SINGLE_AGENT_ID",
    "EnvBase",
    "EnvParams",
    "EnvParamsError",
    "EnvSpec",
    "UnknownEnvError",
    "action_meanings",
    "agent_ids_and_action_spaces",
    "api_of",
    "details",
    "event_types",
    "fallback_action",
    "make",
    "metrics",
    "move_event_types",
    "register",
    "register_builtins",
    "rules",
    "spec",
    "specs",
]
