"""A vocabulary larger than the source's tags is refused, never clipped into a
run that trains `all` under another name and hash."""

from __future__ import annotations

import json

import pytest

from contract.config import DataConfig
from tests.helpers.cli_checks import BASE, cli
from tests.helpers.slurm_runs import write_sweep_file


def test_sweep_refuses_a_vocab_larger_than_the_worlds_tags(tmp_path, capsys):
    from contract.config import RunConfig, from_dict
    from data.pretrain import world_for

    config = from_dict(RunConfig, json.loads(json.dumps(BASE)))
    tags = world_for(config.data, config.model.image_size).num_tags
    sweep_file = write_sweep_file(tmp_path, axes={"data.vocab": [40, tags, 100000, "all"]})
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 2
    assert (f"run v100k: data.vocab=100000 is invalid: this world has only {tags} canonical "
            f"tags: use at most {tags} or 'all'") in line
    assert not (tmp_path / "sweeps").exists()  # refused before anything is written


def test_vocab_equal_to_the_tag_count_is_accepted(tmp_path, capsys):
    from contract.config import RunConfig, from_dict
    from data.pretrain import world_for

    config = from_dict(RunConfig, json.loads(json.dumps(BASE)))
    tags = world_for(config.data, config.model.image_size).num_tags
    code, _, line = cli(capsys, "sweep", write_sweep_file(tmp_path, axes={"data.vocab": [tags]}),
                        "--root", tmp_path / "sweeps")
    assert code == 0, line


def test_real_source_refuses_a_vocab_larger_than_its_tags(tmp_path):
    from contract.world_config import WorldConfig
    from data import build_pretrain_set
    from data.materialize import materialize

    cfg = dict(source="synthetic", path=None, images=64, vocab="all", resample="natural",
               label_noise=0.0, targets="soft", seed=0, cache=False, world=WorldConfig())
    path = str(materialize(DataConfig(**cfg), 16, str(tmp_path / "wds"), "webdataset",
                           n=64, shard_size=64))
    real = dict(cfg, source="webdataset", path=path)
    tags = build_pretrain_set(DataConfig(**real), 16).num_classes
    assert build_pretrain_set(DataConfig(**dict(real, vocab=tags)), 16).num_classes == tags
    with pytest.raises(ValueError, match=f"carry only {tags} canonical tags: use at most {tags}"):
        build_pretrain_set(DataConfig(**dict(real, vocab=tags + 1)), 16)


def test_random_vocab_is_one_fixed_draw_per_world_and_not_the_most_frequent():
    """`random:K` (finding 3's size control): K tags of the whole ranking, the same draw for
    every N of a world, another draw on another world, in rank order."""
    from contract.world_config import WorldConfig
    from data.vocab import resolve_vocab
    from data.world import SyntheticWorld

    world = SyntheticWorld(WorldConfig(), seed=0, image_size=16)
    again = SyntheticWorld(WorldConfig(), seed=0, image_size=16)
    other = SyntheticWorld(WorldConfig(), seed=1, image_size=16)
    picked = resolve_vocab(world, "random:16")
    ranking = list(resolve_vocab(world, "all"))
    assert len(set(picked)) == 16
    assert list(picked) == list(resolve_vocab(again, "random:16"))
    assert list(picked) != list(resolve_vocab(other, "random:16"))
    assert list(picked) != list(resolve_vocab(world, 16))
    assert [ranking.index(t) for t in picked] == sorted(ranking.index(t) for t in picked)
    assert max(ranking.index(t) for t in picked) > 100  # reaches the tail, not only the head


@pytest.mark.parametrize("vocab", ["random:0", "random:x", "random:"])
def test_a_bad_random_vocab_is_one_line_with_the_fix(vocab):
    from contract.errors import ConfigError

    with pytest.raises(ConfigError, match=r"data.vocab=.* use an integer K, .*'random:K' "
                       r"\(e.g. random:16\)"):
        DataConfig(vocab=vocab)
    DataConfig(vocab="random:16")  # the fix it names is accepted


def test_random_vocab_larger_than_the_tags_is_refused(tmp_path, capsys):
    sweep_file = write_sweep_file(tmp_path, axes={"data.vocab": ["random:100000"]})
    code, _, line = cli(capsys, "sweep", sweep_file, "--root", tmp_path / "sweeps")
    assert code == 2 and "use random:K with K at most" in line, line
