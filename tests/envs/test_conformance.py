"""What every registered env owes the rest of normlab, checked for each id in the registry
(variants and plugins included): the official Gymnasium / PettingZoo checkers pass, every
event it emits is declared, an invalid action (None) becomes the declared fallback with an
`invalid_action` event, its `Params` have a JSON Schema, and a spec's time limit holds."""

from __future__ import annotations

import json
import warnings
from collections import Counter
from typing import Any

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from pettingzoo.test import api_test, parallel_api_test, parallel_seed_test, seed_test

import normlab.envs as envs
from normlab.envs import INVALID_ACTION
from normlab.envs.base import EnvBase, count_events

IDS = [s.id for s in envs.specs()]
MAX_STEPS = 10_000  # a random episode longer than this is a bug in the env or the test


def _events(info: Any) -> list[dict[str, Any]]:
    found = info.get("events", []) if isinstance(info, dict) else []
    assert isinstance(found, list), f"info['events'] must be a list, got {found!r}"
    for event in found:
        assert isinstance(event, dict) and isinstance(event.get("type"), str), f"an event needs a str type: {event!r}"
    return found


def sampler(env: Any, seed: int) -> Any:
    """Legal random actions: drawn from the turn's request where the env makes its own
    requests (its static space is then an envelope wider than a turn's legal actions), else
    from the action space, seeded."""
    target = env.unwrapped
    if type(target).action_request is EnvBase.action_request:
        if envs.api_of(env) == "gymnasium":
            return lambda agent: env.action_space.sample()
        return lambda agent: env.action_space(agent).sample()
    rng = np.random.default_rng(seed)
    single = envs.api_of(env) == "gymnasium"

    def sample(agent: str) -> Any:
        request = target.action_request(agent)
        if request is not None:
            return request.sample(rng)
        return env.action_space.sample() if single else env.action_space(agent).sample()

    return sample


def play(env_id: str, seed: int, invalid: bool = False) -> tuple[Any, list[dict[str, Any]]]:
    """One episode of seeded random actions (the first acting agent answers None at the first
    step when `invalid`); the env and step rows of (t, agent, reward, terminated, truncated, info)."""
    env = envs.make(env_id)
    api = envs.api_of(env)
    rows: list[dict[str, Any]] = []

    def row(t: int, agent: str, reward: float, term: bool, trunc: bool, info: Any) -> None:
        _events(info)
        rows.append({"t": t, "agent": agent, "reward": reward, "terminated": term, "truncated": trunc, "info": info})

    sample = sampler(env, seed)
    if api == "gymnasium":
        env.action_space.seed(seed)
        _, info = env.reset(seed=seed)
        _events(info)
        for t in range(1, MAX_STEPS + 1):
            action = None if invalid and t == 1 else sample(envs.SINGLE_AGENT_ID)
            _, reward, term, trunc, info = env.step(action)
            row(t, envs.SINGLE_AGENT_ID, reward, term, trunc, info)
            if term or trunc:
                break
        else:
            pytest.fail(f"{env_id}: no end after {MAX_STEPS} steps")
    elif api == "parallel":
        _, infos = env.reset(seed=seed)
        for agent in env.possible_agents:
            env.action_space(agent).seed(seed)
        for info in infos.values():
            _events(info)
        for t in range(1, MAX_STEPS + 1):
            if not env.agents:
                break
            actions = {a: sample(a) for a in env.agents}
            if invalid and t == 1:
                actions[env.agents[0]] = None
            _, rewards, terms, truncs, infos = env.step(actions)
            for agent in rewards:
                row(t, agent, rewards[agent], terms[agent], truncs[agent], infos.get(agent, {}))
        else:
            pytest.fail(f"{env_id}: no end after {MAX_STEPS} steps")
    else:  # aec: what a turn did reaches its agent at its next `last()`, as normlab reads it
        env.reset(seed=seed)
        for agent in env.possible_agents:
            env.action_space(agent).seed(seed)
        acted_at: dict[str, int] = {}  # agent -> the turn its next `last()` reports on
        for t, agent in enumerate(env.agent_iter(MAX_STEPS), start=1):
            _, reward, term, trunc, info = env.last()
            row(acted_at.get(agent, 0), agent, reward, term, trunc, info)
            if term or trunc:
                action = None
            else:
                action = None if invalid and t == 1 else sample(agent)
                acted_at[agent] = t
            env.step(action)
    return env, rows


def declared(env: Any) -> dict[str, str]:
    types = envs.event_types(env)
    assert types, "the env declares no event_types"
    return types


@pytest.mark.filterwarnings("error")
@pytest.mark.parametrize("env_id", IDS)
def test_official_checker(env_id):
    api = envs.spec(env_id).api
    if api == "gymnasium":
        env = envs.make(env_id)
        check_env(env.unwrapped)  # it has a spec, so the render modes are checked too
        env.close()
    elif api == "parallel":
        parallel_api_test(envs.make(env_id), num_cycles=200)
        parallel_seed_test(lambda: envs.make(env_id))
    else:
        with warnings.catch_warnings():
            # api_test asks AEC envs for array observations and Box spaces; normlab's turn
            # envs observe a Dict of text and fields and take text and numbers as actions
            warnings.filterwarnings("ignore", message=r"Observation is not a NumPy array")
            warnings.filterwarnings("ignore", message=r".*probably should be gymnasium\.spaces\.box")
            api_test(envs.make(env_id), num_cycles=200)
            seed_test(lambda: envs.make(env_id))


@pytest.mark.parametrize("env_id", IDS)
def test_every_emitted_event_type_is_declared(env_id):
    emitted: Counter[str] = Counter()
    env = None
    for seed in range(4):
        env, rows = play(env_id, seed, invalid=seed == 3)
        emitted.update(e["type"] for r in rows for e in _events(r["info"]))
    types = declared(env)
    assert set(emitted) <= set(types), f"undeclared event types: {set(emitted) - set(types)}"
    assert all(isinstance(v, str) and v for v in types.values()), "each event type needs a description"
    assert set(getattr(env.unwrapped, "move_events", ())) <= set(types)


@pytest.mark.parametrize("env_id", IDS)
def test_invalid_action_gets_the_declared_fallback(env_id):
    env, rows = play(env_id, seed=5, invalid=True)
    assert INVALID_ACTION in declared(env)
    hits = [r for r in rows if any(e["type"] == INVALID_ACTION for e in _events(r["info"]))]
    assert len(hits) == 1 and hits[0]["t"] == 1, f"one {INVALID_ACTION} event expected, at the first step: {rows[:3]}"
    first = hits[0]
    agent = first["agent"]
    fallback = envs.fallback_action(env, agent)
    if fallback is None or envs.api_of(env) == "aec":
        return
    space = envs.agent_ids_and_action_spaces(env)[1][agent]
    assert space.contains(fallback), f"fallback {fallback!r} is not in {space}"
    # the same step with the fallback given outright: same rewards, same events but the invalid one
    again = envs.make(env_id)
    if envs.api_of(again) == "gymnasium":
        again.reset(seed=5)
        _, reward, *_, info = again.step(fallback)
        assert reward == first["reward"]
        assert _events(info) == [e for e in _events(first["info"]) if e["type"] != INVALID_ACTION]
        return
    _, infos = env.reset(seed=5)  # replay the first step of `play` exactly
    for a in env.possible_agents:
        env.action_space(a).seed(5)
    sample = sampler(env, 5)
    actions = {a: sample(a) for a in env.agents}
    fallback = envs.fallback_action(env, agent)  # the first turn's (it may depend on the phase)
    actions[agent] = None
    _, rewards, _, _, infos = env.step(actions)
    again.reset(seed=5)
    _, rewards2, _, _, infos2 = again.step({**actions, agent: fallback})
    assert rewards2 == rewards
    for a in rewards:
        assert _events(infos2[a]) == [e for e in _events(infos[a]) if e["type"] != INVALID_ACTION]


@pytest.mark.parametrize("env_id", IDS)
def test_metrics_count_the_episodes_events(env_id):
    env, rows = play(env_id, seed=1, invalid=True)
    stored = [{**r, "info": json.dumps(r["info"], default=str)} for r in rows]  # as the store keeps them
    metrics = envs.metrics(env, stored)
    json.dumps(metrics)
    assert metrics["events"] == dict(Counter(e["type"] for r in rows for e in _events(r["info"])))
    assert metrics == {**metrics, **count_events(rows)}


@pytest.mark.parametrize("env_id", IDS)
def test_params_have_a_json_schema(env_id):
    env_spec = envs.spec(env_id)
    model = env_spec.params_model()
    if model is None:
        assert not env_id.startswith("normlab/"), "normlab's own envs declare Params"
        pytest.skip(f"{env_id} declares no Params")
    schema = model.model_json_schema()
    assert schema["type"] == "object" and schema.get("additionalProperties") is False
    assert set(schema["properties"]) == set(model.model_fields)
    model()  # every parameter has a default
    model.model_validate(dict(env_spec.kwargs))  # a variant's kwargs are valid params
    assert issubclass(env_spec.load(), EnvBase)


@pytest.mark.parametrize("env_id", IDS)
def test_max_episode_steps_is_honoured(env_id):
    limit = envs.spec(env_id).max_episode_steps
    if limit is None:
        pytest.skip(f"{env_id} sets no max_episode_steps")
    for seed in range(3):
        _, rows = play(env_id, seed)
        assert max(r["t"] for r in rows) <= limit
        last = [r for r in rows if r["t"] == max(r["t"] for r in rows)]
        assert all(r["terminated"] or r["truncated"] for r in last)


@pytest.fixture
def short_ipd():
    """A variant of the IPD, registered for one test: 10 rounds, cut at 3 steps."""
    env_id = "test/ShortIPD-v0"
    envs.register(env_id, envs.IPD_ENTRY, "parallel", "IPD cut short", kwargs={"rounds": 10}, max_episode_steps=3)
    yield env_id
    from normlab.envs import registry

    registry._SPECS.pop(env_id, None)


@pytest.mark.filterwarnings("error")
def test_parallel_time_limit_truncates(short_ipd):
    env = envs.make(short_ipd)
    parallel_api_test(env, num_cycles=50)
    env.reset(seed=0)
    for t in range(1, 4):
        assert env.agents == ["player_0", "player_1"]
        _, _, terms, truncs, _ = env.step({"player_0": 0, "player_1": 0})
        assert not any(terms.values())
        assert all(truncs.values()) == (t == 3)
    assert env.agents == []
    assert envs.rules(env, "player_0").startswith("You are playing an iterated Prisoner's Dilemma against another player for 10 rounds")
    assert envs.fallback_action(env, "player_0") == 1
    env.reset(seed=0)
    assert env.agents == ["player_0", "player_1"]


def test_gymnasium_time_limit_comes_from_the_spec():
    env_id = "test/ShortcutCut-v0"
    envs.register(env_id, "normlab.envs.conflicts.supervised_shortcut:SupervisedShortcutEnv", "gymnasium", "cut", max_episode_steps=1)
    try:
        env = envs.make(env_id)
        assert isinstance(env, gymnasium.wrappers.TimeLimit)
        env.reset(seed=0)
        assert env.step(0)[2] is True
    finally:
        from normlab.envs import registry

        registry._SPECS.pop(env_id, None)
        gymnasium.registry.pop(env_id, None)
