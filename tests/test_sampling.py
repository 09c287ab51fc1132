"""Sampling that sees rare classes more often: repeat-factor sampling and rare-class crops."""

from __future__ import annotations

import re

import albumentations as A
import numpy as np
import pytest
import torch

from sceneseg.builders import build_train_val
from sceneseg.config import load_config
from sceneseg.data.crops import ClassAwareCrop, largest_class_share
from sceneseg.data.transforms import train_transform
from sceneseg.distributed import Distributed
from sceneseg.errors import ConfigError
from sceneseg.sampling import epoch_frames, epoch_length, prepare_sampling, rare_classes, repeat_factors

# 10 frames, 3 classes: class 0 in every frame, class 1 in frames 0-4, class 2 (rare) in frame 9 only.
PRESENCE = np.zeros((10, 3), dtype=bool)
PRESENCE[:, 0] = True
PRESENCE[:5, 1] = True
PRESENCE[9, 2] = True


def test_repeat_factors_match_a_hand_computation():
    factors = repeat_factors(PRESENCE, threshold=0.4)
    # f = (1, 0.5, 0.1): r_c = max(1, sqrt(0.4 / f_c)) = (1, 1, 2); a frame takes its classes' largest.
    assert factors.tolist() == pytest.approx([1.0] * 9 + [2.0])
    factors = repeat_factors(PRESENCE, threshold=1.0)  # r_c = (1, sqrt(2), sqrt(10))
    assert factors.tolist() == pytest.approx([2**0.5] * 5 + [1.0] * 4 + [10**0.5])
    # A frame of ignore pixels only (no class) is shown once.
    assert repeat_factors(np.zeros((2, 3), dtype=bool), 0.5).tolist() == [1.0, 1.0]


def test_an_epoch_is_a_function_of_seed_and_epoch_with_a_fixed_length():
    factors = repeat_factors(PRESENCE, threshold=1.0)
    length = epoch_length(factors)
    assert length == round(5 * 2**0.5 + 4 + 10**0.5)
    first = epoch_frames(factors, seed=7, epoch=1)
    assert first == epoch_frames(factors, seed=7, epoch=1)
    assert first != epoch_frames(factors, seed=7, epoch=2) != epoch_frames(factors, seed=8, epoch=1)
    for epoch in range(1, 30):
        frames = epoch_frames(factors, seed=7, epoch=epoch)
        assert len(frames) == length
        counts = np.bincount([f for f, _ in frames], minlength=10)
        assert (counts >= np.floor(factors)).all() and (counts <= np.ceil(factors)).all()
        # The k-th showing of a frame is its copy k: each copy gets its own augmentation seed.
        for frame in range(10):
            assert sorted(c for f, c in frames if f == frame) == list(range(counts[frame]))


def test_frames_are_shown_their_repeat_factor_times_on_average():
    factors = repeat_factors(PRESENCE, threshold=1.0)
    epochs = 2000
    counts = sum(np.bincount([f for f, _ in epoch_frames(factors, 0, e)], minlength=10) for e in range(epochs))
    assert (counts / epochs) == pytest.approx(factors, abs=0.05)


@pytest.mark.parametrize("skip", [0, 2])
def test_two_processes_deal_out_the_single_process_order(skip):
    factors = repeat_factors(PRESENCE, threshold=1.0)
    frames = list(range(10))
    single = list(Distributed().train_sampler(frames, 5, 3, skip * 2, 1, factors))
    shares = [list(Distributed(rank=r, world_size=2).train_sampler(frames, 5, 3, skip, 1, factors)) for r in (0, 1)]
    assert len(shares[0]) == len(shares[1])
    interleaved = [item for pair in zip(*shares) for item in pair]
    assert interleaved == single[: len(interleaved)] and len(single) - len(interleaved) <= 1
    assert single[0] == tuple(epoch_frames(factors, 5, 3)[skip * 2])


def _crop_pipeline(prob: float, classes=(7,)):
    transform = train_transform(64, 32, scale=(1.0, 1.0), rotate=0, blur=False, flip=False, rare_crop_prob=prob)
    transform.set_rare_classes(classes)
    return transform


def test_a_rare_crop_is_centred_on_a_rare_pixel_and_reproducible():
    image, label = np.zeros((64, 96, 3), np.uint8), np.zeros((64, 96), np.uint8)
    label[30:33, 50:53] = 7  # far from the border: the crop can centre on any of these pixels
    transform = _crop_pipeline(1.0)
    for seed in range(10):
        _, out = transform(image, label, seed)
        assert out[16, 16] == 7
        assert torch.equal(out, transform(image, label, seed)[1])
    # Near the border the crop is shifted back inside the frame: the pixel stays in it, off-centre.
    label[:] = 0
    label[1, 2] = 7
    assert (transform(image, label, 3)[1] == 7).sum() == 1


def test_rare_crops_fire_with_their_probability_and_zero_keeps_random_crop():
    image, label = np.zeros((64, 96, 3), np.uint8), np.zeros((64, 96), np.uint8)
    label[30, 80] = 7
    hits = sum(int(_crop_pipeline(0.5)(image, label, seed)[1][16, 16] == 7) for seed in range(400))
    assert 160 < hits < 240  # a random crop hits (30, 80) at its centre with probability ~1/2000
    # Off: albumentations' own RandomCrop, so the default augmentations are the ones before this switch.
    crop = [t for t in train_transform(64, 32).compose.transforms if isinstance(t, A.RandomCrop)]
    assert len(crop) == 1 and not isinstance(crop[0], ClassAwareCrop)


def test_crops_dominated_by_one_class_are_redrawn():
    image, label = np.zeros((64, 256, 3), np.uint8), np.zeros((64, 256), np.uint8)
    label[:, 200:] = 1  # a 32x32 crop is all class 0 unless it reaches column 200 (about 1 in 7)
    plain = train_transform(64, 32, scale=(1.0, 1.0), rotate=0, blur=False, flip=False)
    capped = train_transform(64, 32, scale=(1.0, 1.0), rotate=0, blur=False, flip=False, max_class_share=0.9)
    mixed = [[len(t(image, label, seed)[1].unique()) > 1 for seed in range(100)] for t in (plain, capped)]
    assert sum(mixed[0]) < 30 and sum(mixed[1]) > 60  # 1 - (6/7)^11 of the capped ones, ~0.8
    assert all(torch.equal(capped(image, label, s)[1], capped(image, label, s)[1]) for s in range(5))
    assert largest_class_share(label, (190, 0, 210, 10), {"pad_left": 0, "pad_top": 0}) == 0.5


def test_prepare_sampling_on_the_sample():
    config = load_config(None, ["data.repeat_threshold=1.0", "data.rare_crop_prob=0.5", "data.rare_class_share=0.02"])
    train_set, _ = build_train_val(config.data)
    sampling = prepare_sampling(config.data, train_set)
    presence = sampling.counts.frame_classes
    assert presence.shape == (len(train_set), train_set.num_classes)
    assert sampling.factors.tolist() == pytest.approx(repeat_factors(presence, 1.0).tolist())
    assert sampling.epoch_length(len(train_set)) == epoch_length(sampling.factors) > len(train_set)
    assert sampling.rare_classes == rare_classes(sampling.counts, 0.02) != ()
    crop = [t for t in train_set.transform.compose.transforms if isinstance(t, ClassAwareCrop)]
    assert crop[0].rare_classes == sampling.rare_classes
    # Off (the default): nothing is counted and each frame is shown once.
    off = prepare_sampling(load_config(None).data, train_set)
    assert off.counts is None and off.factors is None and off.epoch_length(24) == 24


def test_copies_of_a_frame_get_their_own_augmentation_seed():
    train_set, _ = build_train_val(load_config(None).data, seed=3)
    assert train_set.sample_seed(4, 0) == train_set.sample_seed(4)
    assert train_set.sample_seed(4, 1) != train_set.sample_seed(4)
    image, _ = train_set[4]
    assert torch.equal(train_set[(4, 0)][0], image) and not torch.equal(train_set[(4, 1)][0], image)


@pytest.mark.parametrize(
    "override, message",
    [
        ("data.repeat_threshold=0", "data.repeat_threshold = 0.0: expected null or a fraction in (0, 1]"),
        ("data.rare_crop_prob=1.5", "data.rare_crop_prob = 1.5: expected a probability in [0, 1]"),
        ("data.rare_class_share=0", "data.rare_class_share = 0.0: expected a fraction in (0, 1)"),
        ("data.max_class_share=0", "data.max_class_share = 0.0: expected a fraction in (0, 1]"),
        (
            "data.scale_min=3",
            "data.scale_min/scale_max = (3.0, 1.5): expected 0 < scale_min <= scale_max",
        ),  # sample: max 1.5
    ],
)
def test_sampling_options_are_checked(override, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(None, [override])
    with pytest.raises(ConfigError, match="expected 0 with data.data_aug=false"):
        load_config(None, ["data.rare_crop_prob=0.5", "data.data_aug=false"])
