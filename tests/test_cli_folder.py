"""`kerasnets train --data` then `kerasnets predict` on a small real photo folder, through the CLI."""

from __future__ import annotations

import json
import re

import numpy as np
import pytest
from PIL import Image

from kerasnets import cli

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
