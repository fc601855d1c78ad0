"""Label noise reaches every tag of an image, not only its first: 59% of the world's images
carry several tags, and the rate is measured on them (the single-tag images that
test_pretrain measures cannot tell 'every tag' from 'the first tag')."""

from __future__ import annotations

import numpy as np
import pytest

from data.pretrain import build_pretrain_set
from tests.data.test_pretrain import cfg


@pytest.mark.parametrize("noise_from, kept_by_chance", [("marginal", 0.0), ("uniform", 1 / 40)])
def test_every_tag_of_a_multi_tag_image_is_replaced_at_rate_p(noise_from, kept_by_chance):
    p, K = 0.3, 40
    clean = build_pretrain_set(cfg(images=30000, vocab=K), 16)
    noisy = build_pretrain_set(cfg(images=30000, vocab=K, label_noise=p,
                                   label_noise_from=noise_from), 16)
    counts = np.diff(clean.offsets)
    multi = np.flatnonzero(counts >= 2)
    assert len(multi) > 0.5 * len(counts)  # most images have several tags
    lost = {"first": [], "later": []}
    for i in multi:
        tags, kept = clean.tags_of(i), set(noisy.tags_of(i).tolist())
        lost["first"].append(tags[0] not in kept)
        lost["later"] += [t not in kept for t in tags[1:]]
    # a clean tag is gone when its slot was replaced (p, less the uniform draws that
    # picked it again) and no other replaced slot of the image drew it back (rare: the
    # margin); the first tag and the later ones alike
    expected = p * (1 - kept_by_chance)
    for which in ("first", "later"):
        rate = float(np.mean(lost[which]))
        assert expected - 0.025 < rate <= expected + 0.01, (which, rate)
