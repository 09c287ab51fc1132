"""The training loss and the models learn: each model overfits one small fixed batch.

A model that cannot memorise two images is broken somewhere between the logits, the loss and the
gradients (a detached head, labels off by one, a wrong ignore index, an upsampling that misplaces
the logits), whatever its numbers on real data would suggest.
"""

from __future__ import annotations

import pytest
import torch

from sceneseg.labels import IGNORE_INDEX
from sceneseg.losses import segmentation_loss
from sceneseg.models import MODELS

CLASSES = 11


def _fixed_batch() -> tuple[torch.Tensor, torch.Tensor]:
    """Two 64x64 noise images; each quadrant of a label map is one random class, with a strip of
    ignored pixels, which the loss must leave out."""
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(2, 3, 64, 64, generator=generator)
    quadrants = torch.randint(0, CLASSES, (2, 2, 2), generator=generator)
    labels = quadrants.repeat_interleave(32, 1).repeat_interleave(32, 2)
    labels[:, :, 30:34] = IGNORE_INDEX
    return images, labels


# (factory options, learning rate, steps): PSPNet at output stride 16 keeps the test fast.
CASES = {
    "simple_r18": ({"backbone": "resnet18"}, 0.01, 6),
    "pspnet18": ({"backbone": "resnet18", "deep_stem": False, "output_stride": 16, "aux_loss": True}, 0.02, 13),
}


@pytest.fixture
def one_thread():
    """Tensors this small gain nothing from a second thread, and on a busy two-core machine the two
    wait on each other (several times slower); the setting is restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.mark.parametrize("case", CASES)
def test_a_model_overfits_one_batch(case: str, one_thread) -> None:
    options, lr, steps = CASES[case]
    torch.manual_seed(0)
    model = MODELS["simple" if case.startswith("simple") else "pspnet"](CLASSES, **options).train()
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9)
    images, labels = _fixed_batch()
    losses = []
    for _ in range(steps):
        outputs = model(images)
        loss = segmentation_loss(outputs, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert all(torch.isfinite(torch.tensor(losses)))
    # A random start is near ln(11) per head; memorised, the loss is a fifth of that or less.
    assert losses[-1] < losses[0] / 5, losses
    with torch.no_grad():
        predicted = model(images)["out"].argmax(1)
    labelled = labels != IGNORE_INDEX
    accuracy = (predicted == labels)[labelled].float().mean().item()
    assert accuracy > 0.9, (accuracy, losses)


def test_the_aux_head_adds_its_weighted_loss_and_ignored_pixels_count_for_nothing() -> None:
    _, labels = _fixed_batch()
    generator = torch.Generator().manual_seed(1)
    out, aux = (torch.randn(2, CLASSES, 64, 64, generator=generator) for _ in range(2))
    main_only = segmentation_loss({"out": out}, labels)
    both = segmentation_loss({"out": out, "aux": aux}, labels, aux_weight=0.25)
    assert both.item() == pytest.approx(main_only.item() + 0.25 * segmentation_loss({"out": aux}, labels).item())
    # Changing the logits of ignored pixels changes nothing; averaged over labelled pixels only.
    scrambled = out.clone()
    scrambled[:, :, :, 30:34] = 100.0
    assert segmentation_loss({"out": scrambled}, labels).item() == pytest.approx(main_only.item())
    summed = segmentation_loss({"out": out}, labels, reduction="sum")
    assert summed.item() == pytest.approx(main_only.item() * (labels != IGNORE_INDEX).sum().item(), rel=1e-5)
