"""The size limits the developers' guide sets for the source: files of at most 300 lines and
functions of at most 60, so that a newcomer can read any piece top to bottom.

Argument-parser declarations are exempt: they are one long list of options, not logic.
"""

import ast
from pathlib import Path

SOURCE = Path(__file__).resolve().parents[1] / "src" / "sceneseg"
MAX_FILE_LINES = 300
MAX_FUNCTION_LINES = 60
PARSER_DECLARATIONS = {("cli.py", "build_parser")}


def _python_files() -> list[Path]:
    files = sorted(SOURCE.rglob("*.py"))
    assert files, f"no Python files under {SOURCE}"
    return files


def test_no_source_file_is_longer_than_the_limit():
    long = [
        f"{p.relative_to(SOURCE)} ({n} lines)"
        for p in _python_files()
        if (n := len(p.read_text().splitlines())) > MAX_FILE_LINES
    ]
    assert not long, f"files over {MAX_FILE_LINES} lines: {', '.join(long)}"


def test_no_function_is_longer_than_the_limit():
    long = []
    for path in _python_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue
            # From the `def` line (decorators excluded) to the last line of the body.
            lines = node.end_lineno - node.lineno + 1
            exempt = (path.name, node.name) in PARSER_DECLARATIONS
            if lines > MAX_FUNCTION_LINES and not exempt:
                long.append(f"{path.relative_to(SOURCE)}:{node.lineno} {node.name} ({lines} lines)")
    assert not long, f"functions over {MAX_FUNCTION_LINES} lines: {', '.join(long)}"
