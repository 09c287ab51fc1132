"""A report as a list of blocks, written as Markdown (PNG files beside it) and as one HTML file.

The HTML embeds its pictures as data URIs and its style inline, so that it opens from disk with no
server and no network, and survives being mailed as a single file.
"""

from __future__ import annotations

import base64
import html
import os
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..checkpoint import check_output_folder
from ..errors import OutputError


def shown_path(path: str | Path) -> str:
    """`path` as a report shows it: relative to the directory the command ran in, so that a report
    committed to a repository does not carry one machine's absolute paths (as given if no relative
    path exists, as between Windows drives)."""
    try:
        return os.path.relpath(Path(path).absolute())
    except ValueError:
        return str(path)


@dataclass(frozen=True)
class Heading:
    text: str
    level: int = 2


@dataclass(frozen=True)
class Paragraph:
    text: str  # plain text; `code` spans are the only markup


@dataclass(frozen=True)
class Table:
    headers: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


@dataclass(frozen=True)
class Figure:
    filename: str  # the PNG's name beside README.md
    png: bytes
    caption: str


Block = Heading | Paragraph | Table | Figure

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;max-width:1200px;margin:2em auto;
padding:0 1em;color:#222;line-height:1.45}
h1{border-bottom:2px solid #ddd;padding-bottom:.3em}h2{margin-top:2em;border-bottom:1px solid #eee}
table{border-collapse:collapse;margin:1em 0;font-size:.9em}th,td{border:1px solid #ccc;padding:.3em .6em}
th{background:#f4f4f4}td.num{text-align:right;font-variant-numeric:tabular-nums}
tr:nth-child(even) td{background:#fafafa}.caption{color:#555;font-size:.9em;margin:.2em 0 1em}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}code{background:#f4f4f4;padding:0 .2em}
"""


def _is_number(text: str) -> bool:
    try:
        float(text.replace("%", "").replace(" min", "").replace(" s", ""))
        return True
    except ValueError:
        return False


def _inline_html(text: str) -> str:
    parts = html.escape(text).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def to_markdown(title: str, blocks: Sequence[Block]) -> str:
    lines = [f"# {title}", ""]
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            lines += [block.text, ""]
        elif isinstance(block, Table):
            cells = [[c.replace("|", "\\|") for c in row] for row in (block.headers, *block.rows)]
            lines.append("| " + " | ".join(cells[0]) + " |")
            lines.append(
                "|"
                + "|".join(
                    "---:" if block.rows and _is_number(block.rows[0][i]) else "---" for i in range(len(block.headers))
                )
                + "|"
            )
            lines += ["| " + " | ".join(row) + " |" for row in cells[1:]]
            lines += ["", *([block.caption, ""] if block.caption else [])]
        else:
            lines += [f"![{block.caption}]({block.filename})", "", f"*{block.caption}*", ""]
    return "\n".join(lines)


def to_html(title: str, blocks: Sequence[Block]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for block in blocks:
        if isinstance(block, Heading):
            body.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            body.append(f"<p>{_inline_html(block.text)}</p>")
        elif isinstance(block, Table):
            head = "".join(f"<th>{html.escape(h)}</th>" for h in block.headers)
            rows = "".join(
                "<tr>"
                + "".join(
                    f'<td class="num">{html.escape(c)}</td>' if _is_number(c) else f"<td>{_inline_html(c)}</td>"
                    for c in row
                )
                + "</tr>"
                for row in block.rows
            )
            caption = f'<div class="caption">{_inline_html(block.caption)}</div>' if block.caption else ""
            body.append(f"<table><thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>{caption}")
        else:
            data = base64.b64encode(block.png).decode("ascii")
            body.append(
                f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.caption)}">'
                f'<figcaption class="caption">{_inline_html(block.caption)}</figcaption></figure>'
            )
    return (
        f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}</title>'
        f"<style>{_STYLE}</style></head><body>\n" + "\n".join(body) + "\n</body></html>\n"
    )


def check_report_folder(out: Path) -> None:
    """Before a report is built: `out` must be a folder we can write, and one that holds nothing but an
    earlier report, since write_report replaces the whole folder."""
    check_output_folder(out, "report folder")
    if os.path.isdir(out) and any(Path(out).iterdir()) and not (Path(out) / "index.html").is_file():
        raise OutputError(
            f"report folder {out} holds other files and no index.html of an earlier report; a report replaces "
            "its whole folder, so expected a new folder or an earlier report's"
        )


def write_report(out: Path, title: str, blocks: Sequence[Block]) -> None:
    """Write `out`/index.html, `out`/README.md and the PNGs, replacing `out` only once all are written:
    a failure leaves the previous report (or nothing), never half of one."""
    out = Path(out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.", dir=out.parent))
    except OSError as error:
        raise OutputError(f"cannot write the report into {out} ({error.strerror or error})") from None
    staging.chmod(0o755)  # mkdtemp's 0o700 would hide the report from a web server or another user
    try:
        for block in blocks:
            if isinstance(block, Figure):
                (staging / block.filename).write_bytes(block.png)
        (staging / "README.md").write_text(to_markdown(title, blocks))
        (staging / "index.html").write_text(to_html(title, blocks))
        if out.exists():
            old = out.with_name(f".{out.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out, old)
            os.replace(staging, out)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(staging, out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
