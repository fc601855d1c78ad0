"""Pretraining sets: nesting, vocabularies, dropped images, soft targets, noise, resampling."""

import numpy as np
import pytest
import torch

from contract.config import DataConfig
from contract.world_config import WorldConfig
from data import build_pretrain_set, build_target_split
from data.pretrain import _draw_other, world_for


def cfg(**kw):
    base = dict(source="synthetic", path=None, images=3000, vocab="all", resample="natural",
                label_noise=0.0, targets="soft", seed=0, cache=False, world=WorldConfig())
    base.update(kw)
    return DataConfig(**base)


def test_smaller_sets_are_prefixes_of_larger_ones():
    small = build_pretrain_set(cfg(images=500, vocab=50), 16)
    big = build_pretrain_set(cfg(images=2000, vocab=50), 16)
    n = len(small)
    assert np.array_equal(small.indices, big.indices[:n])
    assert np.array_equal(small.offsets, big.offsets[: n + 1])
    assert np.array_equal(small.tags, big.tags[: small.offsets[-1]])
    assert torch.equal(small.images(torch.arange(n)[-5:]), big.images(torch.arange(n)[-5:]))


def test_tagless_images_are_dropped_and_counted():
    c = cfg(images=2000, vocab=20)
    ps = build_pretrain_set(c, 16)
    world = world_for(c, 16)
    vocab = set(ps.vocab.tolist())
    tags = world.pretrain_tags(np.arange(2000))
    tagged = np.array([bool(set(t.tolist()) & vocab) for t in tags])
    assert ps.dropped == (~tagged).sum() > 0
    assert len(ps) + ps.dropped == 2000
    assert np.array_equal(ps.indices, np.flatnonzero(tagged))
    assert (np.diff(ps.offsets) > 0).all()


def test_vocab_k_keeps_the_k_most_frequent_tags():
    c = cfg(images=20000, vocab=30)
    ps = build_pretrain_set(c, 16)
    world = world_for(c, 16)
    freq = world.expected_tag_frequency()
    assert ps.num_classes == 30 and ps.tag_names == [world.tag_names[t] for t in ps.vocab]
    assert freq[ps.vocab].min() >= np.delete(freq, ps.vocab).max()
    assert (np.diff(freq[ps.vocab]) <= 0).all()            # most frequent first
    # and the expected order is the order measured in the set
    counts = np.bincount(np.concatenate(world.pretrain_tags(np.arange(20000))),
                         minlength=world.num_tags)
    top = set(np.argsort(-counts)[:30].tolist())
    assert len(top & set(ps.vocab.tolist())) >= 27


def test_vocab_all_keeps_every_tag():
    ps = build_pretrain_set(cfg(images=500), 16)
    assert ps.num_classes == world_for(cfg(), 16).num_tags


@pytest.mark.parametrize("target", ["fine", "coarse"])
def test_matched_vocab_is_the_target_class_tags(target):
    c = cfg(images=500, vocab=f"matched:{target}")
    ps = build_pretrain_set(c, 16)
    _, _, names = build_target_split(c, 16, target, "test", 1)
    _, names = world_for(c, 16).target_classes(target)
    assert sorted(ps.tag_names) == sorted(names)


def test_matched_novel_vocab_is_refused():
    with pytest.raises(ValueError, match="novel"):
        build_pretrain_set(cfg(images=10, vocab="matched:novel"), 16)


def test_real_source_without_data_raises_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="data.path="):
        build_pretrain_set(cfg(source="hf", path=str(tmp_path / "missing")), 16)
    with pytest.raises(FileNotFoundError, match="no WebDataset shards"):
        build_pretrain_set(cfg(source="webdataset", path=str(tmp_path)), 16)


def test_soft_target_rows_sum_to_one_over_the_image_tags():
    ps = build_pretrain_set(cfg(images=1000), 16)
    pos = torch.arange(0, len(ps), 7)
    t = ps.targets(pos)
    assert t.dtype == torch.float32 and t.shape == (len(pos), ps.num_classes)
    assert torch.allclose(t.sum(1), torch.ones(len(pos)))
    for row, p in zip(t, pos.tolist()):
        tags = ps.tags_of(p)
        assert set(torch.nonzero(row).flatten().tolist()) == set(tags.tolist())
        assert torch.allclose(row[tags], torch.full((len(tags),), 1.0 / len(tags)))


def test_multihot_targets_are_zero_one():
    ps = build_pretrain_set(cfg(images=300, targets="multihot"), 16)
    t = ps.targets(torch.arange(len(ps)))
    assert set(t.unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(t.sum(1).long(), torch.from_numpy(np.diff(ps.offsets)))


@pytest.mark.parametrize("noise_from, kept_by_chance", [("marginal", 0.0), ("uniform", 1 / 40)])
def test_label_noise_replaces_tags_at_rate_p(noise_from, kept_by_chance):
    p, K = 0.3, 40
    clean = build_pretrain_set(cfg(images=30000, vocab=K), 16)
    noisy = build_pretrain_set(cfg(images=30000, vocab=K, label_noise=p,
                                   label_noise_from=noise_from), 16)
    assert np.array_equal(clean.indices, noisy.indices)     # noise never drops images
    single = np.flatnonzero(np.diff(clean.offsets) == 1)
    changed = np.mean(clean.tags[clean.offsets[single]] != noisy.tags[noisy.offsets[single]])
    assert changed == pytest.approx(p * (1 - kept_by_chance), abs=0.015)
    again = build_pretrain_set(cfg(images=30000, vocab=K, label_noise=p,
                                   label_noise_from=noise_from), 16)
    assert np.array_equal(again.tags, noisy.tags)


def test_marginal_label_noise_draws_by_tag_frequency():
    """The paper's injection: a replaced tag becomes another tag with probability
    proportional to that tag's frequency; uniform noise floods the rare tags instead."""
    K = 60
    clean = build_pretrain_set(cfg(images=30000, vocab=K), 16)
    freq = np.bincount(clean.tags, minlength=K).astype(float)
    single = np.flatnonzero(np.diff(clean.offsets) == 1)
    rare = freq <= np.quantile(freq, 0.5)               # the less frequent half of the tags
    share = {}
    for how in ("marginal", "uniform"):
        noisy = build_pretrain_set(cfg(images=30000, vocab=K, label_noise=0.5,
                                       label_noise_from=how), 16)
        old, new = clean.tags[clean.offsets[single]], noisy.tags[noisy.offsets[single]]
        new = new[old != new]
        share[how] = np.isin(new, np.flatnonzero(rare)).mean()
    assert share["marginal"] == pytest.approx(freq[rare].sum() / freq.sum(), abs=0.03)
    assert share["uniform"] == pytest.approx(rare.mean(), abs=0.03)
    assert share["uniform"] > 2 * share["marginal"]


def test_draw_other_is_the_marginal_without_the_old_tag():
    marginal = np.array([0.5, 0.0, 0.3, 0.2])
    u = (np.arange(200_000) + 0.5) / 200_000
    for old in range(4):
        drawn = _draw_other(u, np.full(len(u), old), marginal)
        want = marginal.copy()
        want[old] = 0.0
        want /= want.sum()
        np.testing.assert_allclose(np.bincount(drawn, minlength=4) / len(u), want, atol=1e-4)


def test_resampling_weights_give_the_documented_probabilities():
    ps = build_pretrain_set(cfg(images=400, vocab=25), 16)
    f = np.bincount(ps.tags, minlength=ps.num_classes).astype(float)
    for name, power in (("sqrt", -0.5), ("uniform", -1.0)):
        w = ps.sample_weights(name)
        assert w.dtype == torch.float64 and w.shape == (len(ps),)
        expect = np.array([np.mean(f[ps.tags_of(i)] ** power) for i in range(len(ps))])
        np.testing.assert_allclose(w.numpy(), expect, rtol=1e-12)
        prob = w / w.sum()
        np.testing.assert_allclose(prob.numpy(), expect / expect.sum(), rtol=1e-12)
    assert torch.equal(ps.sample_weights("natural"), torch.ones(len(ps), dtype=torch.float64))
    assert torch.equal(ps.sample_weights(), ps.sample_weights("natural"))


def test_uniform_resampling_equalises_single_tag_classes():
    ps = build_pretrain_set(cfg(images=3000, vocab=10, world=WorldConfig(max_objects=1,
                            p_coarse_tag=0.0, p_absent_tag=0.0, p_nonvisual_tag=0.0)), 16)
    assert (np.diff(ps.offsets) == 1).all()
    prob = (ps.sample_weights("uniform") / ps.sample_weights("uniform").sum()).numpy()
    mass = np.bincount(ps.tags, weights=prob, minlength=10)
    np.testing.assert_allclose(mass, np.full(10, 0.1), rtol=1e-9)


def test_cached_images_equal_rendered_ones():
    a = build_pretrain_set(cfg(images=300, cache=True), 16)
    b = build_pretrain_set(cfg(images=300, cache=False), 16)
    pos = torch.tensor([0, 5, 17, len(a) - 1])
    assert a.cached and not b.cached
    assert torch.equal(a.images(pos), b.images(pos)) and a.images(pos).dtype == torch.uint8


def test_target_split_returns_torch_tensors():
    x, y, names = build_target_split(cfg(), 16, "coarse", "test", 32)
    assert x.dtype == torch.uint8 and x.shape == (32, 3, 16, 16)
    assert y.dtype == torch.int64 and len(names) == WorldConfig().num_coarse
