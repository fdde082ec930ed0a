"""Checks, before a run starts, that every API model has its key in the environment."""

from __future__ import annotations

from typing import Any

# providers that run without a key (local servers, normlab's own providers)
_KEYLESS = ("local/", "mock/", "ollama/", "ollama_chat/", "hosted_vllm/", "openai_like/", "lm_studio/")


def missing_key_problems(scenario: Any) -> list[str]:
    """One message per LLM agent whose model needs a key that the environment lacks."""
    problems = []
    checked: dict[tuple[str, str | None], list[str]] = {}
    for agent_id, cfg in scenario.agents.items():
        if cfg.kind != "llm" or cfg.model.startswith(_KEYLESS):
            continue
        key = (cfg.model, cfg.api_base)
        if key not in checked:
            checked[key] = _missing(cfg.model, cfg.api_base)
        if checked[key]:
            names = " or ".join(checked[key])
            problems.append(f"agents.{agent_id}: model {cfg.model} needs {names} in the environment")
    return problems


def _missing(model: str, api_base: str | None) -> list[str]:
    from normlab.models.providers import litellm

    try:
        result = litellm().validate_environment(model=model, api_base=api_base)
    except Exception:
        return []  # LiteLLM cannot tell for this provider; the first call will say
    if result.get("keys_in_environment"):
        return []
    return [k for k in result.get("missing_keys", []) if not k.endswith("_API_BASE") or api_base is None]
