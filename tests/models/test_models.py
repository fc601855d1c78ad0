import pytest
import torch
import torchvision

from models import count_params, create_model, forward_flops, list_models, model_stats

PAPER_PARAMS = {4: 44.18e6, 8: 88.79e6, 16: 194.03e6, 32: 468.53e6, 48: 828.41e6}


@pytest.mark.parametrize("width", sorted(PAPER_PARAMS))
def test_paper_family_param_counts_match_the_paper(width):
    stats = model_stats(f"resnext101_32x{width}d", num_classes=1000, image_size=224)
    assert stats["params"] == pytest.approx(PAPER_PARAMS[width], abs=0.006e6)


def test_resnext101_32x8d_is_torchvisions_exactly():
    with torch.device("meta"):
        ours = create_model("resnext101_32x8d", num_classes=1000)
        theirs = torchvision.models.resnext101_32x8d()
    assert count_params(ours) == count_params(theirs) == 88_791_336
    assert {k: v.shape for k, v in ours.state_dict().items()} == \
        {k: v.shape for k, v in theirs.state_dict().items()}


def test_flops_are_measured_by_flop_counter_and_scale_with_width():
    # forward multiply-adds of the paper's 32x4d at 224 px: 7.97 G (x2 = FLOPs)
    flops = model_stats("resnext101_32x4d", 1000, 224)["flops_per_image"]
    assert flops / 2e9 == pytest.approx(7.97, rel=0.01)
    small = [model_stats("resnext", 100, 32, depth=11, stages=3, cardinality=8,
                         width_per_group=w, base_width=16, stem="small")["flops_per_image"]
             for w in (4, 8, 16)]
    assert small[0] < small[1] < small[2]


def test_cpu_member_trains_one_step_and_exposes_pooled_features():
    torch.manual_seed(0)
    model = create_model("resnext", num_classes=10, depth=11, stages=3, cardinality=8,
                         width_per_group=4, base_width=16, stem="small")
    x = torch.randn(4, 3, 32, 32)
    feats = model.forward_features(x)
    assert feats.shape == (4, model.num_features)
    loss = model(x).logsumexp(1).mean()
    loss.backward()
    assert all(p.grad is not None for p in model.parameters())
    assert "fc.weight" not in model.trunk_state_dict()
    assert forward_flops(model, 32) > 0


def test_unknown_model_names_the_closest_registered_one():
    with pytest.raises(ValueError, match="resnext101_32x8d"):
        create_model("resnext101_32x8", num_classes=10)
    assert "resnext101_32x48d" in list_models()


def test_named_member_refuses_conflicting_knobs():
    with pytest.raises(ValueError, match="model.width_per_group=4 is invalid"):
        create_model("resnext101_32x8d", width_per_group=4)
