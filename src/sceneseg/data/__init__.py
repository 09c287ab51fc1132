"""Datasets, augmentation and dataset checks."""

from sceneseg.data.base import SegmentationDataset
from sceneseg.data.camvid import (
    CAMVID_CLASSES,
    CAMVID_PALETTE,
    SAMPLE_ROOT,
    SEGNET_TO_CANONICAL,
    CamVid,
)
from sceneseg.data.check import LabelCounts, count_labels, format_summary, summarize
from sceneseg.data.folder import FolderDataset
from sceneseg.data.kitti_road import KITTI_CLASSES, KITTI_PALETTE, KittiRoad
from sceneseg.data.transforms import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SegTransform,
    train_transform,
    val_transform,
    whole_transform,
)

# data.dataset names a class here; data.options are its constructor's options (builders.dataset_options).
DATASETS: dict[str, type[SegmentationDataset]] = {"camvid": CamVid, "kitti_road": KittiRoad, "folder": FolderDataset}

__all__ = [
    "DATASETS",
    "CAMVID_CLASSES",
    "CAMVID_PALETTE",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "SAMPLE_ROOT",
    "SEGNET_TO_CANONICAL",
    "CamVid",
    "FolderDataset",
    "KITTI_CLASSES",
    "KITTI_PALETTE",
    "KittiRoad",
    "LabelCounts",
    "SegmentationDataset",
    "SegTransform",
    "count_labels",
    "format_summary",
    "summarize",
    "train_transform",
    "val_transform",
    "whole_transform",
]
