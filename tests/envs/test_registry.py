"""The registry: variants, metrics and fallbacks through wrappers, and plugins through the
`normlab.envs` entry-point group."""

from __future__ import annotations

import importlib.metadata
import json
import logging

import pytest

import normlab.envs as envs
from normlab.envs import registry
from normlab.envs.base import count_events


@pytest.fixture
def fresh_plugins(monkeypatch):
    """The registry as if plugins had not been loaded yet, with these entry points."""

    def install(*entries: importlib.metadata.EntryPoint) -> None:
        monkeypatch.setattr(registry, "_plugins_loaded", False)
        monkeypatch.setattr(
            registry.importlib.metadata,
            "entry_points",
            lambda group: [e for e in entries if e.group == group],
        )
        monkeypatch.setattr(registry, "_SPECS", dict(registry._SPECS))

    return install


def register_plugin_env() -> None:
    envs.register("plugin/IPD-long-v0", envs.IPD_ENTRY, "parallel", "A plugin's variant", kwargs={"rounds": 50})


def test_a_plugin_registers_through_the_entry_point_group_when_first_looked_up(fresh_plugins):
    fresh_plugins(importlib.metadata.EntryPoint("mine", f"{__name__}:register_plugin_env", envs.ENTRY_POINT_GROUP))
    assert "plugin/IPD-long-v0" not in registry._SPECS  # lazily: nothing loaded before a lookup
    assert "plugin/IPD-long-v0" in [s.id for s in envs.specs()]
    assert envs.make("plugin/IPD-long-v0").rounds == 50


def test_a_broken_plugin_is_one_warning_line(fresh_plugins, caplog):
    fresh_plugins(
        importlib.metadata.EntryPoint("broken", "no_such_module_xyz:register", envs.ENTRY_POINT_GROUP),
        importlib.metadata.EntryPoint("mine", f"{__name__}:register_plugin_env", envs.ENTRY_POINT_GROUP),
    )
    with caplog.at_level(logging.WARNING, logger="normlab.envs"):
        ids = [s.id for s in envs.specs()]
    assert "plugin/IPD-long-v0" in ids and "normlab/IteratedPrisonersDilemma-v0" in ids
    (record,) = caplog.records
    assert "broken" in record.getMessage() and "ModuleNotFoundError" in record.getMessage()
    assert "\n" not in record.getMessage()
    envs.spec("normlab/SupervisedShortcut-v0")  # loaded once: no second warning
    assert len(caplog.records) == 1


def test_normlab_registers_its_own_envs_through_the_same_callable():
    before = {s.id: s for s in envs.specs()}
    envs.register_builtins()
    assert {s.id: s for s in envs.specs()} == before


def test_register_checks_its_arguments():
    with pytest.raises(ValueError, match="api"):
        envs.register("x/Y-v0", envs.IPD_ENTRY, "tabletop", "no")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="max_episode_steps"):
        envs.register("x/Y-v0", envs.IPD_ENTRY, "parallel", "no", max_episode_steps=0)
    with pytest.raises(ValueError, match="AEC"):
        envs.register("x/Y-v0", envs.IPD_ENTRY, "aec", "no", max_episode_steps=5)
    assert "x/Y-v0" not in registry._SPECS


def test_registry_functions_read_the_env_under_gymnasium_wrappers():
    env = envs.make("normlab/SupervisedShortcut-v0", supervision="never")
    env.reset(seed=0)
    assert envs.event_types(env) == env.unwrapped.event_types
    assert envs.fallback_action(env, envs.SINGLE_AGENT_ID) is None
    assert envs.rules(env, envs.SINGLE_AGENT_ID) is None  # the base's default, not "None"
    assert env.unwrapped.action_request(envs.SINGLE_AGENT_ID) is None  # the static space's request
    assert len(envs.action_meanings(env, envs.SINGLE_AGENT_ID)) == 2


def test_metrics_match_the_runners_shape():
    rows = [
        {"agent": "player_0", "info": json.dumps({"events": [{"type": "invalid_action"}, {"type": "defect"}]})},
        {"agent": "player_1", "info": {"events": [{"type": "cooperate"}]}},
        {"agent": "player_1", "info": {"events": []}},
        {"agent": "player_2", "info": {}},
        {"agent": "player_0", "info": {"events": [{"no": "type"}, "odd"]}},
    ]
    expected = {
        "events": {"invalid_action": 1, "defect": 1, "cooperate": 1, "event": 2},
        "events_by_agent": {"player_0": {"invalid_action": 1, "defect": 1, "event": 2}, "player_1": {"cooperate": 1}},
    }
    assert count_events(rows) == expected
    found = envs.metrics(envs.make("normlab/IteratedPrisonersDilemma-v0"), rows)  # its own metrics beside the counts
    assert {key: found[key] for key in expected} == expected


def test_move_event_types_come_from_the_registered_envs():
    declared = set().union(*(getattr(s.load(), "move_events", frozenset()) for s in envs.specs()))
    assert envs.move_event_types() == declared and {"cooperate", "defect"} <= declared


def test_an_env_that_cannot_be_imported_is_a_problem_not_a_traceback(monkeypatch):
    monkeypatch.setitem(registry._SPECS, "x/Gone-v0", envs.EnvSpec("x/Gone-v0", "no_such_module_xyz:Env", "parallel", "gone"))
    problems, built = registry.check_params("x/Gone-v0", {"a": 1})
    assert built is None
    assert problems == [((), "env x/Gone-v0 cannot be loaded from no_such_module_xyz:Env: ModuleNotFoundError: No module named 'no_such_module_xyz'")]
