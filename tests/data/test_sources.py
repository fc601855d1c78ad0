"""Real formats: materialized copies round-trip the synthetic set; bad records are counted."""

import io
import json
import os
import shutil
import tarfile

from contract.config import DataConfig

os.environ["HF_DATASETS_OFFLINE"] = "1"

import numpy as np
import pytest
import torch
from PIL import Image

from contract.world_config import WorldConfig
from data import ResumableLoader, build_pretrain_set, build_target_split
from data.imageio import encode_png
from data.materialize import materialize

S = 16
N = 600


def cfg(**kw):
    base = dict(source="synthetic", path=None, images=N, vocab=30, resample="natural",
                label_noise=0.0, targets="soft", seed=0, cache=True, world=WorldConfig())
    base.update(kw)
    return DataConfig(**base)


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    root = tmp_path_factory.mktemp("materialized")
    return {fmt: str(materialize(cfg(), S, str(root / fmt), fmt, n=N, shard_size=200))
            for fmt in ("webdataset", "hf")}


def _same(a, b):
    pos = torch.arange(len(a))
    assert len(a) == len(b) and a.dropped == b.dropped and b.corrupt == 0
    assert a.tag_names == b.tag_names
    assert np.array_equal(a.indices, b.indices)
    assert np.array_equal(a.offsets, b.offsets) and np.array_equal(a.tags, b.tags)
    assert torch.equal(a.images(pos), b.images(pos))
    assert torch.equal(a.targets(pos), b.targets(pos))


@pytest.mark.parametrize("fmt", ["webdataset", "hf"])
@pytest.mark.parametrize("knobs", [dict(vocab=30), dict(vocab="all", label_noise=0.2),
                                   dict(vocab="matched:coarse", targets="multihot"),
                                   dict(images=250, vocab=30, cache=False)])
def test_round_trip_keeps_pixels_and_canonical_tags(copies, fmt, knobs):
    _same(build_pretrain_set(cfg(**knobs), S),
          build_pretrain_set(cfg(source=fmt, path=copies[fmt], **knobs), S))


def test_files_hold_raw_spellings_that_canonicalise_back(copies):
    with tarfile.open(os.path.join(copies["webdataset"], "shard-000000.tar")) as tf:
        names = tf.getnames()[:4]
        raw = [t for n in names if n.endswith(".json")
               for t in json.load(tf.extractfile(n))["tags"]]
    assert names[:2] == ["000000000.png", "000000000.json"]
    from data.pretrain import world_for
    canonical = set(world_for(cfg(), S).tag_names)
    assert raw and any(t.startswith("#") or t not in canonical for t in raw)
    meta = json.loads(open(os.path.join(copies["hf"], "meta.json")).read())
    assert meta["n"] == N and meta["format"] == "hf" and len(meta["files"]) == 3


def test_brace_pattern_and_nesting(copies):
    pattern = os.path.join(copies["webdataset"], "shard-{000000..000002}.tar")
    big = build_pretrain_set(cfg(source="webdataset", path=pattern), S)
    small = build_pretrain_set(cfg(source="webdataset", path=pattern, images=150), S)
    n = len(small)
    assert np.array_equal(small.indices, big.indices[:n])
    assert np.array_equal(small.tags, big.tags[:small.offsets[-1]])
    with pytest.raises(ValueError, match="holds only 600 samples"):
        build_pretrain_set(cfg(source="webdataset", path=pattern, images=601), S)


def _losses(pset, steps=20):
    from models import create_model

    torch.manual_seed(0)
    model = create_model("resnext", num_classes=pset.num_classes, depth=11, stages=3,
                         cardinality=4, width_per_group=4, base_width=16, stem="small")
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    loader = ResumableLoader(pset, 16, seed=3, resample="sqrt")
    out = []
    for _ in range(steps):
        x, y = loader.next_batch()
        loss = torch.nn.functional.cross_entropy(model(x.float() / 255 - 0.5), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        out.append(loss.detach())
    return torch.stack(out)


def test_twenty_steps_on_the_copies_give_the_synthetic_losses(copies):
    torch.set_num_threads(1)
    ref = _losses(build_pretrain_set(cfg(), S))
    for fmt in ("webdataset", "hf"):
        assert torch.equal(_losses(build_pretrain_set(cfg(source=fmt, path=copies[fmt]), S)), ref)


def _png(rgb=(10, 200, 30), size=20):
    return encode_png(np.broadcast_to(np.array(rgb, np.uint8)[:, None, None], (3, size, size)))


BAD = [("truncated", _png()[:40], ["dog"]), ("notimage", b"this is not an image", ["dog"]),
       ("empty", _png(), []), ("good", _png((5, 5, 250), 24), ["#Dog", "CAT"]),
       ("nullish", _png(), ["#", " "])]


def test_webdataset_skips_and_counts_corrupt_samples(copies, tmp_path):
    d = tmp_path / "wds"
    shutil.copytree(copies["webdataset"], d)
    with tarfile.open(d / "shard-000003.tar", "w") as tf:
        for key, blob, tags in BAD:
            for name, payload in ((f"{key}.png", blob), (f"{key}.json",
                                                          json.dumps({"tags": tags}).encode())):
                info = tarfile.TarInfo(name)
                info.size = len(payload)
                tf.addfile(info, io.BytesIO(payload))
        info = tarfile.TarInfo("readme.txt")
        info.size = 2
        tf.addfile(info, io.BytesIO(b"hi"))
        info = tarfile.TarInfo("badjson.json")
        info.size = 5
        tf.addfile(info, io.BytesIO(b"{oops"))
    (d / "shard-000004.tar").write_bytes((d / "shard-000000.tar").read_bytes()[:700])
    # corrupt: truncated png, non-image, readme.txt (no image), bad json, the broken shard
    _check_bad(cfg(source="webdataset", path=str(d), images=N + 7 + 1, vocab="all",
                   max_corrupt_frac=1.0),
               corrupt=5, good_rgb=(5, 5, 250))


def test_hf_skips_and_counts_corrupt_samples(tmp_path):
    import datasets

    feats = datasets.Features({"image": datasets.Image(),
                               "tags": datasets.List(datasets.Value("string"))})
    rows = [{"image": {"bytes": b, "path": None}, "tags": t} for _, b, t in BAD]
    (tmp_path / "hf").mkdir()
    datasets.Dataset.from_list(rows, features=feats).to_parquet(str(tmp_path / "hf" / "a.parquet"))
    pset = _check_bad(cfg(source="hf", path=str(tmp_path / "hf"), images=5, vocab="all",
                          max_corrupt_frac=1.0),
                      corrupt=2, good_rgb=(5, 5, 250))
    assert pset.tag_names == ["cat", "dog"]            # no vocab.json: by count, then name


def _check_bad(c, corrupt, good_rgb):
    pset = build_pretrain_set(c, S)
    assert pset.corrupt == corrupt
    assert len(pset) + pset.dropped + pset.corrupt == c.images
    assert pset.dropped >= 2                            # [] and ['#', ' '] are tagless
    last = pset.images(torch.tensor([len(pset) - 1]))[0]
    assert last.shape == (3, S, S) and tuple(last[:, 8, 8].tolist()) == good_rgb
    assert set(pset.tag_names[t] for t in pset.tags_of(len(pset) - 1)) == {"dog", "cat"}
    return pset


def test_other_hf_layouts_read_the_same(tmp_path):
    import datasets

    img = Image.new("RGB", (30, 20), (200, 10, 10))
    folder = tmp_path / "imgs"
    folder.mkdir()
    for i in range(3):
        img.save(folder / f"{i}.png")
    (folder / "metadata.jsonl").write_text("".join(
        json.dumps({"file_name": f"{i}.png", "tags": ["#Red", f"t{i}"]}) + "\n" for i in range(3)))
    ds = datasets.Dataset.from_dict({"image": [img] * 3, "tags": [["red"], ["red"], []]},
                                    features=datasets.Features({"image": datasets.Image(),
                                    "tags": datasets.List(datasets.Value("string"))}))
    ds.save_to_disk(str(tmp_path / "saved"))
    for path, kept in ((folder, 3), (tmp_path / "saved", 2)):
        p = build_pretrain_set(cfg(source="hf", path=str(path), images=3, vocab=1), S)
        assert len(p) == kept and p.tag_names == ["red"] and p.corrupt == 0
        assert tuple(p.images(torch.tensor([0]))[0, :, 5, 5].tolist()) == (200, 10, 10)


def test_vocab_matched_and_target_splits_on_real_data(copies, tmp_path):
    c = cfg(source="webdataset", path=copies["webdataset"])
    x, y, names = build_target_split(c, S, "fine", "test", 10)
    x0, y0, names0 = build_target_split(cfg(), S, "fine", "test", 10)
    assert torch.equal(x, x0) and torch.equal(y, y0) and names == names0
    with pytest.raises(ValueError, match="data.seed / data.world"):
        build_target_split(cfg(source="webdataset", path=copies["webdataset"], seed=1), S,
                           "fine", "test", 10)
    with pytest.raises(ValueError, match="novel"):
        build_pretrain_set(cfg(source="hf", path=copies["hf"], vocab="matched:novel"), S)
    user = tmp_path / "user"
    shutil.copytree(copies["webdataset"], user, ignore=shutil.ignore_patterns("*.json", "classes"))
    with pytest.raises(ValueError, match="not materialized"):
        build_target_split(cfg(source="webdataset", path=str(user)), S, "fine", "test", 10)
    with pytest.raises(ValueError, match="classes/fine.txt"):
        build_pretrain_set(cfg(source="webdataset", path=str(user), vocab="matched:fine"), S)
    # no synonyms.json: every raw spelling is its own tag
    raw = build_pretrain_set(cfg(source="webdataset", path=str(user), vocab="all"), S)
    assert raw.num_classes > build_pretrain_set(cfg(vocab="all"), S).num_classes // 2


def test_materialize_refuses_a_non_empty_folder(copies):
    with pytest.raises(FileExistsError):
        materialize(cfg(), S, copies["hf"], "hf", n=10)
    with pytest.raises(ValueError, match="fmt="):
        materialize(cfg(), S, copies["hf"] + "-x", "zip", n=10)
