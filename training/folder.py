"""Fine-tuning on a folder-per-class image tree: the job behind `kerasnets train --data`.

    from training.folder import train_on_folder
    result = train_on_folder("resnet18", "flowers/", weights="resnet18.pth", epochs=10, output_dir="runs/flowers")
    result["model"]      # the inference model: raw 0..255 RGB -> Preprocess -> network (what final.keras holds)

Two models take part. The inference model (raw pixels -> `Preprocess` ->
network) is what is saved and what `kerasnets predict`/`export` open with
`import kerasnets` alone. Training runs a wrapper around it, raw pixels ->
augmentation -> inference model, so augmentation works on 0..255 pixels
(where its value ranges are defined) and never reaches the saved file.
"""

from __future__ import annotations

import os

import keras

from training.fit import fit
from training.strategies import is_chief
from training.transfer import replace_classifier, set_transfer_mode

HEAD = "predictions"
# From scratch the network sees [-1, 1] (zero-centred) pixels: on the digits folder (LeNet, 15 epochs)
# 0.922 held out against 0.880 with [0, 1] (issue #23).
SCRATCH_PREPROCESSING = "tf"


def _head_missing_only(report):
    """A file without a classifier: only the head's weights have no value."""
    return (report.missing and not report.unexpected and not report.mismatched and not report.option_mismatches
            and all(target.startswith(f"{HEAD}/") for target, *_ in report.missing))


def load_backbone(model_name, weights, classes, *, strict=True, **options):
    """The network `weights` was trained as, loaded (all or nothing), with a classifier for `classes`.

    `kerasnets.build_for_weights` builds the network the file fits (its
    publisher's builder options and its class count, unless `options` name
    them) and loads it strictly; a classifier of another size is then replaced
    by a new one for `classes`, and a file without a classifier leaves the new
    one as built. Any other mismatch raises `weights_io.WeightMismatchError`
    unless `strict=False`.

    Returns:
        (network, weights_io Report).
    """
    from kerasnets import build_for_weights
    from weights_io import WeightMismatchError

    try:
        net, report = build_for_weights(model_name, weights, strict=strict, **options)
    except WeightMismatchError as err:
        if not _head_missing_only(err.report):
            raise
        net, report = build_for_weights(model_name, weights, strict=False, classes=classes, **options)
    if int(net.outputs[0].shape[-1]) != classes:
        net = replace_classifier(net, classes)
    return net, report


def build_classifier(model_name, *, classes, image_size=None, weights=None, strict=True, options=None,
                     transfer="all", last_n=1, head_hidden=(), preprocessing=None, verbose=1):
    """The inference model to fine-tune: raw 0..255 RGB -> `Preprocess(preprocessing)` -> network.

    Args:
        model_name: a registered classification model.
        classes: outputs of the new classifier.
        image_size: square side or (height, width); default the model's.
        weights: a weight file (loaded by `load_backbone`) or a preset name (its options and weights).
        strict: False loads what fits and reports the rest (`kerasnets train --no-strict`).
        options: builder keyword options (`--option padding=torch`).
        transfer, last_n: see `training.transfer.set_transfer_mode`.
        head_hidden: widths of extra Dense layers before the classifier.
        preprocessing: a `kerasnets.preprocessing.MODES` key; default "torch" with a weight
            file, the preset's own with a preset, `SCRATCH_PREPROCESSING` ([-1, 1]) without weights.
        verbose: print the weights report.

    Returns:
        (inference model, network inside it, weights_io Report or None).
    """
    import kerasnets
    import kerasnets.presets
    from kerasnets.preprocessing import MODES, Preprocess

    spec = kerasnets.model_spec(model_name)
    image_size = image_size or spec.input_shape[:2]
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    shape = (*image_size, 3)
    options = dict(options or {})
    report = None
    if kerasnets.presets.is_preset(weights):
        preset = kerasnets.presets.resolve(weights, model_name)
        net = replace_classifier(kerasnets.build_preset(preset.name, input_shape=shape, **options), classes)
        if preprocessing is None and preset.preprocessing["mode"] in MODES:
            preprocessing = preset.preprocessing["mode"]
    elif weights is not None:
        net, report = load_backbone(model_name, weights, classes, strict=strict, input_shape=shape, **options)
        if verbose:
            print(report)
    else:
        net = spec.build(input_shape=shape, classes=classes, **options)
    if head_hidden:
        net = replace_classifier(net, classes, hidden=head_hidden)
    set_transfer_mode(net, transfer, last_n=last_n)
    if preprocessing is None:
        preprocessing = "torch" if weights else SCRATCH_PREPROCESSING
    inputs = keras.Input(shape, name="image")
    outputs = net(Preprocess(preprocessing, name="preprocess")(inputs))
    return keras.Model(inputs, outputs, name=f"{net.name}_classifier"), net, report


def with_augmentation(inference_model, augmentation):
    """The training wrapper: raw pixels -> `augmentation` (in 0..255) -> `inference_model`."""
    if augmentation is None:
        return inference_model
    inputs = keras.Input(inference_model.input_shape[1:], name="image")
    return keras.Model(inputs, inference_model(augmentation(inputs)), name="trainer")


def _metric_line(history, index):
    return ", ".join(f"{k} {v[index]:.4f}" for k, v in history.items() if k not in ("epoch", "learning_rate"))


def run_summary(result):
    """Lines saying how a `train_on_folder` run ended and where everything went."""
    history, paths = result["history"], result["paths"]
    epochs = len(next(iter(history.values()), []))
    lines = [f"Finished {epochs} epoch(s); run directory {paths.get('output_dir')}"]
    if epochs:
        lines.append(f"  final:       {_metric_line(history, -1)}")
    if result.get("best_epoch") is not None:
        lines.append(f"  best:        {result['monitor']} {result['best_value']:.4f} at epoch {result['best_epoch']} "
                     f"(the saved model has these weights; {paths.get('best_weights')})")
    saved = [paths[k] for k in ("output", "final_keras", "final_h5") if paths.get(k)]
    lines.append(f"  model:       {', '.join(saved)} (preprocessing inside, no augmentation)")
    checkpoints = paths.get("checkpoints")
    if checkpoints and os.path.isdir(checkpoints):
        lines.append(f"  checkpoints: {checkpoints} ({len(os.listdir(checkpoints))} files)")
    for key, label in (("log", "log"), ("tensorboard", "tensorboard"), ("class_indices", "classes"),
                       ("history_plot", "curves")):
        if paths.get(key):
            lines.append(f"  {label + ':':12s} {paths[key]}")
    if saved and paths.get("class_indices"):
        lines.append(f"  next:        kerasnets predict --model {saved[0]} --classes {paths['class_indices']} "
                     "--image IMAGE")
    return lines


def train_on_folder(model_name, data_dir, *, weights=None, strict=True, options=None, epochs=10, batch_size=32,
                    image_size=None, output_dir="run", output=None, transfer="all", last_n=1, head_hidden=(),
                    preprocessing=None, validation_split=0.2, val_dir=None, learning_rate=None, schedule=None,
                    augmentation="default", cache=False, on_bad_file="raise", seed=0, verbose=1, **fit_options):
    """Fine-tunes (or trains from scratch) a registered model on a folder-per-class image tree.

    Args:
        model_name: a registered classification model ("resnet34", "lenet5", ...).
        data_dir: training images, one sub-folder per class.
        weights: weight file (.pth/.npy/.mat/.h5) or preset name; see `build_classifier`.
        strict: False loads a weight file non-strictly and prints what was skipped.
        options: builder keyword options.
        epochs, batch_size: training length and images per step.
        image_size: square side or (height, width); default the model's own input size.
        output_dir: run directory (checkpoints, log, class_indices.json, final.keras/.h5, history.png).
        output: also save the final inference model here (.keras or .h5).
        transfer, last_n, head_hidden: see `build_classifier`.
        preprocessing: see `build_classifier`; baked into the saved model.
        validation_split: fraction of each class held out, unless `val_dir` is given.
        val_dir: a separate validation tree.
        learning_rate: the optimizer's rate; default 1e-4 from weights (the notes' value), else 1e-3
            (the digits array job's).
        schedule: learning-rate schedule for `fit`.
        augmentation: "default" (`augment.folder_augmentation`: shifts, small rotations, PCA
            lighting), None, or a Keras layer; it runs on 0..255 batches before `Preprocess`.
            Every image is first resized and centre-cropped as for validation and `predict`.
        cache, on_bad_file: see `training.data.image_folder_dataset`.
        seed: seeds the split, shuffling, augmentation and initialisation.
        verbose: progress bars, the weights report and the closing summary.
        **fit_options: passed to `fit` (optimizer, monitor, jit_compile, steps_per_execution, strategy, ...).

    Returns:
        dict: `model` (the inference model), `history`, `best_epoch`, `best_value`, `monitor`,
        `classes`, `weights_report` and `paths` (`final_keras`, `final_h5`, `output`,
        `class_indices`, `best_weights`, `checkpoints`, `log`, `history_plot`, ...).
    """
    from training import augment
    from training.data import image_folder_dataset
    from training.plots import plot_history

    import kerasnets

    if output is not None and not os.fspath(output).endswith((".keras", ".h5")):
        raise ValueError(f"`output` must end in .keras or .h5. Received: output={output!r}")
    keras.utils.set_random_seed(seed)
    os.makedirs(output_dir, exist_ok=True)
    if isinstance(image_size, int):
        image_size = (image_size, image_size)
    size = tuple(image_size) if image_size else tuple(kerasnets.model_spec(model_name).input_shape[:2])
    if augmentation == "default":
        augmentation = augment.folder_augmentation(seed=seed)
    data = image_folder_dataset(
        data_dir, size, batch_size, validation_split=None if val_dir else validation_split, val_dir=val_dir,
        train_transform=augment.resize_center_crop(size), seed=seed, cache=cache, on_bad_file=on_bad_file,
        class_indices_path=os.path.join(output_dir, "class_indices.json"),
    )
    built = {}

    def trainer():
        """The trained network (augmentation -> inference model); `fit` calls it under mixed_float16 if asked."""
        built["inference"], _, built["report"] = build_classifier(
            model_name, classes=data.num_classes, image_size=size, weights=weights, strict=strict,
            options=options, transfer=transfer, last_n=last_n, head_hidden=head_hidden,
            preprocessing=preprocessing, verbose=verbose,
        )
        return with_augmentation(built["inference"], augmentation)

    # fit builds the network itself: under the precision policy it chooses, inside a strategy's scope;
    # it saves the inference model inside what it trained (the trained model itself without augmentation)
    if learning_rate is None:
        learning_rate = 1e-4 if weights else 1e-3
    result = fit(trainer, data.train, data.val, epochs, output_dir=output_dir, learning_rate=learning_rate,
                 schedule=schedule, verbose=verbose, save_model=lambda trained: built["inference"], **fit_options)
    report = built["report"]
    paths = dict(result["paths"], class_indices=data.class_indices_path)
    model = result["saved_model"]
    if is_chief():
        paths["history_plot"] = plot_history(result["history"], os.path.join(output_dir, "history.png"))
        if output:
            from kerasnets.saving import save_model_atomically

            paths["output"] = save_model_atomically(model, output)
    result = {**result, "model": model, "trainer": result["model"], "paths": paths, "classes": data.class_names,
              "weights_report": report}
    if verbose:
        print("\n".join(run_summary(result)))
    return result
