"""Rare-class paste: which pixels move, which donor is drawn, and that nothing else changes."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch

from sceneseg.builders import build_train_val
from sceneseg.class_weights import class_weights, train_class_weights
from sceneseg.config import load_config
from sceneseg.data.crops import ClassAwareCrop
from sceneseg.data.paste import RarePaste, paste_classes
from sceneseg.errors import ConfigError, DataError
from sceneseg.sampling import describe_sampling, prepare_sampling, rare_classes


def _frames(height: int = 6, width: int = 8):
    image = np.full((height, width, 3), 10, np.uint8)
    label = np.zeros((height, width), np.uint8)
    donor_image = np.full((height, width, 3), 200, np.uint8)
    donor_label = np.ones((height, width), np.uint8)  # class 1 everywhere ...
    donor_label[:, 3] = 8  # ... a one-pixel-wide "pole" (class 8) in column 3
    donor_label[0, 5] = 4  # and one "sign" pixel (class 4)
    donor_label[5, 7] = 255  # an unlabelled pixel
    return image, label, donor_image, donor_label


def test_only_the_donors_pixels_of_the_pasted_classes_move():
    image, label, donor_image, donor_label = _frames()
    for array in (image, label, donor_image, donor_label):
        array.flags.writeable = False  # as in a dataset's cache: paste must copy, not write
    out_image, out_label = paste_classes(image, label, donor_image, donor_label, (4, 8))
    moved = np.zeros((6, 8), bool)
    moved[:, 3] = True
    moved[0, 5] = True
    assert (out_label == np.where(moved, donor_label, 0)).all()
    assert (out_image == np.where(moved[..., None], 200, 10)).all()
    # Classes the donor does not hold move nothing.
    same_image, same_label = paste_classes(image, label, donor_image, donor_label, (6,))
    assert (same_image == image).all() and (same_label == label).all()


def test_a_donor_of_another_size_is_resized_first():
    image, label, _, _ = _frames(6, 8)
    _, _, donor_image, donor_label = _frames(12, 16)  # twice the size: column 3 becomes columns 6-7
    donor_label[:, 6:8] = 8
    donor_label[:, 3] = 1
    _, out_label = paste_classes(image, label, donor_image, donor_label, (8,))
    assert out_label.shape == (6, 8)
    assert np.flatnonzero((out_label == 8).all(axis=0)).tolist() == [3]


def test_the_donor_is_a_function_of_the_seed_and_never_the_frame_itself():
    paste = RarePaste(classes=(8,), donors=(2, 5, 7), prob=0.3)
    drawn = [paste.donor(5, seed) for seed in range(3000)]
    assert drawn == [paste.donor(5, seed) for seed in range(3000)]
    pasted = [d for d in drawn if d is not None]
    assert len(pasted) / len(drawn) == pytest.approx(0.3, abs=0.03)
    assert set(pasted) == {2, 7}  # frame 5 is never its own donor; the others about equally often
    assert abs(pasted.count(2) - pasted.count(7)) < 0.15 * len(pasted)
    assert all(RarePaste((8,), (2, 5), 0.0).donor(1, s) is None for s in range(100))
    assert all(RarePaste((8,), (2, 5), 1.0).donor(1, s) in (2, 5) for s in range(100))
    assert RarePaste((8,), (5,), 1.0).donor(5, 0) is None  # the only donor is the frame itself
    with pytest.raises(DataError, match=r"paste probability 1.5: expected a probability in \[0, 1\]"):
        RarePaste((8,), (5,), 1.5)


def test_the_sample_pastes_rare_classes_from_frames_that_hold_one():
    config = load_config(None, ["data.paste_prob=1.0", "data.rare_class_share=0.02"])
    train_set, _ = build_train_val(config.data)
    sampling = prepare_sampling(config.data, train_set)
    rare = rare_classes(sampling.counts, 0.02)
    holding = sampling.counts.frame_classes[:, list(rare)].any(axis=1)
    assert train_set.paste.classes == sampling.rare_classes == rare != ()
    assert train_set.paste.donors == tuple(np.flatnonzero(holding).tolist())
    assert sampling.paste_donors == int(holding.sum()) > 1
    line = describe_sampling(config.data, sampling, train_set.class_names)
    assert f"rare-class paste (p=1.0) of {train_set.class_names[rare[0]]}" in line
    # Pasting alone does not turn the random crop into a rare-class one.
    assert not any(isinstance(t, ClassAwareCrop) for t in train_set.transform.compose.transforms)


def test_pasting_changes_the_frame_but_not_the_transforms_draws():
    # Crops larger than the frames (padded) hold every pasted pixel.
    fixed = ["data.scale_min=1", "data.scale_max=1", "data.rotate=0", "data.crop_size=400"]
    config = load_config(None, ["data.paste_prob=1.0", *fixed])
    train_set, _ = build_train_val(config.data)
    plain, _ = build_train_val(load_config(None, fixed).data)
    prepare_sampling(config.data, train_set)
    index = next(i for i in range(len(train_set)) if train_set.paste.donor(i, train_set.sample_seed(i)) is not None)
    donor = train_set.paste.donor(index, train_set.sample_seed(index))
    rare = train_set.paste.classes
    frame, pasted = train_set[index]
    # With nothing to paste the frame is exactly the plain pipeline's: same crop, flip and blur.
    nothing = RarePaste(classes=(99,), donors=(donor,), prob=1.0)
    train_set.paste = nothing
    image, label = train_set[index]
    plain_image, plain_label = plain[index]
    assert torch.equal(image, plain_image) and torch.equal(label, plain_label)
    # What was pasted shows, and only as rare classes: every other label pixel is the plain one.
    changed = pasted != plain_label
    assert changed.any() and not torch.equal(frame, plain_image)
    assert torch.isin(pasted[changed], torch.tensor(rare)).all()


@pytest.mark.parametrize(
    "overrides, message",
    [
        (["data.paste_prob=1.5"], "data.paste_prob = 1.5: expected a probability in [0, 1]"),
        (["data.paste_prob=0.5", "data.data_aug=false"], "data.paste_prob = 0.5: expected 0 with data.data_aug=false"),
    ],
)
def test_paste_prob_is_checked(overrides, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, overrides)


def test_a_pasted_frame_is_the_same_with_and_without_the_cache():
    # Short side 120 (the sample's frames are 180): the paste must happen after the resize either way.
    samples = []
    for cache in ("true", "false"):
        config = load_config(None, ["data.paste_prob=1.0", "data.short_side=120", f"data.cache={cache}"])
        train_set, _ = build_train_val(config.data)
        prepare_sampling(config.data, train_set)
        samples.append([train_set[i] for i in range(4)])
    for (image, label), (other_image, other_label) in zip(*samples):
        assert torch.equal(image, other_image) and torch.equal(label, other_label)


def test_class_weights_count_the_labels_as_pasted():
    config = load_config(None, ["data.paste_prob=1.0", "loss.class_weights=enet"])
    train_set, _ = build_train_val(config.data)
    sampling = prepare_sampling(config.data, train_set)
    raw, seen = sampling.counts.class_pixels, sampling.seen_counts.class_pixels
    rare = list(sampling.rare_classes)
    common = [c for c in range(len(raw)) if c not in rare]
    # Pasting only replaces pixels (unlabelled ones too): as many in all, more of the rare classes,
    # none more of the others.
    ignored = sampling.counts.ignored_pixels, sampling.seen_counts.ignored_pixels
    assert seen.sum() + ignored[1] == raw.sum() + ignored[0] and ignored[1] <= ignored[0]
    assert (seen[rare] >= raw[rare]).all() and seen[rare].sum() > raw[rare].sum()
    assert (seen[common] <= raw[common]).all()
    # So the pasted classes weigh less than the raw labels would have made them.
    weights = train_class_weights(config.loss, train_set, sampling.seen_counts).numpy()
    unpasted = class_weights("enet", sampling.counts)
    grew = [c for c in rare if seen[c] > raw[c]]
    assert grew and (weights[grew] < unpasted[grew]).all()
    # Exactly the labels the first epoch trains on (copy 0 of each frame in epoch 1), before the
    # transform: a draw from another epoch or copy would count other donors.
    train_set.transform = lambda image, label, seed: (image, label)
    first_epoch = sum(np.bincount(train_set[(i, 0, 1)][1].ravel(), minlength=256) for i in range(len(train_set)))
    assert (first_epoch[: len(seen)] == seen).all()
    second_epoch = sum(np.bincount(train_set[(i, 0, 2)][1].ravel(), minlength=256) for i in range(len(train_set)))
    assert (second_epoch[: len(seen)] != seen).any()
    # Without paste the weights count the raw labels, as they always did.
    plain_config = load_config(None, ["data.rare_crop_prob=0.5"])
    plain = prepare_sampling(plain_config.data, build_train_val(plain_config.data)[0])
    assert plain.seen_counts is plain.counts
