"""fit / train_on_folder end to end on real photos, transfer-learning modes, kfold, predict."""

from __future__ import annotations

import argparse
import csv
import json
import os

import keras
import numpy as np
import pytest

from tests.test_training_folder import make_image_folder


def tiny_bn_net(classes=3, name="tiny"):
    """conv-BN-relu x2 -> GAP -> fc -> predictions: small, with BN, keras.applications-style head name."""
    inputs = keras.Input((16, 16, 3))
    x = keras.layers.Conv2D(4, 3, name="conv1")(inputs)
    x = keras.layers.BatchNormalization(name="bn1")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.Conv2D(6, 3, name="conv2")(x)
    x = keras.layers.BatchNormalization(name="bn2")(x)
    x = keras.layers.ReLU()(x)
    x = keras.layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = keras.layers.Dense(5, activation="relu", name="fc")(x)
    outputs = keras.layers.Dense(classes, activation="softmax", name="predictions")(x)
    return keras.Model(inputs, outputs, name=name)


def _snapshot(model):
    return {layer.name: [np.array(w) for w in layer.get_weights()] for layer in model.layers if layer.weights}


def _changed(before, after):
    return {name for name in before if any(not np.array_equal(a, b) for a, b in zip(before[name], after[name]))}


def count_train_step_traces(model):
    """A list that grows by one at each trace of `model`'s train step (Python runs `train_step` only then)."""
    traces = []
    step = model.train_step

    def counted(data):
        traces.append(len(traces))
        return step(data)

    model.train_step = counted
    return traces


def test_fit_traces_the_train_step_once():
    """training.fit builds the optimizer before Keras traces: one trace, where Keras alone makes two."""
    from training.fit import fit

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (32, 16, 16, 3)).astype("float32"), rng.integers(0, 3, 32)
    model = tiny_bn_net()
    traces = count_train_step_traces(model)
    fit(model, x, epochs=2, y=y, batch_size=8, verbose=0, jit_compile=False)
    assert len(traces) == 1, traces
    # Keras' own fit on the same net: its first trace creates Adam's variables and is traced again (2 with
    # Keras 3.15.1 here; never fewer than training.fit's, should a later Keras build the optimizer first)
    plain = tiny_bn_net()
    plain.compile(keras.optimizers.Adam(), "sparse_categorical_crossentropy", jit_compile=False)
    plain_traces = count_train_step_traces(plain)
    plain.fit(x, y, epochs=2, batch_size=8, verbose=0)
    print(f"train-step traces: training.fit {len(traces)}, keras fit {len(plain_traces)}")
    assert len(plain_traces) >= len(traces)


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    return make_image_folder(tmp_path_factory.mktemp("photos") / "data", per_class=12)


@pytest.mark.parametrize(
    "mode, kwargs, expected",
    [
        ("all", {}, {"conv1", "bn1", "conv2", "bn2", "fc", "predictions"}),
        ("last", {"last_n": 2}, {"fc", "predictions"}),
        ("head", {}, {"predictions"}),
    ],
)
def test_transfer_modes_change_only_their_layers(mode, kwargs, expected):
    from training.fit import fit
    from training.transfer import set_transfer_mode

    model = tiny_bn_net()
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (32, 16, 16, 3)).astype("float32")
    y = rng.integers(0, 3, 32)
    trained = set_transfer_mode(model, mode, **kwargs)
    assert set(trained) == expected
    before = _snapshot(model)
    fit(model, x, epochs=1, y=y, batch_size=8, verbose=0, learning_rate=0.05, jit_compile=False)
    # BN moving statistics change only where BN trains: frozen BN runs in inference mode
    assert _changed(before, _snapshot(model)) == expected


def test_replace_classifier_and_head_mode():
    from training.fit import fit
    from training.transfer import replace_classifier, set_transfer_mode

    base = tiny_bn_net(classes=10)
    model = replace_classifier(base, 4, hidden=(7,))
    assert model.output_shape == (None, 4)
    assert model.get_layer("head_fc1").input.shape[-1] == 5  # fed by the old classifier's input (fc)
    assert model.get_layer("conv1") is base.get_layer("conv1")
    assert set(set_transfer_mode(model, "head")) == {"head_fc1", "predictions"}
    before = _snapshot(model)
    rng = np.random.default_rng(1)
    fit(model, rng.uniform(size=(16, 16, 16, 3)).astype("float32"), y=rng.integers(0, 4, 16), epochs=1,
        batch_size=8, verbose=0, jit_compile=False)
    assert _changed(before, _snapshot(model)) == {"head_fc1", "predictions"}
    with pytest.raises(ValueError, match="transfer"):
        set_transfer_mode(model, "some")
    with pytest.raises(ValueError, match="last_n"):
        set_transfer_mode(model, "last", last_n=0)


def test_pretrained_weights_new_head(tmp_path):
    """weights -> build_classifier(classes=3): the body loads, the 10-class head is left new."""
    from kerasnets import build_lenet5
    from training.folder import build_classifier

    source = build_lenet5(input_shape=(32, 32, 3), classes=10)
    path = str(tmp_path / "source.keras")
    source.save(path)
    model, net, report = build_classifier("lenet5", classes=3, image_size=32, weights=path, transfer="head",
                                          preprocessing="tf", verbose=0)
    np.testing.assert_array_equal(net.get_layer("conv1").kernel.numpy(), source.get_layer("conv1").kernel.numpy())
    np.testing.assert_array_equal(net.get_layer("fc2").kernel.numpy(), source.get_layer("fc2").kernel.numpy())
    assert net.get_layer("predictions").kernel.shape == (84, 3)
    assert [layer.name for layer in net.layers if layer.trainable and layer.weights] == ["predictions"]
    assert model.get_layer("preprocess").mode == "tf"


def test_train_on_folder_end_to_end(photos, tmp_path):
    from training.folder import train_on_folder
    from training.metrics import evaluate_classifier
    from training.predict import predict_cli, predict_image

    out = str(tmp_path / "run")
    result = train_on_folder("lenet5", photos, epochs=3, batch_size=8, image_size=32, output_dir=out,
                             verbose=0, jit_compile=False)
    paths = result["paths"]
    for key in ("class_indices", "best_weights", "log", "final_keras", "final_h5", "history_plot"):
        assert os.path.exists(paths[key]), key
    assert sorted(os.listdir(paths["checkpoints"])) == [f"epoch-00{i}.weights.h5" for i in (1, 2, 3)]
    assert os.listdir(os.path.join(out, "backup")) == []  # finished: nothing to resume
    assert any(os.scandir(paths["tensorboard"])) or not result["paths"].get("tensorboard")
    rows = list(csv.DictReader(open(paths["log"])))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    val_acc = [float(r["val_accuracy"]) for r in rows]
    assert result["best_value"] == pytest.approx(max(val_acc))
    assert result["best_epoch"] == 1 + val_acc.index(max(val_acc))
    assert json.load(open(paths["class_indices"])) == {"0": "cat", "1": "coffee", "2": "rocket"}
    # the saved model is the best epoch's (restore_best): the inference model, preprocessing in, augmentation out
    reloaded = keras.models.load_model(paths["final_keras"])
    assert [layer.name for layer in reloaded.layers] == ["image", "preprocess", "lenet5"]
    assert result["trainer"].get_layer("augmentation") is not None
    h5 = keras.models.load_model(paths["final_h5"])
    image = os.path.join(photos, "rocket", "00.jpg")
    probs = predict_image(result["model"], image, paths["class_indices"], top_k=5)
    assert [name for name, _ in probs] and len(probs) == 3
    assert sum(p for _, p in probs) == pytest.approx(1.0, abs=1e-5)
    again = predict_image(reloaded, image, paths["class_indices"])
    assert [n for n, _ in again] == [n for n, _ in probs]
    np.testing.assert_allclose([p for _, p in again], [p for _, p in probs], rtol=1e-5)
    assert [n for n, _ in probs] == [n for n, _ in predict_image(h5, image, paths["class_indices"])]
    # the plot and the CLI entry point the lead wired
    plot = str(tmp_path / "pred.png")
    args = argparse.Namespace(model=paths["final_keras"], image=[image], classes=paths["class_indices"], top_k=2,
                              preprocessing=None, plot=plot)
    assert predict_cli(args) == 0 and open(plot, "rb").read(4) == b"\x89PNG"
    report = evaluate_classifier(reloaded, _val_like(photos))
    assert 0 <= report["top1_accuracy"] <= 1 and report["confusion_matrix"].sum() == 39


def _val_like(photos):
    from training.augment import resize_center_crop
    from training.data import image_folder_dataset

    return image_folder_dataset(photos, 32, 16, shuffle=False, class_indices_path=None,
                                train_transform=resize_center_crop(32)).train


def test_fit_options_and_schedules(tmp_path):
    from training.callbacks import lr_schedule_callback
    from training.fit import fit

    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(24, 16, 16, 3)).astype("float32"), rng.integers(0, 3, 24)
    lrs = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: lrs.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))))
    model = tiny_bn_net()
    fit(model, x, epochs=4, y=y, batch_size=8, verbose=0, learning_rate=0.1, schedule="step",
        schedule_options={"step_size": 2, "gamma": 0.5}, callbacks=[record], steps_per_execution=2,
        jit_compile=False, mixed_precision=False)
    np.testing.assert_allclose(lrs, [0.1, 0.1, 0.05, 0.05], rtol=1e-6)
    cosine = lr_schedule_callback("cosine", 1.0, 4).schedule
    np.testing.assert_allclose([cosine(e) for e in range(4)], [1.0, (1 + np.cos(np.pi / 4)) / 2, 0.5,
                                                               (1 + np.cos(3 * np.pi / 4)) / 2])
    assert isinstance(lr_schedule_callback("plateau", 1.0, 4), keras.callbacks.ReduceLROnPlateau)
    with pytest.raises(ValueError, match="schedule"):
        fit(model, x, y=y, schedule="linear")
    with pytest.raises(ValueError, match="epochs"):
        fit(model, x, y=y, epochs=0)
    with pytest.warns(UserWarning, match="mixed_precision"):  # no GPU here: refused, float32 kept
        result = fit(model, x, y=y, epochs=1, verbose=0, mixed_precision=True, jit_compile=False)
    assert result["model"].dtype_policy.name == "float32"
    # top-5 accuracy is compiled in only with >= 5 classes
    five = fit(tiny_bn_net(classes=6), x, y=y, epochs=1, verbose=0, jit_compile=False)
    assert "top5_accuracy" in five["history"]
    assert "top5_accuracy" not in result["history"]


def test_kfold_stratified():
    from training.kfold import kfold

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 20)
    x = (rng.normal(size=(40, 4)) + y[:, None] * 3.0).astype("float32")  # separable

    def build():
        model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2, activation="softmax")])
        model.compile(keras.optimizers.Adam(0.2), "sparse_categorical_crossentropy", metrics=["accuracy"])
        return model

    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        result = kfold(build, x, y, k=4, epochs=4, batch_size=10, output_dir=tmp)
        assert os.path.exists(result.best_weights_path)
    assert len(result.scores) == 4 and len(result.histories) == 4
    assert result.mean == pytest.approx(np.mean(result.scores)) and result.std == pytest.approx(np.std(result.scores))
    assert result.mean > 0.8
    assert result.scores[result.best_fold] == max(result.scores)
    for train_idx, val_idx in result.folds:  # stratified: 5 of each class held out per fold
        assert np.bincount(y[val_idx]).tolist() == [5, 5]
        assert not set(train_idx) & set(val_idx)
    assert sorted(np.concatenate([v for _, v in result.folds]).tolist()) == list(range(40))


@pytest.mark.parametrize("every_epoch", [True, False])
def test_epoch_end_weights_are_written_once_and_hold_that_epochs_weights(tmp_path, every_epoch):
    """The checkpoint, best and backup files of an epoch hold the weights the model had at that epoch's end;
    with a per-epoch checkpoint the backup and the best are that file hard-linked, not new saves or copies."""
    from training.callbacks import AtomicCheckpoint, ResumableBackup, read_best_record

    rng = np.random.default_rng(0)
    x, y = rng.uniform(size=(24, 16, 16, 3)).astype("float32"), rng.integers(0, 3, 24)
    model = tiny_bn_net()
    model.compile("adam", "sparse_categorical_crossentropy", metrics=["accuracy"])
    at_end, losses = {}, []
    snapshot = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda e, logs: (at_end.update({e: model.get_weights()}), losses.append(logs["loss"])))
    checkpoint = AtomicCheckpoint(tmp_path, monitor="loss", every_epoch=every_epoch)
    backup = ResumableBackup(tmp_path / "backup", delete_on_success=False, checkpoint=checkpoint)
    saves = []
    real_save = keras.Model.save_weights

    def counting_save(self, path, *args, **kwargs):
        saves.append(os.path.basename(path))
        return real_save(self, path, *args, **kwargs)

    keras.Model.save_weights = counting_save
    try:
        model.fit(x, y, epochs=3, batch_size=8, verbose=0, callbacks=[snapshot, checkpoint, backup])
    finally:
        keras.Model.save_weights = real_save

    def holds(path, weights):
        probe = tiny_bn_net()
        probe.compile("adam", "sparse_categorical_crossentropy")
        probe.optimizer.build(probe.trainable_variables)
        probe.load_weights(path)
        return all(np.array_equal(a, b) for a, b in zip(probe.get_weights(), weights))

    last = tmp_path / "backup" / "epoch-0003.weights.h5"
    assert holds(last, at_end[2]) and not holds(last, at_end[1])
    best_epoch = checkpoint.best_epoch
    assert holds(tmp_path / "best.weights.h5", at_end[best_epoch - 1])
    record = read_best_record(tmp_path / "best.weights.h5")
    assert record["epoch"] == best_epoch and record["monitor"] == "loss"
    assert record["value"] == min(losses) == losses[best_epoch - 1]
    if every_epoch:
        assert os.path.samefile(last, tmp_path / "checkpoints" / "epoch-003.weights.h5")
        assert os.path.samefile(tmp_path / "best.weights.h5", tmp_path / "checkpoints" / f"epoch-{best_epoch:03d}.weights.h5")
        for epoch in (1, 2, 3):  # every epoch's file carries its own record
            assert read_best_record(tmp_path / "checkpoints" / f"epoch-{epoch:03d}.weights.h5")["value"] == losses[epoch - 1]
        assert len(saves) == 3  # one serialisation per epoch
    else:
        assert not (tmp_path / "checkpoints").exists()
        assert 3 < len(saves) <= 6  # each epoch's backup, and the best (at least once) written by itself


def test_a_best_file_written_before_the_epoch_records_still_resumes_the_comparison(tmp_path):
    """best.weights.h5 from before the records moved into every epoch's file (attribute `kerasnets_best`): a
    resumed run reads its value and only a better epoch replaces it."""
    import h5py

    from training.callbacks import AtomicCheckpoint, read_best_record

    model = tiny_bn_net()
    model.save_weights(tmp_path / "best.weights.h5")
    with h5py.File(tmp_path / "best.weights.h5", "a") as f:
        f.attrs["kerasnets_best"] = json.dumps({"monitor": "loss", "value": 0.5, "epoch": 7})
    checkpoint = AtomicCheckpoint(tmp_path, monitor="loss")
    checkpoint.set_model(model)
    checkpoint.on_train_begin()
    assert (checkpoint.best, checkpoint.best_epoch) == (0.5, 7)
    checkpoint.on_epoch_end(7, {"loss": 0.6})  # worse: the old best stays
    assert read_best_record(tmp_path / "best.weights.h5") == {"monitor": "loss", "value": 0.5, "epoch": 7}
    checkpoint.on_epoch_end(8, {"loss": 0.4})
    assert read_best_record(tmp_path / "best.weights.h5") == {"monitor": "loss", "value": 0.4, "epoch": 9}
    assert os.path.samefile(tmp_path / "best.weights.h5", tmp_path / "checkpoints" / "epoch-009.weights.h5")
