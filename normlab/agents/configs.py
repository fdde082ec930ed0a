"""The scenario config of each agent kind: what a scenario file may set for a seat."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from normlab.limits import MAX_CONCURRENCY


class StrictModel(BaseModel):
    # strict: `true` is not 1 and "3" is not 3 (ints are still accepted where floats are);
    # no inf or nan anywhere: they break sums, JSON and backoff arithmetic
    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)



class ScriptedAgentConfig(StrictModel):
    kind: Literal["scripted"]
    strategy: str = Field(description="A strategy listed by `normlab agents`")
    params: dict[str, Any] = Field(default_factory=dict, description="Strategy parameters, e.g. {p: 0.3}")


class HumanAgentConfig(StrictModel):
    kind: Literal["human"]
    name: str | None = Field(default=None, description="Name shown at the prompt")


class LLMAgentConfig(StrictModel):
    kind: Literal["llm"]
    model: str = Field(default="local/smollm2-135m", description="A LiteLLM model string (provider/model), local/<name or .gguf path>, or mock/<name>")
    harness: str | dict[str, Any] = Field(
        default="direct",
        description="direct, react, reflective or langchain; or {name: <harness>, <its params>...}, e.g. {name: react, max_iterations: 8}",
        json_schema_extra=lambda schema: _harness_schema(schema),
    )
    system_prompt: str | None = None
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    max_tokens: int = Field(default=128, ge=1, le=1_000_000)
    tools: list[str] = Field(default_factory=list, description="LangChain tools as 'module:attribute' (langchain harness)")
    skills: list[str] = Field(default_factory=list, description="Skill names, SKILL.md paths or package:name")
    skills_mode: Literal["inline", "on_demand"] = "inline"
    memory: int = Field(default=5, ge=0, le=10_000, description="Experience window of the reflective harness (shorthand for its `memory` param)")
    max_reasks: int = Field(default=2, ge=0, le=100, description="Re-asks quoting the parse error before an invalid action")
    max_iterations: int = Field(default=8, ge=1, le=1_000, description="Tool-loop bound of the react and langchain harnesses (shorthand for their `max_iterations` param)")
    constrain: bool = Field(default=True, description="Constrain answers to the action's JSON schema where the model allows; false is structured_output: off")
    structured_output: Literal["auto", "json_schema", "off"] = Field(default="auto", description="Send the action's JSON schema as response_format: auto where the model honours it (local/, mock/, models LiteLLM lists with response schemas, OpenAI-compatible servers: hosted_vllm/, ollama/, lm_studio/, openai/ with api_base), json_schema always, off never (as constrain: false)")
    api_base: str | None = Field(default=None, description="Server URL, e.g. for hosted_vllm/ or ollama/")
    call_retries: int = Field(default=3, ge=0, le=100, description="Retries of a failed call (rate limits, timeouts, 5xx)")
    retry_delay: float = Field(default=0.5, ge=0.0, le=3_600.0, description="Base of the exponential backoff, seconds")
    timeout: float = Field(default=120.0, gt=0, le=86_400.0, description="Seconds before a call times out")
    max_connections: int = Field(default=32, ge=1, le=MAX_CONCURRENCY, description="Calls to this model in flight at once, across the run")
    params: dict[str, Any] = Field(default_factory=dict, description="Extra LiteLLM call arguments (top_p, mock behaviour...)")


    @property
    def harness_name(self) -> str:
        return str(self.harness.get("name")) if isinstance(self.harness, dict) else self.harness

    def harness_params(self) -> Any:
        """The harness's validated Params: the long form's keys, over the agent-level
        shorthands (`memory`, `max_iterations`) where the harness has such a param."""
        from normlab.harnesses import HARNESSES

        model = HARNESSES[self.harness_name].params
        given = {k: v for k, v in self.harness.items() if k != "name"} if isinstance(self.harness, dict) else {}
        for name in ("memory", "max_iterations"):
            if name in model.model_fields and name not in given:
                given[name] = getattr(self, name)
        return model.model_validate(given)


def _harness_schema(schema: dict[str, Any]) -> None:
    """The harness field's JSON Schema, from the registered harnesses' Params: a name, or a
    mapping with `name` and that harness's params (editors complete both)."""
    from normlab.harnesses import HARNESSES

    options: list[dict[str, Any]] = [{"type": "string", "enum": list(HARNESSES)}]
    for name, info in HARNESSES.items():
        params = info.params.model_json_schema()
        properties = {"name": {"const": name}, **params.get("properties", {})}
        options.append({"type": "object", "title": f"{name} harness", "properties": properties, "required": ["name"], "additionalProperties": False})
    schema.clear()
    schema.update({"anyOf": options, "default": "direct", "description": "A harness name, or {name: <harness>, <its params>...}"})
