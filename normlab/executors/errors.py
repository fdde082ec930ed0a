"""How a run ends short: the errors executors raise, and the count of failed episodes that
`max_failed_episodes` allows."""

from __future__ import annotations


class RunFailed(RuntimeError):
    """An episode could not finish (an agent gave up, an env or a model failed for good)."""


class BudgetStop(RuntimeError):
    """The run's budget is spent: the run stopped cleanly with status budget_exhausted."""


class FailureCount:
    """Failed episodes of this session; past `allowed` the run fails (both executors)."""

    def __init__(self, allowed: int):
        self.allowed, self.count = allowed, 0

    def add(self, error: str) -> None:
        """Count a failed episode; RunFailed with its error once past the limit."""
        self.count += 1
        if self.count > self.allowed:
            if self.allowed:
                error += f" ({self.count} episodes failed, max_failed_episodes is {self.allowed})"
            raise RunFailed(error)


def one_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}"


def episode_error(exc: BaseException) -> str:
    """One line for a failed episode; model errors already name their model."""
    from normlab.models.types import ModelError

    return str(exc) if isinstance(exc, ModelError) else one_line(exc)
