"""verify/stats.py against published values, closed forms and exact rational arithmetic."""

import math
import os
from fractions import Fraction
from math import comb

import pytest
import yaml

from ansible_collections.meshops.istio.plugins.module_utils.verify import stats

DATA = os.path.join(os.path.dirname(__file__), "..", "data", "verify", "stats_known_values.yml")
with open(DATA, encoding="utf-8") as _handle:
    KNOWN = yaml.safe_load(_handle)


@pytest.mark.parametrize("case", KNOWN["chi2_critical"], ids=lambda c: f"df{c['df']}-sf{c['sf']}")
def test_chi2_sf_matches_published_critical_values(case):
    assert stats.chi2_sf(case["statistic"], case["df"]) == pytest.approx(case["sf"], rel=1e-9)


@pytest.mark.parametrize("x", [0.01, 0.5, 1.0, 3.0, 10.0, 40.0, 90.0])
def test_chi2_sf_one_degree_equals_erfc(x):
    # With one degree of freedom the chi-square tail is erfc(sqrt(x / 2)).
    assert stats.chi2_sf(x, 1) == pytest.approx(math.erfc(math.sqrt(x / 2)), rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("df", [2, 4, 6, 20])
@pytest.mark.parametrize("x", [0.2, 1.0, 5.0, 25.0, 150.0])
def test_chi2_sf_even_degrees_equal_poisson_sum(df, x):
    # For even df the tail is exp(-x/2) * sum_{i < df/2} (x/2)^i / i!.
    half = x / 2
    closed = math.exp(-half) * sum(half**i / math.factorial(i) for i in range(df // 2))
    assert stats.chi2_sf(x, df) == pytest.approx(closed, rel=1e-10, abs=1e-300)


@pytest.mark.parametrize("x", [0.001, 0.3, 1.49, 1.51, 7.0, 30.0])
def test_regularized_gamma_half_is_erf(x):
    # P(1/2, x) = erf(sqrt(x)); both branches (series below a + 1, fraction above) are hit.
    assert stats.regularized_gamma_p(0.5, x) == pytest.approx(math.erf(math.sqrt(x)), rel=1e-12)
    assert stats.regularized_gamma_p(0.5, x) + stats.regularized_gamma_q(0.5, x) == pytest.approx(1.0)


def test_far_tail_keeps_relative_precision():
    # 1 - P would round to 0 here; Q from the continued fraction keeps the exact tail.
    assert stats.regularized_gamma_q(1.0, 50.0) == pytest.approx(math.exp(-50.0), rel=1e-12)


@pytest.mark.parametrize("case", KNOWN["binomial_two_sided"], ids=lambda c: f"{c['k']}of{c['n']}at{c['p']}")
def test_binomial_test_known_values(case):
    assert round(stats.binomial_test(case["k"], case["n"], case["p"]), case["digits"]) == pytest.approx(
        case["p_value"], abs=10 ** -case["digits"]
    )


def _exact_two_sided(k, n, p):
    p = Fraction(p)
    pmf = [comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(n + 1)]
    return float(sum(v for v in pmf if v <= pmf[k]))


@pytest.mark.parametrize(
    ("k", "n", "p"),
    [(3, 15, "1/10"), (9, 30, "1/5"), (27, 30, "4/5"), (50, 200, "1/5"), (160, 200, "4/5"), (33, 60, "1/2")],
)
def test_binomial_test_equals_exact_rational_computation(k, n, p):
    assert stats.binomial_test(k, n, float(Fraction(p))) == pytest.approx(_exact_two_sided(k, n, p), rel=1e-9)


def test_rejection_probability_under_null_never_exceeds_alpha_and_power_is_high():
    n, alpha = 400, 1e-4
    size = stats.binomial_rejection_probability(n, 0.5, 0.5, alpha)
    assert 0 < size <= alpha
    assert stats.binomial_rejection_probability(n, 0.5, 0.8, alpha) > 1 - 1e-12
    # A weak difference is hard to see: the power reported must say so.
    assert stats.binomial_rejection_probability(n, 0.5, 0.52, alpha) < 0.05


@pytest.mark.parametrize("case", KNOWN["goodness_of_fit"], ids=lambda c: c["name"])
def test_weights_goodness_of_fit_decisions(case):
    result = stats.weights_goodness_of_fit(case["counts"], case["weights"], case["confidence"])
    assert result["method"] == case["method"]
    assert result["passed"] is case["passed"]
    assert result["total"] == sum(case["counts"].values())
    assert sum(result["observed_shares"].values()) == pytest.approx(1.0)
    assert (result["p_value"] >= result["alpha"]) is case["passed"]


@pytest.mark.parametrize(
    ("counts", "weights", "confidence", "message"),
    [
        ({"a": 1}, {"a": 1, "b": 1}, 0.99, "different destinations"),
        ({"a": 1, "b": 1}, {"a": 0, "b": 0}, 0.99, "more than 0"),
        ({"a": 1, "b": 1}, {"a": -1, "b": 2}, 0.99, "must not be negative"),
        ({"a": 0, "b": 0}, {"a": 1, "b": 1}, 0.99, "no responses"),
        ({"a": 1, "b": 1}, {"a": 1, "b": 1}, 1.0, "confidence"),
    ],
)
def test_bad_input_is_named(counts, weights, confidence, message):
    with pytest.raises(stats.StatsError, match=message):
        stats.weights_goodness_of_fit(counts, weights, confidence)
