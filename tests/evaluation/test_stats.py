"""The statistics of paired seeds: intervals, p-values where the t-test is undefined, Holm, the
noncentral-t detectable effect and the equivalence test, against hand or independent scipy computations."""
import math
import statistics

import pytest
from scipy import integrate, stats

from milan_lab.evaluation import stats as st


def test_t_interval_matches_a_hand_computation():
    diffs = [0.02, 0.05, 0.01, 0.04, 0.03]
    mean, lo, hi = st.t_interval(diffs)
    half = 2.7764451051977987 * statistics.stdev(diffs) / 5 ** 0.5  # t(0.975, 4 degrees of freedom)
    assert mean == pytest.approx(0.03) and (lo, hi) == pytest.approx((0.03 - half, 0.03 + half))
    assert lo > 0


def test_paired_p_is_the_two_sided_t_test_where_the_differences_vary():
    diffs = [0.10, 0.09, 0.11, 0.10]
    t = statistics.mean(diffs) / (statistics.stdev(diffs) / 2)
    assert st.paired_test(diffs) == {"p": pytest.approx(2 * stats.t.sf(t, 3)), "test": st.T_TEST}


def test_zero_variance_differences_never_give_p_zero():
    assert st.paired_test([0.0, 0.0, 0.0]) == {"p": 1.0, "test": st.ALL_ZERO}
    # every seed 1/512 better: the t statistic is undefined; the exact sign-flip test over 2^n signs
    assert st.paired_test([1 / 512] * 3) == {"p": pytest.approx(2 / 8), "test": st.SIGN_FLIP}
    assert st.paired_test([-0.02] * 5) == {"p": pytest.approx(2 / 32), "test": st.SIGN_FLIP}
    assert st.paired_p([0.01] * 6) == pytest.approx(1 / 32) and st.paired_p([0.01] * 6) < 0.05
    assert st.paired_test([0.3]) == {"p": 1.0, "test": st.TOO_FEW}


def test_holm_on_a_textbook_example():
    # sorted 0.01, 0.03, 0.04, 0.20 -> x4, x3, x2, x1, made monotone
    assert st.holm([0.01, 0.04, 0.03, 0.20]) == pytest.approx([0.04, 0.09, 0.09, 0.20])
    assert st.holm([0.5, 0.6]) == pytest.approx([1.0, 1.0])
    # Holm (1979)-style example: 0.01, 0.02, 0.03, 0.04, 0.05 -> 0.05, 0.08, 0.09, 0.09, 0.09
    assert st.holm([0.05, 0.01, 0.04, 0.02, 0.03]) == pytest.approx([0.09, 0.05, 0.09, 0.08, 0.09])


def _power_by_integration(effect: float, sd: float, n: int, alpha: float = 0.05) -> float:
    """Power of the two-sided paired t-test, computed independently of the noncentral t: integrate,
    over the sample SD's chi distribution, the normal probability that the mean lands beyond the
    critical value."""
    df, crit = n - 1, stats.t.ppf(1 - alpha / 2, n - 1)
    se = sd / math.sqrt(n)

    def given_s(u):  # u = (n-1) s^2 / sd^2 ~ chi2(df)
        s = sd * math.sqrt(u / df)
        reach = crit * s / math.sqrt(n)
        return (stats.norm.sf(reach, effect, se) + stats.norm.cdf(-reach, effect, se)) * stats.chi2.pdf(u, df)
    return integrate.quad(given_s, 0, math.inf)[0]


def test_minimum_detectable_effect_solves_the_noncentral_power_equation():
    diffs = [1.0, -1.0, 0.5, -0.5, 0.0]
    diffs = [d / statistics.stdev(diffs) for d in diffs]  # n = 5, sd = 1
    mde = st.min_detectable_effect(diffs)
    assert _power_by_integration(mde, 1.0, 5) == pytest.approx(0.8, abs=1e-6)
    assert mde == pytest.approx(1.682, abs=1e-3)  # in units of the SD: the effect size dz for n = 5
    central = (stats.t.ppf(0.975, 4) + stats.t.ppf(0.8, 4)) / math.sqrt(5)
    assert mde > central  # the central-t shortcut is low
    # at n = 3 it is about 5 % low; with two pairs the bracket must grow far beyond the central guess
    three = [0.01, -0.02, 0.03]
    assert st.min_detectable_effect(three) / ((stats.t.ppf(0.975, 2) + stats.t.ppf(0.8, 2)) * statistics.stdev(three)
                                              / math.sqrt(3)) == pytest.approx(1.054, abs=2e-3)
    two = st.min_detectable_effect([0.0, 1.0])
    assert _power_by_integration(two, statistics.stdev([0.0, 1.0]), 2) == pytest.approx(0.8, abs=1e-4)
    assert math.isnan(st.min_detectable_effect([0.1])) and math.isinf(st.min_detectable_effect([0.1, 0.1]))


def test_tost_shows_equivalence_only_inside_a_margin_the_data_support():
    diffs = [0.001, -0.002, 0.0015, 0.0, -0.0005]  # mean 0, sd about 0.0014
    inside = st.tost(diffs, margin=0.01)
    se = statistics.stdev(diffs) / math.sqrt(5)
    by_hand = stats.t.sf((statistics.mean(diffs) + 0.01) / se, 4)  # symmetric: both one-sided p equal
    assert inside["p_tost"] == pytest.approx(by_hand) and inside["p_lower"] == pytest.approx(inside["p_upper"])
    assert inside["equivalent"] is True and inside["test"] == st.T_TEST
    assert st.tost(diffs, margin=0.001)["equivalent"] is False  # a margin inside the noise: not shown
    shifted = st.tost([d + 0.02 for d in diffs], margin=0.01)    # a real difference of 2 points: not equivalent
    assert shifted["equivalent"] is False and shifted["p_upper"] > 0.5
    assert st.tost([0.0] * 5, margin=0.01) == {"p_tost": 1 / 32, "p_lower": 1 / 32, "p_upper": 1 / 32,
                                               "equivalent": True, "margin": 0.01, "test": st.SIGN_FLIP}
    assert st.tost([0.0] * 3, margin=0.01)["equivalent"] is False  # 1/8: three equal seeds show nothing
    with pytest.raises(ValueError, match="margin"):
        st.tost(diffs, margin=0)


def test_the_ablation_summary_names_the_test_and_adds_tost_with_a_declared_margin():
    from milan_lab.tools import ablation
    base = dict.fromkeys(ablation.PROBES, 0.5)
    rows = [{"arm": arm, "seed": s, **base, "linear_mean": v} for arm, vs in
            {"MILAN": [0.60, 0.62, 0.58], "random masking": [0.59, 0.61, 0.57]}.items() for s, v in enumerate(vs)]
    (plain,) = [r for r in ablation.summarise(rows) if r["arm"] == "random masking"]
    assert plain["linear_mean_p"] == pytest.approx(0.25) and plain["linear_mean_test"] == st.SIGN_FLIP  # was p = 0
    assert plain["knn_cls_test"] == st.ALL_ZERO and "linear_mean_p_tost" not in plain
    (tested,) = [r for r in ablation.summarise(rows, family=["linear_mean"], margin=0.02) if r["arm"] == "random masking"]
    assert tested["linear_mean_p_tost"] == pytest.approx(1 / 8)  # +1 point on every seed, margin 2: exact, 3 seeds
    assert tested["linear_mean_equivalent"] is False and "knn_cls_p_tost" not in tested
    text = ablation.markdown_tables(ablation.summarise(rows, family=["linear_mean"], margin=0.02))
    assert f"p 0.250 ({st.SIGN_FLIP})" in text and "TOST p" in text


def test_equal_differences_over_few_seeds_detect_nothing():
    from milan_lab.evaluation.stats import min_detectable_effect, paired_test
    from milan_lab.tools.ablation import BASELINE, markdown_tables, summarise
    assert math.isinf(min_detectable_effect([0.02] * 3))  # the exact test's p is at least 2 / 8
    assert paired_test([0.02] * 6)["p"] < 0.05 and min_detectable_effect([0.02] * 6) == 0.0
    rows = [{"arm": arm, "seed": s, "knn_cls": 0.5 + (0.02 if arm == BASELINE else 0), "ms_per_step": None}
            for arm in (BASELINE, "random") for s in range(3)]
    table = markdown_tables(summarise(rows, metrics=("knn_cls",)), metrics=("knn_cls",), primary="knn_cls")
    mde_rows = table.split("minimum detectable effect")[1].splitlines()
    assert any(line.startswith("| random |") and "not resolvable" in line for line in mde_rows), table
