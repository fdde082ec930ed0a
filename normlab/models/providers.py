"""LiteLLM set-up: imported only when a model is really called (LiteLLM takes seconds to import).

normlab's own providers are LiteLLM custom providers, so the client sees one interface for
API models, the in-process local model (`local/...`) and the test double (`mock/...`).
"""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

_litellm: ModuleType | None = None


def litellm() -> ModuleType:
    """The configured `litellm` module (imported once per process)."""
    global _litellm
    if _litellm is None:
        # never fetch the cost map at import time: runs must work offline
        os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        import litellm as module

        from normlab.models.local import LocalLLMProvider
        from normlab.models.mock import MockLLMProvider

        module.suppress_debug_info = True
        module.drop_params = True  # providers that lack e.g. `seed` ignore it instead of failing
        module.custom_provider_map = [
            *[p for p in (module.custom_provider_map or []) if p.get("provider") not in ("local", "mock")],
            {"provider": "local", "custom_handler": LocalLLMProvider()},
            {"provider": "mock", "custom_handler": MockLLMProvider()},
        ]
        _litellm = module
    return _litellm


def free(response: Any) -> Any:
    """A reply of normlab's own providers costs nothing: said up front, LiteLLM skips its cost
    lookup for a model it has no price for (about half of its CPU time per call)."""
    response._hidden_params["response_cost"] = 0.0
    return response
