"""The gate's arithmetic: McNemar's exact p-value against known values, and each verdict's reasons."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from common.contracts import ParityStatus
from softserve.prompts import gates
from tests.prompts.evaluated import gold_labels, outputs, scores

SET = "5f0c1d7e-0000-4000-8000-000000000001"


@pytest.mark.parametrize(
    "b, c, p",
    [
        (10, 2, 0.0386),  # 2 * (1 + 12 + 66) / 4096
        (0, 0, 1.0),
        (5, 5, 1.0),
        (3, 0, 0.25),
        (0, 10, 0.001953),  # 2 / 1024
        (12, 5, 0.1435),  # 2 * sum C(17, k<=5) / 2**17
        (100, 60, 0.00199),
    ],
)
def test_mcnemar_exact_p_values(b, c, p):
    assert gates.mcnemar_exact(b, c) == pytest.approx(p, abs=5e-5)
    assert gates.mcnemar_exact(c, b) == gates.mcnemar_exact(b, c)  # two-sided: symmetric


def test_mcnemar_is_exact_for_large_counts():
    # 2,000 discordant rows: exact integers, no overflow or underflow to 0 where it is not 0.
    assert 0 < gates.mcnemar_exact(900, 1100) < 1e-5
    assert gates.mcnemar_exact(1000, 1000) == 1.0


def version(number, wrong=(), rows=40, parity=ParityStatus.PASSED, dataset=SET, **extra):
    gold = gold_labels(rows)
    predicted = outputs(gold, set(wrong))
    evaluation = {
        "dataset_version": dataset,
        "rows": rows,
        "metrics": scores(gold, predicted),
        "predictions": predicted,
        "gold": gold,
        **extra,
    }
    return SimpleNamespace(number=number, parity=parity, evaluation=evaluation)


CURRENT = version(1, wrong={0, 1, 2, 3})  # accuracy 0.9
WORSE = version(2, wrong={2, 3, *range(4, 14)})  # b = 10, c = 2: accuracy 0.7
BETTER = version(3, wrong={3, 4})  # b = 1, c = 3: accuracy 0.95
POLICY = {"metric": "accuracy", "min": 0.8, "max_regression": 0.01}


def test_worse_version_fails_all_three_checks_with_figures():
    verdict = gates.verdict(POLICY, WORSE, CURRENT, SET)
    assert not verdict.passed and verdict.gated
    assert verdict.candidate == pytest.approx(0.7) and verdict.current == pytest.approx(0.9)
    assert verdict.regression == pytest.approx(-0.2)
    assert verdict.mcnemar["b"] == 10 and verdict.mcnemar["c"] == 2
    assert verdict.mcnemar["p_value"] == pytest.approx(0.0386, abs=5e-5)
    assert len(verdict.reasons) == 3
    assert "below the minimum" in verdict.reasons[0]
    assert "at most 0.0100" in verdict.reasons[1]
    assert "significantly worse" in verdict.reasons[2]


def test_better_version_passes():
    verdict = gates.verdict(POLICY, BETTER, CURRENT, SET)
    assert verdict.passed and verdict.reasons == []
    assert verdict.mcnemar == {"b": 1, "c": 3, "p_value": pytest.approx(0.625)}


def test_regression_at_the_allowance_passes_despite_float_noise():
    # 0.79 - 0.80 is -0.0100000…09 in floats: exactly the allowance, which passes.
    current = version(1, wrong=set(range(20)), rows=100)  # 0.80
    candidate = version(2, wrong=set(range(21)), rows=100)  # 0.79
    verdict = gates.verdict({"max_regression": 0.01, "alpha": 0.01}, candidate, current, SET)
    assert verdict.regression == pytest.approx(-0.01) and verdict.passed, verdict.reasons


def test_significantly_better_or_slightly_worse_is_not_refused_by_the_test():
    current = version(1, wrong=set(range(4, 14)))
    better = version(2, wrong={0, 1})  # c = 10, b = 2: p < 0.05 but the candidate is the better one
    assert gates.verdict({"alpha": 0.05}, better, current, SET).passed
    slightly = version(3, wrong={*range(4, 14), 20})  # b = 1, c = 0: p = 1
    assert gates.verdict({"alpha": 0.05}, slightly, current, SET).passed


@pytest.mark.parametrize(
    "candidate, eval_set, words",
    [
        (version(2), None, "pins no evaluation set"),
        (SimpleNamespace(number=2, parity=ParityStatus.PENDING, evaluation={}), SET, "still being scored"),
        (
            SimpleNamespace(number=2, parity=ParityStatus.ERROR, evaluation={"error": "pool down"}),
            SET,
            "could not be scored on the evaluation set: pool down",
        ),
        (SimpleNamespace(number=2, parity=ParityStatus.NONE, evaluation={}), SET, "has no score"),
        (version(2, dataset="another-set"), SET, "another evaluation set"),
        (version(2, parity=ParityStatus.FAILED, gap=0.3), SET, "failed train/serve parity (gap 0.300"),
    ],
)
def test_a_gate_that_cannot_check_does_not_pass(candidate, eval_set, words):
    verdict = gates.verdict(POLICY, candidate, CURRENT, eval_set)
    assert not verdict.passed and any(words in r for r in verdict.reasons), verdict.reasons


def test_the_replaced_version_needs_a_score_too():
    unscored = SimpleNamespace(number=1, parity=ParityStatus.NONE, evaluation={})
    verdict = gates.verdict(POLICY, BETTER, unscored, SET)
    assert not verdict.passed and "cannot compare" in verdict.reasons[0]


def test_unpaired_evaluations_are_refused():
    short = version(1, rows=38)
    verdict = gates.verdict(POLICY, BETTER, short, SET)
    assert not verdict.passed and "do not pair" in verdict.reasons[-1]


def test_new_alias_checks_the_minimum_only_and_ungated_policies_pass():
    assert gates.verdict(POLICY, BETTER, None, SET).passed
    assert not gates.verdict(POLICY, WORSE, None, SET).passed
    ungated = gates.verdict({"max_error_rate": 0.1}, WORSE, CURRENT, SET)
    assert not ungated.gated and ungated.passed and ungated.mcnemar["b"] == 10  # figures all the same
    macro = gates.verdict({"metric": "macro_f1", "min": 0.9}, BETTER, CURRENT, SET)
    assert macro.metric == "macro_f1" and macro.passed


def test_routed_versions():
    assert gates.routed_versions(3, []) == {3}
    split = [{"version": 3, "weight": 90}, {"version": 4, "weight": 10}, {"version": 5, "weight": 0}]
    assert gates.routed_versions(3, split) == {3, 4}
