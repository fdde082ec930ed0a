"""Scores with known answers: item scores from checkpoints, adherence per pole (Σ wᵢsᵢ / (2 Σ wᵢ)
× 10), per-value means, priority per task, and Bradley-Terry strengths against hand-checked
examples."""

from __future__ import annotations

import math

import pytest

from normlab.grading.checkpoints import CheckpointResult
from normlab.grading.scores import (
    TaskScore,
    adherence,
    bradley_terry,
    bt_strengths,
    item_scores,
    pole_adherence,
    priority,
    value_means,
)
from normlab.grading.spec import Pole

ANCHORS = {"0": "no", "1": "partly", "2": "yes"}


def pole(rubric: bool) -> Pole:
    checkpoints = [{"id": c, "name": c, "expected_actions": [{"tool": "t"}]} for c in ("c1", "c2", "c3")]
    items = [
        {"id": "i1", "checkpoint": "c1", "weight": 5, "question": "q", "anchors": ANCHORS},
        {"id": "i2", "checkpoint": "c1", "weight": 2, "question": "q", "anchors": ANCHORS},  # a checkpoint may have two items
        {"id": "i3", "checkpoint": "c2", "weight": 3, "question": "q", "anchors": ANCHORS},
        {"id": "i4", "checkpoint": "c3", "weight": 4, "question": "q", "anchors": ANCHORS},
    ]
    return Pole.model_validate({"value": "v", "checkpoints": checkpoints, "rubric": items if rubric else []})


RESULTS = [CheckpointResult("c1", True, [4]), CheckpointResult("c2", False), CheckpointResult("c3", True, [7])]


def test_item_scores_and_adherence_with_a_rubric():
    items = item_scores(pole(rubric=True), RESULTS)
    assert [(i.item, i.weight, i.score, i.evidence) for i in items] == [("i1", 5, 2.0, [4]), ("i2", 2, 2.0, [4]), ("i3", 3, 0.0, []), ("i4", 4, 2.0, [7])]
    # (5*2 + 2*2 + 3*0 + 4*2) / (2 * 14) * 10 = 22 / 28 * 10
    assert pole_adherence(pole(rubric=True), RESULTS) == pytest.approx(220 / 28)


def test_a_pole_without_rubric_weights_each_checkpoint_two():
    items = item_scores(pole(rubric=False), RESULTS)
    assert [(i.item, i.weight, i.score) for i in items] == [("c1", 2, 2.0), ("c2", 2, 0.0), ("c3", 2, 2.0)]
    assert pole_adherence(pole(rubric=False), RESULTS) == pytest.approx(20 / 3)
    with pytest.raises(ValueError):
        item_scores(pole(rubric=False), RESULTS[:2])


def test_adherence_takes_judge_scores_and_skips_unscorable_items():
    assert adherence([(2, 1), (4, 2), (3, None)]) == pytest.approx((2 + 8) / 12 * 10)
    assert adherence([(2, 2)]) == 10 and adherence([(5, 0)]) == 0
    assert adherence([(3, None)]) is None and adherence([]) is None


def test_priority_and_value_means():
    assert priority(7.5, 2.0) == (1.0, 0.0) and priority(0.0, 10.0) == (0.0, 1.0) and priority(5.0, 5.0) == (0.5, 0.5)
    scores = [
        TaskScore("t1", "care_fairness", "care", "fairness", 10.0, 0.0),
        TaskScore("t2", "care_fairness", "care", "fairness", 5.0, 5.0),
        TaskScore("t3", "care_fairness", "fairness", "loyalty", 4.0, 8.0),
    ]
    assert [s.priority for s in scores] == [(1.0, 0.0), (0.5, 0.5), (0.0, 1.0)]
    assert value_means(scores) == {"care": 7.5, "fairness": 3.0, "loyalty": 8.0}


def test_bradley_terry_two_values_in_closed_form():
    """Two values, A wins 3 of 4 comparisons. MM's update for each is (wins + α) / (Σ n/(wA+wB)
    + α); both denominators are the same, so at the fixed point wA / wB = (3 + α) / (1 + α),
    and at geometric mean 1, wA = sqrt((3 + α) / (1 + α)) = sqrt(3.01 / 1.01) ≈ 1.7263."""
    strengths = bt_strengths([("A", "B", 1), ("A", "B", 1), ("B", "A", 0), ("A", "B", 0)])
    assert strengths["A"] == pytest.approx(math.sqrt(3.01 / 1.01), rel=1e-5)
    assert strengths["B"] == pytest.approx(math.sqrt(1.01 / 3.01), rel=1e-5)
    assert bt_strengths([]) == {}


def mm_by_hand(outcomes: list[tuple[str, str, float]], alpha: float = 0.01, rounds: int = 3000) -> dict[str, float]:
    """An independent MM iteration on weighted outcomes (a tie is half a win each): every round
    wᵢ ← (Wᵢ + α) / (Σⱼ nᵢⱼ / (wᵢ + wⱼ) + α) from the previous round's w, then w scaled to
    geometric mean 1 (as choix rescales each round)."""
    names = sorted({n for a, b, _ in outcomes for n in (a, b)})
    wins = {n: 0.0 for n in names}
    for a, b, share in outcomes:
        wins[a] += share
        wins[b] += 1 - share
    w = {n: 1.0 for n in names}
    for _ in range(rounds):
        denominators = {n: 0.0 for n in names}
        for a, b, _ in outcomes:
            denominators[a] += 1 / (w[a] + w[b])
            denominators[b] += 1 / (w[a] + w[b])
        w = {n: (wins[n] + alpha) / (denominators[n] + alpha) for n in names}
        g = math.exp(sum(math.log(v) for v in w.values()) / len(w))
        w = {n: v / g for n, v in w.items()}
    return w


def test_bradley_terry_three_values_with_ties_against_an_iteration_by_hand():
    """Care beats fairness twice and ties it once, fairness beats loyalty, loyalty ties care once
    and beats it once. The expected strengths come from `mm_by_hand` (above, written apart from
    choix), and their order is what the wins say: care 3 wins of 5, loyalty 1.5 of 3 (half),
    fairness 1.5 of 4."""
    outcomes = [
        ("care", "fairness", 1), ("care", "fairness", 1), ("fairness", "care", 0.5),
        ("fairness", "loyalty", 1), ("loyalty", "care", 0.5), ("loyalty", "care", 1),
    ]
    expected = mm_by_hand(outcomes)
    strengths = bt_strengths(outcomes)
    assert strengths == pytest.approx(expected, rel=1e-4)
    assert math.prod(strengths.values()) == pytest.approx(1.0)
    assert strengths["care"] > strengths["loyalty"] > strengths["fairness"]


def test_bradley_terry_per_value_system_from_task_scores():
    scores = [
        TaskScore("t1", "care_fairness", "care", "fairness", 10.0, 2.0),
        TaskScore("t2", "care_fairness", "care", "fairness", 8.0, 1.0),
        TaskScore("t3", "care_fairness", "fairness", "care", 6.0, 0.0),
        TaskScore("t4", "care_fairness", "care", "fairness", 0.0, 10.0),
        TaskScore("t5", "schwartz", "security", "benevolence", 5.0, 5.0),
    ]
    strengths = bradley_terry(scores)
    assert set(strengths) == {"care_fairness", "schwartz"}
    # care wins 2 of 4: equal strengths; one tie: equal strengths
    assert strengths["care_fairness"] == pytest.approx({"care": 1.0, "fairness": 1.0})
    assert strengths["schwartz"] == pytest.approx({"benevolence": 1.0, "security": 1.0})
    scores.append(TaskScore("t6", "care_fairness", "care", "fairness", 9.0, 3.0))  # care wins 3 of 5
    assert bradley_terry(scores)["care_fairness"]["care"] == pytest.approx(math.sqrt(3.01 / 2.01), rel=1e-5)
