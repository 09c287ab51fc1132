"""Multi-scale and flip evaluation (inference.predict_probs) against answers worked out by hand.

The stand-in models' logits are known functions of the input and of its size, so every scale gives
a different answer: averaging logits instead of probabilities, dropping a scale, or resizing with
another mode than the documented one would all change the result."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from sceneseg.inference import InferenceSettings, Precision, predict_probs

CPU = Precision(torch.device("cpu"))


class SizeLogits(nn.Module):
    """Two classes with constant logits 0 and log(height): P(class 1) = h / (1 + h) everywhere."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n, _, h, w = x.shape
        return {"out": torch.stack([torch.zeros(n, h, w), torch.full((n, h, w), math.log(h))], 1)}


class RampLogits(nn.Module):
    """Class 1's logit rises left to right (0, 1, 2, ... per column), whatever the input: a mirrored
    frame gets the same ramp, so flip averaging mixes each column with its mirror column."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        n, _, h, w = x.shape
        ramp = torch.arange(w, dtype=torch.float32).expand(n, h, w)
        return {"out": torch.stack([torch.zeros(n, h, w), ramp], 1)}


class PixelLogits(nn.Module):
    """Three classes from the pixels themselves, a blur whose reach depends on the frame's size and
    a column ramp: neither scale- nor flip-invariant."""

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        h, w = x.shape[-2:]
        blurred = F.avg_pool2d(x[:, 1:2], 3, stride=1, padding=1) * (h / 8)
        ramp = torch.linspace(-1, 1, w).expand_as(x[:, 2:3])
        return {"out": torch.cat([2 * x[:, 0:1], blurred, x[:, 2:3] - x[:, 0:1] + ramp], 1)}


def _probs(model: nn.Module, images: torch.Tensor, **settings) -> torch.Tensor:
    num_classes = model(images[:1])["out"].shape[1]
    return predict_probs(model, images, InferenceSettings(**settings), CPU, num_classes, tuple(images.shape[-2:]))


def test_scales_average_the_probabilities_not_the_logits():
    images = torch.zeros(1, 3, 8, 12)
    probs = _probs(SizeLogits(), images, short_side=None, scales=(0.5, 1.0))
    # Heights 4 and 8: P = 4/5 and 8/9 on every pixel, then their mean.
    expected = (4 / 5 + 8 / 9) / 2
    assert probs.shape == (1, 2, 8, 12)
    assert torch.allclose(probs[:, 1], torch.full((1, 8, 12), expected), atol=1e-6)
    averaged_logits = math.sqrt(32) / (1 + math.sqrt(32))  # softmax of the mean logit log(sqrt(32))
    assert abs(expected - averaged_logits) > 1e-3  # the case tells the two apart

    # With a short side, each scale is a share of it: short side 6 at 0.5 and 1.0 gives heights 3, 6.
    probs = _probs(SizeLogits(), images, short_side=6, scales=(0.5, 1.0))
    assert torch.allclose(probs[:, 1], torch.full((1, 8, 12), (3 / 4 + 6 / 7) / 2), atol=1e-6)


def test_flip_averages_each_column_with_its_mirror():
    images = torch.zeros(1, 3, 2, 4)
    probs = _probs(RampLogits(), images, short_side=None, flip=True)
    sigmoid = [1 / (1 + math.exp(-c)) for c in range(4)]  # P(class 1) with logits (0, c)
    expected = torch.tensor([(sigmoid[c] + sigmoid[3 - c]) / 2 for c in range(4)])
    assert torch.allclose(probs[0, 1], expected.expand(2, 4), atol=1e-6)
    assert not torch.allclose(probs[0, 1], torch.tensor(sigmoid).expand(2, 4), atol=1e-3)


def _by_hand(model: nn.Module, images: torch.Tensor, scales: tuple[float, ...], flip: bool) -> torch.Tensor:
    """What the module docstring of inference.py describes: per scale, resize the frame (bilinear,
    align_corners=False), softmax (and the mirrored softmax, mirrored back), resize the probabilities
    to the frame's size the same way; then the mean over scales."""
    height, width = images.shape[-2:]
    total = 0
    for scale in scales:
        size = (round(height * scale), round(width * scale))
        scaled = F.interpolate(images, size=size, mode="bilinear", align_corners=False)
        probs = model(scaled)["out"].softmax(1)
        if flip:
            probs = (probs + model(scaled.flip(-1))["out"].softmax(1).flip(-1)) / 2
        total = total + F.interpolate(probs, size=(height, width), mode="bilinear", align_corners=False)
    return total / len(scales)


@pytest.mark.parametrize("flip", [False, True])
def test_pixel_dependent_model_matches_the_hand_computation(flip: bool):
    images = torch.randn(2, 3, 10, 14, generator=torch.Generator().manual_seed(0))
    model = PixelLogits()
    scales = (0.5, 1.5)
    probs = _probs(model, images, short_side=None, scales=scales, flip=flip)
    with torch.no_grad():
        expected = _by_hand(model, images, scales, flip)
        assert torch.allclose(probs, expected, atol=1e-6)
        # Every scale matters, and so does the mirror: dropping either changes the answer.
        for other in (_by_hand(model, images, scales[:1], flip), _by_hand(model, images, scales, not flip)):
            assert (probs - other).abs().max() > 1e-2
    assert torch.allclose(probs.sum(1), torch.ones(2, 10, 14), atol=1e-6)
