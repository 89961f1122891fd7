"""`kerasnets train --data` then `kerasnets predict` on a small real photo folder, through the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from training import cli

CLASSES = ("astronaut", "coffee", "rocket")


@pytest.fixture(scope="module")
def photo_folder(tmp_path_factory):
    """Three classes of scikit-image's bundled photos: random crops and flips, 10 JPEGs each."""
    from skimage import data

    root = tmp_path_factory.mktemp("photos")
    rng = np.random.default_rng(0)
    for name in CLASSES:
        photo = getattr(data, name)()
        folder = root / name
        folder.mkdir()
        for i in range(10):
            h, w = photo.shape[:2]
            side = int(min(h, w) * rng.uniform(0.5, 0.9))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = photo[top:top + side, left:left + side]
            if rng.random() < 0.5:
                crop = crop[:, ::-1]
            Image.fromarray(np.ascontiguousarray(crop)).resize((80, 80), Image.BILINEAR).save(folder / f"{i}.jpg")
    return root


def reference_probabilities(model, image_path, size):
    """The model's softmax on the image resized (shorter side size*256/224) and centre-cropped by PIL."""
    with Image.open(image_path) as img:
        img = img.convert("RGB")
        short = round(size * 256 / 224)
        scale = short / min(img.size)
        img = img.resize((max(size, round(img.width * scale)), max(size, round(img.height * scale))), Image.BILINEAR)
        left, top = (img.width - size) // 2, (img.height - size) // 2
        x = np.asarray(img.crop((left, top, left + size, top + size)), np.float32)[None]
    return np.asarray(model.predict(x, verbose=0), np.float64)[0]


def test_train_on_folder_then_predict(photo_folder, tmp_path, capsys):
    import keras

    run = tmp_path / "run"
    status = cli.main(["train", "--model", "mobilenet_v3_small", "--data", str(photo_folder), "--epochs", "2",
                       "--batch-size", "8", "--image-size", "64", "--output-dir", str(run)])
    assert status == 0
    indices = json.loads((run / "class_indices.json").read_text())
    assert indices == {str(i): name for i, name in enumerate(CLASSES)}
    log = (run / "log.csv").read_text().splitlines()
    assert log[0].startswith("epoch") and len(log) == 3  # header + one row per epoch
    saved = sorted(p.name for p in run.iterdir())
    model_path = next(run / name for name in saved if name.endswith(".keras"))
    capsys.readouterr()

    image = photo_folder / "coffee" / "3.jpg"
    plot = tmp_path / "prediction.png"
    status = cli.main(["predict", "--model", str(model_path), "--image", str(image),
                       "--classes", str(run / "class_indices.json"), "--top-k", "3", "--plot", str(plot)])
    assert status == 0
    printed = re.findall(r"class: (\S+)\s+prob: ([0-9.]+)", capsys.readouterr().out)
    assert [name for name, _ in printed] and {name for name, _ in printed} == set(CLASSES)
    probs = [float(p) for _, p in printed]
    assert probs == sorted(probs, reverse=True) and sum(probs) <= 1.0 + 2e-3

    model = keras.models.load_model(model_path, compile=False)
    expected = reference_probabilities(model, image, 64)
    for name, prob in zip((n for n, _ in printed), probs):
        assert abs(prob - expected[CLASSES.index(name)]) < 0.02, (name, prob, expected)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


CLI = "import sys\nfrom training.cli import main\nsys.exit(main(sys.argv[1:]))\n"


def test_killed_folder_run_resumes_to_the_uninterrupted_losses(photo_folder, tmp_path):
    """`kerasnets train --data` killed after its first epoch, run again: the same log as a run never killed.

    Order, random crops (seeded per epoch and image), the model's augmentation
    and Dropout RNG state, weights and optimizer all come back, so every epoch's
    loss equals the uninterrupted run's.
    """
    import csv
    import signal
    import time

    from tests import preloaded

    def train(run):
        args = ["train", "--model", "mobilenet_v3_small", "--data", photo_folder, "--epochs", "3",
                "--batch-size", "8", "--image-size", "64", "--output-dir", run]
        return preloaded.start(CLI, *args)  # the console script's call, in a process that can be killed

    killed, clean = tmp_path / "killed", tmp_path / "clean"
    proc = train(killed)
    state = killed / "backup" / "state.json"
    deadline = time.time() + 300
    while not state.exists():
        assert proc.poll() is None, proc.output()
        assert time.time() < deadline, "no resume state within 300 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    for p in (train(clean), train(killed)):
        out = p.output(timeout=600)
        assert p.returncode == 0, out
    assert "Resuming from" in out

    def losses(run):
        with open(run / "log.csv", newline="") as f:
            rows = list(csv.DictReader(f))
        assert [int(r["epoch"]) for r in rows] == list(range(3))
        return np.array([float(r["loss"]) for r in rows])

    np.testing.assert_allclose(losses(killed), losses(clean), rtol=1e-5)


def test_train_flags_reach_fit(photo_folder, tmp_path, capsys, monkeypatch):
    """--seed, --run-dir, --no-resume, --schedule, --steps-per-execution, --precision and the optimizer's flags do
    what they say.

    CPU float16 is slow, not wrong: with a tensor-core GPU faked, mixed_float16 really builds the network
    under that policy (inside `fit`), the classifier computes in float32, and the saved inference model
    keeps both.
    """
    import keras

    from training import fit as fit_module

    monkeypatch.setattr("training.precision.gpu_capabilities", lambda: [(8, 0)])
    real, made = fit_module.make_optimizer, []

    def spy(*args):
        made.append(real(*args))
        return made[-1]

    monkeypatch.setattr(fit_module, "make_optimizer", spy)
    run = tmp_path / "run"
    args = ["train", "--model", "lenet5", "--data", str(photo_folder), "--epochs", "2", "--batch-size", "8",
            "--image-size", "32", "--run-dir", str(run), "--seed", "3", "--schedule", "cosine",
            "--steps-per-execution", "2", "--precision", "mixed_float16", "--jit-compile", "off"]
    sgd = ["--optimizer", "sgd", "--momentum", "0.8", "--nesterov", "--learning-rate", "0.02"]
    try:
        assert cli.main(args + sgd + ["--no-resume"]) == 0
    finally:
        keras.config.set_dtype_policy("float32")
    [optimizer] = made
    config = optimizer.get_config()
    assert type(optimizer) is keras.optimizers.SGD and config["momentum"] == 0.8 and config["nesterov"]
    assert abs(float(config["learning_rate"]) - 0.02) < 1e-7
    with pytest.raises(SystemExit, match="SGD's"):
        cli.main(args + ["--momentum", "0.5"])  # no --optimizer sgd
    out = capsys.readouterr().out
    assert "Finished 2 epoch(s)" in out and "curves:" in out and (run / "history.png").exists()
    saved = keras.models.load_model(run / "final.keras", compile=False)
    policies = {layer.name: layer.dtype_policy.name for layer in saved.get_layer("lenet5").layers if layer.weights}
    assert policies.pop("predictions") == "float32"
    assert set(policies.values()) == {"mixed_float16"}
    assert [int(row.split(",")[0]) for row in (run / "log.csv").read_text().splitlines()[1:]] == [0, 1]


def test_train_help_groups_the_flags(capsys):
    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    out = capsys.readouterr().out
    for group in ("model and weights:", "data:", "training:", "run directory:", "speed and distribution:"):
        assert group in out
    for flag in ("--strategy", "--resume, --no-resume", "--seed", "--precision", "--batch-size", "--learning-rate",
                 "--run-dir", "--optimizer", "--momentum", "--weight-decay"):
        assert flag in out
