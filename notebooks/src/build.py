"""Builds notebooks/*.ipynb from the percent-format sources in notebooks/src/.

    python notebooks/src/build.py --execute [NN ...]   # what is committed: built, run, outputs kept
    python notebooks/src/build.py                      # cells only, no outputs (quick check of a source)

A source is plain Python with `# %%` (code) and `# %% [markdown]` (markdown)
cell markers, so notebooks are reviewed as text. With --execute each notebook
runs on a fresh kernel (nbclient; inline matplotlib backend, KERASNETS_HOME and
the working folder in a temp dir; the published weights a notebook shows come from
the repository's copies in tests/data through a loopback server, the presets'
$KERASNETS_WEIGHTS_MIRROR: nothing downloads), TF/absl/CUDA start-up log lines are removed
from its outputs, and every code cell records the sha256 of the source it ran
(metadata kerasnets.source_sha256), so tests/test_notebooks.py can tell stale
outputs from fresh ones.
"""

import hashlib
import os
import pathlib
import re
import shutil
import sys
import tempfile
import time

import nbformat

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parents[1]


def released_weights_mirror():
    """A loopback server of the published weight files the notebooks load through presets (tests/data copies)."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from tests.loopback import RELEASED_WEIGHTS, serve_folder

    return serve_folder(RELEASED_WEIGHTS)


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


# lines TensorFlow, absl, XLA and CUDA write to stderr at start-up: noise, not output
LOG_NOISE = re.compile(
    r"^(WARNING: All log messages before absl::InitializeLog\(\) is called are written to STDERR"
    r"|[IWEF]\d{4} [\d:. ]+\s*\d+ [\w./-]+:\d+\] .*"
    r"|To enable the following instructions: .* rebuild TensorFlow with the appropriate compiler flags\."
    r"|\s*)$"
)


FIGURE_DPI = 60


def source_sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def is_log_noise(output):
    """A stderr stream output made only of TF/absl/CUDA log lines (blank lines allowed)."""
    return (output.get("output_type") == "stream" and output.get("name") == "stderr"
            and all(LOG_NOISE.match(line) for line in output.get("text", "").splitlines()))


def clean_outputs(nb):
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs = [o for o in cell.outputs if not is_log_noise(o)]
    return nb


def execute(nb, timeout=1200):
    """Runs nb on a fresh kernel in a temp folder; returns it with cleaned outputs and source hashes."""
    import nbclient

    scratch = pathlib.Path(tempfile.mkdtemp(prefix="kerasnets-nbbuild-"))
    (scratch / "tmp").mkdir()
    # committed figures at a modest dpi keep the .ipynb files small (photo grids are large PNGs)
    (scratch / "mplrc").mkdir()
    (scratch / "mplrc" / "matplotlibrc").write_text(f"figure.dpi: {FIGURE_DPI}\n")
    mirror = released_weights_mirror()
    env = {"KERASNETS_HOME": str(scratch / "home"), "TMPDIR": str(scratch / "tmp"),
           "MPLBACKEND": "module://matplotlib_inline.backend_inline", "MATPLOTLIBRC": str(scratch / "mplrc"),
           "KERASNETS_WEIGHTS_MIRROR": mirror.url}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                resources={"metadata": {"path": str(scratch)}}).execute()
    finally:
        mirror.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        shutil.rmtree(scratch, ignore_errors=True)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.metadata["kerasnets"] = {"source_sha256": source_sha256(cell.source)}
    return clean_outputs(nb)


def notebook_from_source(source):
    nb = nbformat.v4.new_notebook()
    nb.cells = cells_from_source(source.read_text())
    for index, cell in enumerate(nb.cells):
        cell.id = f"{source.stem[:2]}-{index:03d}"  # stable ids: rebuilding an unchanged source changes nothing
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    return nb


def build(source, run=False):
    nb = notebook_from_source(source)
    if run:
        nb = execute(nb)
    target = HERE.parent / (source.stem + ".ipynb")
    nbformat.write(nb, target)
    return target


if __name__ == "__main__":
    args = sys.argv[1:]
    run = "--execute" in args
    picked = [a for a in args if a != "--execute"]
    for src in sorted(HERE.glob("[0-9][0-9]_*.py")):
        if picked and not any(src.stem.startswith(p) for p in picked):
            continue
        start = time.time()
        target = build(src, run=run)
        print(f"wrote {target} ({time.time() - start:.0f} s, {target.stat().st_size / 1024:.0f} KiB)", flush=True)
