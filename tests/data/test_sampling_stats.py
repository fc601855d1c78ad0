"""data/sampling_stats.py: exact expected resampling figures, checked by hand and against
brute-force enumeration of every possible stream."""

import itertools
import math

import numpy as np
import pytest

from contract.config import DataConfig
from contract.world_config import WorldConfig
from data import build_pretrain_set
from data.sampling_stats import expected_sampling, sampling_stats, tail_images, tail_tags


def _enumerated(p, S, tail):
    """E[distinct], E[tail distinct], E[tail draws] over all len(p)^S i.i.d. streams."""
    distinct = tail_distinct = tail_draws = 0.0
    for seq in itertools.product(range(len(p)), repeat=S):
        prob = math.prod(p[i] for i in seq)
        shown = set(seq)
        distinct += prob * len(shown)
        tail_distinct += prob * sum(1 for i in shown if tail[i])
        tail_draws += prob * sum(1 for i in seq if tail[i])
    return distinct, tail_distinct, tail_draws


def test_weighted_figures_by_hand():
    # p = (1/4, 1/4, 1/2), S = 2: image 0 or 1 shown with 1 - (3/4)^2 = 7/16, image 2 with
    # 1 - (1/2)^2 = 3/4; distinct 7/16 + 7/16 + 3/4 = 13/8; the tail is image 2 alone.
    out = expected_sampling(np.array([1.0, 1.0, 2.0]), 2, np.array([False, False, True]),
                            "uniform")
    assert out["distinct"] == pytest.approx(13 / 8)
    assert out["repeats"] == pytest.approx(2 / (13 / 8))
    assert out["tail_share"] == pytest.approx(0.5)
    assert out["tail_draws"] == pytest.approx(1.0)
    assert out["tail_distinct"] == pytest.approx(3 / 4)
    assert out["tail_repeats"] == pytest.approx(4 / 3)
    assert out["distinct_share"] == pytest.approx(13 / 24)
    assert out["tail_images"] == 1 and out["images"] == 3 and out["draws"] == 2


@pytest.mark.parametrize("S", [1, 3, 5])
def test_weighted_figures_equal_full_enumeration(S):
    w = np.array([3.0, 1.0, 0.5, 0.5])
    tail = np.array([False, True, True, False])
    distinct, tail_distinct, tail_draws = _enumerated(list(w / w.sum()), S, tail)
    out = expected_sampling(w, S, tail, "sqrt")
    assert out["distinct"] == pytest.approx(distinct, rel=1e-12)
    assert out["tail_distinct"] == pytest.approx(tail_distinct, rel=1e-12)
    assert out["tail_draws"] == pytest.approx(tail_draws, rel=1e-12)


def test_natural_is_a_permutation_per_epoch():
    # L = 4, one tail image. S = 6: every image once, then 2 of the next epoch.
    tail = np.array([True, False, False, False])
    out = expected_sampling(np.ones(4), 6, tail, "natural")
    assert (out["distinct"], out["repeats"]) == (4.0, 1.5)
    assert (out["tail_share"], out["tail_distinct"], out["tail_repeats"]) == (0.25, 1.0, 1.5)
    # S = 2 < L: 2 distinct images; the tail image is among them with probability 2/4
    out = expected_sampling(np.ones(4), 2, tail, "natural")
    assert (out["distinct"], out["repeats"], out["tail_distinct"]) == (2.0, 1.0, 0.5)


def test_natural_ignores_weights_and_matches_enumerated_permutations():
    # two epochs of L = 3 (all 3! x 3! orders), S = 4 draws: distinct is 3 every time
    L, S, tail = 3, 4, np.array([False, True, True])
    perms = list(itertools.permutations(range(L)))
    distinct, tail_d = [], []
    for a in perms:
        for b in perms:
            shown = set((a + b)[:S])
            distinct.append(len(shown))
            tail_d.append(sum(tail[i] for i in shown))
    out = expected_sampling(np.array([9.0, 1.0, 1.0]), S, tail, "natural")
    assert out["distinct"] == np.mean(distinct) and out["tail_distinct"] == np.mean(tail_d)


def test_tiny_probabilities_keep_their_precision():
    # 1 - (1 - p)^S with p = 1e-12, S = 1e6 is 1e-6 (a naive power loses most digits)
    w = np.array([1.0, 1e-12])
    out = expected_sampling(w, 10**6, np.array([False, True]), "uniform")
    p = 1e-12 / (1 + 1e-12)
    assert out["tail_distinct"] == pytest.approx(10**6 * p, rel=1e-6)


def test_tail_is_the_rarer_half_of_present_tags():
    f = np.array([5, 1, 0, 3, 1])          # present: 1, 4 (f = 1), 3 (3), 0 (5)
    assert tail_tags(f).tolist() == [False, True, False, False, True]
    # images: {0}, {1, 0}, {3}, {4}; CSR over tags
    offsets = np.array([0, 1, 3, 4, 5])
    tags = np.array([0, 1, 0, 3, 4])
    # f over these images: 0 -> 2, 1 -> 1, 3 -> 1, 4 -> 1; rarer half of 4 tags = 1 and 3
    assert tail_images(offsets, tags, 5).tolist() == [False, True, True, False]


def test_bad_input_is_one_line():
    with pytest.raises(ValueError, match="one flag per weight"):
        expected_sampling(np.ones(3), 5, np.array([True]), "uniform")
    with pytest.raises(ValueError, match="finite"):
        expected_sampling(np.array([0.0, 0.0]), 5, np.array([True, False]), "uniform")


def test_a_pretrain_set_resamples_its_tail_more_under_uniform():
    base = dict(source="synthetic", path=None, images=3000, vocab="all", label_noise=0.0,
                targets="soft", seed=0, cache=False, world=WorldConfig())
    figures = {}
    for scheme in ("natural", "sqrt", "uniform"):
        ps = build_pretrain_set(DataConfig(resample=scheme, **base), 16)
        figures[scheme] = out = sampling_stats(ps, 6000)
        w = np.ones(len(ps)) if scheme == "natural" else ps.sample_weights().numpy()
        tail = tail_images(ps.offsets, ps.tags, ps.num_classes)
        assert out["distinct"] == expected_sampling(w, 6000, tail, scheme)["distinct"]
        assert out["tags"] == ps.num_classes
        assert out["tail_tags"] == int((ps.tag_frequency() > 0).sum()) // 2
    nat, sq, uni = figures["natural"], figures["sqrt"], figures["uniform"]
    assert nat["distinct"] == nat["images"]
    assert uni["distinct"] < sq["distinct"] < nat["distinct"]
    assert uni["tail_share"] > sq["tail_share"] > nat["tail_share"]
