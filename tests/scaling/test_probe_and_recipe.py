import math

import pytest
import torch

from contract.config import OptimConfig
from scaling.probe import linear_probe, topk
from scaling.recipe import augment, lr_factor, total_steps


def test_linear_probe_separates_separable_features_and_is_at_chance_on_noise():
    gen = torch.Generator().manual_seed(0)
    centres = torch.randn(10, 32, generator=gen) * 3
    y_tr, y_te = torch.arange(1000) % 10, torch.arange(500) % 10
    x_tr = centres[y_tr] + torch.randn(1000, 32, generator=gen)
    x_te = centres[y_te] + torch.randn(500, 32, generator=gen)
    good = linear_probe(x_tr, y_tr, x_te, y_te, 10)
    assert good["top1"] > 95 and good["top5"] >= good["top1"]
    noise = linear_probe(torch.randn(1000, 32, generator=gen), y_tr,
                         torch.randn(500, 32, generator=gen), y_te, 10)
    assert noise["top1"] < 20  # chance is 10


def test_topk_counts_hits_in_the_k_best():
    logits = torch.tensor([[0.1, 0.9, 0.0], [0.8, 0.1, 0.2]])
    y = torch.tensor([0, 2])
    assert topk(logits, y, 1) == 0.0
    assert topk(logits, y, 2) == 100.0


def test_step_schedule_warms_up_linearly_then_halves_at_equal_intervals():
    optim = OptimConfig(global_batch=10, images_seen=1000, warmup_frac=0.1, halvings=2)
    total = total_steps(optim)
    factors = [lr_factor(s, optim) for s in range(total)]
    assert total == 100 and factors[0] == pytest.approx(0.1) and factors[9] == 1.0
    assert sorted(set(factors[10:]), reverse=True) == [1.0, 0.5, 0.25]
    assert factors[10:40] == [1.0] * 30 and factors[-1] == 0.25


def test_cosine_schedule_ends_near_zero():
    optim = OptimConfig(global_batch=10, images_seen=1000, warmup_frac=0.0, schedule="cosine")
    assert lr_factor(0, optim) == 1.0
    assert lr_factor(99, optim) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.99)))


def test_augmentation_of_a_global_batch_is_the_same_at_any_world_size():
    x = torch.randn(8, 3, 16, 16)
    whole = augment(x, seed=3, step=5, first_slot=0, global_batch=8)
    halves = torch.cat([augment(x[:4], 3, 5, 0, 8), augment(x[4:], 3, 5, 4, 8)])
    assert torch.equal(whole, halves)
    assert not torch.equal(whole, x)
    assert not torch.equal(whole, augment(x, seed=3, step=6, first_slot=0, global_batch=8))
