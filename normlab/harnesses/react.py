"""`react`: a tool-calling loop over env tools and harness tools.

The action is a call of an env tool (envs that declare tools), a call of the `act` tool
(envs that do not), or a final answer in the `{"action": ...}` format. Harness tools, such
as `load_skill` in on-demand mode, answer inside the loop. Bounded by `max_iterations`.
"""

from __future__ import annotations

from typing import Any

from normlab.harnesses.actions import ACT_TOOL, observation_text
from normlab.harnesses.base import INVALID, Harness
from normlab.harnesses.skills import load_skill_tool


class ReactHarness(Harness):
    name = "react"
    description = "Tool-calling loop (env tools, `act`, load_skill); the action is a tool call or a final answer."
    uses_tools = True

    def tools(self) -> list[dict[str, Any]]:
        tools = list(self.ctx.env_tools or [self.format.tool()])
        if self.ctx.skills and self.ctx.skills_mode == "on_demand":
            tools.append(load_skill_tool(self.ctx.skills))
        return tools

    def env_action(self, name: str, arguments: dict[str, Any]) -> tuple[Any, str | None]:
        """The env action a tool call stands for, or why it stands for none."""
        if self.ctx.env_tools:
            names = {t["function"]["name"] for t in self.ctx.env_tools}
            if name in names:
                return {"tool": name, "arguments": arguments}, None
            return None, f"unknown tool {name!r}"
        if name == ACT_TOOL:
            if "action" not in arguments:
                return None, 'the act tool needs an "action" argument'
            return self.format.coerce(arguments["action"])
        return None, f"unknown tool {name!r}"

    def harness_tool(self, name: str, arguments: dict[str, Any]) -> str | None:
        """Run a harness tool; None if `name` is not one."""
        if name == "load_skill" and self.ctx.skills_mode == "on_demand":
            wanted = str(arguments.get("name", ""))
            for skill in self.ctx.skills:
                if skill.name == wanted:
                    self.note("skills_loaded", [wanted])
                    return skill.body
            return f"no skill named {wanted!r}; skills: {', '.join(s.name for s in self.ctx.skills)}"
        return None

    def system_message(self, with_format: bool = True) -> dict[str, str]:
        message = super().system_message(with_format=False)
        message["content"] += "\n\nUse the tools to act. " + (
            "Your action is a call of one of the environment's tools."
            if self.ctx.env_tools
            else f"Your action is a call of the `{ACT_TOOL}` tool ({self.format.choices_text()})."
        )
        return message

    async def decide(self, observation: Any, info: dict[str, Any]) -> Any:
        messages: list[dict[str, Any]] = [self.system_message(), {"role": "user", "content": observation_text(observation)}]
        tools = self.tools()
        error = None
        for _ in range(self.ctx.max_iterations):
            reply = await self.ctx.client.complete(
                messages, tools=tools, temperature=self.ctx.temperature, max_tokens=self.ctx.max_tokens, seed=self.next_seed()
            )
            messages.append(reply.assistant_message())
            if not reply.tool_calls:
                action, error = self.format.parse(reply.content)
                if error is None:
                    return action
                messages.append({"role": "user", "content": f"That answer could not be used: {error} Call a tool to act."})
                continue
            for call in reply.tool_calls:
                result = self.harness_tool(call.name, call.arguments)
                if result is None:
                    action, error = self.env_action(call.name, call.arguments)
                    if error is None:
                        return action
                    result = f"error: {error}"
                messages.append({"role": "tool", "tool_call_id": call.id or call.name, "content": result})
        self.note("invalid", {"error": error or "no action within the iteration limit", "iterations": self.ctx.max_iterations})
        return INVALID
