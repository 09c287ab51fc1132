"""README's "Using a trained model" Python example runs as printed, on a tiny checkpoint."""

from __future__ import annotations

import re
from pathlib import Path

import cv2
import numpy as np
import pytest

from tests.test_predict import write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## Using a trained model") :]
    section = section[: section.index("\n## ", 1)]
    blocks = re.findall(r"```python\n(.*?)\n```", section, flags=re.S)
    assert len(blocks) == 1, "the section should show exactly one Python example"
    return blocks[0]


def test_readme_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    checkpoint = write_checkpoint(tmp_path / "best.pt")
    image = tmp_path / "street.png"
    cv2.imwrite(str(image), np.random.default_rng(0).integers(0, 256, (64, 96, 3), dtype=np.uint8))
    code = readme_example()
    # The example names its inputs in its first lines; point them at the files written here.
    for name, value in (("checkpoint", checkpoint), ("image", image)):
        code, count = re.subn(rf"^{name} = \"[^\"]*\"", f"{name} = {str(value)!r}", code, flags=re.M)
        assert count == 1, f'the example should start with `{name} = "..."`'
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "README.md", "exec"), {"__name__": "readme_example"})
    picture = cv2.imread(str(tmp_path / "overlay.png"))
    assert picture is not None and picture.shape == (64, 96, 3)
    assert "Building" in capsys.readouterr().out
