"""traffic_split's statistics against scipy's (a test dependency only; nodes never need it):
the same statistic and p-value, not only the same pass/fail on extreme counts."""

import random

import pytest

from ansible_collections.meshops.istio.plugins.module_utils.verify import stats

scipy_stats = pytest.importorskip("scipy.stats")


def random_cases(seed, count):
    rng = random.Random(seed)
    cases = []
    for _case in range(count):
        destinations = rng.randint(2, 6)
        weights = {f"d{i}": rng.choice([5, 10, 20, 25, 30, 50, 70]) for i in range(destinations)}
        total = rng.choice([10, 40, 100, 400, 1000])
        counts = dict.fromkeys(weights, 0)
        names = list(weights)
        for _request in range(total):
            # Sometimes follow the weights, sometimes a skewed split, so both outcomes occur.
            pick = rng.choices(names, weights=[weights[n] ** rng.choice([1, 1, 2]) for n in names])[0]
            counts[pick] += 1
        cases.append((counts, weights))
    return cases


CASES = [
    *random_cases(20261127, 60),
    ({"nginx": 205, "tomcat": 195}, {"nginx": 50, "tomcat": 50}),
    ({"nginx": 320, "tomcat": 80}, {"nginx": 50, "tomcat": 50}),
    ({"v1": 140, "v2": 130, "v3": 130}, {"v1": 34, "v2": 33, "v3": 33}),
    ({"v1": 200, "v2": 150, "v3": 50}, {"v1": 34, "v2": 33, "v3": 33}),
    ({"a": 7, "b": 13}, {"a": 50, "b": 50}),
    ({"a": 682, "b": 243}, {"a": 75, "b": 25}),
]


def scipy_reference(counts, weights):
    names = sorted(counts)
    total = sum(counts.values())
    weight_sum = sum(weights.values())
    if len(names) == 2:
        first = names[0]
        return None, scipy_stats.binomtest(counts[first], total, weights[first] / weight_sum).pvalue
    observed = [counts[n] for n in names]
    expected = [weights[n] / weight_sum * total for n in names]
    result = scipy_stats.chisquare(observed, expected)
    return result.statistic, result.pvalue


@pytest.mark.parametrize(("counts", "weights"), CASES)
def test_goodness_of_fit_matches_scipy(counts, weights):
    ours = stats.weights_goodness_of_fit(counts, weights, 0.999)
    statistic, p_value = scipy_reference(counts, weights)
    if statistic is not None:
        assert ours["method"] == "Pearson chi-square goodness of fit"
        assert ours["statistic"] == pytest.approx(statistic, rel=1e-9)
        assert ours["df"] == len(counts) - 1
    else:
        assert ours["method"] == "exact binomial (two-sided)"
    assert ours["p_value"] == pytest.approx(p_value, rel=1e-6, abs=1e-300)
    assert ours["passed"] is bool(p_value >= 0.001)


def test_the_cases_exercise_both_decisions():
    decisions = {stats.weights_goodness_of_fit(c, w, 0.999)["passed"] for c, w in CASES}
    assert decisions == {True, False}


@pytest.mark.parametrize("df", [1, 2, 3, 5, 10, 30, 99])
@pytest.mark.parametrize("statistic", [0.05, 0.5, 1.0, 2.5, 7.0, 15.0, 40.0, 120.0, 400.0])
def test_chi2_survival_matches_scipy(statistic, df):
    assert stats.chi2_sf(statistic, df) == pytest.approx(scipy_stats.chi2.sf(statistic, df), rel=1e-9, abs=1e-300)
