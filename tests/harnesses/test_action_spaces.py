"""Free-text and structured actions: Text, Dict, Tuple and bounded array spaces get a JSON
schema tight enough to constrain a model, and answers are read back as legal actions."""

from __future__ import annotations

import json
import string

import gymnasium
import jsonschema
import numpy as np
import pytest
from gymnasium import spaces

from normlab.requests import INVALID
from normlab.harnesses.actions import ActionFormat
from normlab.spaces import coerce_to_space, space_schema

MESSAGE = spaces.Text(max_length=40, min_length=1, charset=string.ascii_letters + string.digits + " .,!?'")
OFFER = spaces.Dict({"message": MESSAGE, "keep": spaces.Discrete(11)})
SPACES = {
    "text": MESSAGE,
    "dict": OFFER,
    "tuple": spaces.Tuple((spaces.Discrete(3), MESSAGE)),
    "multibinary": spaces.MultiBinary(4),
    "multidiscrete": spaces.MultiDiscrete([3, 3]),
    "box": spaces.Box(low=0.0, high=10.0, shape=(2,), dtype=np.float32),
    "box-scalar": spaces.Box(low=0, high=5, shape=(), dtype=np.int64),
}


def plain(value):
    """A sample as the JSON a model would write."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (tuple, list)):
        return [plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


@pytest.mark.parametrize("name", list(SPACES))
def test_samples_fit_the_schema_and_read_back_as_legal_actions(name):
    space = SPACES[name]
    space.seed(3)
    schema = space_schema(space)
    assert schema, "every space gets a schema"
    for _ in range(20):
        sample = plain(space.sample())
        if name != "tuple":  # a tuple's schema bounds its length only
            jsonschema.validate(sample, schema)
        action, error = coerce_to_space(space, sample)
        assert error is None, error
        assert space.contains(action)


@pytest.mark.parametrize("name", list(SPACES))
def test_llama_cpp_compiles_a_grammar_for_each_schema(name):
    from llama_cpp import llama_grammar

    schema = ActionFormat(SPACES[name]).schema()
    assert llama_grammar.LlamaGrammar.from_json_schema(json.dumps(schema), verbose=False) is not None


def test_free_text_is_an_action():
    fmt = ActionFormat(MESSAGE)
    assert fmt.parse('{"action": "I will cooperate"}') == ("I will cooperate", None)
    assert fmt.parse("  Deal, I keep four.  ") == ("Deal, I keep four.", None)  # a bare answer
    action, error = fmt.parse('{"action": "' + "x" * 41 + '"}')
    assert action is INVALID and "41 characters" in error
    action, error = fmt.parse('{"action": "no <tags> allowed"}')
    assert action is INVALID and "<" in error
    assert fmt.value_schema() == {"type": "string", "minLength": 1, "maxLength": 40}


def test_a_composite_action_is_read_field_by_field():
    fmt = ActionFormat(OFFER)
    action, error = fmt.parse('{"action": {"message": "Fair split", "keep": 5}}')
    assert error is None and action == {"message": "Fair split", "keep": 5}
    assert OFFER.contains(action)
    for bad, why in [
        ('{"action": {"message": "Fair split"}}', "keys"),
        ('{"action": {"message": "Fair split", "keep": 12}}', "keep"),
        ('{"action": {"message": 7, "keep": 1}}', "message"),
        ('{"action": {"message": "ok", "keep": NaN}}', "keep"),
    ]:
        action, error = fmt.parse(bad)
        assert action is INVALID and why in error, (bad, error)
    assert '"keep": an integer from 0 to 10' in fmt.instructions()


class OfferEnv(gymnasium.Env):
    """One turn: the agent sends a message and how much it keeps."""

    def __init__(self):
        self.observation_space = spaces.Dict({"text": spaces.Text(max_length=200, charset=string.printable)})
        self.action_space = OFFER

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return {"text": "Split 10 coins: send a short message and say how many you keep."}, {"events": []}

    def step(self, action):
        if not self.action_space.contains(action):
            return {"text": "over"}, 0.0, True, False, {"events": [{"type": "invalid_action"}]}
        return {"text": "over"}, float(action["keep"]), True, False, {"events": [{"type": "offer", "keep": int(action["keep"])}]}


@pytest.fixture
def offer_env():
    from normlab import envs

    envs.register("test/Offer-v0", f"{__name__}:OfferEnv", "gymnasium", "A one-turn offer with a message.")
    yield "test/Offer-v0"
    envs.registry._SPECS.pop("test/Offer-v0", None)
    gymnasium.registry.pop("test/Offer-v0", None)


@pytest.mark.parametrize(
    "model",
    ["mock/offer, params: {mock: {reply: '{\"action\": {\"message\": \"Half each\", \"keep\": 5}}'}}", "local/smollm2-135m, max_tokens: 48"],
    ids=["mock", "local"],
)
def test_an_llm_agent_plays_a_message_and_a_number(offer_env, tmp_path, model):
    """Every free-text answer ended as an invalid action before; the embedded model, held to
    the schema, answers legally."""
    from normlab.runner import run_scenario
    from normlab.scenario import parse_scenario
    from normlab.store import Store

    scenario = parse_scenario(f"name: offer\nenv: {{id: {offer_env}}}\nagents:\n  agent: {{kind: llm, model: {model}}}\nepisodes: 2\ncache: off\n")
    store = Store(f"sqlite:///{tmp_path / 'o.db'}")
    run_id = run_scenario(scenario, store)
    steps = [s for ep in store.episodes(run_id) for s in store.steps(ep.id)]
    assert len(steps) == 2
    for step in steps:
        assert OFFER.contains({"message": step["action"]["message"], "keep": np.int64(step["action"]["keep"])})
        assert [e["type"] for e in step["info"]["events"]] == ["offer"]
