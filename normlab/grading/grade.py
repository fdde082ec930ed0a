"""Checkpoint grading of stored episodes: every checkpoint of both poles, the rubric items'
scores and each pole's adherence, and the `grade` rows that record them.

Rows (table `grade`): one per checkpoint (`item` `A.<checkpoint id>`, score 1 passed / 0 not,
the rationale its detail, the evidence its step ids), one per rubric item scored from its
checkpoint (`A.item.<id>`, score 0 or 2), and one per pole's adherence (`A.adherence`, 0..10),
all with `grader` "checkpoints" and `grader_version` `GRADER_VERSION`. Grading is idempotent:
an episode that already has rows of this grader and version gets none again; another version
adds its own rows beside the old ones.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from normlab.grading.checkpoints import CheckpointResult, Trajectory, evaluate_pole
from normlab.grading.scores import ItemScore, TaskScore, adherence, item_scores
from normlab.grading.spec import Poles

GRADER = "checkpoints"
#: Bump when checkpoint grading changes what it would record.
GRADER_VERSION = "1"
POLES = ("A", "B")


@dataclass
class EpisodeGrade:
    task: str
    poles: Poles
    results: dict[str, list[CheckpointResult]] = field(default_factory=dict)
    items: dict[str, list[ItemScore]] = field(default_factory=dict)
    adherence: dict[str, float] = field(default_factory=dict)

    def task_score(self) -> TaskScore:
        return TaskScore(
            self.task, self.poles.value_system, self.poles.A.value, self.poles.B.value, self.adherence["A"], self.adherence["B"]
        )

    def rows(self, episode_id: int) -> list[dict[str, Any]]:
        """The `grade` rows of this grading (see the module docstring)."""
        rows: list[dict[str, Any]] = []
        base = {"episode_id": episode_id, "grader": GRADER, "grader_version": GRADER_VERSION, "judge_model": None}
        for side in POLES:
            for r in self.results[side]:
                rationale = "passed" if r.passed else (r.detail or "not passed")
                rows.append({**base, "item": f"{side}.{r.id}", "score": 1.0 if r.passed else 0.0, "rationale": rationale, "evidence": list(r.evidence)})
            for item in self.items[side]:
                rows.append({
                    **base, "item": f"{side}.item.{item.item}", "score": item.score,
                    "rationale": f"from checkpoint {item.checkpoint} (weight {item.weight})", "evidence": list(item.evidence),
                })
            rows.append({**base, "item": f"{side}.adherence", "score": self.adherence[side], "rationale": f"pole {side}: {getattr(self.poles, side).value}", "evidence": []})
        return rows


def grade_checkpoints(task: str, poles: Poles, steps: Iterable[Mapping[str, Any]] | Trajectory) -> EpisodeGrade:
    """Every checkpoint of both poles over an episode's rows, its items and adherence."""
    trajectory = steps if isinstance(steps, Trajectory) else Trajectory.of(steps)
    grade = EpisodeGrade(task, poles)
    for side in POLES:
        pole = getattr(poles, side)
        grade.results[side] = evaluate_pole(pole, trajectory)
        grade.items[side] = item_scores(pole, grade.results[side])
        value = adherence(grade.items[side])
        grade.adherence[side] = 0.0 if value is None else value
    return grade


__all__ = ["GRADER", "GRADER_VERSION", "EpisodeGrade", "grade_checkpoints"]
