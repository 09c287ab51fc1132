"""The built-in recipes' derived numbers agree with what they are derived from."""

from __future__ import annotations

import math

import pytest

from sceneseg.builders import build_train_val
from sceneseg.class_weights import train_class_weights
from sceneseg.config import load_config
from tests.paths import CAMVID_ROOT


@pytest.mark.skipif(not CAMVID_ROOT.is_dir(), reason="CamVid not present beside the repo")
@pytest.mark.parametrize("name", ["camvid_thin_60min_cpu", "camvid_thin_15min_cpu"])
def test_thin_recipe_class_bias_takes_back_a_quarter_of_its_class_weight_prior(name):
    # The list in the YAML is -0.25 ln w for the weights the recipe trains with (ENet weights of CamVid's
    # train split, times loss.class_weight_mult; scripts/class_bias.py): if the weight formula, the
    # factors or the train labels change, the recipe's bias has to be recomputed.
    config = load_config(name, [f"data.root={CAMVID_ROOT}"])
    train_set, _ = build_train_val(config.data, seed=config.seed)
    weights = train_class_weights(config.loss, train_set).tolist()
    assert list(config.eval.class_bias) == pytest.approx([-0.25 * math.log(w) for w in weights], abs=1e-4)
