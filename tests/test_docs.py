"""Every ```python block in docs/*.md runs (blocks of one page share a namespace, in a temp dir).

A block fenced as ```python no-run is shown but not executed: kept for
examples that need a user's own file or a network; each page keeps those few.
"""

import contextlib
import io
import pathlib
import re

import pytest

BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)
ALL_DOCS = sorted((pathlib.Path(__file__).resolve().parents[1] / "docs").glob("*.md"))
# pages with nothing to run (shell commands, tables) get no test rather than a skip
DOCS = [page for page in ALL_DOCS if BLOCK.search(page.read_text())]


@pytest.mark.parametrize("page", DOCS, ids=lambda p: p.name)
def test_page_examples_run(page, tmp_path, monkeypatch):
    blocks = BLOCK.findall(page.read_text())
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MPLBACKEND", "Agg")
    namespace = {"__name__": "__docs__"}
    for i, block in enumerate(blocks):
        with contextlib.redirect_stdout(io.StringIO()):
            exec(compile(block, f"{page.name}[block {i}]", "exec"), namespace)
