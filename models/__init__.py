"""Model registry: `create_model(name, num_classes, ...)`, parameter and FLOP counts."""

from models import resnext as _resnext  # noqa: F401  (registers the family)
from models.flops import count_params, forward_flops, model_stats
from models.registry import Trunk, create_model, list_models, register_model
from models.resnext import ResNeXt, stage_layers

__all__ = ["create_model", "list_models", "register_model", "count_params", "forward_flops",
           "model_stats", "ResNeXt", "Trunk", "stage_layers"]
