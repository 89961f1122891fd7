"""Building a model with its weights: `kerasnets.build(name, weights=file)` against keras.applications.

A builder given weights creates its variables without running Keras' initialisers (the file
gives every value; `kerasnets.registry.initialisers_skipped`), where keras.applications draws
every random value first and then loads the file over them. Both read the same Keras 3
`.weights.h5`, which keras.applications saved; kerasnets is built with the options of the
matching `<model>.keras` preset. Each timed build starts from `keras.backend.clear_session()`,
as a fresh process would (TensorFlow's cache of per-variable kernels is emptied). Before
timing, the two models' logits (no softmax) on one image are compared (max |diff| / max |ref|).

    python benchmarks/build_with_weights.py --models resnet50 densenet121 --rounds 5
"""

from __future__ import annotations

import argparse
import gc
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import interleave, report  # noqa: E402

# registry name -> (keras.applications class, its preprocessing module)
CASES = {
    "vgg16": ("VGG16", "vgg16"),
    "resnet50": ("ResNet50", "resnet"),
    "resnet152": ("ResNet152", "resnet"),
    "densenet121": ("DenseNet121", "densenet"),
    "mobilenet_v3_large": ("MobileNetV3Large", "mobilenet_v3"),
}


def timed_build(build):
    """A zero-argument callable: clears Keras' session, then returns the seconds `build()` took."""
    import keras

    def run():
        keras.backend.clear_session(free_memory=False)
        gc.collect()
        start = time.perf_counter()
        build()
        return time.perf_counter() - start

    return run


def case(name, folder):
    """(ours, reference, relative output difference) for model `name`."""
    import keras
    import numpy as np

    import kerasnets
    from kerasnets import presets

    cls, module = CASES[name]
    reference_build = getattr(keras.applications, cls)
    path = os.path.join(folder, f"{name}.weights.h5")
    reference_build(weights=None).save_weights(path)
    options = presets.get_preset(f"{name}.keras").options

    def ours():
        return kerasnets.build(name, weights=path, classifier_activation=None, **options)

    def reference():
        return reference_build(weights=path, classifier_activation=None)

    x = np.random.default_rng(0).uniform(0, 255, (1, 224, 224, 3)).astype("float32")
    x = getattr(keras.applications, module).preprocess_input(x)
    theirs = keras.ops.convert_to_numpy(reference()(x, training=False))
    mine = keras.ops.convert_to_numpy(ours()(x, training=False))
    difference = float(np.abs(mine - theirs).max() / np.abs(theirs).max())
    return ours, reference, difference


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(CASES), choices=list(CASES))
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    rows, differences = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            ours, reference, differences[name] = case(name, folder)
            print(f"{name}: outputs differ by {differences[name]:.1e} of the largest", flush=True)
            rows.append(interleave(f"{name} build(weights=file)", timed_build(ours), timed_build(reference),
                                   work=1, rounds=args.rounds, unit="builds/s"))
    return report("kerasnets.build(weights=) vs keras.applications(weights=), same .weights.h5", rows,
                  extra={"relative_output_difference": differences})


if __name__ == "__main__":
    main()
