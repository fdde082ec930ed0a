"""LLM agents: a model (through the model client) driven by a harness, with skills and tools."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from normlab.agents.base import AgentContext, Decision
from normlab.harnesses import HARNESSES, Harness, HarnessContext
from normlab.requests import Request


@dataclass(frozen=True)
class LLMAgentFactory:
    """An LLM seat resolved once per run: its harness class and params, skills, tools, and
    the form in which its model gets the answer's schema (LiteLLM is asked once)."""

    config: Any
    seat: str
    harness_cls: type[Harness]
    harness_params: Any
    schema_style: str | None
    schema_fallback: bool
    skills: tuple[Any, ...]
    tools: tuple[Any, ...]

    @classmethod
    def resolve(cls, config: Any, seat: str, assets: Any) -> LLMAgentFactory:
        style, fallback = structured_output(config)
        return cls(
            config=config,
            seat=seat,
            harness_cls=HARNESSES[config.harness_name].load(),
            harness_params=config.harness_params(),
            schema_style=style,
            schema_fallback=fallback,
            skills=tuple(assets.skills.get(seat, [])),
            tools=tuple(assets.tool_objects(seat)),
        )

    def new_episode(self, context: AgentContext) -> LLMAgent:
        return LLMAgent(self, context)


class LLMAgent:
    """Model + harness + skills + tools; memory lives in the harness and crosses episodes
    only through `export_state` / `import_state`, which the runner passes via the store."""

    waits_on_io = True

    def __init__(self, factory: LLMAgentFactory, context: AgentContext):
        from normlab.models import ModelClient, ModelResources, RetryPolicy

        config = factory.config
        self.config = config
        self.context = context
        self.agent_id = context.agent_id
        # what one decision produced: returned with it, never written anywhere else
        self._calls: list[dict[str, Any]] = []
        self._notes: dict[str, Any] = {}
        self.client = ModelClient(
            config.model,
            resources=context.resources or ModelResources(cache_mode="off"),
            record=self._calls.append,
            api_base=config.api_base,
            extra=config.params,
            max_connections=config.max_connections,
            retry=RetryPolicy(attempts=config.call_retries + 1, base_delay=config.retry_delay),
            timeout=config.timeout,
        )
        harness_ctx = HarnessContext(
            agent_id=context.agent_id,
            action_space=context.action_space,
            client=self.client,
            action_meanings=context.action_meanings,
            rules=context.rules,
            system_prompt=config.system_prompt,
            skills=list(factory.skills),
            skills_mode=config.skills_mode,
            temperature=config.temperature,
            max_tokens=config.max_tokens,
            max_reasks=config.max_reasks,
            params=factory.harness_params,
            constrain=factory.schema_style is not None,
            schema_style=factory.schema_style or "json_object",
            schema_fallback=factory.schema_fallback,
            annotate=self._notes.__setitem__,
            extra_tools=list(factory.tools),
        )
        self.harness = factory.harness_cls(harness_ctx)
        if context.carried_state is not None:
            self.harness.import_state(context.carried_state)

    async def reset(self, seed: int) -> None:
        self.client.rng.seed(seed)
        self.harness.reset(seed)

    async def act(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Decision:
        action = await self.harness.decide(observation, info, request)
        notes = dict(self._notes) or None
        self._notes.clear()
        return Decision(action, notes, self.take_model_calls())

    def take_model_calls(self) -> tuple[dict[str, Any], ...]:
        """Model calls made since the last decision (all of them when a decision failed)."""
        calls = tuple(self._calls)
        self._calls.clear()
        return calls

    def observe_outcome(self, observation: Any, action: Any, reward: float, info: dict[str, Any]) -> None:
        self.harness.observe_outcome(observation, action, reward, info)

    def export_state(self) -> Any:
        return self.harness.export_state()


#: Providers of OpenAI-compatible servers, which honour a `json_schema` response_format
#: (`openai/` counts as one when it has an `api_base`).
SERVER_PREFIXES = ("hosted_vllm/", "ollama/", "ollama_chat/", "lm_studio/")


def structured_output(config: Any) -> tuple[str | None, bool]:
    """How an agent sends the action's JSON schema: (form, fall back to json_object?).

    The form is None (no schema: `structured_output: off` or `constrain: false`),
    "json_object" (llama.cpp's form, for normlab's own `local/` and `mock/` providers) or
    "json_schema" (OpenAI's). `auto` sends json_schema where LiteLLM says the model supports
    response schemas and to OpenAI-compatible servers; a server that refuses that form
    (llama-cpp-python's own server accepts only json_object) is then asked in llama.cpp's
    form. Elsewhere the harness parses free text and re-asks.
    """
    mode = getattr(config, "structured_output", "auto")
    model = config.model
    if mode == "off" or not config.constrain:
        return None, False
    if mode == "json_schema":
        return "json_schema", False
    if model.startswith(("local/", "mock/")):
        return "json_object", False
    if model.startswith(SERVER_PREFIXES) or (model.startswith("openai/") and config.api_base):
        return "json_schema", True
    return ("json_schema", False) if _supports_schema(model) else (None, False)


def _supports_schema(model: str) -> bool:
    """Whether LiteLLM says a model supports response schemas (it knows per model)."""
    try:
        from normlab.models.providers import litellm

        return bool(litellm().supports_response_schema(model=model))
    except Exception:
        return False


