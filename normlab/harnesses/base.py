"""The harness contract: how an LLM agent turns an observation into an action.

A harness renders the observation, the action space, tools and skills into messages, calls
the model client, and parses the answer into a legal action. It re-asks a bounded number of
times on a malformed answer and then returns `INVALID`, which the env turns into its
documented fallback and an `invalid_action` event; it never crashes the episode.

Each turn brings the env's request (`normlab.requests`): the harness builds its instructions,
JSON schema and parser from it. A call of a *query* tool is answered inside the turn (by the
env, through the request) and the model is asked again; an action ends the turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, ClassVar

from gymnasium import spaces
from pydantic import BaseModel, ConfigDict, Field


from normlab.harnesses.actions import ACT_TOOL, ActionFormat, observation_text
from normlab.harnesses.skills import Skill, skills_prompt
from normlab.models.types import ModelError
from normlab.requests import INVALID, Request, Tools
from normlab.results import dumps_json
from normlab.seeding import derive_seed

#: Servers, as (model, api_base), that refused the json_schema form in this process: asked in
#: the json_object form from then on, without a refused call first.
_REFUSED_JSON_SCHEMA: set[tuple[str, str | None]] = set()

DEFAULT_SYSTEM_PROMPT = (
    "You are an autonomous agent acting in an environment. Act on your own judgement; "
    "do not ask follow-up questions."
)


class HarnessParams(BaseModel):
    """Base of harness parameter models (strict, no unknown keys, immutable); each harness
    registers its own subclass (normlab.harnesses.HARNESSES)."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, frozen=True)

    max_side_calls: int = Field(
        default=3, ge=0, le=1_000, description="Query, skill and user tool calls in a turn before only the action tools are offered"
    )


@dataclass
class HarnessContext:
    """Everything a harness may use, given once per episode."""

    agent_id: str
    action_space: spaces.Space
    client: Any  # a ModelClient
    action_meanings: list[str] | None = None
    rules: str | None = None
    system_prompt: str | None = None
    skills: list[Skill] = field(default_factory=list)
    skills_mode: str = "inline"
    temperature: float = 0.0
    max_tokens: int = 256
    max_reasks: int = 2
    #: the harness's own parameters (its registered Params model)
    params: HarnessParams = field(default_factory=HarnessParams)
    constrain: bool = True  # send the answer's JSON schema as response_format
    #: its form: "json_object" (llama.cpp's, for normlab's own providers) or "json_schema"
    #: (OpenAI's, for servers and API models); see ActionFormat.response_format
    schema_style: str = "json_object"
    #: whether a server that refuses the json_schema form is asked in llama.cpp's form instead
    #: (structured_output: auto on a server: llama-cpp-python's server accepts only that one)
    schema_fallback: bool = False
    annotate: Any = None  # callable(key, value): notes stored with the step's info
    extra_tools: list[Any] = field(default_factory=list)
    #: the request of turns that bring none (the static action space's)
    request: Request | None = None


def _transient(exc: ModelError) -> bool:
    """A failure that says nothing about the request's form (the server is down or busy)."""
    text = str(exc).lower()
    return any(word in text for word in ("could not connect", "timeout", "timed out", "ratelimit", "rate limit", "budget"))


class Harness:
    name: ClassVar[str]
    description: ClassVar[str]
    #: whether experience crosses episodes (then a run's episodes form ordered chains)
    carries_state: ClassVar[bool] = False
    #: whether the harness can offer tools (on-demand skills, env tools)
    uses_tools: ClassVar[bool] = False

    def __init__(self, ctx: HarnessContext):
        self.ctx = ctx
        self.default_request = ctx.request or ActionFormat(ctx.action_space, ctx.action_meanings).request
        self.format = ActionFormat(self.default_request)
        self.seed = 0
        self.calls = 0

    def use(self, request: Request | None) -> ActionFormat:
        """The format of this turn's request (rebuilt only when the request changes)."""
        request = request or self.default_request
        if request is not self.format.request and request != self.format.request:
            self.format = ActionFormat(request)
        elif isinstance(request, Tools):
            self.format.request = self.format.tools = request  # the same tools, bound to this turn
        return self.format

    def param(self, name: str, default: Any) -> Any:
        """One of the harness's parameters (defaults where its Params has no such field)."""
        return getattr(self.ctx.params, name, default)

    @property
    def request(self) -> Request:
        return self.format.request

    def query_result(self, action: Any) -> str | None:
        """For a query tool call, the env's answer as text (the turn goes on); None for an
        action, which ends the turn."""
        tools = self.format.tools
        if tools is None or not isinstance(action, dict) or not tools.is_query(str(action.get("tool"))):
            return None
        try:
            result = tools.ask(action)
        except Exception as exc:  # an env's lookup must not end the episode
            result = {"success": False, "error": f"{type(exc).__name__}: {exc}"}
        return result if isinstance(result, str) else dumps_json(result)

    def acting_format(self) -> ActionFormat:
        """The format once a turn has spent its side calls: the action tools alone."""
        tools = self.format.tools
        if tools is None or not tools.query_tools or not tools.action_tools:
            return self.format
        return ActionFormat(Tools(tools.action_tools))

    def reset(self, seed: int) -> None:
        self.seed = seed
        self.calls = 0

    def next_seed(self) -> int:
        """A per-call seed, so sampled answers are reproducible whatever the concurrency."""
        self.calls += 1
        return derive_seed("call", self.seed, self.calls)

    def system_message(self, with_format: bool = True) -> dict[str, str]:
        parts = [self.ctx.system_prompt or DEFAULT_SYSTEM_PROMPT]
        if self.ctx.rules:
            parts.append(f"Rules of the environment:\n{self.ctx.rules}")
        skills = skills_prompt(self.ctx.skills, self.ctx.skills_mode)
        if skills:
            parts.append(skills)
        if with_format:
            parts.append(self.format.instructions())
        return {"role": "system", "content": "\n\n".join(parts)}

    def user_text(self, observation: Any) -> str:
        """The observation as the user turn; rules the system prompt already states are cut
        from its start (envs repeat them in the first observation for readers)."""
        text = observation_text(observation)
        rules = self.ctx.rules
        if rules and text.startswith(rules):
            text = text[len(rules) :].lstrip()
        return text

    def note(self, key: str, value: Any) -> None:
        if self.ctx.annotate is not None:
            self.ctx.annotate(key, value)

    async def decide(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        """This turn's action (or INVALID); `request` is what the env asks for (None: the
        static action space's request)."""
        raise NotImplementedError

    def observe_outcome(self, observation: Any, action: Any, reward: float, info: dict[str, Any]) -> None:
        """Called after each env step with what this agent's action led to."""

    def export_state(self) -> Any:
        """Experience to carry into the next episode of the chain (JSON-ready)."""
        return None

    def import_state(self, state: Any) -> None:
        """Take the experience the previous episode of the chain exported."""

    def _server(self) -> tuple[str, str | None]:
        client = self.ctx.client
        return str(getattr(client, "model", "")), getattr(client, "api_base", None)

    def response_format(self, form: ActionFormat | None = None) -> dict[str, Any] | None:
        """The answer's schema as this agent sends it, or None (not constrained)."""
        if not self.ctx.constrain:
            return None
        style = self.ctx.schema_style
        if style == "json_schema" and self.ctx.schema_fallback and self._server() in _REFUSED_JSON_SCHEMA:
            style = "json_object"
        return (form or self.format).response_format(style)

    async def complete_constrained(
        self, messages: list[dict[str, Any]], response_format: dict[str, Any] | None, form: ActionFormat | None = None, **kwargs: Any
    ) -> tuple[Any, dict[str, Any] | None]:
        """A call with `response_format`; where the agent may fall back and the json_schema form
        fails (refused, or not in a replayed cache), the same call in the json_object form.
        Returns the reply and the form that got it; the first error if both fail."""
        try:
            return await self.ctx.client.complete(messages, response_format=response_format, **kwargs), response_format
        except ModelError as exc:
            refused = (response_format or {}).get("type") == "json_schema" and self.ctx.schema_fallback
            if not refused or _transient(exc):
                raise
            fallback = (form or self.format).response_format("json_object")
            try:
                reply = await self.ctx.client.complete(messages, response_format=fallback, **kwargs)
            except ModelError:
                raise exc from None
            _REFUSED_JSON_SCHEMA.add(self._server())
            self.note("structured_output", f"json_object: the json_schema form failed ({str(exc)[:200]})")
            return reply, fallback

    async def ask_for_action(self, messages: list[dict[str, Any]]) -> Any:
        """Call the model and parse; re-ask quoting the error, `INVALID` after the last
        re-ask. A query tool call (a tool request answered as JSON) is answered and the model
        asked again; after `max_side_calls` of them only the action tools are offered."""
        form = self.format
        response_format = self.response_format(form)
        answer, error = None, None
        attempt = queries = 0
        while attempt <= self.ctx.max_reasks:
            reply, response_format = await self.complete_constrained(
                messages,
                response_format,
                form,
                temperature=self.ctx.temperature,
                max_tokens=self.ctx.max_tokens,
                seed=self.next_seed(),
            )
            answer = reply.content
            if answer is None and reply.tool_calls:
                answer = reply.tool_calls[0].raw_arguments or str(reply.tool_calls[0].arguments)
            action, error = form.parse(answer)
            if error is None:
                result = self.query_result(action)
                if result is None:
                    if attempt:
                        self.note("reasks", attempt)
                    return action
                queries += 1
                messages = [
                    *messages,
                    {"role": "assistant", "content": answer or ""},
                    {"role": "user", "content": f"Result of {action['tool']}: {result}"},
                ]
                if queries >= self.ctx.params.max_side_calls and form is self.format:
                    form = self.acting_format()
                    response_format = self.response_format(form)
                    if form is not self.format:
                        self.note("forced_action", {"after_side_calls": queries})
                        messages[-1]["content"] += f"\n\nNow act. {form.instructions()}"
                continue
            attempt += 1
            messages = [
                *messages,
                {"role": "assistant", "content": answer or ""},
                {"role": "user", "content": f"That answer could not be used: {error}"},
            ]
        self.note("invalid", {"answer": (answer or "")[:500], "error": error, "attempts": self.ctx.max_reasks + 1})
        return INVALID


class ToolHarness(Harness):
    """Shared parts of the tool-calling harnesses (react, langchain): the prompt, reading an
    action from a tool call, and the `load_skill` tool of on-demand skills."""

    uses_tools = True

    def __init__(self, ctx: HarnessContext):
        super().__init__(ctx)
        self.loaded_skills: list[str] = []

    def system_message(self, with_format: bool = True) -> dict[str, str]:
        message = super().system_message(with_format=False)
        tools = self.format.tools
        if tools is not None:
            lookups = ", ".join(t.name for t in tools.query_tools)
            how = "Your action is a call of one of the environment's action tools: " + ", ".join(t.name for t in tools.action_tools) + "."
            if lookups:
                how += f" Lookup tools ({lookups}) answer without ending your turn."
        else:
            how = f"Your action is a call of the `{ACT_TOOL}` tool ({self.format.choices_text()})."
        message["content"] += "\n\nUse the tools to act. " + how
        return message

    def env_action(self, name: str, arguments: dict[str, Any]) -> tuple[Any, str | None]:
        """The env action (or query call) a tool call stands for, or why it stands for none."""
        if self.format.tools is not None:
            return self.format.coerce({"tool": name, "arguments": arguments})
        if name != ACT_TOOL:
            return INVALID, f"unknown tool {name!r}"
        if "action" not in arguments:
            return INVALID, f'the {ACT_TOOL} tool needs an "action" argument'
        return self.format.coerce(arguments["action"])

    def is_env_tool(self, name: str) -> bool:
        tools = self.format.tools
        return name == ACT_TOOL if tools is None else any(t.name == name for t in tools.tools)

    def load_skill(self, arguments: dict[str, Any]) -> str:
        """The `load_skill` tool: a skill's body; what was loaded is noted with the step."""
        wanted = str(arguments.get("name", ""))
        for skill in self.ctx.skills:
            if skill.name == wanted:
                self.loaded_skills.append(wanted)
                self.note("skills_loaded", list(self.loaded_skills))
                return skill.body
        return f"error: no skill named {wanted!r}; skills: {', '.join(s.name for s in self.ctx.skills)}"

    def offers_skills(self) -> bool:
        return bool(self.ctx.skills) and self.ctx.skills_mode == "on_demand"

    def env_tool_schemas(self) -> list[dict[str, Any]]:
        """The env's tools this turn (query and action tools), or `act`."""
        tools = self.format.tools
        return [t.openai() for t in tools.tools] if tools is not None else [self.format.tool()]

    def action_tool_schemas(self) -> list[dict[str, Any]]:
        """The tools whose call is the turn's action: the env's action tools, or `act`."""
        tools = self.format.tools
        return [t.openai() for t in (tools.action_tools or tools.tools)] if tools is not None else [self.format.tool()]

    def must_act(self, side_calls: int) -> bool:
        """Whether to offer the action tools alone from now on in this turn.

        A small model offered `load_skill` or a query tool may call it on every iteration
        and never act; after `max_side_calls` such calls the turn asks for the action alone
        (constrained models are then held to an action tool's schema)."""
        if side_calls < self.ctx.params.max_side_calls:
            return False
        self.note("forced_action", {"after_side_calls": side_calls})
        return True

    def forced_tool_choice(self) -> Any:
        """`tool_choice` that requires an action tool call (a named one when there is one)."""
        tools = self.action_tool_schemas()
        if len(tools) == 1:
            return {"type": "function", "function": {"name": tools[0]["function"]["name"]}}
        return "required"
