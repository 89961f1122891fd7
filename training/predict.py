"""Classify images with a trained model: top-k (class, probability) and an optional titled plot.

Models from `train_on_folder` contain their preprocessing (a `Preprocess` layer)
and take raw 0..255 RGB pixels, so `preprocessing=None` is right for them; pass
a mode name ("torch", "caffe", ...) for a bare network.
"""

from __future__ import annotations

import numpy as np


def load_image(path, image_size, *, resize_ratio=256 / 224):
    """An image file -> float32 (1, H, W, 3) RGB 0..255, resized and centre-cropped like validation.

    Grayscale, palette, RGBA and CMYK files are converted to RGB.
    """
    import tensorflow as tf

    from training.augment import resize_center_crop
    from training.data import load_rgb

    crop = resize_center_crop(image_size, resize_ratio)(tf.constant(load_rgb(path)))
    return np.asarray(crop, dtype="float32")[None]


def _class_names(class_indices, num_outputs):
    if class_indices is None:
        return [str(i) for i in range(num_outputs)]
    if isinstance(class_indices, (str, bytes)) or hasattr(class_indices, "__fspath__"):
        from training.data import read_class_indices

        class_indices = read_class_indices(class_indices)
    if isinstance(class_indices, dict):
        mapping = {int(k): v for k, v in class_indices.items()}
        return [mapping.get(i, str(i)) for i in range(num_outputs)]
    return list(class_indices)


def predict_image(model, image_path, class_indices=None, top_k=5, preprocessing=None, resize_ratio=256 / 224,
                  plot=None, runner=None):
    """Top-k predictions for one image, best first.

    Args:
        model: a Keras model or the path of a saved one (.keras/.h5).
        image_path: the image file.
        class_indices: {index: class name}, a class_indices.json path, a list of names, or None.
        top_k: how many classes to return.
        preprocessing: None when the model includes it, else a `training.preprocessing.MODES` key.
        resize_ratio: shorter side -> input size x ratio before the centre crop (256/224 as the notes).
        plot: a path to save the image titled with the best class, or None.
        runner: batch -> outputs callable to use instead of `model.predict`
            (`kerasnets predict` passes `training.deploy.predictor(model)`).

    Returns:
        [(class name, probability), ...] of length min(top_k, classes).
    """
    import keras

    from training.preprocessing import preprocess_input

    if not isinstance(model, keras.Model):
        from training.deploy import load_saved_model

        model = load_saved_model(model)
    size = tuple(model.input_shape[1:3])
    if None in size:
        size = (224, 224)
    x = load_image(image_path, size, resize_ratio=resize_ratio)
    if preprocessing is not None:
        x = preprocess_input(x, preprocessing)
    out = runner(x) if runner is not None else model.predict(x, verbose=0)
    out = np.asarray(out, dtype=np.float64)[0]
    if out.min() < 0 or abs(out.sum() - 1) > 1e-3:  # logits: softmax them
        out = np.exp(out - out.max())
        out /= out.sum()
    names = _class_names(class_indices, len(out))
    order = np.argsort(-out, kind="stable")[:top_k]
    predictions = [(names[i], float(out[i])) for i in order]
    if plot:
        from training.plots import plot_prediction

        plot_prediction(image_path, predictions, plot)
    return predictions


def predict_cli(args):
    """`kerasnets predict`: prints the top-k classes of each image; returns the exit status."""
    from training.deploy import load_saved_model, predictor, quick_candidates

    model = load_saved_model(args.model)
    images = args.image if isinstance(args.image, (list, tuple)) else [args.image]

    # exporting to onnxruntime costs tens of seconds: worth trying only for many images
    runner = predictor(model, candidates=None if len(images) >= 50 else quick_candidates())
    for n, image in enumerate(images):
        plot = getattr(args, "plot", None)
        if plot and len(images) > 1:
            stem, dot, ext = plot.rpartition(".")
            plot = f"{stem}_{n}.{ext}" if dot else f"{plot}_{n}"
        predictions = predict_image(model, image, args.classes, top_k=args.top_k,
                                    preprocessing=getattr(args, "preprocessing", None), plot=plot, runner=runner)
        print(image)
        for name, prob in predictions:
            print(f"  class: {name:20s} prob: {prob:.3f}")
        if plot:
            print(f"  plot: {plot}")
    return 0
