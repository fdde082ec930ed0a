"""`langchain`: a LangChain tool-calling agent over `ChatLiteLLM`, open to any `BaseTool`.

The chat model is a real `langchain_litellm.ChatLiteLLM`, but its `client` (the object it
calls `acompletion` on, normally the `litellm` module) is swapped for an adapter that sends
every call through normlab's `ModelClient`. So the response cache, retries, the run's budget
and the `model_call` rows apply to this harness exactly as to the others, and a cached run
replays offline.

The action is a call of an env action tool (turns that request a tool call), of the `act`
tool (other turns), or a final answer in the `{"action": ...}` format. The env's query tools,
`load_skill` (on-demand skills) and the user's own tools answer inside the loop; a user tool that fails answers with its
error, so the model can go on. Bounded by `max_iterations` model turns.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from normlab.harnesses.base import Harness, HarnessContext, ToolHarness
from normlab.requests import INVALID, Request
from normlab.harnesses.skills import load_skill_tool

MISSING = "the langchain harness needs langchain-core and langchain-litellm: pip install 'normlab[langchain]'"

try:
    from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage, ToolMessage
    from langchain_core.tools import BaseTool
except ImportError:
    raise ImportError(MISSING) from None

#: Characters of a user tool's result kept in the step's `tool_calls` note.
RESULT_NOTE_CHARS = 500
_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


class SchemaTool(BaseTool):
    """A tool described by an OpenAI function schema whose call the harness reads itself:
    an action tool (env tool or `act`) or `load_skill`. It is never run by LangChain."""

    args_schema: Any = None

    def _run(self, *args: Any, **kwargs: Any) -> str:
        raise NotImplementedError(f"the langchain harness handles {self.name!r} calls itself")

    @classmethod
    def from_openai(cls, schema: dict[str, Any]) -> SchemaTool:
        function = schema["function"]
        return cls(
            name=function["name"],
            description=function.get("description") or function["name"],
            args_schema=function.get("parameters") or {"type": "object", "properties": {}},
        )


class ModelClientAdapter:
    """Stands where `ChatLiteLLM` expects the `litellm` module: takes its completion
    kwargs, calls normlab's `ModelClient`, and answers with a `litellm.ModelResponse`."""

    def __init__(self, harness: Harness):
        self.harness = harness

    async def acompletion(self, **kwargs: Any) -> Any:
        from normlab.models.providers import litellm

        ctx = self.harness.ctx
        seed = kwargs.get("seed")
        reply = await ctx.client.complete(
            [_plain_message(m) for m in kwargs.get("messages") or []],
            tools=_plain(kwargs.get("tools")) or None,
            response_format=_plain(kwargs.get("response_format")) or None,
            temperature=ctx.temperature if kwargs.get("temperature") is None else kwargs["temperature"],
            max_tokens=ctx.max_tokens if kwargs.get("max_tokens") is None else kwargs["max_tokens"],
            seed=self.harness.next_seed() if seed is None else seed,
            tool_choice=_plain(kwargs.get("tool_choice")),
        )
        return _model_response(reply, ctx.client.model, litellm())

    def completion(self, **kwargs: Any) -> Any:
        """For synchronous `invoke`; the harness itself only calls `acompletion`."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return asyncio.run(self.acompletion(**kwargs))
        raise RuntimeError("the langchain harness's chat model is asynchronous: use ainvoke inside an event loop")


class LangChainHarness(ToolHarness):
    name = "langchain"
    description = "A LangChain tool-calling agent over ChatLiteLLM; accepts any LangChain BaseTool."

    def __init__(self, ctx: HarnessContext):
        super().__init__(ctx)
        self.skill_tools = (
            [SchemaTool.from_openai(load_skill_tool(ctx.skills))] if self.offers_skills() else []
        )
        self.user_tools = {t.name: t for t in flatten_tools(ctx.extra_tools)}
        self.chat = self._chat_model()
        self.bound_for: Any = None
        self.bind()

    def bind(self) -> None:
        """Bind the chat model to this turn's tools (again only when the request changed)."""
        if self.bound_for is self.format:
            return
        self.env_tools = [SchemaTool.from_openai(t) for t in self.env_tool_schemas()]
        taken = {t.name for t in self.env_tools + self.skill_tools}
        clashes = sorted(taken & set(self.user_tools))
        if clashes:
            raise ValueError(f"tool names {', '.join(clashes)} are taken by the langchain harness's own tools; rename them")
        self.model = self.chat.bind_tools(self.env_tools + self.skill_tools + list(self.user_tools.values()))
        # offered once a turn has spent its side calls: the action tools alone, a call required
        acting = [SchemaTool.from_openai(t) for t in self.action_tool_schemas()]
        self.acting_model = self.chat.bind_tools(acting, tool_choice=self.forced_tool_choice())
        self.bound_for = self.format

    def _chat_model(self) -> Any:
        from normlab.models.providers import litellm

        litellm()  # configure LiteLLM (offline cost map, normlab's providers) before LangChain imports it
        try:
            from langchain_litellm import ChatLiteLLM
        except ImportError:
            raise ImportError(MISSING) from None

        chat = ChatLiteLLM(
            model=self.ctx.client.model,
            temperature=self.ctx.temperature,
            max_tokens=self.ctx.max_tokens,
            max_retries=1,  # one attempt: the ModelClient retries, and records every attempt
            cache=False,  # a global LangChain cache would skip the ModelClient and its records
        )
        # ChatLiteLLM's validator sets `client` to the litellm module whatever is passed in,
        # so the adapter goes in after construction.
        chat.client = ModelClientAdapter(self)
        return chat

    async def run_user_tool(self, tool: BaseTool, arguments: dict[str, Any], record: list[dict[str, Any]]) -> str:
        """A user tool's result as text; a tool that fails answers with its error."""
        failed = False
        try:
            result = _text(await tool.ainvoke(arguments))
        except Exception as exc:  # a user's tool must never end the episode
            failed = True
            result = f"error: {type(exc).__name__}: {exc}"
        record.append({"name": tool.name, "arguments": arguments, "result": result[:RESULT_NOTE_CHARS], "error": failed})
        self.note("tool_calls", list(record))
        return result

    async def decide(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        self.use(request)
        self.bind()
        system = self.system_message()["content"]
        messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(self.user_text(observation))]
        action_names = {t.name for t in self.env_tools}
        record: list[dict[str, Any]] = []
        self.loaded_skills = []
        error = None
        model, side_calls = self.model, 0
        for _ in range(self.param("max_iterations", 8)):
            if model is self.model and side_calls and self.must_act(side_calls):
                model = self.acting_model
            reply: AIMessage = await model.ainvoke(messages, seed=self.next_seed())
            messages.append(reply)
            if not reply.tool_calls and not reply.invalid_tool_calls:
                action, error = self.format.parse(_text(reply.content))
                if error is None:
                    result = self.query_result(action)
                    if result is None:
                        return action
                    side_calls += 1
                    messages.append(HumanMessage(f"Result of {action['tool']}: {result}"))
                    continue
                messages.append(HumanMessage(f"That answer could not be used: {error} Call a tool to act."))
                continue
            for call in reply.tool_calls:
                name, arguments = call["name"], dict(call.get("args") or {})
                call_id = call.get("id") or name
                if name in action_names:
                    action, error = self.env_action(name, arguments)
                    if error is None:
                        result = self.query_result(action)
                        if result is None:
                            return action
                        side_calls += 1
                    else:
                        result = f"error: {error}"
                elif self.skill_tools and name == "load_skill":
                    side_calls += 1
                    result = self.load_skill(arguments)
                elif name in self.user_tools:
                    side_calls += 1
                    result = await self.run_user_tool(self.user_tools[name], arguments, record)
                else:
                    error = f"unknown tool {name!r}"
                    result = f"error: {error}; tools: {', '.join([*action_names, *(t.name for t in self.skill_tools), *self.user_tools])}"
                messages.append(ToolMessage(result, tool_call_id=call_id))
            for bad in reply.invalid_tool_calls:
                error = f"the arguments of your {bad.get('name')!r} call are not valid JSON"
                messages.append(HumanMessage(f"That call could not be used: {error}."))
        self.note("invalid", {"error": error or "no action within the iteration limit", "iterations": self.param("max_iterations", 8)})
        return INVALID


def flatten_tools(items: list[Any]) -> list[BaseTool]:
    """The user's tools: each item a BaseTool, a plain function LangChain can wrap, or a list."""
    from langchain_core.tools import tool as as_tool

    tools: list[BaseTool] = []
    for item in items:
        if isinstance(item, (list, tuple)):
            tools.extend(flatten_tools(list(item)))
        elif isinstance(item, BaseTool):
            tools.append(item)
        elif callable(item):
            try:
                tools.append(as_tool(item))
            except ValueError as exc:
                raise ValueError(f"cannot use {item!r} as a LangChain tool: {exc}") from None
        else:
            raise ValueError(f"{item!r} is not a LangChain tool (a BaseTool, a function, or a list of them)")
    return tools


def _text(value: Any) -> str:
    """A tool result or message content as text."""
    if isinstance(value, str):
        return value
    if isinstance(value, ToolMessage):
        return _text(value.content)
    if isinstance(value, list) and all(isinstance(v, (str, dict)) for v in value):
        parts = [v if isinstance(v, str) else v.get("text") for v in value]
        if all(isinstance(p, str) for p in parts):
            return "".join(parts)  # type: ignore[arg-type]
    try:
        return json.dumps(value, default=str)
    except (TypeError, ValueError):
        return str(value)


def _plain(value: Any) -> Any:
    """JSON-ready plain data (the ModelClient hashes and stores requests)."""
    if value is None:
        return None

    def default(obj: Any) -> Any:
        if hasattr(obj, "model_dump"):
            return obj.model_dump(exclude_none=True)
        return str(obj)

    return json.loads(json.dumps(value, default=default))


def _plain_message(message: Any) -> dict[str, Any]:
    data = _plain(dict(message))
    return {key: data[key] for key in _MESSAGE_KEYS if data.get(key) is not None or key == "content"}


def _model_response(reply: Any, model: str, lm: Any) -> Any:
    """A ModelReply as the `litellm.ModelResponse` that ChatLiteLLM reads."""
    tool_calls = []
    for i, call in enumerate(reply.tool_calls):
        tool_calls.append(
            {
                "id": call.id or f"call_{i}",
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments_json(call)},
            }
        )
    message: dict[str, Any] = {"role": "assistant", "content": reply.content}
    if tool_calls:
        message["tool_calls"] = tool_calls
    response = lm.ModelResponse(
        model=model,
        choices=[{"index": 0, "message": message, "finish_reason": reply.finish_reason or ("tool_calls" if tool_calls else "stop")}],
        usage={"prompt_tokens": reply.tokens_in, "completion_tokens": reply.tokens_out, "total_tokens": reply.tokens_in + reply.tokens_out},
    )
    response._hidden_params["response_cost"] = reply.cost_usd
    return response


def _arguments_json(call: Any) -> str:
    """The model's own argument text where it is a JSON object, else the arguments the
    client read (so a malformed call still reaches a tool and gets an error back)."""
    raw = call.raw_arguments
    if raw:
        try:
            if isinstance(json.loads(raw), dict):
                return raw
        except (json.JSONDecodeError, ValueError):
            pass
    return json.dumps(call.arguments)
