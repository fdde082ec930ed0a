"""The `normlab` command. Thin: it parses, calls library functions and prints with rich.

User errors (a bad scenario, an unknown run, an unreachable store) end with one line on
stderr and exit code 2; a run that fails midway exits 1; the budget spent exits 3; Ctrl-C
exits 130. Commands that call no model never import the model layer, so they start fast.
Each group of commands lives in its own module; importing them registers them on `app`.
"""

from __future__ import annotations

from normlab.cli import grade, inspect, models, report, run, runs, store, tasks  # noqa: F401  (registers the commands)
from normlab.cli.common import app


def main() -> None:
    """The console script. A bug must not greet a user with a traceback: one line says what
    failed and how to see more (NORMLAB_DEBUG=1 shows the traceback)."""
    import os
    import sys

    try:
        app()
    except SystemExit:
        raise
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if os.environ.get("NORMLAB_DEBUG"):
            raise
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        print(f"error: internal error: {type(exc).__name__}: {message} (NORMLAB_DEBUG=1 shows the traceback)", file=sys.stderr)
        sys.exit(1)


__all__ = ["app", "main"]
