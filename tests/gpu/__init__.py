"""Tests that need a CUDA GPU: every module here is skipped where torch sees none.

They run where `scripts/gpu_check.sh` runs them (README, "GPU runbook"); on a CPU machine pytest
lists them as skipped with the reason below, at the cost of collecting them only.
"""

from __future__ import annotations

import pytest
import torch

NEEDS_CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(),
    reason="needs a CUDA GPU (torch.cuda.is_available() is False here); scripts/gpu_check.sh runs these on one",
)
