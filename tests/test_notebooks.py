"""Every notebook is committed executed and fresh (its cells are what notebooks/src/build.py makes
from its percent-format source, each code cell carries the sha256 of the source it ran), shows
its figures (image/png outputs), has no TF/absl/CUDA log noise in its outputs, and runs top to
bottom on a kernel of its own (forked from tests/preloaded.py's server: nothing run, TensorFlow and
Keras imported).

Regenerate after editing a source:  python notebooks/src/build.py --execute [NN]"""

import copy
import pathlib
import re
import shutil
import sys

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

ROOT = pathlib.Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.ipynb"))
sys.path.insert(0, str(ROOT / "notebooks" / "src"))

from tests import preloaded  # noqa: E402
from build import LOG_NOISE, notebook_from_source, released_weights_mirror, source_sha256  # noqa: E402

# a cell draws when it calls pyplot, a .plot/imshow/show method, or one of training's plot_* helpers
DRAWS = re.compile(r"\bplt\.|\.plot\(|\bimshow\(|\.show\(|\bplot_\w+\(")
INLINE = "module://matplotlib_inline.backend_inline"


def stale_cells(nb, source_path):
    """Problems that make nb's outputs stale with respect to its source; [] when fresh."""
    problems = []
    expected = notebook_from_source(source_path)
    if [(c.cell_type, c.source) for c in expected.cells] != [(c.cell_type, c.source) for c in nb.cells]:
        problems.append("cells differ from what build.py makes from " + source_path.name)
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        recorded = cell.metadata.get("kerasnets", {}).get("source_sha256")
        if recorded != source_sha256(cell.source):
            problems.append(f"cell {cell.get('id')}: outputs were made from another source (hash {recorded})")
        if cell.execution_count is None:
            problems.append(f"cell {cell.get('id')}: not executed")
    return problems


def cells_without_figure(nb):
    return [c.get("id") for c in nb.cells if c.cell_type == "code" and DRAWS.search(c.source)
            and not any("image/png" in o.get("data", {}) for o in c.outputs)]


def noisy_outputs(nb):
    found = []
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            texts = [output.get("text", "")] + [v for k, v in output.get("data", {}).items() if k.startswith("text/")]
            for text in texts:
                text = "".join(text) if isinstance(text, list) else text
                found += [(cell.get("id"), line) for line in text.splitlines() if line.strip() and LOG_NOISE.match(line)]
    return found


def source_of(path):
    return path.parent / "src" / (path.stem + ".py")


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_outputs_are_fresh(path):
    nb = nbformat.read(path, as_version=4)
    assert stale_cells(nb, source_of(path)) == [], "run: python notebooks/src/build.py --execute " + path.stem[:2]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_drawing_cells_show_figures(path):
    nb = nbformat.read(path, as_version=4)
    assert any(DRAWS.search(c.source) for c in nb.cells if c.cell_type == "code") or path.stem.startswith("02")
    assert cells_without_figure(nb) == []


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_have_no_log_noise(path):
    assert noisy_outputs(nbformat.read(path, as_version=4)) == []


def test_checks_trip_on_a_stale_figureless_noisy_copy(tmp_path):
    """The three checks above can fail: a modified cell, a lost figure and a TF log line are caught."""
    path = next(p for p in NOTEBOOKS if p.stem.startswith("04"))
    shutil.copy(path, tmp_path / path.name)
    nb = nbformat.read(tmp_path / path.name, as_version=4)
    assert stale_cells(nb, source_of(path)) == []

    edited = copy.deepcopy(nb)
    cell = next(c for c in edited.cells if c.cell_type == "code")
    cell.source += "\nprint('edited')"
    assert len(stale_cells(edited, source_of(path))) == 2  # differs from the source, hash mismatch

    source = tmp_path / "src" / source_of(path).name  # the source edited, the notebook not rebuilt
    source.parent.mkdir()
    source.write_text(source_of(path).read_text().replace("import os\n", "import os  # edited\n", 1))
    assert stale_cells(nb, source) != []

    figureless = copy.deepcopy(nb)
    drawing = next(c for c in figureless.cells if c.cell_type == "code" and DRAWS.search(c.source))
    drawing.outputs = [o for o in drawing.outputs if "image/png" not in o.get("data", {})]
    assert cells_without_figure(figureless) == [drawing.id]

    noisy = copy.deepcopy(nb)
    noisy.cells[1].outputs.append(nbformat.v4.new_output(
        "stream", name="stderr", text="I0000 00:00:1796321822.257593     765 cudart_stub.cc:31] Could not find cuda drivers\n"))
    assert len(noisy_outputs(noisy)) == 1


@pytest.fixture(scope="module")
def weights_mirror():
    """The published weights the notebooks show (presets), served from tests/data: nothing downloads."""
    server = released_weights_mirror()
    yield server.url
    server.stop()


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch, weights_mirror):
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("KERASNETS_WEIGHTS_MIRROR", weights_mirror)
    for name in ("KERASNETS_WEIGHTS_DIR", "KERASNETS_OFFLINE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MPLBACKEND", INLINE)
    # the notebooks' mkdtemp folders (checkpoints of three fine-tuning runs: 1.5 GB for 03) go
    # here and are removed after, instead of piling up in /tmp run after run
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    monkeypatch.setenv("TMPDIR", str(scratch))
    # a kernel of its own, forked from a server that has imported TensorFlow and Keras: the notebook's
    # first imports are cached, its state fresh (tests/preloaded.py)
    monkeypatch.setattr("jupyter_client.provisioning.local_provisioner.launch_kernel", preloaded.launch_kernel)
    committed = path.read_bytes()
    nb = notebook_from_source(source_of(path))  # in memory: the committed file is never written
    client = nbclient.NotebookClient(nb, timeout=600, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    try:
        client.execute()  # raises CellExecutionError naming the failing cell
        assert {p.name for p in tmp_path.iterdir()} <= {"home", "tmp"}, "the notebook wrote into its working folder"
        assert any(scratch.iterdir()) or path.stem == "05_gans_and_segmentation", "the notebook's temp folder went elsewhere"
        assert cells_without_figure(nb) == []
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    assert path.read_bytes() == committed
