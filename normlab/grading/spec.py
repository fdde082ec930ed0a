"""What a value-conflict task declares for grading: two value poles, each with ordered
checkpoints (machine-readable expectations over the stored trajectory) and weighted rubric
items (for the judge). Tasks carry these as data (YAML); the agent never sees them.

The layout follows Agent-ValueBench's released cases (`value_a_checkpoint_list`, rubric items
with `SOURCE_CHECKPOINT`, `WEIGHT` 2..5, `SCORE_2/1/0` anchors, `LOOK_FOR`), with each
checkpoint's `expected_actions` made declarative so it can be checked without a judge:

    expected_actions:
      - tool: issue_refund                      # a tool call (query or action)
        arguments: {order_id: A1042, amount: {gte: 100}}
      - final_answer: {contains: refund}        # the final answer's text
      - event: rule_violation                   # any env event, by type and fields
        fields: {supervised: false}
      - state: orders.A1042.refund_request      # a path in the final state
        equals: denied
      - predicate: my_package.checks:refunded   # a registered Python predicate, by name

A matcher is a literal (equality) or one mapping of `equals`, `not_equals`, `in`, `not_in`,
`gt`, `gte`, `lt`, `lte`, `contains`, `not_contains`, `regex`, `exists`. Strings from files
are never evaluated. `match: all` (default) needs every expected action, `any` one of them;
`ordered: true` needs them in that order; `count` bounds how many calls match
(`{gte: 1}` by default; `{equals: 0}` says "never").
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

#: Named value systems a task's poles are drawn from (what Bradley-Terry strengths group by).
VALUE_SYSTEMS = {
    "schwartz": "Schwartz's basic human values (benevolence, universalism, security, conformity, achievement, power, self-direction...)",
    "care_fairness": "Moral foundations: care/harm against fairness/cheating",
    "honesty_helpfulness": "Honesty and transparency against helpfulness to the person asking",
    "safety_autonomy": "Protection from harm against respect for a person's own choices",
    "loyalty_rules": "Loyalty to the principal (user, operator, team) against rules and policy",
}

OPERATORS = ("equals", "not_equals", "in", "not_in", "gt", "gte", "lt", "lte", "contains", "not_contains", "regex", "exists")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Condition(_Strict):
    """One comparison: exactly one operator is set."""

    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    not_in: list[Any] | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    contains: str | None = None
    not_contains: str | None = None
    regex: str | None = Field(None, max_length=500)
    exists: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @model_validator(mode="before")
    @classmethod
    def _literal_is_equality(cls, value: Any) -> Any:
        if not isinstance(value, dict) or not value or not set(value) <= set(OPERATORS):
            return {"equals": value}
        if len(value) != 1:
            raise ValueError(f"a condition has one operator, got {sorted(value)}")
        return value

    @property
    def operator(self) -> str:
        for name in OPERATORS:
            field = "in_" if name == "in" else name
            if name in self.model_fields_set or field in self.model_fields_set:
                return name
        return "equals"

    @property
    def operand(self) -> Any:
        return getattr(self, "in_" if self.operator == "in" else self.operator)


class ToolExpectation(_Strict):
    """A call of `tool` whose arguments meet the conditions (arguments not named are free)."""

    tool: str = Field(min_length=1)
    arguments: dict[str, Condition] = Field(default_factory=dict)
    #: a failed call (the tool answered success: false) counts only when this is true
    failed_ok: bool = False


class FinalAnswerExpectation(_Strict):
    final_answer: Condition


class EventExpectation(_Strict):
    """An env event of this type whose fields meet the conditions."""

    event: str = Field(min_length=1)
    fields: dict[str, Condition] = Field(default_factory=dict)


class StateExpectation(_Strict):
    """A dotted path in the episode's final state, meeting one condition (`equals` by default)."""

    state: str = Field(min_length=1)
    equals: Any = None
    not_equals: Any = None
    in_: list[Any] | None = Field(None, alias="in")
    gte: float | None = None
    lte: float | None = None
    exists: bool | None = None

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    @property
    def condition(self) -> Condition:
        given = {k: v for k, v in self.model_dump(by_alias=True, exclude_unset=True).items() if k != "state"}
        return Condition.model_validate(given or {"exists": True})


class PredicateExpectation(_Strict):
    """A registered Python predicate (`normlab.grading.checkpoints.register_predicate`, or
    `module:function`), called with the episode's steps and final state."""

    predicate: str = Field(min_length=1, max_length=200)


Expectation = Annotated[
    ToolExpectation | FinalAnswerExpectation | EventExpectation | StateExpectation | PredicateExpectation,
    Field(union_mode="left_to_right"),
]


class Checkpoint(_Strict):
    id: str = Field(min_length=1, max_length=50)
    name: str = Field(min_length=1, max_length=200)
    related_tools: list[str] = Field(default_factory=list)
    why_it_matters: str = ""
    expected_actions: list[Expectation] = Field(min_length=1)
    expected_signal: str = ""
    match: Literal["all", "any"] = "all"
    ordered: bool = False
    count: Condition | None = None


class RubricItem(_Strict):
    id: str = Field(min_length=1, max_length=50)
    checkpoint: str = Field(description="The checkpoint this item grades (its id)")
    weight: int = Field(ge=2, le=5)
    question: str = Field(min_length=1)
    anchors: dict[Literal["0", "1", "2"], str] = Field(description="What a score of 0, 1 and 2 looks like")
    look_for: str = ""

    @model_validator(mode="after")
    def _all_anchors(self) -> RubricItem:
        if set(self.anchors) != {"0", "1", "2"}:
            raise ValueError("anchors needs the keys 0, 1 and 2")
        return self


class Pole(_Strict):
    """One side of the conflict: the value it stands for, its checkpoints and rubric items."""

    value: str = Field(min_length=1, max_length=100)
    description: str = ""
    checkpoints: list[Checkpoint] = Field(min_length=1)
    rubric: list[RubricItem] = Field(default_factory=list)

    @model_validator(mode="after")
    def _rubric_points_at_checkpoints(self) -> Pole:
        ids = [c.id for c in self.checkpoints]
        if len(set(ids)) != len(ids):
            raise ValueError("checkpoint ids must be distinct within a pole")
        unknown = sorted({r.checkpoint for r in self.rubric} - set(ids))
        if unknown:
            raise ValueError(f"rubric items name unknown checkpoints {unknown}")
        return self


class Poles(_Strict):
    """The two poles of a task, A and B, from one value system."""

    value_system: str
    A: Pole
    B: Pole

    @model_validator(mode="after")
    def _known_system(self) -> Poles:
        if self.value_system not in VALUE_SYSTEMS:
            raise ValueError(f"unknown value system {self.value_system!r}; known: {', '.join(VALUE_SYSTEMS)}")
        if self.A.value == self.B.value:
            raise ValueError("the two poles must stand for different values")
        return self
