"""The training losses against hand computations: OHEM's kept pixels, Lovász-softmax against
brute-force evaluations of its definition, and the loss section's config checks (the class weights:
test_class_weights.py)."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from sceneseg.config import LossConfig, load_config
from sceneseg.errors import ConfigError
from sceneseg.labels import IGNORE_INDEX
from sceneseg.losses import (
    build_head_loss,
    cross_entropy,
    lovasz_extension,
    lovasz_extension_binned,
    lovasz_softmax,
    ohem_cross_entropy,
    ohem_keep,
    segmentation_loss,
)

X = IGNORE_INDEX


def test_weighted_cross_entropy_averages_over_labelled_pixels_and_follows_the_sum_protocol():
    logits = torch.randn(2, 4, 3, 5, generator=torch.Generator().manual_seed(0))
    target = torch.randint(0, 4, (2, 3, 5), generator=torch.Generator().manual_seed(1))
    target[0, 0] = X
    weight = torch.tensor([0.5, 2.0, 1.0, 3.0])
    nll = -logits.log_softmax(1).gather(1, target.clamp_max(3).unsqueeze(1)).squeeze(1)
    labelled = target != X
    by_hand = (weight[target.clamp_max(3)] * nll)[labelled].sum()
    assert cross_entropy(logits, target, "sum", weight) == pytest.approx(by_hand.item(), rel=1e-5)
    assert cross_entropy(logits, target, "mean", weight) == pytest.approx(by_hand.item() / labelled.sum().item())
    assert cross_entropy(logits, target, weight=torch.ones(4)) == pytest.approx(cross_entropy(logits, target).item())


def _two_class_logits(true_probs: list[float], target: list[int]) -> torch.Tensor:
    """1 x 2 x 1 x P logits whose softmax gives each pixel's true class (class 0 for ignored
    pixels) exactly the probability in `true_probs`."""
    probs = torch.tensor(true_probs, dtype=torch.float64)
    first = torch.where(torch.tensor(target) == 1, 1 - probs, probs)
    return torch.stack([first, 1 - first]).log().view(1, 2, 1, -1)


PROBS = [0.1, 0.5, 0.69, 0.7, 0.9, 0.2, 0.05]  # the last pixel is ignored, and the hardest
TARGET = [0, 1, 0, 1, 0, 1, X]


@pytest.mark.parametrize(
    ("min_kept", "kept"),
    [
        (0, [0.1, 0.5, 0.69, 0.2]),  # the threshold alone: below 0.7, strictly
        (4, [0.1, 0.5, 0.69, 0.2]),  # enough below the threshold
        (5, [0.1, 0.5, 0.69, 0.7, 0.2]),  # the 5 hardest labelled pixels
        (100, [0.1, 0.5, 0.69, 0.7, 0.9, 0.2]),  # every labelled pixel, never the ignored one
    ],
)
def test_ohem_keeps_the_pixels_below_the_threshold_or_the_min_kept_hardest(min_kept, kept):
    target = torch.tensor(TARGET).view(1, 1, -1)
    mask = ohem_keep(torch.tensor(PROBS).view(1, 1, -1), target != X, 0.7, min_kept)
    assert [p for p, k in zip(PROBS, mask.flatten().tolist()) if k] == kept
    logits = _two_class_logits(PROBS, TARGET)
    mean = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=min_kept)
    assert mean.item() == pytest.approx(sum(-math.log(p) for p in kept) / len(kept))
    summed = ohem_cross_entropy(logits, target, "sum", thresh=0.7, min_kept=min_kept)
    assert summed.item() == pytest.approx(mean.item() * 6)  # the sum protocol: mean x labelled pixels
    weighted = ohem_cross_entropy(logits, target, thresh=0.7, min_kept=min_kept, weight=torch.tensor([1.0, 3.0]))
    classes = {p: t for p, t in zip(PROBS, TARGET)}
    expected = sum(-math.log(p) * (3.0 if classes[p] else 1.0) for p in kept) / len(kept)
    assert weighted.item() == pytest.approx(expected)


def _jaccard_loss(mispredicted: set[int], foreground: set[int]) -> float:
    union = foreground | mispredicted
    return len(mispredicted) / len(union) if union else 0.0


def _lovasz_by_thresholds(errors: list[float], foreground: set[int]) -> float:
    """The Lovász extension as the integral over t in [0, 1] of Δ({i : m_i >= t}), evaluated exactly
    (Δ is constant between consecutive error values)."""
    levels = sorted({0.0, *errors})
    return sum(
        (hi - lo) * _jaccard_loss({i for i, m in enumerate(errors) if m >= hi}, foreground)
        for lo, hi in zip(levels, levels[1:])
    )


def _lovasz_by_permutations(errors: list[float], foreground: set[int]) -> float:
    """Δ is submodular, so its extension is the largest <m, g> over the greedy vectors g of every order."""
    best = -math.inf
    for order in itertools.permutations(range(len(errors))):
        steps = [_jaccard_loss(set(order[: i + 1]), foreground) - _jaccard_loss(set(order[:i]), foreground)
                 for i in range(len(order))]  # fmt: skip
        best = max(best, sum(errors[j] * g for j, g in zip(order, steps)))
    return best


@pytest.mark.parametrize("pixels", [2, 3, 4])
def test_lovasz_extension_matches_brute_force_definitions(pixels):
    generator = torch.Generator().manual_seed(pixels)
    for _ in range(5):
        fg = (torch.rand(pixels, generator=generator) < 0.5).double()
        fg[0] = 1.0  # the class is present
        prob = torch.rand(pixels, generator=generator, dtype=torch.float64)
        errors, foreground = (fg - prob).abs().tolist(), {i for i in range(pixels) if fg[i]}
        value = lovasz_extension(fg, prob).item()
        assert value == pytest.approx(_lovasz_by_thresholds(errors, foreground), abs=1e-12)
        assert value == pytest.approx(_lovasz_by_permutations(errors, foreground), abs=1e-12)


def test_lovasz_extension_is_the_jaccard_loss_at_a_binary_prediction():
    for fg_bits, pred_bits in itertools.product(itertools.product([0, 1], repeat=4), repeat=2):
        if not any(fg_bits):
            continue
        fg, pred = torch.tensor(fg_bits, dtype=torch.float64), torch.tensor(pred_bits, dtype=torch.float64)
        truth, predicted = {i for i, b in enumerate(fg_bits) if b}, {i for i, b in enumerate(pred_bits) if b}
        jaccard = 1 - len(truth & predicted) / len(truth | predicted)
        assert lovasz_extension(fg, pred).item() == pytest.approx(jaccard, abs=1e-12)


def test_lovasz_softmax_averages_the_present_classes_and_skips_ignored_pixels():
    logits = torch.randn(1, 3, 2, 3, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    target = torch.tensor([[[0, 0, 1], [1, 0, X]]])  # class 2 is predicted somewhere but absent
    probs = logits.softmax(1).flatten(2)[0, :, :5]
    truth = target.flatten()[:5]
    expected = [lovasz_extension((truth == c).double(), probs[c]).item() for c in (0, 1)]
    assert lovasz_softmax(logits, target).item() == pytest.approx(sum(expected) / 2)
    assert lovasz_softmax(logits, target, "sum").item() == pytest.approx(sum(expected) / 2 * 5)
    scrambled = logits.clone()
    scrambled[..., 1, 2] = torch.tensor([9.0, -3.0, 4.0], dtype=torch.float64)
    assert lovasz_softmax(scrambled, target).item() == pytest.approx(lovasz_softmax(logits, target).item())


def test_lovasz_softmax_gradient_matches_finite_differences():
    logits = torch.randn(2, 3, 2, 3, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    target = torch.randint(0, 3, (2, 2, 3), generator=torch.Generator().manual_seed(3))
    target[0, 0, 0] = X
    assert torch.autograd.gradcheck(lambda x: lovasz_softmax(x, target), (logits.requires_grad_(),))


@pytest.mark.parametrize("bins", [4, 64, 1024])
def test_binned_lovasz_extension_is_within_one_level_of_the_sorted_one(bins):
    generator = torch.Generator().manual_seed(bins)
    fg = (torch.rand(3, 500, generator=generator) < torch.tensor([[0.5], [0.1], [0.02]])).double()
    prob = torch.rand(3, 500, generator=generator, dtype=torch.float64)
    exact, binned = lovasz_extension(fg, prob), lovasz_extension_binned(fg, prob, bins)
    assert ((binned - exact).abs() <= 1 / bins).all()
    assert (binned - exact).abs().max() > 1e-9  # coarse levels do change the value: the bound is not vacuous


def test_binned_lovasz_extension_is_exact_when_no_two_pixels_share_a_level():
    bins = 64
    fg = torch.tensor([1, 0, 0, 1, 1, 0, 1, 0], dtype=torch.float64)
    levels = torch.tensor([60, 3, 17, 5, 33, 41, 0, 22], dtype=torch.float64)  # distinct error levels
    prob = (fg - (levels + 0.5) / bins).abs().requires_grad_()
    exact = lovasz_extension(fg, prob)
    (exact_grad,) = torch.autograd.grad(exact, prob)
    binned = lovasz_extension_binned(fg, prob, bins)
    (binned_grad,) = torch.autograd.grad(binned, prob)
    assert binned.item() == pytest.approx(exact.item(), abs=1e-12)
    assert torch.allclose(binned_grad, exact_grad, atol=1e-12)


def test_binned_lovasz_softmax_skips_ignored_pixels_and_absent_classes_like_the_sorted_one():
    logits = torch.randn(2, 4, 5, 6, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    target = torch.randint(0, 3, (2, 5, 6), generator=torch.Generator().manual_seed(8))  # class 3 absent
    target[0, :2] = X
    fine = 2**16  # the 48 labelled pixels' errors fall on distinct levels: the exact values and gradients
    for reduction in ("mean", "sum"):
        exact_logits, binned_logits = logits.clone().requires_grad_(), logits.clone().requires_grad_()
        exact = lovasz_softmax(exact_logits, target, reduction)
        binned = lovasz_softmax(binned_logits, target, reduction, bins=fine)
        exact.backward(), binned.backward()
        assert binned.item() == pytest.approx(exact.item(), abs=1e-6)
        assert torch.allclose(binned_logits.grad, exact_logits.grad, atol=1e-6)
        assert binned_logits.grad[0, :, :2].abs().max() == 0  # nothing flows to ignored pixels
    nothing = torch.full_like(target, X)
    assert lovasz_softmax(logits, nothing, bins=16).item() == 0.0


def test_head_losses_by_config_and_epoch_and_their_aux_combination():
    assert build_head_loss(LossConfig()) is cross_entropy  # the default: today's cross-entropy itself
    logits, aux = (torch.randn(2, 3, 4, 4, generator=torch.Generator().manual_seed(s)) for s in (4, 5))
    target = torch.randint(0, 3, (2, 4, 4), generator=torch.Generator().manual_seed(6))
    combined = build_head_loss(LossConfig(lovasz_weight=0.5, lovasz_from_epoch=3), epoch=3)
    assert combined(logits, target).item() == pytest.approx(
        (cross_entropy(logits, target) + 0.5 * lovasz_softmax(logits, target)).item()
    )
    assert build_head_loss(LossConfig(lovasz_weight=0.5, lovasz_from_epoch=3), epoch=2) is cross_entropy
    assert build_head_loss(LossConfig(name="lovasz", lovasz_from_epoch=2), epoch=1) is cross_entropy
    assert build_head_loss(LossConfig(name="lovasz", lovasz_from_epoch=2), epoch=2) is lovasz_softmax
    binned = build_head_loss(LossConfig(lovasz_weight=0.5, lovasz_bins=8))
    assert binned(logits, target).item() == pytest.approx(
        (cross_entropy(logits, target) + 0.5 * lovasz_softmax(logits, target, bins=8)).item()
    )
    assert binned(logits, target).item() != pytest.approx(combined(logits, target).item(), abs=1e-6)
    ohem = build_head_loss(LossConfig(name="ohem", ohem_min_kept=5), world_size=2)
    assert ohem.keywords["min_kept"] == 3  # each process keeps its share of the global batch's
    total = segmentation_loss({"out": logits, "aux": aux}, target, aux_weight=0.25, head_loss=ohem)
    assert total.item() == pytest.approx((ohem(logits, target) + 0.25 * ohem(aux, target)).item())


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.name=focal", "loss.name = 'focal': expected 'ce', 'ohem' or 'lovasz'"),
        ("loss.class_weights=inverse", "expected null, 'enet', 'median_frequency' or a list"),
        ("loss.class_weights=[1,2]", "loss.class_weights = (1.0, 2.0): expected 11 weights"),
        ("loss.class_weights=[]", "expected 11 weights"),
        ("loss.class_weights=[1,1,1,1,1,1,1,1,1,1,-1]", "expected weights >= 0, not all 0"),
        ("loss.enet_c=1.0", "loss.enet_c = 1.0: expected > 1"),
        ("loss.ohem_thresh=0", "loss.ohem_thresh = 0.0: expected a probability in (0, 1]"),
        ("loss.ohem_min_kept=-1", "loss.ohem_min_kept = -1: expected >= 0"),
        ("loss.lovasz_weight=-0.5", "loss.lovasz_weight = -0.5: expected >= 0"),
        ("loss.lovasz_from_epoch=0", "loss.lovasz_from_epoch = 0: expected at least 1"),
        ("loss.lovasz_bins=-1", "loss.lovasz_bins = -1: expected 0 (exact sort) or a number of error levels"),
        (
            "loss.class_weight_mult={Column_Pole: 0}",
            "loss.class_weight_mult = {'Column_Pole': 0.0}: expected finite factors > 0",
        ),
        ("loss.class_weight_mult={Column_Pole: 2}", "expected {} when loss.class_weights is null"),
        ("loss.class_weight_mult={Column_Pole: .inf}", "expected finite factors > 0"),
        ("loss.class_weight_mult={Column_Pole: two}", "loss.class_weight_mult.Column_Pole: expected float, got 'two'"),
        ("loss.class_weight_mult=[2]", "loss.class_weight_mult: expected a mapping of names to values, got [2]"),
    ],
)
def test_loss_config_errors_name_the_key_and_what_was_expected(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(None, [override])
    assert str(error.value).startswith(f"override {override}: ") and message in str(error.value)


def test_lovasz_alone_takes_no_class_weights_nor_a_lovasz_weight():
    with pytest.raises(ConfigError, match=r"loss.class_weights = 'enet': expected null with loss.name=lovasz"):
        load_config(None, ["loss.name=lovasz", "loss.class_weights=enet"])
    with pytest.raises(ConfigError, match=r"loss.lovasz_weight = 1.0: expected 0 with loss.name=lovasz"):
        load_config(None, ["loss.name=lovasz", "loss.lovasz_weight=1"])
