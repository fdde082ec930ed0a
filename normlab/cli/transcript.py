"""An episode as a readable transcript (`normlab runs show RUN --episode K`).

Everything printed here comes from the store, and much of it from models or envs: it is
untrusted text, shown literally (rich markup escaped, control characters made visible).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from rich.markup import escape
from rich.table import Table

from normlab.cli import common

# Control characters (except newline and tab) and bidi overrides: printed raw they clear the
# screen, recolour the terminal, hide or reorder text. Shown as escapes instead.
_INVISIBLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_RULES_SHOWN = "[dim](the rules, as shown above)[/]"


def visible(text: str) -> str:
    """Text with control characters written as `\\x00`-style escapes (newlines and tabs kept)."""
    return _INVISIBLE.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 0x100 else f"\\u{ord(m.group()):04x}", text)


def safe(value: Any) -> str:
    """Any stored value as literal console text: control characters visible, markup escaped."""
    return escape(visible(value if isinstance(value, str) else str(value)))


def episode_dict(run_id: str, ep: Any, steps: list[dict], calls: list[dict], env_id: str | None = None) -> dict[str, Any]:
    table = round_table(env_id, steps) if env_id else None
    return {
        "run": run_id,
        "episode": ep.index,
        "seed": ep.seed,
        "variant": ep.variant,
        "trial": ep.trial,
        "returns": ep.returns,
        "metrics": ep.metrics,
        "rounds": {"columns": table[0], "rows": table[1]} if table else None,
        "steps": [{k: v for k, v in s.items() if k != "episode_id"} for s in steps],
        "model_calls": calls,
    }


def episode_env_id(stored: Any, ep: Any) -> str | None:
    """The env an episode played: its variant's, where a matrix varies the env."""
    variant = ep.variant if isinstance(ep.variant, dict) else {}
    env_id = variant.get("env.id") or (stored.config.get("env") or {}).get("id")
    return env_id if isinstance(env_id, str) else None


def round_table(env_id: str | None, steps: list[dict]) -> tuple[list[str], list[list[Any]]] | None:
    """The env's compact per-round table of an episode (None where it has none or the env is
    not installed any more)."""
    from normlab import envs

    try:
        cls = envs.spec(str(env_id)).load()
    except Exception:
        return None
    build = getattr(cls, "round_table", None)
    if build is None:
        return None
    try:
        return build(steps)  # type: ignore[no-any-return]
    except Exception:  # a table is a view: a stored row it cannot read must not stop the transcript
        return None


def print_episode_summary(env_id: str | None, ep: Any, steps: list[dict]) -> None:
    """The episode's own metrics (beyond event counts) and its per-round table."""
    from normlab.grading.report import flatten

    metrics = {k: v for k, v in (ep.metrics or {}).items() if k not in ("events", "events_by_agent")}
    flat = flatten(metrics)
    if flat:
        common.out.print("[bold]metrics[/] " + ", ".join(f"{safe(k)}={v:.4g}" for k, v in flat.items()))
    table = round_table(env_id, steps)
    if table:
        columns, rows = table
        shown = Table(title="rounds", title_justify="left")
        for column in columns:
            shown.add_column(safe(str(column)), overflow="fold")
        for row in rows:
            shown.add_row(*(safe(cell if isinstance(cell, str) else json.dumps(cell, default=str)) for cell in row))
        common.out.print(shown)


@dataclass
class _Conversation:
    """What the transcript has shown of one agent's conversation with its model."""

    system: list[dict] = field(default_factory=list)
    # (non-system messages, answer) of the agent's recent calls, oldest first
    calls: list[tuple[list[dict], str | None]] = field(default_factory=list)


@dataclass
class _Printer:
    rules: list[str]  # rules texts of the episode, longest first
    rules_shown: set[str] = field(default_factory=set)
    conversations: dict[str, _Conversation] = field(default_factory=dict)

    def text(self, text: str, label: str = "") -> None:
        """Print an observation or a message (after a markup `label`); rules shown before are
        not repeated."""
        for rules in self.rules:
            if rules in text:
                if rules in self.rules_shown:
                    head, _, tail = text.partition(rules)
                    common.out.print(label + safe(head) + _RULES_SHOWN + safe(tail))
                    return
                self.rules_shown.add(rules)
        common.out.print(label + safe(text))


def print_transcript(stored: Any, ep: Any, steps: list[dict], calls: list[dict]) -> None:
    step_ids = {s["id"] for s in steps}
    by_step: dict[int | None, list[dict]] = {}
    for call in calls:
        by_step.setdefault(call.get("step_id") if call.get("step_id") in step_ids else None, []).append(call)
    printer = _Printer(rules=_rules_of(steps, by_step))
    common.out.print(f"[bold]run {safe(stored.id)} · episode {ep.index}[/] · seed {ep.seed} · {ep.num_steps} steps")
    for s in steps:
        common.out.rule(f"t={s['t']} · {safe(s['agent'])}")
        obs = s["observation"]
        text = obs.get("text") if isinstance(obs, dict) else None
        shown_text = text if isinstance(text, str) else json.dumps(obs)
        step_calls = by_step.get(s["id"], [])
        if not _sent_to_model(shown_text, step_calls):  # else the model call below shows it
            printer.text(shown_text)
        conversation = printer.conversations.setdefault(s["agent"], _Conversation())
        for i, call in enumerate(step_calls):
            _print_model_call(call, conversation, printer, same_step=i > 0)
        info = s["info"] if isinstance(s["info"], dict) else {}
        flags = " terminated" if s["terminated"] else ""
        flags += " truncated" if s["truncated"] else ""
        common.out.print(f"[bold]action[/] {safe(json.dumps(s['action']))} · reward {s['reward']:g}{flags}")
        for ev in info.get("events", []):
            common.out.print(f"  [cyan]event[/] {safe(json.dumps(ev))}")
        harness = info.get("harness")
        if isinstance(harness, dict):
            _print_harness_notes(harness)
        elif harness:
            common.out.print(f"  [dim]harness[/] {safe(json.dumps(harness))}")
    unlinked = by_step.get(None, [])
    if unlinked:  # calls whose step is not stored: shown rather than silently left out
        common.out.rule("model calls not linked to a step")
        conversation = _Conversation()
        for call in unlinked:
            _print_model_call(call, conversation, printer, same_step=False)
    returns = ", ".join(f"{safe(a)}={v:g}" for a, v in ep.returns.items())
    common.out.rule(f"returns: {returns}")
    if calls:
        common.out.print(f"[dim]model calls: {_totals(calls)}[/]")


def _rules_of(steps: list[dict], by_step: dict[int | None, list[dict]]) -> list[str]:
    """The rules texts the episode shows more than once: where an observation is the model's
    user turn with a prefix cut off, and the system prompt states that prefix (harnesses move
    the rules that envs repeat in the first observation into the system prompt)."""
    found: set[str] = set()
    for s in steps:
        obs = s["observation"]
        text = obs.get("text") if isinstance(obs, dict) else None
        if not isinstance(text, str):
            continue
        for call in by_step.get(s["id"], [])[:1]:
            request = [m for m in (call.get("request") or []) if isinstance(m, dict)]
            systems = [m["content"] for m in request if m.get("role") == "system" and isinstance(m.get("content"), str)]
            for m in request:
                content = m.get("content")
                if m.get("role") == "user" and isinstance(content, str) and content and len(content) < len(text) and text.endswith(content):
                    prefix = text[: len(text) - len(content)].strip()
                    if prefix and any(prefix in system for system in systems):
                        found.add(prefix)
    return sorted(found, key=len, reverse=True)


def _sent_to_model(text: str, calls: list[dict]) -> bool:
    """Whether the model calls of the step show this observation (whole, or without the rules
    that their system prompt states)."""
    for call in calls[:1]:
        request = [m for m in (call.get("request") or []) if isinstance(m, dict)]
        systems = [m["content"] for m in request if m.get("role") == "system" and isinstance(m.get("content"), str)]
        for m in request:
            content = m.get("content")
            if m.get("role") != "user" or not isinstance(content, str) or not content:
                continue
            if content == text:
                return True
            if text.endswith(content) and text[: len(text) - len(content)].strip() in "\n".join(systems):
                return True
    return False


_LOOK_BACK = 8  # calls searched for the conversation a request continues


def _new_messages(conversation: _Conversation, rest: list[dict], same_step: bool) -> list[dict]:
    """The messages of a request that the transcript has not shown yet.

    A request continues an earlier one when it starts with a tail of it: a re-ask adds to
    the conversation, and the reflective window drops its oldest turns and adds the newest
    (after a re-ask, the next step continues the step's first request, not the re-ask). The
    model's answer that such a request repeats was shown as the model's reply.
    """
    recent = conversation.calls[-_LOOK_BACK:]
    if recent and rest == recent[-1][0]:
        # the same request again: a retry after an error, or another sample; a new step's
        # first call always brings its observation, even when it reads the same as the last
        return [] if same_step else rest[-1:]
    overlap, since = 0, len(recent)
    for i in range(len(recent) - 1, -1, -1):
        previous = recent[i][0]
        # at least the last message of a request is new
        for k in range(min(len(previous), len(rest) - 1), overlap, -1):
            if rest[:k] == previous[len(previous) - k :]:
                overlap, since = k, i
                break
    new = rest[overlap:]
    if overlap and new and new[0].get("role") == "assistant":
        answers = {answer or "" for _, answer in recent[since:]}
        if (new[0].get("content") or "") in answers:
            new = new[1:]
    return new


def _print_model_call(call: dict, conversation: _Conversation, printer: _Printer, same_step: bool) -> None:
    request = [m for m in (call.get("request") or []) if isinstance(m, dict)]
    system = [m for m in request if m.get("role") == "system"]
    rest = [m for m in request if m.get("role") != "system"]
    if system and system != conversation.system:
        for message in system:
            printer.text(str(message.get("content") or ""), "[dim]system:[/] ")
    for message in _new_messages(conversation, rest, same_step):
        content = message.get("content")
        if content is None and message.get("tool_calls"):
            content = json.dumps(message["tool_calls"])
        printer.text(content if isinstance(content, str) else "" if content is None else str(content), f"[dim]{safe(message.get('role', '?'))}:[/] ")
    conversation.system = system
    conversation.calls.append((rest, call.get("response")))
    del conversation.calls[:-_LOOK_BACK]
    if call.get("tool_calls"):
        common.out.print(f"[magenta]tool calls:[/] {safe(json.dumps(call['tool_calls']))}")
    if call.get("response") is not None:
        cached = " (cached)" if call.get("cache_hit") else ""
        common.out.print(f"[green]{safe(call.get('model'))}{cached}:[/] {safe(call['response'])}")
    if call.get("error"):
        common.out.print(f"[red]{safe(call.get('model'))} error:[/] {safe(call['error'])}")
    common.out.print(f"[dim]{_usage(call)}[/]")


def _usd(value: float) -> str:
    # cheap models cost fractions of a cent per call: keep the digits that say how much
    return "$0" if not value else f"${value:.4f}" if value >= 0.01 else f"${value:.6f}"


def _usage(call: dict) -> str:
    """Tokens, latency and cost of one call, e.g. `tokens 120→8 · 0.41 s · $0.000120 · cached`."""
    parts = [
        f"tokens {int(call.get('tokens_in') or 0)}→{int(call.get('tokens_out') or 0)}",
        f"{float(call.get('latency_s') or 0.0):.2f} s",
        _usd(float(call.get("cost_usd") or 0.0)),
    ]
    if call.get("cache_hit"):
        parts.append("cached")
    if call.get("error"):
        parts.append("failed")
    return " · ".join(parts)


def _totals(calls: list[dict]) -> str:
    """Totals of an episode's calls, e.g. `12 calls · tokens 1440→96 · $0.001 · 4.92 s · 3 cached`."""
    tokens_in = sum(int(c.get("tokens_in") or 0) for c in calls)
    tokens_out = sum(int(c.get("tokens_out") or 0) for c in calls)
    cost = sum(float(c.get("cost_usd") or 0.0) for c in calls)
    latency = sum(float(c.get("latency_s") or 0.0) for c in calls)
    cached = sum(1 for c in calls if c.get("cache_hit"))
    failed = sum(1 for c in calls if c.get("error"))
    parts = [f"{len(calls)} calls", f"tokens {tokens_in}→{tokens_out}", _usd(cost), f"{latency:.2f} s"]
    if cached:
        parts.append(f"{cached} cached")
    if failed:
        parts.append(f"{failed} failed")
    return " · ".join(parts)


def _print_harness_notes(notes: dict[str, Any]) -> None:
    for key, value in notes.items():
        if key == "memory" and isinstance(value, list):
            _print_memory(value)
        else:
            common.out.print(f"  [dim]harness {safe(key)}:[/] {safe(json.dumps(value))}")


def _print_memory(memory: list[Any]) -> None:
    """The reflective harness's window, one remembered turn a line (oldest first)."""
    if not memory:
        common.out.print("  [dim]harness memory: (empty)[/]")
        return
    common.out.print(f"  [dim]harness memory ({len(memory)} turns, oldest first):[/]")
    for i, entry in enumerate(memory, 1):
        if not isinstance(entry, dict):
            common.out.print(f"    {i}. {safe(json.dumps(entry))}")
            continue
        reward = entry.get("reward")
        feedback = " ".join(str(entry.get("feedback") or "").split())
        if isinstance(reward, (int, float)) and not isinstance(reward, bool):
            feedback = feedback.removeprefix(f"Reward: {reward:g}.").strip()  # the reward is shown already
            reward = f"{reward:g}"
        line = f"choice {entry.get('choice', entry.get('answer', '?'))} · reward {reward}"
        common.out.print(f"    {i}. {safe(line)}" + (f" · {safe(feedback)}" if feedback else ""))
