"""Training and inference throughput of our builders against their keras.applications twins.

Both models of a pair are built with identical settings (our builder in its
keras.applications style, same input size, same optimizer, same batch) and
timed interleaved in one process (see harness.py). Target: ratio >= 1.0.

    python benchmarks/model_throughput.py --quick
    python benchmarks/model_throughput.py --models resnet50 vgg16 --image-size 224 --batch 16
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import interleave, report  # noqa: E402

# our name -> (keras.applications class, the kerasnets module whose KERAS_APPLICATIONS
# options dict reproduces it, extra builder options)
PAIRS = {
    "resnet50": ("ResNet50", "kerasnets.resnet", {}),
    "vgg16": ("VGG16", None, {}),
    "inception_v3": ("InceptionV3", "kerasnets.inception", {}),
    "densenet121": ("DenseNet121", "kerasnets.densenet", {}),
    "mobilenet_v3_large": ("MobileNetV3Large", "kerasnets.mobilenet_v3", {}),
}


def keras_style_options(module_name):
    if module_name is None:
        return {}
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        return {}
    return dict(getattr(module, "KERAS_APPLICATIONS", {}))


def build_pair(name, image_size, classes):
    import keras

    import kerasnets

    app_name, module_name, extra = PAIRS[name]
    shape = (image_size, image_size, 3)
    # VGG's flattening head pins the input to 224; elsewhere both sides take any size.
    include_top = not (name == "vgg16" and image_size != 224)
    common = dict(input_shape=shape, classes=classes, include_top=include_top, weights=None)
    if not include_top:
        common.update(pooling="avg")
        common.pop("classes")
    ours = kerasnets.build(name, **common, **keras_style_options(module_name), **extra)
    reference = getattr(keras.applications, app_name)(**common)
    return ours, reference


def train_fn(model, x, y, batch, steps):
    def run():
        model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False)

    return run


def infer_fn(model, x):
    def run():
        model(x, training=False)

    return run


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PAIRS))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small inputs, few rounds (minutes on 2 cores)")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.batch, args.steps, args.rounds = 96, 8, 2, 2

    import keras
    import numpy as np

    import kerasnets

    classes = 10
    rng = np.random.default_rng(0)
    train_rows, infer_rows = [], []
    for name in args.models:
        if name not in kerasnets.available_models():
            print(f"skip {name}: not registered yet")
            continue
        started = time.perf_counter()
        keras.backend.clear_session()
        ours, reference = build_pair(name, args.image_size, classes)
        n = args.batch * args.steps
        x = rng.uniform(0, 255, (n, args.image_size, args.image_size, 3)).astype("float32")
        y = keras.utils.to_categorical(rng.integers(0, classes, n), classes) if ours.output_shape[-1] == classes else \
            rng.normal(size=(n,) + tuple(ours.output_shape[1:])).astype("float32")
        loss = "categorical_crossentropy" if ours.output_shape[-1] == classes else "mse"
        for model in (ours, reference):
            model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss=loss)
        train_rows.append(interleave(
            f"{name} train b{args.batch} {args.image_size}px",
            train_fn(ours, x, y, args.batch, args.steps), train_fn(reference, x, y, args.batch, args.steps),
            work=n, rounds=args.rounds, target=1.0,
        ))
        for batch in (1, min(32, n)):
            xb = x[:batch]
            infer_rows.append(interleave(
                f"{name} infer b{batch} {args.image_size}px", infer_fn(ours, xb), infer_fn(reference, xb),
                work=batch, rounds=args.rounds * (3 if batch == 1 else 1), target=1.0,
            ))
        print(f"{name}: {time.perf_counter() - started:.0f} s (builds, tracing, timed rounds)", flush=True)
    report("training throughput vs keras.applications (model.fit)", train_rows)
    report("inference throughput vs keras.applications (model call)", infer_rows)


if __name__ == "__main__":
    main()
