import dataclasses

import pytest

from sceneseg.config import Config, config_from_dict, load_config, resolve_config_path, to_dict
from sceneseg.errors import ConfigError


def test_builtin_configs_list_only_what_differs_from_the_defaults():
    # A file names what matters for its experiment; `sceneseg config NAME` shows the whole config.
    import yaml

    from sceneseg.config import BUILTIN_CONFIGS

    defaults = to_dict(Config())
    for path in BUILTIN_CONFIGS.glob("*.yaml"):
        for section, values in yaml.safe_load(path.read_text()).items():
            for key, value in values.items() if isinstance(values, dict) else ():
                assert key == "options" or value != defaults[section][key], f"{path.name}: {section}.{key}"


def test_overrides_are_type_checked_and_applied():
    config = load_config(None, ["train.epochs=3", "train.lr=1e-3", "data.blur=false", "model.pretrained=w.pth"])
    assert config.train.epochs == 3
    assert config.train.lr == pytest.approx(1e-3)
    assert config.data.blur is False
    assert config.model.pretrained == "w.pth"
    assert load_config(None, ["train.bf16=null"]).train.bf16 is None
    # ints are accepted where floats are expected, not the reverse
    assert load_config(None, ["train.lr=1"]).train.lr == 1.0
    with pytest.raises(ConfigError, match="train.epochs: expected int, got 2.5"):
        load_config(None, ["train.epochs=2.5"])
    with pytest.raises(ConfigError, match="data.blur: expected bool"):
        load_config(None, ["data.blur=maybe"])


def test_unknown_keys_are_rejected_in_overrides_and_files(tmp_path):
    # A typo on the command line is reported against the override, with the closest key.
    with pytest.raises(
        ConfigError,
        match=r"^override train.epoch=3: unknown key\(s\) train.epoch in train; "
        r"did you mean train.epochs\?",
    ):
        load_config(None, ["train.epoch=3"])
    with pytest.raises(ConfigError, match=r"^override train.epochs=0: train.epochs = 0: expected at least 1"):
        load_config(None, ["train.epochs=0"])
    with pytest.raises(ConfigError, match="unknown key"):
        load_config(None, ["nosuchsection.x=1"])
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nmodel:\n  backbone: resnet18\n  dropout: 0.1\n  pretrianed: imagenet\n")
    with pytest.raises(
        ConfigError,
        match=r"bad.yaml: unknown key\(s\) model.dropout, model.pretrianed in model; did "
        r"you mean model.pretrained\?",
    ):
        load_config(bad)
    bad.write_text("name: x\n")
    with pytest.raises(ConfigError, match=r"^override train.epochs=2.5: train.epochs: expected int"):
        load_config(bad, ["train.epochs=2.5"])


def test_range_checks_and_malformed_input(tmp_path):
    with pytest.raises(ConfigError, match="train.epochs = 0: expected at least 1"):
        load_config(None, ["train.epochs=0"])
    with pytest.raises(ConfigError, match="train.batch_size = -2"):
        load_config(None, ["train.batch_size=-2"])
    with pytest.raises(ConfigError, match="expected dotted key=value"):
        load_config(None, ["train.epochs"])
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(tmp_path / "missing.yaml")
    with pytest.raises(ConfigError, match="neither a file nor a built-in config"):
        resolve_config_path("no_such_experiment")
    with pytest.raises(ConfigError, match=r"built-in config \(.*\); did you mean camvid_simple_r18_15min_cpu\?$"):
        resolve_config_path("camvid_simple_r18_15mn_cpu")
    broken = tmp_path / "broken.yaml"
    broken.write_text("train: [1, 2\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(broken)


def test_photometric_is_a_checked_switch_of_the_training_transform_only():
    from sceneseg.builders import _transform
    from sceneseg.data.transforms import PHOTOMETRIC_OPS

    assert load_config(None).data.photometric == 0.0
    for bad in ("-0.1", "1.5"):
        with pytest.raises(ConfigError, match=rf"data.photometric = {bad}: expected a probability in \[0, 1\]$"):
            load_config(None, [f"data.photometric={bad}"])
    with pytest.raises(ConfigError, match="data.photometric = 0.5: expected 0 with data.data_aug=false"):
        load_config(None, ["data.photometric=0.5", "data.data_aug=false"])
    data = load_config(None, ["data.photometric=0.5"]).data

    def probabilities(mode: str) -> list[float]:
        return [t.p for t in _transform(data, mode).compose.transforms if isinstance(t, PHOTOMETRIC_OPS)]

    assert probabilities("train") == [0.5, 0.5, 0.5]
    assert probabilities("crop") == probabilities("whole") == []


def test_config_is_frozen_and_round_trips():
    config = load_config(None, ["seed=7"])
    with pytest.raises(dataclasses.FrozenInstanceError):
        config.seed = 1
    assert config_from_dict(to_dict(config)) == config
    assert isinstance(config, Config)


def test_builtin_configs_all_load():
    from sceneseg.config import BUILTIN_CONFIGS

    names = sorted(p.stem for p in BUILTIN_CONFIGS.glob("*.yaml"))
    assert "sample" in names
    for name in names:
        assert load_config(name).name == name


def test_tuple_fields_and_model_options():
    config = load_config(None, ["model.bins=[1, 2, 3, 6]"])
    assert config.model.bins == (1, 2, 3, 6)
    assert to_dict(config)["model"]["bins"] == [1, 2, 3, 6]
    with pytest.raises(ConfigError, match=r"model.bins\[1\]: expected int"):
        load_config(None, ["model.bins=[1, x]"])


def test_options_of_another_model_are_rejected():
    from sceneseg.models import build_model

    with pytest.raises(ConfigError, match="model.use_ppm does not apply to model 'simple'"):
        build_model(load_config(None, ["model.use_ppm=false"]).model)
    with pytest.raises(ConfigError, match="model.name = 'unet': expected one of"):
        build_model(load_config(None, ["model.name=unet"]).model)


def test_poly_schedule_with_warmup_and_head_multiplier():
    import torch

    from sceneseg.optimizer import build_optimizer

    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(2, 2)
    model.classifier = torch.nn.Linear(2, 2)
    config = load_config(
        None, ["train.lr=0.1", "train.epochs=2", "train.warmup_iters=4", "train.head_lr_mult=10"]
    ).train
    optimizer, scheduler = build_optimizer(model, config, iters_per_epoch=10)
    lrs = []
    for _ in range(20):
        lrs.append([group["lr"] for group in optimizer.param_groups])
        optimizer.step()
        scheduler.step()
    backbone = [lr[0] for lr in lrs]
    assert backbone[0] == pytest.approx(0.1 * 0.25)  # warm-up 1/4 at the first iteration
    assert backbone[5] == pytest.approx(0.1 * (1 - 5 / 20) ** 0.9)  # poly after warm-up
    assert all(lr[1] == pytest.approx(10 * lr[0]) for lr in lrs)  # head at 10x
    assert backbone[19] < backbone[10] < backbone[5]
    assert not optimizer.defaults["fused"]  # the fused kernel is for CUDA; CPU results stay as they were


def test_adamw_takes_a_normalised_first_step_with_decoupled_decay_per_group():
    import torch

    from sceneseg.optimizer import build_optimizer

    model = torch.nn.Module()
    model.backbone = torch.nn.Linear(1, 1, bias=False)
    model.classifier = torch.nn.Linear(1, 1, bias=False)
    overrides = ["train.lr=0.1", "train.weight_decay=0.5", "train.head_lr_mult=2", "train.warmup_iters=0"]
    optimizer, _ = build_optimizer(model, load_config(None, ["train.optimizer=adamw", *overrides]).train, 10)
    assert isinstance(optimizer, torch.optim.AdamW)
    for layer in (model.backbone, model.classifier):
        layer.weight.data.fill_(2.0)
        layer.weight.grad = torch.full_like(layer.weight, 0.25)
    optimizer.step()
    # Adam's first step is lr * g / |g| whatever the gradient's size; the decay lr * wd * w comes on top
    # (SGD would move by lr * (0.25 + 0.5 * 2) instead).
    assert model.backbone.weight.item() == pytest.approx(2.0 - 0.1 * (1 + 0.5 * 2.0), abs=1e-6)
    assert model.classifier.weight.item() == pytest.approx(2.0 - 0.2 * (1 + 0.5 * 2.0), abs=1e-6)
    for build in (
        lambda: load_config(None, ["train.optimizer=adam"]),
        # a TrainConfig made in code skips the config check, not the optimizer's own
        lambda: build_optimizer(model, dataclasses.replace(load_config(None).train, optimizer="adam"), 10),
    ):
        with pytest.raises(ConfigError, match=r"train.optimizer = 'adam': expected one of \('sgd', 'adamw'\)"):
            build()


def test_class_bias_length_is_checked_against_the_model_when_the_config_loads():
    # Caught at load time, not after an hour of training at the final evaluation.
    assert load_config(None, ["model.num_classes=3", "eval.class_bias=[0.5,0,-1]"]).eval.class_bias == (0.5, 0, -1)
    assert load_config(None, ["model.num_classes=3"]).eval.class_bias == ()
    with pytest.raises(ConfigError, match=r"eval.class_bias = \[0.5, 0.0\]: expected none or 3 values$"):
        load_config(None, ["model.num_classes=3", "eval.class_bias=[0.5,0.0]"])
