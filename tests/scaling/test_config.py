import pytest

from contract.config import RunConfig, config_hash, field_paths, from_dict, load_run_config, to_dict
from contract.errors import ConfigError


def test_unknown_field_names_the_closest_valid_one():
    with pytest.raises(ConfigError, match=r"unknown field 'model.widht_per_group': did you "
                                          r"mean 'model.width_per_group'\?"):
        from_dict(RunConfig, {"model": {"widht_per_group": 8}})


@pytest.mark.parametrize("data, field", [
    ({"data": {"vocab": "foo"}}, "data.vocab='foo'"),
    ({"data": {"resample": "sqrtt"}}, "data.resample='sqrtt'"),
    ({"data": {"world": {"p_fine_tag": 1.5}}}, "data.world.p_fine_tag=1.5"),
    ({"optim": {"global_batch": 100}, "resources": {"devices_per_node": 3}},
     "optim.global_batch=100"),
    ({"shard": {"strategy": "zero"}}, "shard.strategy='zero'"),
    ({"model": {"width_per_group": "wide"}}, "model.width_per_group='wide'"),
    ({"precision": "fp8"}, "precision='fp8'"),
    ({"resources": {"collective_timeout_s": 0}}, "resources.collective_timeout_s=0"),
])
def test_bad_values_fail_with_one_line_naming_field_value_and_fix(data, field):
    with pytest.raises(ConfigError) as info:
        from_dict(RunConfig, data)
    message = str(info.value)
    assert field in message and "\n" not in message and "use" in message


def test_roundtrip_through_dict_keeps_hash():
    config = from_dict(RunConfig, {"model": {"width_per_group": 16}, "data": {"vocab": 300}})
    again = from_dict(RunConfig, to_dict(config))
    assert again == config and config_hash(again) == config_hash(config)
    assert config_hash(from_dict(RunConfig, {"data": {"vocab": 301}})) != config_hash(config)


def test_hash_ignores_where_a_run_executes():
    a = from_dict(RunConfig, {"resources": {"mem_gb": 4}})
    b = from_dict(RunConfig, {"resources": {"mem_gb": 64}})
    assert config_hash(a) == config_hash(b)


def test_field_paths_lists_nested_world_knobs():
    paths = field_paths()
    assert "model.width_per_group" in paths and "data.world.zipf_exponent" in paths


def test_base_cpu_config_loads(repo_root):
    config = load_run_config(repo_root / "configs" / "base-cpu.yaml")
    assert config.model.stem == "small" and config.resources.device == "cpu"
