"""The model client over LiteLLM with the mock provider: retries, cache, budget, recording."""

from __future__ import annotations

import asyncio
import time

import pytest

from normlab.models import Budget, BudgetExhausted, CacheMiss, ModelClient, ModelError, ModelResources, RetryPolicy
from normlab.models import mock
from normlab.store import Store

MESSAGES = [{"role": "user", "content": "Answer 0 or 1."}]


def client(name: str, rows: list | None = None, **kwargs) -> ModelClient:
    kwargs.setdefault("retry", RetryPolicy(attempts=4, base_delay=0.001))
    return ModelClient(f"mock/{name}", record=rows.append if rows is not None else None, **kwargs)


def complete(c: ModelClient, messages=MESSAGES, **kwargs):
    return asyncio.run(c.complete(messages, **kwargs))


@pytest.fixture(autouse=True)
def fresh_mocks():
    mock.reset_calls()
    yield
    for name in ("fixed", "flaky", "dead", "garbage", "auth", "slow", "fn"):
        mock.unregister(name)


def test_reply_usage_and_recording():
    rows: list = []
    mock.register("fixed", {"reply": '{"action": 1}'})
    reply = complete(client("fixed", rows), temperature=0.3, max_tokens=9, seed=4)
    assert reply.content == '{"action": 1}' and not reply.cache_hit
    assert reply.tokens_in > 0 and reply.tokens_out > 0
    (row,) = rows
    assert row["model"] == "mock/fixed" and row["request"] == MESSAGES
    assert row["params"] == {"temperature": 0.3, "max_tokens": 9, "seed": 4}
    assert row["response"] == '{"action": 1}' and row["error"] is None and row["cost_usd"] == 0.0


@pytest.mark.parametrize("fault", ["rate_limit", "timeout", "server_error"])
def test_transient_faults_are_retried_and_each_attempt_recorded(fault):
    rows: list = []
    mock.register("flaky", {"fail_first": 2, "fault": fault, "reply": "ok"})
    reply = complete(client("flaky", rows))
    assert reply.content == "ok"
    assert mock.calls("flaky") == 3
    assert [r["error"] is not None for r in rows] == [True, True, False]


def test_retries_give_up_with_a_clear_error():
    rows: list = []
    mock.register("dead", {"fail_first": 100, "fault": "rate_limit"})
    with pytest.raises(ModelError, match="mock/dead.*rate limit"):
        complete(client("dead", rows))
    assert mock.calls("dead") == 4 and len(rows) == 4


def test_non_transient_errors_are_not_retried():
    mock.register("auth", {"fail_first": 5, "fault": "auth"})
    with pytest.raises(ModelError, match="invalid API key"):
        complete(client("auth"))
    assert mock.calls("auth") == 1


def test_backoff_grows_exponentially_with_jitter():
    import random

    policy = RetryPolicy(attempts=6, base_delay=0.1, max_delay=1.0)
    rng = random.Random(0)
    delays = [[policy.delay(a, rng) for _ in range(200)] for a in range(5)]
    assert all(0 <= d <= min(1.0, 0.1 * 2**a) for a, ds in enumerate(delays) for d in ds)
    assert max(delays[3]) > max(delays[0]) * 4  # grows with the attempt
    assert len({round(d, 6) for d in delays[2]}) > 100  # jittered


def test_cache_on_hits_and_replay_needs_no_live_call(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    mock.register("fixed", {"replies": ["a", "b", "c"]})
    on = ModelResources(cache=store, cache_mode="on")
    episode = client("fixed", resources=on)
    first = [complete(episode, seed=1).content for _ in range(2)]
    assert first == ["a", "b"] and mock.calls("fixed") == 2
    # a new client (a new episode) repeats the same requests: answered from the cache
    rows: list = []
    again = client("fixed", rows, resources=on)
    assert [complete(again, seed=1).content for _ in range(1)] == first[:1]
    assert mock.calls("fixed") == 2 and rows[0]["cache_hit"]

    replay = ModelResources(cache=store, cache_mode="replay")
    assert complete(client("fixed", resources=replay), seed=1).content == first[0]
    with pytest.raises(CacheMiss, match="no stored reply"):
        complete(client("fixed", resources=replay), seed=2)
    assert mock.calls("fixed") == 2


def test_identical_requests_in_one_episode_are_distinct_samples(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    mock.register("fixed", {"replies": ["first", "second"]})
    c = client("fixed", resources=ModelResources(cache=store, cache_mode="on"))
    assert [complete(c).content, complete(c).content] == ["first", "second"]
    c2 = client("fixed", resources=ModelResources(cache=store, cache_mode="replay"))
    assert [complete(c2).content, complete(c2).content] == ["first", "second"]


def test_cache_off_never_stores(tmp_path):
    store = Store(f"sqlite:///{tmp_path / 'c.db'}")
    mock.register("fixed", {"reply": "x"})
    off = ModelResources(cache=store, cache_mode="off")
    complete(client("fixed", resources=off))
    complete(client("fixed", resources=off))
    assert mock.calls("fixed") == 2


def test_budget_stops_calls():
    mock.register("fixed", {"reply": "one two three"})
    resources = ModelResources(cache_mode="off", budget=Budget(tokens=20))
    c = client("fixed", resources=resources)
    with pytest.raises(BudgetExhausted, match="token budget"):
        for _ in range(50):
            complete(c)
    assert 20 <= resources.budget.used_tokens < 40


def test_max_connections_limits_calls_in_flight():
    in_flight = {"now": 0, "max": 0}

    async def slow(messages, **params):
        in_flight["now"] += 1
        in_flight["max"] = max(in_flight["max"], in_flight["now"])
        await asyncio.sleep(0.02)
        in_flight["now"] -= 1
        return "ok"

    mock.register("slow", slow)
    resources = ModelResources(cache_mode="off")

    async def many():
        clients = [client("slow", resources=resources, max_connections=3) for _ in range(12)]
        await asyncio.gather(*(c.complete(MESSAGES) for c in clients))

    asyncio.run(many())
    assert in_flight["max"] == 3


def test_latency_is_measured():
    mock.register("slow", {"latency": 0.05, "reply": "x"})
    started = time.perf_counter()
    reply = complete(client("slow"))
    assert 0.05 <= reply.latency_s <= time.perf_counter() - started


def test_secrets_are_scrubbed_from_errors(monkeypatch):
    monkeypatch.setenv("MOCK_API_KEY", "sk-secret-123456")

    def leaky(messages, **params):
        raise RuntimeError("bad key sk-secret-123456 rejected")

    mock.register("fn", leaky)
    rows: list = []
    with pytest.raises(ModelError) as info:
        complete(client("fn", rows))
    assert "sk-secret-123456" not in str(info.value)
    assert "sk-secret-123456" not in str(rows)


def test_own_providers_skip_litellms_price_lookup(monkeypatch):
    """mock/ and local/ replies say they cost nothing, so LiteLLM never looks for a price it
    does not have (its cost lookup was about half of the CPU time of a mock call)."""
    import litellm

    looked_up: list = []
    real = litellm.response_cost_calculator
    monkeypatch.setattr(litellm, "response_cost_calculator", lambda *a, **k: looked_up.append(1) or real(*a, **k))
    mock.register("free", {"reply": '{"action": 0}'})
    rows: list = []
    reply = complete(client("free", rows))
    assert reply.cost_usd == 0.0 and rows[0]["cost_usd"] == 0.0
    assert looked_up == []
