"""The synthetic world: determinism, popularity, tags and target splits, checked by statistics."""

import subprocess
import sys

import numpy as np
import pytest

from contract.world_config import WorldConfig
from data.world import PRETRAIN_LIMIT, TARGETS, SyntheticWorld


@pytest.fixture(scope="module")
def world():
    return SyntheticWorld(WorldConfig(), seed=3, image_size=24)


def test_same_index_gives_same_pixels_and_tags_in_any_batching(world):
    idx = np.arange(40, 90)
    whole = world.render_pretrain(idx)
    shuffled = np.random.default_rng(0).permutation(idx)
    parts = np.concatenate([world.render_pretrain(shuffled[:7]),
                            world.render_pretrain(shuffled[7:])])
    back = np.argsort(shuffled)
    assert np.array_equal(whole, parts[back])
    tags_whole = world.pretrain_tags(idx)
    tags_single = [world.pretrain_tags(np.array([i]))[0] for i in idx]
    assert all(np.array_equal(a, b) for a, b in zip(tags_whole, tags_single))


def test_new_world_object_reproduces_images():
    a = SyntheticWorld(WorldConfig(), seed=5, image_size=16).render_pretrain(np.arange(10))
    b = SyntheticWorld(WorldConfig(), seed=5, image_size=16).render_pretrain(np.arange(10))
    c = SyntheticWorld(WorldConfig(), seed=6, image_size=16).render_pretrain(np.arange(10))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_render_shape_dtype_and_variety(world):
    im = world.render_pretrain(np.arange(16))
    assert im.shape == (16, 3, 24, 24) and im.dtype == np.uint8
    assert len({x.tobytes() for x in im}) == 16 and im.std() > 20


def _zipf_slope(counts):
    counts = np.sort(counts)[::-1]
    head = counts[: len(counts) // 4]           # well-sampled ranks only
    ranks = np.arange(1, len(head) + 1)
    return np.polyfit(np.log(ranks), np.log(head), 1)[0]


@pytest.mark.parametrize("s", [0.6, 1.2])
def test_concept_popularity_follows_the_zipf_exponent(s):
    w = SyntheticWorld(WorldConfig(zipf_exponent=s), seed=0, image_size=16)
    objs = w.pretrain_objects(np.arange(200_000))
    counts = np.bincount(objs[objs >= 0], minlength=w.config.num_fine)
    assert _zipf_slope(counts) == pytest.approx(-s, abs=0.08)


def test_fine_tag_frequency_follows_the_zipf_exponent(world):
    offsets, flat = world.pretrain_tags_csr(np.arange(200_000))
    counts = np.bincount(flat, minlength=world.num_tags)[: world.config.num_fine]
    assert _zipf_slope(counts) == pytest.approx(-world.config.zipf_exponent, abs=0.08)


def test_tag_emission_rates_match_the_knobs():
    cfg = WorldConfig(max_objects=1, p_fine_tag=0.6, p_coarse_tag=0.2, p_absent_tag=0.0,
                      p_nonvisual_tag=0.4)
    w = SyntheticWorld(cfg, seed=1, image_size=16)
    n = 50_000
    objs = w.pretrain_objects(np.arange(n))[:, 0]
    tags = w.pretrain_tags(np.arange(n))
    kind = w.tag_kind()
    has_fine = np.array([objs[i] in t for i, t in enumerate(tags)])
    has_coarse = np.array([(kind[t] == 1).any() for t in tags])
    has_nv = np.array([(kind[t] == 2).any() for t in tags])
    assert has_fine.mean() == pytest.approx(0.6, abs=0.01)
    assert has_coarse.mean() == pytest.approx(0.2, abs=0.01)
    assert has_nv.mean() == pytest.approx(0.4, abs=0.01)
    # without absent tags, every fine tag names the object shown
    fine_tags = [t[kind[t] == 0] for t in tags]
    assert all(len(f) == 0 or (len(f) == 1 and f[0] == o) for f, o in zip(fine_tags, objs))


def test_absent_tags_name_concepts_not_shown():
    cfg = WorldConfig(max_objects=1, p_fine_tag=0.0, p_absent_tag=0.5)
    w = SyntheticWorld(cfg, seed=1, image_size=16)
    objs = w.pretrain_objects(np.arange(20_000))[:, 0]
    tags = w.pretrain_tags(np.arange(20_000))
    fine = [t[t < cfg.num_fine] for t in tags]
    rate = np.mean([len(f) > 0 for f in fine])
    wrong = np.mean([len(f) > 0 and f[0] != o for f, o in zip(fine, objs)])
    assert rate == pytest.approx(0.5, abs=0.015) and wrong > 0.4


def test_synonyms_map_raw_spellings_onto_canonical_tags(world):
    syn = world.synonyms
    assert set(syn.values()) == set(world.tag_names)
    assert len(syn) == world.num_tags * world.config.synonyms
    assert len(set(world.tag_names)) == world.num_tags


def test_target_indices_are_disjoint_from_pretraining_and_each_other(world):
    ranges = []
    for t in TARGETS:
        for s in ("train", "test"):
            idx = world.target_indices(t, s, 1000)
            assert idx.min() >= PRETRAIN_LIMIT
            ranges.append((idx.min(), idx.max()))
    ranges.sort()
    assert all(a[1] < b[0] for a, b in zip(ranges, ranges[1:]))
    with pytest.raises(ValueError):
        world.render_pretrain(np.array([PRETRAIN_LIMIT]))


@pytest.mark.parametrize("target", TARGETS)
def test_target_split_is_balanced_and_deterministic(world, target):
    x, y, names = world.target_split(target, "train", 2 * 48)
    x2, y2, _ = world.target_split(target, "train", 48)
    assert x.shape == (96, 3, 24, 24) and x.dtype == np.uint8 and y.dtype == np.int64
    assert np.array_equal(x[:48], x2) and np.array_equal(y[:48], y2)
    counts = np.bincount(world.target_split(target, "test", 5 * len(names))[1])
    assert (counts == 5).all()


def test_novel_classes_are_untagged_combinations(world):
    _, names = world.target_classes("novel")
    assert not set(names) & set(world.tag_names)
    fine = {tuple(a[1:]) + (a[0],) for a in world.fine_attrs}
    assert not any(tuple(a[1:]) + (a[0],) in fine for a in world.novel_attrs)


def test_fine_target_spans_popularity_ranks(world):
    ids = world.fine_target_concepts
    assert len(ids) == world.config.fine_target_classes
    rank = np.argsort(np.argsort(-world.popularity))
    assert rank[ids].min() == 0 and rank[ids].max() == world.config.num_fine - 1


@pytest.mark.integration
def test_world_config_import_does_not_import_torch():
    code = "import contract.world_config, data, sys; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_world_config_rejects_bad_values():
    with pytest.raises(ValueError, match="data.world.zipf_exponent"):
        WorldConfig(zipf_exponent=-1)
    with pytest.raises(ValueError, match="data.world.fine_per_coarse"):
        WorldConfig(variants=1, textures=2, colours=2, fine_per_coarse=4)
