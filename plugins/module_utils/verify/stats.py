# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Goodness-of-fit tests for observed traffic shares against configured route weights.

Pure Python (no scipy): the chi-square survival function comes from the regularized upper
incomplete gamma function Q(a, x), evaluated by its power series for x < a + 1 and by a
continued fraction (modified Lentz) otherwise. Two destinations use the exact two-sided
binomial test (the "minimum likelihood" p-value: the total probability of every outcome that is
no more likely than the observed one); three or more use Pearson's chi-square test.
"""

import math

from ansible_collections.meshops.istio.plugins.module_utils.errors import MeshopsError

_EPS = 1e-15
_TINY = 1e-300
_MAX_ITER = 100000
# Outcomes whose probability is within this relative tolerance of the observed one count as
# "no more likely" (guards against rounding in the log-space pmf).
_RELATIVE_TOLERANCE = 1 + 1e-7


class StatsError(MeshopsError, ValueError):
    """Raised for inputs the tests cannot be computed on."""


def _lower_series(a, x):
    """P(a, x) by its power series; converges quickly for x < a + 1."""
    term = 1.0 / a
    total = term
    denominator = a
    for _iteration in range(_MAX_ITER):
        denominator += 1.0
        term *= x / denominator
        total += term
        if abs(term) < abs(total) * _EPS:
            break
    else:
        raise StatsError(f"incomplete gamma series did not converge for a={a}, x={x}")
    return total * math.exp(-x + a * math.log(x) - math.lgamma(a))


def _upper_continued_fraction(a, x):
    """Q(a, x) by its continued fraction (modified Lentz); converges for x >= a + 1."""
    b = x + 1.0 - a
    c = 1.0 / _TINY
    d = 1.0 / b
    h = d
    for i in range(1, _MAX_ITER):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        if abs(d) < _TINY:
            d = _TINY
        c = b + an / c
        if abs(c) < _TINY:
            c = _TINY
        d = 1.0 / d
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < _EPS:
            break
    else:
        raise StatsError(f"incomplete gamma continued fraction did not converge for a={a}, x={x}")
    return math.exp(-x + a * math.log(x) - math.lgamma(a)) * h


def regularized_gamma_p(a, x):
    """Regularized lower incomplete gamma P(a, x) = gamma(a, x) / Gamma(a)."""
    if a <= 0:
        raise StatsError(f"a must be positive, got {a}")
    if x < 0:
        raise StatsError(f"x must not be negative, got {x}")
    if x == 0:
        return 0.0
    if x < a + 1.0:
        return _lower_series(a, x)
    return 1.0 - _upper_continued_fraction(a, x)


def regularized_gamma_q(a, x):
    """Regularized upper incomplete gamma Q(a, x) = 1 - P(a, x), accurate in the far tail."""
    if a <= 0:
        raise StatsError(f"a must be positive, got {a}")
    if x < 0:
        raise StatsError(f"x must not be negative, got {x}")
    if x == 0:
        return 1.0
    if x < a + 1.0:
        return 1.0 - _lower_series(a, x)
    return _upper_continued_fraction(a, x)


def chi2_sf(statistic, df):
    """Survival function of the chi-square distribution: P(X >= statistic) with df degrees."""
    if df <= 0:
        raise StatsError(f"degrees of freedom must be positive, got {df}")
    if statistic <= 0:
        return 1.0
    return regularized_gamma_q(df / 2.0, statistic / 2.0)


def _log_binomial_pmf(k, n, p):
    if p == 0.0:
        return 0.0 if k == 0 else -math.inf
    if p == 1.0:
        return 0.0 if k == n else -math.inf
    return math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)


def binomial_pmf(k, n, p):
    return math.exp(_log_binomial_pmf(k, n, p))


def binomial_test(k, n, p):
    """Exact two-sided binomial test of k successes in n trials against success probability p.

    Returns the p-value: the sum of P(X = i) over every i with P(X = i) <= P(X = k).
    """
    if n < 0 or not 0 <= k <= n:
        raise StatsError(f"need 0 <= k <= n, got k={k}, n={n}")
    if not 0.0 <= p <= 1.0:
        raise StatsError(f"p must be within [0, 1], got {p}")
    if n == 0:
        return 1.0
    observed = _log_binomial_pmf(k, n, p)
    if observed == -math.inf:
        return 0.0
    threshold = observed + math.log(_RELATIVE_TOLERANCE)
    total = 0.0
    for i in range(n + 1):
        log_pmf = _log_binomial_pmf(i, n, p)
        if log_pmf <= threshold:
            total += math.exp(log_pmf)
    return min(1.0, total)


def binomial_rejection_probability(n, p_null, p_true, alpha):
    """Probability that binomial_test rejects (p-value < alpha) when the true share is p_true.

    With p_true == p_null this is the test's exact false-failure rate (its size, <= alpha);
    otherwise it is the power to detect the difference.
    """
    if n <= 0:
        raise StatsError(f"n must be positive, got {n}")
    null_pmf = [_log_binomial_pmf(i, n, p_null) for i in range(n + 1)]
    # p-value of outcome k = total null probability of outcomes no more likely than k: sort once.
    order = sorted(range(n + 1), key=lambda i: null_pmf[i])
    p_values = [0.0] * (n + 1)
    running = 0.0
    position = 0
    while position < len(order):
        # Outcomes within the tolerance of each other share one p-value.
        group_end = position
        limit = null_pmf[order[position]] + math.log(_RELATIVE_TOLERANCE)
        while group_end < len(order) and null_pmf[order[group_end]] <= limit:
            running += math.exp(null_pmf[order[group_end]])
            group_end += 1
        for index in order[position:group_end]:
            p_values[index] = min(1.0, running)
        position = group_end
    return sum(binomial_pmf(i, n, p_true) for i in range(n + 1) if p_values[i] < alpha)


def chi_square_statistic(observed, expected):
    """Pearson's statistic sum((o - e)^2 / e) over categories with e > 0."""
    if len(observed) != len(expected):  # zip(strict=True) is Python 3.10+; this runs on 3.9 nodes
        raise StatsError(f"{len(observed)} observed counts for {len(expected)} expected ones")
    return sum((o - e) ** 2 / e for o, e in zip(observed, expected) if e > 0)


def _normalise_weights(weights):
    total = float(sum(weights.values()))
    if total <= 0:
        raise StatsError("the weights must add up to more than 0")
    for name, weight in weights.items():
        if weight < 0:
            raise StatsError(f"weight of {name} must not be negative, got {weight}")
    return {name: weight / total for name, weight in weights.items()}


def weights_goodness_of_fit(counts, weights, confidence):
    """Test observed per-destination counts against configured weights.

    ``counts`` and ``weights`` are dicts keyed by destination name (same keys). ``confidence``
    (e.g. 0.999) sets alpha = 1 - confidence; the hypothesis "traffic follows the weights" is
    rejected when the p-value is below alpha. Returns a dict with the method, statistic,
    degrees of freedom, p-value, expected counts/shares, observed shares and ``passed``.
    """
    if set(counts) != set(weights):
        raise StatsError(f"counts and weights name different destinations: {sorted(counts)} vs {sorted(weights)}")
    if not 0.0 < confidence < 1.0:
        raise StatsError(f"confidence must be strictly between 0 and 1, got {confidence}")
    alpha = round(1.0 - confidence, 12)
    shares_expected = _normalise_weights(weights)
    total = sum(counts.values())
    if total <= 0:
        raise StatsError("no responses were attributed to any destination")
    names = sorted(counts)
    result = {
        "alpha": alpha,
        "confidence": confidence,
        "total": total,
        "counts": {name: counts[name] for name in names},
        "expected_shares": {name: shares_expected[name] for name in names},
        "expected_counts": {name: shares_expected[name] * total for name in names},
        "observed_shares": {name: counts[name] / total for name in names},
        "statistic": None,
        "df": None,
        "approximate": False,
    }
    # A destination with weight 0 that received traffic refutes the weights outright.
    impossible = [name for name in names if shares_expected[name] == 0 and counts[name] > 0]
    live = [name for name in names if shares_expected[name] > 0]
    if impossible:
        result.update(method="zero-weight destination received traffic", p_value=0.0)
    elif len(live) == 1:
        # Every response went to the only destination with weight: certain under the weights.
        result.update(method="single destination", p_value=1.0)
    elif len(live) == 2:
        first = live[0]
        result.update(
            method="exact binomial (two-sided)",
            p_value=binomial_test(counts[first], total, shares_expected[first]),
        )
    else:
        observed = [counts[name] for name in live]
        expected = [shares_expected[name] * total for name in live]
        statistic = chi_square_statistic(observed, expected)
        df = len(live) - 1
        result.update(
            method="Pearson chi-square goodness of fit",
            statistic=statistic,
            df=df,
            p_value=chi2_sf(statistic, df),
            # The chi-square approximation needs every expected count to be at least 5.
            approximate=min(expected) < 5,
        )
    result["passed"] = result["p_value"] >= alpha
    return result
