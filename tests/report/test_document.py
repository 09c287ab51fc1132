"""Report documents: Markdown beside PNG files, one self-contained HTML file, atomic replacement."""

from __future__ import annotations

import pytest

from sceneseg.report.document import Figure, Heading, Paragraph, Table, to_html, to_markdown, write_report

PNG = b"\x89PNG\r\n\x1a\n-not-a-real-image-"
BLOCKS = [
    Heading("Results"),
    Paragraph("made with `sceneseg` <fast>"),
    Table(("row", "mIoU"), (("a|b", "0.5000"),), caption="ours"),
    Figure("curve.png", PNG, "curves"),
]


def test_markdown_and_html_hold_the_same_content():
    markdown = to_markdown("T", BLOCKS)
    assert "| a\\|b | 0.5000 |" in markdown and "|---|---:|" in markdown and "![curves](curve.png)" in markdown
    page = to_html("T", BLOCKS)
    assert "<code>sceneseg</code> &lt;fast&gt;" in page and '<td class="num">0.5000</td>' in page
    assert 'src="data:image/png;base64,iVBORw0KGgot' in page and "curve.png" not in page


def test_write_report_replaces_the_folder_whole(tmp_path, monkeypatch):
    out = tmp_path / "report"
    write_report(out, "T", BLOCKS)
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "curve.png", "index.html"]
    assert (out / "curve.png").read_bytes() == PNG

    import sceneseg.report.document as document

    def broken(title, blocks):
        raise RuntimeError("disk full")

    monkeypatch.setattr(document, "to_html", broken)
    with pytest.raises(RuntimeError):
        write_report(out, "T2", [Heading("other")])
    # the previous report is intact and nothing half-written is left beside it
    assert "# T\n" in (out / "README.md").read_text()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["report"]
