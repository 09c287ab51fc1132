import pytest
import torch
from torch import nn

from sceneseg.inference import InferenceSettings, Precision, predict_probs

CPU = Precision(torch.device("cpu"))


class PerPixel(nn.Module):
    """A 1x1-conv 'segmenter': each pixel's logits depend on that pixel only, so any correct
    tiling, padding or flipping must give exactly the whole-frame answer."""

    def __init__(self, classes: int = 4) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, classes, 1)

    def forward(self, x):
        return {"out": self.conv(x)}


class CountCalls(PerPixel):
    def __init__(self) -> None:
        super().__init__()
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        return super().forward(x)


@pytest.mark.parametrize("size", [(48, 64), (20, 30), (65, 33)])
@pytest.mark.parametrize("flip", [False, True])
def test_sliding_window_equals_whole_frame_for_a_per_pixel_model(size, flip):
    images = torch.randn(2, 3, *size)
    model = PerPixel().eval()
    whole = predict_probs(model, images, InferenceSettings("whole", None), CPU, 4, size)
    slide = predict_probs(model, images, InferenceSettings("slide", None, crop_size=32, flip=flip), CPU, 4, size)
    assert slide.shape == (2, 4, *size)
    torch.testing.assert_close(slide, whole, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(whole, model(images)["out"].softmax(1))


def test_window_grid_follows_the_stride_rule():
    model = CountCalls().eval()
    # 48x64 frame, crop 32, stride ceil(32 * 2/3) = 22: rows at 0, 16 (clamped); cols at 0, 22, 32.
    predict_probs(model, torch.randn(1, 3, 48, 64), InferenceSettings("slide", None, crop_size=32), CPU, 4, (48, 64))
    assert model.shapes == [(32, 32)] * 6


def test_scales_resize_to_short_side_and_back_to_label_size():
    model = CountCalls().eval()
    settings = InferenceSettings("whole", short_side=24, scales=(0.5, 1.0, 2.0))
    probs = predict_probs(model, torch.randn(1, 3, 48, 64), settings, CPU, 4, (96, 128))
    assert model.shapes == [(12, 16), (24, 32), (48, 64)]
    assert probs.shape == (1, 4, 96, 128)
    torch.testing.assert_close(probs.sum(1), torch.ones(1, 96, 128))


def test_settings_of_an_eval_section_share_its_defaults_and_its_checks():
    import math

    from sceneseg.config import EvalConfig, load_config
    from sceneseg.errors import ConfigError

    assert InferenceSettings() == InferenceSettings.from_eval(EvalConfig())
    assert InferenceSettings().stride_rate == 2 / 3
    assert math.ceil(InferenceSettings().crop_size * InferenceSettings().stride_rate) == 134  # not 135
    assert InferenceSettings.from_eval(EvalConfig(mode="crop")).mode == "whole"
    assert InferenceSettings.from_eval(EvalConfig(mode="slide", flip=True)) == InferenceSettings("slide", flip=True)
    # One minimum, at config load time and at prediction time alike.
    with pytest.raises(ConfigError, match=r"eval.crop_size = 16: expected at least 32 pixels"):
        load_config(None, ["eval.crop_size=16"])
    with pytest.raises(ConfigError, match=r"crop_size = 16: expected at least 32 pixels"):
        InferenceSettings(crop_size=16).check()
    with pytest.raises(ConfigError, match=r"mode = 'crop': expected 'whole' or 'slide'"):
        InferenceSettings(mode="crop").check()


def test_precision_names_what_a_run_computed_in():
    cpu = torch.device("cpu")
    assert Precision(cpu).describe() == "fp32"
    assert Precision(cpu, bf16=True, channels_last=True).describe() == "bf16 autocast, channels_last"


class Constant(nn.Module):
    """Every pixel gets the logits ln(0.5), ln(0.3), ln(0.2)."""

    def forward(self, x):
        logits = torch.tensor([0.5, 0.3, 0.2]).log().view(1, 3, 1, 1)
        return {"out": logits.expand(x.shape[0], 3, *x.shape[-2:])}


def test_class_bias_adds_to_the_log_probabilities_and_renormalises():
    import math

    from sceneseg.config import load_config
    from sceneseg.errors import ConfigError

    frames = torch.zeros(1, 3, 8, 8)
    plain = predict_probs(Constant(), frames, InferenceSettings(short_side=None), CPU, 3, (8, 8))
    biased = predict_probs(
        Constant(), frames, InferenceSettings(short_side=None, class_bias=(0.0, math.log(2), 0.0)), CPU, 3, (8, 8)
    )
    torch.testing.assert_close(plain[0, :, 0, 0], torch.tensor([0.5, 0.3, 0.2]))
    # 0.5 : 0.6 : 0.2, so class 1 now wins
    torch.testing.assert_close(biased[0, :, 3, 5], torch.tensor([0.5, 0.6, 0.2]) / 1.3)
    assert (biased.argmax(1) == 1).all()
    with pytest.raises(ConfigError, match=r"class_bias = \[0.0, 1.0\]: expected one value per class \(3 classes\)"):
        predict_probs(Constant(), frames, InferenceSettings(short_side=None, class_bias=(0.0, 1.0)), CPU, 3, (8, 8))
    with pytest.raises(ConfigError, match=r"eval.class_bias = \[0.0, inf\]: expected finite numbers"):
        load_config(None, ["eval.class_bias=[0, .inf]"])
