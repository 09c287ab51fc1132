"""Datasets from configs: options checked against the dataset's constructor, list files by role,
train and val kept apart, and configs stored before data.options existed."""

import json

import albumentations as A
import cv2
import numpy as np
import pytest

from sceneseg.builders import build_dataset, build_train_val, data_root, dataset_classes, dataset_options
from sceneseg.cli import main
from sceneseg.config import config_from_dict, load_config, to_dict
from sceneseg.data import DATASETS, SAMPLE_ROOT, FolderDataset, KittiRoad
from sceneseg.data.transforms import ShortSideScale
from sceneseg.errors import ConfigError, SceneSegError
from tests.data.test_kitti_road import write_kitti
from tests.test_cli import TINY

FOLDER = ["data.dataset=folder", "model.num_classes=2", "data.options.class_names=[road, rest]"]


def write_folder(root, count=6, size=(32, 48)):
    rng = np.random.default_rng(0)
    for sub in ("images", "masks"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for i in range(count):
        cv2.imwrite(str(root / "images" / f"f{i}.png"), rng.integers(0, 256, (*size, 3), dtype=np.uint8))
        cv2.imwrite(str(root / "masks" / f"f{i}.png"), rng.integers(0, 2, size, dtype=np.uint8))


def test_datasets_map_names_to_classes():
    assert DATASETS["kitti_road"] is KittiRoad and DATASETS["folder"] is FolderDataset
    assert set(DATASETS) == {"camvid", "kitti_road", "folder"}


def test_options_are_checked_against_the_constructor():
    with pytest.raises(
        ConfigError,
        match=r"data.options.resise: dataset 'kitti_road' has no such option; "
        r"did you mean resize\? \(its options: policy, split_mode",
    ):
        dataset_options(load_config("kitti_pspnet18_transfer_cpu", ["data.options.resise=[64, 64]"]).data)
    with pytest.raises(
        ConfigError,
        match=r"data.options.resize: dataset 'camvid' has no such option \(its options: "
        r"label_order\)",
    ):
        dataset_options(load_config(None, ["data.options.resize=[64, 64]"]).data)
    with pytest.raises(ConfigError, match=r"data.options.val_ratio: expected float, got 'most'"):
        dataset_options(load_config("kitti_pspnet18_transfer_cpu", ["data.options.val_ratio=most"]).data)
    with pytest.raises(ConfigError, match=r"data.options.resize\[1\]: expected int"):
        dataset_options(load_config("kitti_pspnet18_transfer_cpu", ["data.options.resize=[64, x]"]).data)
    with pytest.raises(ConfigError, match="data.options.class_names: dataset 'folder' needs it"):
        dataset_options(load_config(None, ["data.dataset=folder"]).data)
    with pytest.raises(ConfigError, match="data.train_list = 'a.txt': dataset 'kitti_road' takes no list file"):
        dataset_options(load_config("kitti_pspnet18_transfer_cpu", ["data.train_list=a.txt"]).data)
    with pytest.raises(ConfigError, match="data.dataset = 'kiti_road': expected one of .*did you mean kitti_road"):
        dataset_options(load_config(None, ["data.dataset=kiti_road"]).data)
    cls, options = dataset_options(load_config("kitti_pspnet18_transfer_cpu").data)
    assert cls is KittiRoad and options == {"policy": "cs6476", "split_mode": "cs6476", "resize": (256, 256)}


def test_val_ratio_zero_is_an_error_not_the_default(tmp_path):
    # The old builder read `val_ratio or 0.1`, so 0.0 silently became 0.1.
    write_kitti(tmp_path, counts=(4, 4, 4))
    config = load_config(
        "kitti_pspnet18_transfer_cpu",
        [f"data.root={tmp_path}", "data.options.split_mode=ratio", "data.options.val_ratio=0.0"],
    ).data
    with pytest.raises(SceneSegError, match="val_ratio = 0.0: expected a fraction between 0 and 1"):
        build_dataset(config, "val", "whole")


def test_folder_options_from_the_command_line(tmp_path):
    write_folder(tmp_path)
    config = load_config(
        None,
        [
            *FOLDER,
            f"data.root={tmp_path}",
            "data.options.palette=null",
            "data.options.split_mode=ratio",
            "data.options.val_ratio=0.34",
        ],
    ).data
    train, val = build_train_val(config, modes=("whole", "whole"))
    assert (len(train), len(val)) == (4, 2) and train.class_names == ("road", "rest")
    assert dataset_classes(config) == (("road", "rest"), ())


def test_train_and_val_sharing_frames_are_refused(tmp_path):
    write_folder(tmp_path, count=3)
    (tmp_path / "all.txt").write_text("".join(f"images/f{i}.png masks/f{i}.png\n" for i in range(3)))
    config = load_config(None, [*FOLDER, f"data.root={tmp_path}", "data.train_list=all.txt", "data.val_list=all.txt"])
    with pytest.raises(ConfigError, match=r"the train and val splits share 3 frame\(s\), e.g. .*f0.png"):
        build_train_val(config.data)
    with pytest.raises(ConfigError, match=r"share 8 frame\(s\)"):
        build_train_val(load_config(None, ["data.val_split=val", "data.train_split=val"]).data)


def test_list_files_are_chosen_by_role(tmp_path):
    # A camvid-11 list-format root: no SegNet folders, the list files say which frames each role gets.
    for i in range(4):
        cv2.imwrite(str(tmp_path / f"f{i}.png"), np.full((40, 48, 3), 9 * i, np.uint8))
        cv2.imwrite(str(tmp_path / f"l{i}.png"), np.full((40, 48), i, np.uint8))
    (tmp_path / "train.txt").write_text("f0.png l0.png\nf1.png l1.png\nf2.png l2.png\n")
    (tmp_path / "val.txt").write_text("f3.png l3.png\n")
    config = load_config(
        None, [f"data.root={tmp_path}", "data.train_list=train.txt", "data.val_list=val.txt", "data.val_split=test"]
    ).data
    assert [p[0].name for p in build_dataset(config, "val", "whole").pairs] == ["f3.png"]
    assert [p[0].name for p in build_dataset(config, "val", "whole", split="test").pairs] == ["f3.png"]
    assert len(build_dataset(config, "val", "whole", split="train").pairs) == 3  # the train role's split and list
    with pytest.raises(SceneSegError, match=r"val does not exist"):  # neither role's split: SegNet layout, no list
        build_dataset(config, "val", "whole", split="val")


def test_training_validates_on_the_val_list_of_a_renamed_val_split(tmp_path):
    # Runs on the old code too, where `data.val_split: test` silently dropped data.val_list.
    root, run = tmp_path / "data", tmp_path / "run"
    root.mkdir()
    for i in range(6):
        cv2.imwrite(str(root / f"f{i}.png"), np.full((48, 64, 3), 9 * i, np.uint8))
        cv2.imwrite(str(root / f"l{i}.png"), np.full((48, 64), i % 11, np.uint8))
    (root / "train.txt").write_text("".join(f"f{i}.png l{i}.png\n" for i in range(4)))
    (root / "val.txt").write_text("f4.png l4.png\nf5.png l5.png\n")
    args = [
        "train",
        *TINY,
        "train.batch_size=2",
        "train.epochs=1",
        f"data.root={root}",
        "data.train_list=train.txt",
        "data.val_list=val.txt",
        "data.val_split=test",
        f"train.out_dir={run}",
        "--no-progress",
    ]
    assert main(args) == 0
    split = json.loads((run / "data_split.json").read_text())
    assert [name.rsplit("/", 1)[-1] for name in split["val"]] == ["f4.png", "f5.png"]


def test_configs_stored_with_flat_data_keys_still_load():
    stored = to_dict(load_config("kitti_pspnet18_transfer_cpu"))
    data = stored["data"]
    del data["options"]
    data.update(
        resize=[256, 256],
        label_policy="cs6476",
        split_mode="cs6476",
        val_ratio=None,
        split_seed=None,
        class_names=None,
        palette=None,
        images=None,
        masks=None,
    )
    config = config_from_dict(stored)
    assert config == load_config("kitti_pspnet18_transfer_cpu")
    assert config.data.options == {"resize": [256, 256], "policy": "cs6476", "split_mode": "cs6476"}
    # Files and overrides use the new form, and say where an old key went.
    with pytest.raises(ConfigError, match="override data.resize=.*as data.options.resize"):
        load_config(None, ["data.resize=[64, 64]"])


def test_the_folder_example_config_trains_on_a_folder(tmp_path):
    # README's "Your own data" points users at this file; it must run once data.root is set.
    write_folder(tmp_path, count=10)
    config = load_config("folder_example", [f"data.root={tmp_path}"])
    train, val = build_train_val(config.data, modes=("whole", "whole"))
    assert (len(train), len(val)) == (8, 2) and train.num_classes == config.model.num_classes == 4
    assert dataset_classes(config.data)[0] == ("road", "sidewalk", "vehicle", "background")


def test_scale_from_source_reaches_the_train_pipeline(tmp_path):
    write_folder(tmp_path)
    for switch, expected in (("false", A.RandomScale), ("true", ShortSideScale)):
        options = [
            *FOLDER,
            f"data.root={tmp_path}",
            "data.options.split_mode=ratio",
            f"data.scale_from_source={switch}",
        ]
        config = load_config(None, options).data
        ops = build_dataset(config, "train", "train").transform.compose.transforms
        assert [type(op) for op in ops if isinstance(op, A.RandomScale)] == [expected]


def test_a_mistyped_builtin_root_names_the_sample_instead_of_a_missing_folder():
    assert data_root(load_config(None).data) == SAMPLE_ROOT
    with pytest.raises(ConfigError, match="data.root = 'builtin:camvid-smaple': the only built-in dataset is"):
        build_dataset(load_config(None, ["data.root=builtin:camvid-smaple"]).data, "val", "whole")
