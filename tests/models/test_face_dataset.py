"""Chip data: validation, subsets, .npz round trip, person split, augmentation, P x K sampler."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from models.face_dataset import (ChipAugment, ChipData, FaceChipDataset, PKSampler, chips_to_input,  # noqa: E402
                                 load_chips, save_chips, split_persons)
from realtime.errors import DataError  # noqa: E402


def make_data(counts=(3, 2, 4, 1, 2), size=150, seed=0) -> ChipData:
    rng = np.random.default_rng(seed)
    labels = np.concatenate([np.full(c, i) for i, c in enumerate(counts)]).astype(np.int64)
    chips = rng.integers(0, 256, (len(labels), size, size, 3), dtype=np.uint8)
    names = np.array([f"p{i}" for i in range(len(counts))])
    sources = np.array([f"img{i}.png" for i in range(len(labels))])
    return ChipData(chips, labels, names, sources)


def test_chipdata_validates_shapes_and_labels():
    data = make_data()
    with pytest.raises(DataError, match="uint8"):
        ChipData(data.chips.astype(np.float32), data.labels, data.names, data.sources)
    with pytest.raises(DataError, match="labels"):
        ChipData(data.chips, data.labels[:-1], data.names, data.sources)
    with pytest.raises(DataError, match="index the 5 names"):
        ChipData(data.chips, data.labels + 1, data.names, data.sources)


def test_subset_relabels_in_given_order():
    data = make_data()
    sub = data.subset(np.array([2, 0]))
    assert sub.names.tolist() == ["p2", "p0"]
    assert sub.labels.tolist() == [1, 1, 1, 0, 0, 0, 0]
    np.testing.assert_array_equal(sub.chips[0], data.chips[0])
    np.testing.assert_array_equal(sub.counts(), [4, 3])


def test_save_load_round_trip_and_errors(tmp_path):
    data = make_data(size=8)
    path = save_chips(tmp_path / "c.npz", data)
    back = load_chips(path)
    for key in ("chips", "labels", "names", "sources"):
        np.testing.assert_array_equal(getattr(back, key), getattr(data, key))
    with pytest.raises(DataError, match="not found"):
        load_chips(tmp_path / "missing.npz")
    np.savez(tmp_path / "partial.npz", chips=data.chips)
    with pytest.raises(DataError, match="missing arrays"):
        load_chips(tmp_path / "partial.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip file at all")
    with pytest.raises(DataError, match="not a readable chip file"):
        load_chips(tmp_path / "junk.npz")


@pytest.mark.parametrize("seed", range(5))
def test_split_persons_is_disjoint_and_keeps_singles_for_training(seed):
    counts = np.array([3, 2, 4, 1, 2, 5, 2, 3, 0])
    train, val = split_persons(counts, 0.25, seed)
    assert not set(train) & set(val)
    assert len(val) == 2 and all(counts[val] >= 2)
    assert 3 in train and 8 not in train and 8 not in val
    assert set(train) | set(val) == {0, 1, 2, 3, 4, 5, 6, 7}


def test_split_persons_errors_and_no_validation():
    train, val = split_persons(np.array([2, 2]), 0.0)
    assert train.tolist() == [0, 1] and val.size == 0
    with pytest.raises(DataError, match="held-out validation"):
        split_persons(np.array([2, 2, 2]), 0.25)
    with pytest.raises(DataError, match="val_fraction"):
        split_persons(np.array([2, 2, 2, 2]), 1.0)


def test_augment_keeps_shape_and_is_reproducible():
    chip = make_data(counts=(1,)).chips[0]
    aug = ChipAugment()
    a = aug(chip, np.random.default_rng(1))
    b = aug(chip, np.random.default_rng(1))
    c = aug(chip, np.random.default_rng(2))
    assert a.shape == chip.shape and a.dtype == np.uint8
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_augment_flip_only_mirrors_exactly():
    chip = make_data(counts=(1,)).chips[0]
    flip = ChipAugment(flip_p=1.0, brightness=0, contrast=0, saturation=0, max_shift_px=0, max_rotate_deg=0,
                       max_scale=0)
    np.testing.assert_array_equal(flip(chip, np.random.default_rng(0)), chip[:, ::-1])


def test_chips_to_input_normalises_like_dlib():
    chips = np.zeros((1, 2, 2, 3), np.uint8)
    chips[0, 0, 0] = (122, 117, 104)
    x = chips_to_input(chips)
    assert x.shape == (1, 3, 2, 2) and x.dtype == torch.float32
    np.testing.assert_allclose(x[0, :, 0, 0].numpy(), np.array([-0.782, -0.001, -0.298]) / 256, atol=1e-6)
    np.testing.assert_allclose(x[0, 0, 1, 1].item(), -122.782 / 256, atol=1e-6)


def test_dataset_items_and_fresh_augmentation_per_read():
    data = make_data()
    plain = FaceChipDataset(data)
    x, label = plain[2]
    assert x.shape == (3, 150, 150) and label == 0
    torch.testing.assert_close(x, chips_to_input(data.chips[2:3])[0])
    augmented = FaceChipDataset(data, ChipAugment(), seed=3)
    first, second = augmented[2][0], augmented[2][0]
    assert not torch.equal(first, second)
    again = FaceChipDataset(data, ChipAugment(), seed=3)
    torch.testing.assert_close(again[2][0], first)
    with pytest.raises(DataError, match="150x150"):
        FaceChipDataset(make_data(size=64))


def test_pk_sampler_batches():
    labels = np.array([0, 0, 0, 1, 1, 2, 3, 3, 3, 3])
    sampler = PKSampler(labels, p=3, k=2, batches=5, seed=0)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 5
    for batch in batches:
        got = labels[batch]
        persons = sorted(set(got.tolist()))
        assert len(batch) == 6 and len(persons) == 3 and 2 not in persons  # person 2 has one chip
        assert all((got == q).sum() == 2 for q in persons)
        assert all(len(set(np.asarray(batch)[got == q].tolist())) == 2 for q in persons)  # k <= chips: distinct
    assert list(PKSampler(labels, 3, 2, 5, seed=0)) == batches
    assert list(sampler) != batches  # the next epoch draws again


def test_pk_sampler_small_persons_and_errors():
    labels = np.array([0, 0, 1, 1])
    batch = next(iter(PKSampler(labels, p=8, k=4, batches=1)))
    assert len(batch) == 8 and sorted(set(labels[batch].tolist())) == [0, 1]  # p capped, drawn with repeats
    with pytest.raises(DataError, match="at least 2"):
        PKSampler(np.array([0, 0, 1]), 2, 2, 1)
    with pytest.raises(DataError, match="p >= 2"):
        PKSampler(labels, 1, 2, 1)
