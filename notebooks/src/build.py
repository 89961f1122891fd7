"""Builds notebooks/*.ipynb from the percent-format sources in notebooks/src/.

    python notebooks/src/build.py

A source is plain Python with `# %%` (code) and `# %% [markdown]` (markdown)
cell markers, so notebooks are reviewed as text; the .ipynb files are
written without outputs (CI executes them, tests/test_notebooks.py).
"""

import pathlib
import re

import nbformat

HERE = pathlib.Path(__file__).resolve().parent


def cells_from_source(text):
    cells = []
    for chunk in re.split(r"^# %%", text, flags=re.M)[1:]:
        header, _, body = chunk.partition("\n")
        body = body.strip("\n")
        if header.strip() == "[markdown]":
            lines = [re.sub(r"^# ?", "", line) for line in body.splitlines()]
            cells.append(nbformat.v4.new_markdown_cell("\n".join(lines)))
        elif body:
            cells.append(nbformat.v4.new_code_cell(body))
    return cells


def build(source):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_from_source(source.read_text())
    for index, cell in enumerate(nb.cells):
        cell.id = f"{source.stem[:2]}-{index:03d}"  # stable ids: rebuilding an unchanged source changes nothing
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    target = HERE.parent / (source.stem + ".ipynb")
    nbformat.write(nb, target)
    return target


if __name__ == "__main__":
    for src in sorted(HERE.glob("[0-9][0-9]_*.py")):
        print("wrote", build(src))
