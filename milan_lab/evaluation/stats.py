"""The statistics behind a study's conclusions, for paired differences over seeds.

A paired difference is one number per seed (arm A's score minus arm B's, both from that seed's
runs). Over ``n`` seeds this module gives: the mean with its Student t-interval; the two-sided
p of "no difference" (the paired t-test, or an exact sign-flip test where the t-test is undefined);
Holm's adjustment of a family of p-values; the minimum detectable effect at a power, from the
noncentral t; and the equivalence test (TOST) against a declared margin, so that "no difference
larger than X" can be a result rather than a failure to find one.

Accuracies on a finite validation set are quantised, so every seed can give the same paired
difference. Its spread is then zero and the t statistic is undefined (the old code returned p = 0
for it, a certain difference from, say, three seeds). Here all-zero differences give p = 1; equal
non-zero ones are tested exactly over the 2^n sign assignments, whose smallest p is 2 / 2^n
(0.25 with three seeds: never below 0.05), and each result names the test it used.

Everything here is built on scipy.stats (t, noncentral t, one-sample t-tests); the sign-flip test is
written out because with every difference equal its null distribution has a closed form.
"""
from __future__ import annotations

import math
import statistics

from scipy import optimize, stats

T_TEST = "paired t"
SIGN_FLIP = "exact sign-flip"  # every paired difference equal and non-zero: the t statistic is undefined
ALL_ZERO = "all differences zero"
TOO_FEW = "fewer than 2 pairs"


def t_interval(diffs: list[float], confidence: float = 0.95) -> tuple[float, float, float]:
    """(mean, low, high): Student's t-interval of the mean of paired differences (nan bounds for one pair)."""
    n = len(diffs)
    mean = statistics.mean(diffs)
    if n < 2:
        return mean, float("nan"), float("nan")
    half = stats.t.ppf(0.5 + confidence / 2, n - 1) * statistics.stdev(diffs) / n ** 0.5
    return mean, mean - half, mean + half


def _all_equal(diffs: list[float]) -> bool:
    """Equal up to float rounding: 0.60 - 0.59 and 0.62 - 0.61 differ in their last bits, and the
    t statistic of such differences is rounding noise, not a measurement."""
    return max(diffs) - min(diffs) <= 1e-12 * max(1.0, *map(abs, diffs))


def paired_test(diffs: list[float]) -> dict:
    """Two-sided test of a zero mean paired difference: ``{"p", "test"}``, ``test`` naming what gave p.

    The paired t-test where the differences vary; p = 1 where they are all zero (or there is one pair);
    where they are all equal and non-zero, the exact sign-flip test: under the null each difference's
    sign is a fair coin, and only the two all-same-sign assignments reach the observed |mean|, so
    p = 2 / 2^n."""
    n = len(diffs)
    if n < 2:
        return {"p": 1.0, "test": TOO_FEW}
    if _all_equal(diffs):
        if all(abs(d) <= 1e-12 for d in diffs):
            return {"p": 1.0, "test": ALL_ZERO}
        return {"p": min(1.0, 2.0 / 2 ** n), "test": SIGN_FLIP}
    return {"p": float(stats.ttest_1samp(diffs, 0.0).pvalue), "test": T_TEST}


def paired_p(diffs: list[float]) -> float:
    """The p of ``paired_test``."""
    return paired_test(diffs)["p"]


def holm(pvalues: list[float]) -> list[float]:
    """Holm's step-down adjustment of a family of p-values (same order as given)."""
    order = sorted(range(len(pvalues)), key=pvalues.__getitem__)
    adjusted, running = [0.0] * len(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(pvalues) - rank) * pvalues[i]))
        adjusted[i] = running
    return adjusted


def paired_t_power(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test at ``alpha`` for a true mean difference ``effect`` with
    per-pair standard deviation ``sd`` over ``n`` pairs: P(|T| > t_crit) with T noncentral t
    (n - 1 degrees of freedom, noncentrality effect * sqrt(n) / sd)."""
    df, nc = n - 1, effect * math.sqrt(n) / sd
    crit = stats.t.ppf(1 - alpha / 2, df)
    # the lower tail as the upper tail of the mirrored distribution: nct.cdf is nan far out in the tail
    return float(stats.nct.sf(crit, df, nc) + stats.nct.sf(crit, df, -nc))


def min_detectable_effect(diffs: list[float], alpha: float = 0.05, power: float = 0.8) -> float:
    """The smallest mean paired difference a two-sided paired t-test at ``alpha`` detects with
    ``power``, for the number of ``diffs`` and their observed standard deviation (noncentral t; the
    central-t shortcut (t_{1-a/2} + t_power) * sd / sqrt(n) is 5 % low at n = 3). nan for one pair.
    For zero spread the t-test is undefined and ``paired_test`` takes the exact sign-flip test, whose p
    is never below 2 / 2^n: inf (no effect is detectable) while 2 / 2^n >= ``alpha`` (n <= 5 at 0.05),
    else 0 (any equal non-zero differences are detected)."""
    n = len(diffs)
    if n < 2:
        return float("nan")
    if _all_equal(diffs):
        return math.inf if 2.0 / 2 ** n >= alpha else 0.0
    sd = statistics.stdev(diffs)
    high = 2 * (stats.t.ppf(1 - alpha / 2, n - 1) + stats.t.ppf(power, n - 1)) * sd / math.sqrt(n)
    while paired_t_power(high, sd, n, alpha) < power:  # the central guess, doubled, brackets it but for tiny n
        high *= 2
    return float(optimize.brentq(lambda e: paired_t_power(e, sd, n, alpha) - power, 0.0, high, xtol=1e-12 * high))


def tost(diffs: list[float], margin: float, alpha: float = 0.05) -> dict:
    """Equivalence of paired differences to zero within ``(-margin, +margin)``: two one-sided tests,
    H0 mean <= -margin and H0 mean >= +margin. Returns ``{"p_tost", "p_lower", "p_upper",
    "equivalent", "margin", "test"}``; ``p_tost`` is the larger one-sided p and equivalence is shown
    when it is below ``alpha``. With zero spread the one-sided tests are exact sign-flip tests
    (each p = 1 / 2^n when every difference lies inside the margin, else 1)."""
    if not margin > 0:
        raise ValueError(f"a TOST margin must be positive, got {margin}")
    n = len(diffs)
    if n < 2:
        lower = upper = 1.0
        test = TOO_FEW
    elif _all_equal(diffs):
        lower = 1.0 / 2 ** n if diffs[0] > -margin else 1.0
        upper = 1.0 / 2 ** n if diffs[0] < margin else 1.0
        test = SIGN_FLIP
    else:
        lower = float(stats.ttest_1samp(diffs, -margin, alternative="greater").pvalue)
        upper = float(stats.ttest_1samp(diffs, margin, alternative="less").pvalue)
        test = T_TEST
    p = max(lower, upper)
    return {"p_tost": p, "p_lower": lower, "p_upper": upper, "equivalent": p < alpha, "margin": margin, "test": test}
