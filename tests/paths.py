"""Where the team's real datasets sit beside a checkout (../shared/datasets); tests that read them skip without."""

from __future__ import annotations

from pathlib import Path

SHARED_DATASETS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets"
CAMVID_ROOT = SHARED_DATASETS / "camvid"
KITTI_ROOT = SHARED_DATASETS / "kitti_road"
