"""The `kerasnets` command and the default job."""

import subprocess
import sys

import keras
import numpy as np
import pytest

from training import cli


def run_cli(capsys, *argv):
    code = cli.main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_help_is_useful_on_every_subcommand():
    for command in ("list", "summary", "train", "convert", "predict", "prepare"):
        result = subprocess.run([sys.executable, "-m", "training.cli", command, "--help"],
                                capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        assert "usage: kerasnets " + command in result.stdout
        assert len(result.stdout.splitlines()) > 4


def test_list_names_every_registered_model(capsys):
    import kerasnets

    code, out, _ = run_cli(capsys, "list", "--no-params")
    assert code == 0
    listed = {line.split()[0] for line in out.splitlines()[2:]}
    assert listed == set(kerasnets.available_models())
    inputs = {line.split()[0]: line.split()[3] for line in out.splitlines()[2:]}
    assert inputs["fsrcnn"] == "anyxanyx1" and inputs["vgg16"] == "224x224x3" and "None" not in out


def test_list_counts_parameters(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("KERASNETS_HOME", str(tmp_path))
    code, out, _ = run_cli(capsys, "list", "--family", "lenet")
    assert code == 0 and "61,706" in out
    assert list(tmp_path.glob("param_counts-*.json"))


def test_summary_with_receptive_field(capsys):
    code, out, _ = run_cli(capsys, "summary", "vgg16", "--receptive-field", "--option", "include_top=false")
    assert code == 0
    pool5 = next(line for line in out.splitlines() if line.startswith("block5_pool"))
    assert pool5.split()[-1] == "212"
    assert "Parameters: 14,714,688" in out


def test_summary_unknown_model_is_a_clear_error(capsys):
    code, _, err = run_cli(capsys, "summary", "vgg17")
    assert code == 2 and "Unknown model" in err


def test_default_job_trains_lenet_on_digits(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code, out, _ = run_cli(capsys, "train")
    assert code == 0
    accuracy = float(out.split("held-out accuracy: ")[1].split()[0])
    assert accuracy >= 0.95
    model = keras.models.load_model(tmp_path / "lenet5.h5")
    assert model.name == "lenet5" and model.count_params() == 61_706
    from training.digits import load_digits_32

    _, (x_test, y_test) = load_digits_32()
    reloaded_accuracy = np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test)
    assert reloaded_accuracy == pytest.approx(accuracy, abs=5e-5)  # printed with 4 decimals


def test_prepare_then_train_fsrcnn(tmp_path, capsys):
    """`kerasnets prepare` (train and eval files) then `kerasnets train fsrcnn` on them."""
    from PIL import Image
    from skimage import data

    for sub, images in (("train", ("astronaut", "coffee")), ("eval", ("chelsea",))):
        (tmp_path / sub).mkdir()
        for name in images:
            Image.fromarray(getattr(data, name)()[:96, :96]).save(tmp_path / sub / f"{name}.png")
    for sub, extra in (("train", []), ("eval", ["--eval"])):
        code, out, _ = run_cli(capsys, "prepare", "--images-dir", str(tmp_path / sub),
                               "--output", str(tmp_path / f"{sub}.h5"), "--scale", "3", *extra)
        assert code == 0 and "wrote" in out
    code, out, _ = run_cli(capsys, "train", "fsrcnn", "--train-file", str(tmp_path / "train.h5"),
                           "--eval-file", str(tmp_path / "eval.h5"), "--scale", "3", "--epochs", "2",
                           "--output-dir", str(tmp_path / "out"))
    assert code == 0 and "eval PSNR" in out
    assert (tmp_path / "out" / "x3" / "best.weights.h5").exists()
