"""`react`: a tool-calling loop over env tools and harness tools.

The action is a call of an env action tool (turns that request a tool call), a call of the
`act` tool (other turns), or a final answer in the `{"action": ...}` format. The env's query
tools and harness tools, such as `load_skill` in on-demand mode, answer inside the loop.
Bounded by `max_iterations`.
"""

from __future__ import annotations

from typing import Any

from normlab.harnesses.base import ToolHarness
from normlab.requests import INVALID, Request
from normlab.harnesses.skills import load_skill_tool


class ReactHarness(ToolHarness):
    name = "react"
    description = "Tool-calling loop (env tools, `act`, load_skill); the action is a tool call or a final answer."

    def tools(self) -> list[dict[str, Any]]:
        tools = self.env_tool_schemas()
        if self.offers_skills():
            tools.append(load_skill_tool(self.ctx.skills))
        return tools

    async def decide(self, observation: Any, info: dict[str, Any], request: Request | None = None) -> Any:
        self.use(request)
        messages: list[dict[str, Any]] = [self.system_message(), {"role": "user", "content": self.user_text(observation)}]
        tools = self.tools()
        tool_choice: Any = None
        self.loaded_skills = []
        error = None
        side_calls = 0
        for _ in range(self.param("max_iterations", 8)):
            if tool_choice is None and side_calls and self.must_act(side_calls):
                tools, tool_choice = self.action_tool_schemas(), self.forced_tool_choice()
            reply = await self.ctx.client.complete(
                messages,
                tools=tools,
                tool_choice=tool_choice,
                temperature=self.ctx.temperature,
                max_tokens=self.ctx.max_tokens,
                seed=self.next_seed(),
            )
            messages.append(reply.assistant_message())
            if not reply.tool_calls:
                action, error = self.format.parse(reply.content)
                if error is None:
                    result = self.query_result(action)
                    if result is None:
                        return action
                    side_calls += 1
                    messages.append({"role": "user", "content": f"Result of {action['tool']}: {result}"})
                    continue
                messages.append({"role": "user", "content": f"That answer could not be used: {error} Call a tool to act."})
                continue
            for call in reply.tool_calls:
                if call.name == "load_skill" and self.offers_skills():
                    side_calls += 1
                    result = self.load_skill(call.arguments)
                else:
                    action, error = self.env_action(call.name, call.arguments)
                    if error is None:
                        result = self.query_result(action)
                        if result is None:
                            return action
                        side_calls += 1
                    else:
                        result = f"error: {error}"
                messages.append({"role": "tool", "tool_call_id": call.id or call.name, "content": result})
        self.note("invalid", {"error": error or "no action within the iteration limit", "iterations": self.param("max_iterations", 8)})
        return INVALID
