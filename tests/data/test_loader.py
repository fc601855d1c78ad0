"""ResumableLoader: a deterministic global stream, exact resume at any world size."""

import pytest
import torch

from contract.config import DataConfig
from contract.world_config import WorldConfig
from data import ResumableLoader, build_pretrain_set


@pytest.fixture(scope="module")
def pset():
    c = DataConfig(source="synthetic", path=None, images=300, vocab=40, resample="natural",
                   label_noise=0.0, targets="soft", seed=0, cache=True, world=WorldConfig())
    return build_pretrain_set(c, 16)


def _stream(pset, steps, world_size, resample, seed=1, start=0):
    """Global stream of steps [start, steps) reassembled from every rank's batches."""
    loaders = [ResumableLoader(pset, 24, r, world_size, seed, resample) for r in range(world_size)]
    for ld in loaders:
        ld.load_state_dict({"step": start})
    return torch.cat([torch.cat([ld.rank_positions(s) for ld in loaders])
                      for s in range(start, steps)])


@pytest.mark.parametrize("resample", ["natural", "sqrt", "uniform"])
def test_same_seed_gives_same_stream_and_other_seed_another(pset, resample):
    a, b = _stream(pset, 30, 1, resample), _stream(pset, 30, 1, resample)
    assert torch.equal(a, b)
    assert not torch.equal(a, _stream(pset, 30, 1, resample, seed=2))


def test_natural_stream_visits_every_image_once_per_epoch(pset):
    L = len(pset)
    s = _stream(pset, (3 * L) // 24 + 1, 1, "natural")
    for e in range(3):
        assert sorted(s[e * L:(e + 1) * L].tolist()) == list(range(L))
    assert not torch.equal(s[:L], s[L:2 * L])


@pytest.mark.parametrize("resample", ["sqrt", "uniform"])
def test_resampled_stream_draws_by_sample_weights(pset, resample):
    ld = ResumableLoader(pset, 24, 0, 1, 0, resample)
    draws = torch.cat([ld.epoch_order(e) for e in range(300)])
    freq = torch.bincount(draws, minlength=len(pset)).double() / len(draws)
    w = pset.sample_weights(resample)
    prob = w / w.sum()
    # chi-square-like check: overall deviation within sampling noise
    z = (freq - prob) / torch.sqrt(prob * (1 - prob) / len(draws))
    assert z.pow(2).mean().item() < 1.5


@pytest.mark.parametrize("world_size", [1, 2, 3, 4])
def test_ranks_are_disjoint_slices_of_the_global_stream(pset, world_size):
    ref = _stream(pset, 20, 1, "natural")
    assert torch.equal(_stream(pset, 20, world_size, "natural"), ref)
    ld = [ResumableLoader(pset, 24, r, world_size, 1) for r in range(world_size)]
    whole = ResumableLoader(pset, 24, 0, 1, 1)
    for step in range(20):
        # the ranks' positions together are exactly the global batch's (as a multiset: a
        # batch that straddles an epoch boundary may hold one image twice), none dropped
        parts = [x.rank_positions(step).tolist() for x in ld]
        assert sum(len(p) for p in parts) == 24
        assert sorted(sum(parts, [])) == sorted(whole.rank_positions(step).tolist())


@pytest.mark.parametrize("resume_world", [1, 2, 4])
def test_resume_at_same_or_other_world_size_continues_the_stream(pset, resume_world):
    ref = ResumableLoader(pset, 24, 0, 1, 1, "sqrt")
    full = [ref.next_batch() for _ in range(25)]
    first = ResumableLoader(pset, 24, 0, 2, 1, "sqrt")
    for _ in range(11):
        first.next_batch()
    state = first.state_dict()
    assert state["step"] == 11 and state["seed"] == 1
    resumed = []
    for r in range(resume_world):
        ld = ResumableLoader(pset, 24, r, resume_world, 1, "sqrt")
        ld.load_state_dict(state)
        resumed.append([ld.next_batch() for _ in range(14)])
    for k in range(14):
        images = torch.cat([resumed[r][k][0] for r in range(resume_world)])
        targets = torch.cat([resumed[r][k][1] for r in range(resume_world)])
        assert torch.equal(images, full[11 + k][0]) and torch.equal(targets, full[11 + k][1])


def test_batches_have_the_promised_shapes(pset):
    x, y = ResumableLoader(pset, 24, 1, 3, 0).next_batch()
    assert x.shape == (8, 3, 16, 16) and x.dtype == torch.uint8
    assert y.shape == (8, pset.num_classes) and y.dtype == torch.float32


def test_mismatched_state_or_batch_is_refused(pset):
    ld = ResumableLoader(pset, 24, 0, 1, 0)
    with pytest.raises(ValueError, match="seed"):
        ld.load_state_dict({"step": 3, "seed": 9})
    with pytest.raises(ValueError, match="global_batch"):
        ResumableLoader(pset, 25, 0, 2, 0)
