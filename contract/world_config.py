"""Knobs of the synthetic weakly labelled world (torch-free, so configs load without torch).

Every knob the data issue names is a field here, so a sweep can put any of them on an axis
(`data.world.zipf_exponent: [0.8, 1.2]`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from contract.errors import check

GENERATOR_VERSION = 1
"""The synthetic world generator's version (data/world.py, data/render.py): bump it when
the same WorldConfig and seed would give other images or tags. A registered study
(records/registry.yaml) hashes it with the defaults below, so a changed generator makes
a study exploratory instead of silently another experiment."""


@dataclass
class WorldConfig:
    """A hierarchy of visual concepts, their Zipfian popularity and how Instagram-like tags
    are emitted for them. Defaults are sized so that a 2-core CPU sees transfer accuracy
    grow with the number of pretraining images."""

    num_coarse: int = 16
    """Coarse concepts (shape families), like WordNet's upper synsets."""
    fine_per_coarse: int = 24
    """Fine concepts per coarse one (a fine concept is a shape variant x texture x colour)."""
    zipf_exponent: float = 1.3
    """Popularity of fine concepts in pretraining images: p(rank r) ~ r^-s."""
    max_objects: int = 2
    """Objects (concepts) per pretraining image: uniform on 1..max_objects."""
    synonyms: int = 3
    """Raw hashtag spellings per canonical tag (merged into one canonical tag)."""
    p_fine_tag: float = 0.7
    """Chance an object's fine tag is emitted (1 - this = missing tag)."""
    p_coarse_tag: float = 0.3
    """Chance an object's coarse tag is emitted."""
    p_absent_tag: float = 0.15
    """Chance an image carries the fine tag of a concept drawn by popularity, independent of
    what it shows (so nearly always a concept that is not in it)."""
    num_nonvisual: int = 64
    """Canonical tags that name nothing visual (#love, #tbt)."""
    p_nonvisual_tag: float = 0.5
    """Chance an image carries one non-visual tag (chosen with Zipf(1) popularity)."""
    clutter: float = 0.5
    """Background clutter and distractor strength (0 = clean background)."""
    noise_std: float = 8.0
    """Pixel noise (uint8 units)."""
    object_size: float = 0.5
    """Mean object radius as a fraction of half the image side (+-20% per image; objects
    sharing an image are drawn at 0.72x)."""
    variants: int = 2
    """Shape variants per family (solid, hollow, ...): one axis of a fine concept."""
    textures: int = 4
    """Surface textures (plain, stripes, checks, rings, then finer copies): another axis."""
    colours: int = 12
    """Hues evenly spaced on the colour wheel: the third axis. 12 (30 degrees apart, +-4.5
    degrees jitter) rather than 6: only fine tags ask the trunk to tell neighbouring hues
    apart, so the full vocabulary beats a small one on the fine target (data/README.md)."""
    tail_private: float = 0.5
    """Fraction of fine concepts, the least popular ones, whose hues are packed into a narrow
    band (`tail_hue_band` degrees for all `colours` of them, with the jitter scaled down
    alike): telling them apart takes hue features finer than any head concept needs, which
    only their own (rare) images teach - what resampling of rare tags pays for (finding 4).
    0 = every concept uses the common hues."""
    tail_hue_band: float = 60.0
    """Degrees of the colour wheel holding the private hues of the tail concepts."""
    fine_target_classes: int = 100
    """Classes of the `fine` target: fine concepts spread evenly over popularity ranks, so
    the target needs the rare tail as much as the head (0 = all fine concepts)."""
    novel_classes: int = 48
    """Classes of the `novel` target: variant x texture x colour combinations that no
    pretraining image shows and no tag names."""

    def __post_init__(self) -> None:
        check(self.num_coarse >= 2, "data.world.num_coarse", self.num_coarse, "use at least 2")
        check(self.fine_per_coarse >= 1, "data.world.fine_per_coarse", self.fine_per_coarse,
              "use at least 1")
        check(self.zipf_exponent >= 0, "data.world.zipf_exponent", self.zipf_exponent,
              "use a value >= 0 (0 = uniform popularity)")
        check(0.0 <= self.tail_private <= 1.0, "data.world.tail_private", self.tail_private,
              "use a fraction in [0, 1]")
        check(0.0 < self.tail_hue_band <= 360.0, "data.world.tail_hue_band", self.tail_hue_band,
              "use degrees in (0, 360]")
        check(self.max_objects >= 1, "data.world.max_objects", self.max_objects, "use at least 1")
        check(1 <= self.synonyms <= 7, "data.world.synonyms", self.synonyms, "use 1 to 7")
        for name in ("p_fine_tag", "p_coarse_tag", "p_absent_tag", "p_nonvisual_tag", "clutter"):
            value = getattr(self, name)
            check(0.0 <= value <= 1.0, f"data.world.{name}", value, "use a probability in [0, 1]")
        check(self.num_nonvisual >= 0, "data.world.num_nonvisual", self.num_nonvisual,
              "use a count >= 0")
        check(self.noise_std >= 0, "data.world.noise_std", self.noise_std, "use a value >= 0")
        check(0.1 <= self.object_size <= 0.9, "data.world.object_size", self.object_size,
              "use a fraction in [0.1, 0.9]")
        check(self.num_coarse <= 64, "data.world.num_coarse", self.num_coarse,
              "use at most 64 (distinct shape families)")
        for name in ("variants", "textures", "colours"):
            value = getattr(self, name)
            check(value >= 1, f"data.world.{name}", value, "use at least 1")
        combos = self.variants * self.textures * self.colours
        check(self.fine_per_coarse < combos, "data.world.fine_per_coarse", self.fine_per_coarse,
              f"use fewer than variants x textures x colours = {combos}, so novel combinations "
              "are left over")
        num_fine = self.num_coarse * self.fine_per_coarse
        check(0 <= self.fine_target_classes <= num_fine, "data.world.fine_target_classes",
              self.fine_target_classes,
              f"use 0 (all) up to num_coarse x fine_per_coarse = {num_fine}")
        spare = self.num_coarse * (combos - self.fine_per_coarse)
        check(2 <= self.novel_classes <= spare, "data.world.novel_classes", self.novel_classes,
              f"use 2 up to the {spare} untagged combinations")

    @property
    def num_fine(self) -> int:
        """Fine concepts in the world (each one tagged canonical fine tag)."""
        return self.num_coarse * self.fine_per_coarse


def world_fields(world) -> dict:
    """The knobs of a world as a plain dict (what meta.json and the dedup key record): a
    WorldConfig, or any object carrying the same attributes."""
    if dataclasses.is_dataclass(world) and not isinstance(world, type):
        return dataclasses.asdict(world)
    return dict(vars(world))
