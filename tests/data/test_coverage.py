"""data.coverage: the counts behind 'more distinct images carry more information'."""

import dataclasses

import numpy as np

from contract.world_config import WorldConfig
from data.coverage import coverage, tagged_counts
from data.world import SyntheticWorld


def test_nested_sets_cover_more_concepts_and_tail_lags_head():
    world = SyntheticWorld(WorldConfig(), seed=0, image_size=16)
    small, large = coverage(world, 500), coverage(world, 8000)
    assert large["tagged>=1"] > small["tagged>=1"] and large["tagged>=5"] > small["tagged>=5"]
    assert small["head_tagged>=1"] > small["tail_tagged>=1"]


def test_correct_tags_are_counted_only_for_concepts_the_image_shows():
    world = SyntheticWorld(WorldConfig(), seed=1, image_size=16)
    shown, tagged = tagged_counts(world, 3000)
    assert (tagged <= shown).all() and tagged.sum() > 0.5 * shown.sum()
    # a world that never emits fine tags (nor absent ones) has no correct tag, though it
    # shows every concept
    silent = SyntheticWorld(dataclasses.replace(WorldConfig(), p_fine_tag=0.0, p_absent_tag=0.0),
                            1, 16)
    shown0, tagged0 = tagged_counts(silent, 3000)
    assert tagged0.sum() == 0 and np.array_equal(shown0, shown)
