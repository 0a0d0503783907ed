"""Replicate statistics against values computed by hand on made-up hypervolumes."""

import math

import pytest

from qapbo.compare.stats import (
    Interval,
    compare_pair,
    median_interval,
    rank_test,
    superiority,
    verdict_sentence,
)

# the five seeds of the quickstart search the issue quotes
SEARCH = [1.025, 1.273, 1.206, 1.238, 1.190]


def test_median_interval_of_five_spans_the_sample():
    # a resample's median is its 3rd smallest of 5; it is the sample's smallest when at least 3 draws are:
    # P = C(5,3) .2^3 .8^2 + C(5,4) .2^4 .8 + .2^5 = 0.0512 + 0.0064 + 0.00032 = 0.05792 > 0.025,
    # so the 2.5 % quantile is the smallest value, and likewise the 97.5 % one the largest
    iv = median_interval(SEARCH)
    assert iv == Interval(1.206, 1.025, 1.273, 5, 0.95)
    assert median_interval(SEARCH, seed=1) == iv  # not a matter of the seed


def test_median_interval_of_seven_drops_the_extremes():
    # n = 7: the resample's median is its 4th smallest. P(it is the smallest value) = P(Bin(7, 1/7) >= 4)
    # = 35 p^4 q^3 + 21 p^5 q^2 + 7 p^6 q + p^7 = 0.00918 + 0.00092 + 0.00005 + 0.000001 = 0.0102 < 0.025;
    # P(at most the 2nd smallest) = P(Bin(7, 2/7) >= 4) = 0.0850 + 0.0204 + 0.0027 + 0.0002 = 0.108 > 0.025:
    # the interval runs from the 2nd smallest to the 2nd largest
    values = [0.91, 0.97, 0.93, 1.02, 0.95, 0.99, 1.05]
    p = 1 / 7
    assert sum(math.comb(7, j) * p ** j * (1 - p) ** (7 - j) for j in range(4, 8)) == pytest.approx(0.0102, abs=1e-4)
    iv = median_interval(values)
    assert (iv.median, iv.low, iv.high) == (0.97, 0.93, 1.02)


def test_median_interval_small_cases():
    # two values: medians a, (a+b)/2, b with probabilities 1/4, 1/2, 1/4 -> the interval is [a, b]
    assert median_interval([1.0, 2.0])[:3] == (1.5, 1.0, 2.0)
    assert median_interval([1.1])[:3] == (1.1, 1.1, 1.1)  # one replicate: no spread
    with pytest.raises(ValueError):
        median_interval([])
    # a narrower confidence gives a narrower (or equal) interval
    wide, narrow = median_interval(SEARCH * 4), median_interval(SEARCH * 4, confidence=0.5)
    assert wide.low <= narrow.low <= narrow.high <= wide.high


def test_superiority_counts_ties_half():
    a, b = [3.0, 1.0], [1.0, 2.0, 3.0]
    # 3 vs (1, 2, 3): 1 + 1 + 0.5; 1 vs (1, 2, 3): 0.5 + 0 + 0 -> 3 / 6
    assert superiority(a, b) == 0.5
    assert superiority([2, 3, 4], [1, 1, 1]) == 1.0
    assert superiority([1, 1], [2, 3]) == 0.0
    assert superiority([1, 2], [2, 3]) == pytest.approx(0.5 / 4)  # only the tie 2 = 2 counts, half


def test_rank_test_exact_by_hand():
    # 3 against 3, completely separated: U = 0 is 1 of C(6,3) = 20 splits on each side -> p = 2/20
    assert rank_test([1, 2, 3], [4, 5, 6]) == pytest.approx(0.1)
    # 5 against 5 separated: 2 / C(10,5) = 2/252
    assert rank_test(SEARCH, [0.90, 0.95, 0.97, 1.00, 1.01]) == pytest.approx(2 / 252)
    # with a tie: pooled 1, 2, 2, 3 (mid-ranks 1, 2.5, 2.5, 4); U of [1, 2] is 0.5; the 6 splits give
    # U = 0.5, 0.5, 2, 2, 3.5, 3.5 around the mean 2: |U - 2| >= 1.5 in 4 of 6 -> p = 2/3
    assert rank_test([1, 2], [2, 3]) == pytest.approx(2 / 3)
    assert rank_test([1, 1], [1, 1]) == 1.0
    # 4 against 4 (C(8,4) = 70 splits; U = 0, 1, 2 in 1, 1, 2 of them). U = 1 (only 3.5 > 3):
    # P(U <= 1) = 2/70, two-sided 4/70; U = 2 (3.5 and 4 > 3): 4/70, two-sided 8/70
    assert rank_test([1, 2, 2.5, 3.5], [3, 5, 6, 7]) == pytest.approx(4 / 70)
    assert rank_test([1, 2, 4, 3.5], [3, 5, 6, 7]) == pytest.approx(8 / 70)


def test_rank_test_large_samples_use_the_normal_approximation():
    a, b = list(range(12)), [x + 0.5 for x in range(12)]
    p = rank_test(a, b)
    # U = 66 = n1 n2 / 2 - 6 ... the mean is 72, sd sqrt(12*12*25/12) = sqrt(300); z = (|66 - 72| - 0.5) / sqrt(300)
    z = (abs(66 - 72) - 0.5) / math.sqrt(300)
    assert p == pytest.approx(math.erfc(z / math.sqrt(2)), rel=1e-6)


def test_verdicts_and_their_rule():
    qap = [0.90, 0.95, 0.97, 1.00, 1.01]
    v = compare_pair(SEARCH, qap, names=("search", "QAP"))
    assert v.distinguishable and v.leader == "search" and v.superiority == 1.0
    text = verdict_sentence(v)
    assert text.startswith("search leads QAP on hypervolume: median 1.206 [1.025, 1.273] against 0.970 [0.900, 1.010]")
    assert "95 % bootstrap intervals; 5 and 5 replicates" in text and "P(search > QAP) = 1.00" in text
    assert "Mann-Whitney p = 0.00794" in text
    # the other way round, the same verdict, and the sentence still names the leader with its own numbers
    back = compare_pair(qap, SEARCH, names=("QAP", "search"))
    assert back.leader == "search" and verdict_sentence(back) == text
    # overlapping samples -> not distinguishable
    close = [1.10, 1.20, 1.22, 1.15, 1.30]
    w = compare_pair(SEARCH, close, names=("search", "refine"))
    # pairs won by 1.025, 1.190, 1.206, 1.238, 1.273 against 1.10, 1.15, 1.20, 1.22, 1.30: 0 + 2 + 3 + 4 + 4 = 13
    # of 25; U = 13 is 0.5 from its mean 12.5, and every U is at least that far: p = 1
    assert w.superiority == pytest.approx(13 / 25) and w.p_value == pytest.approx(1.0)
    assert not w.distinguishable and w.leader is None
    assert verdict_sentence(w).startswith("search and refine are not distinguishable on hypervolume")
    # three replicates each can never separate at 0.05 (smallest p is 0.1)
    assert compare_pair([3, 4, 5], [0, 1, 2]).leader is None
