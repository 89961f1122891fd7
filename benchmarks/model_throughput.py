"""Training and inference throughput of our builders against their keras.applications twins.

Both models of a pair are built with identical settings (our builder in its
keras.applications style, same input size, same optimizer, same batch) and
timed interleaved in one process (see harness.py). Targets (issue 19):
training >= 1.10x in float32, >= 1.5x with `precision="auto"` where that
picks a mixed policy (against keras' float32), inference >= 1.0x. Each
training figure is also given as FLOP/s (3x the forward convolutions and
dense layers per image) and as a share of this machine's measured matmul peak.

    python benchmarks/model_throughput.py --quick
    python benchmarks/model_throughput.py --models resnet50 densenet121 --image-size 160 224 --batch 16 --check
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (add_check_flag, finish, forward_flops, interleave, matmul_peak, report,  # noqa: E402
                     training_timer)

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
        timer = training_timer()
        model.fit(x, y, batch_size=batch, epochs=1, steps_per_epoch=steps, verbose=0, shuffle=False,
                  callbacks=[timer])
        return timer.seconds

    return run


def infer_fn(model, x):
    def run():
        model(x, training=False)

    return run


def build_ours_under(policy, name, image_size, classes):
    """Our model built under a dtype policy, its classifier in float32 (as `training.fit` does)."""
    from training.precision import build_under

    return build_under(policy, lambda: build_pair(name, image_size, classes)[0])


def gpu_section(args):
    """ResNet-50 training img/s under mixed precision on a GPU, or why it was not measured."""
    from training.precision import choose_precision, gpu_capabilities

    import keras

    gpus = gpu_capabilities()
    if not gpus:
        print(f"\nGPU: not measured (no GPU visible to the {keras.backend.backend()} backend on this machine)")
        return {"gpu": "not measured: no GPU visible to the backend"}
    import numpy as np

    policy, reason = choose_precision("auto")
    model = build_ours_under(policy, "resnet50", 224, 1000)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.9), loss="sparse_categorical_crossentropy")
    batch, steps = args.gpu_batch, 10
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 255, (batch * steps, 224, 224, 3)).astype("float32")
    y = rng.integers(0, 1000, batch * steps)
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)  # tracing
    start = time.perf_counter()
    model.fit(x, y, batch_size=batch, epochs=1, verbose=0)
    rate = batch * steps / (time.perf_counter() - start)
    print(f"\nGPU: resnet50 training b{batch} 224px, {policy} ({reason}): {rate:.0f} images/s")
    return {"gpu": {"model": "resnet50", "batch": batch, "policy": policy, "images_per_s": rate}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(PAIRS))
    parser.add_argument("--image-size", type=int, nargs="+", default=[224])
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4, help="training steps per timed round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--no-precision", action="store_true", help="skip the precision='auto' training rows")
    parser.add_argument("--no-inference", action="store_true", help="training rows only")
    parser.add_argument("--gpu-batch", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="small inputs, few rounds (minutes on 2 cores)")
    add_check_flag(parser)
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.batch, args.steps, args.rounds = [96], 8, 2, 2

    import keras
    import numpy as np

    import kerasnets
    from training.precision import choose_precision

    policy, reason = choose_precision("auto")
    peaks = {"float32": matmul_peak("float32"), "bfloat16": matmul_peak("bfloat16")}
    print(f"matmul peak: float32 {peaks['float32'] / 1e9:.1f} GFLOP/s, bfloat16 {peaks['bfloat16'] / 1e9:.1f} GFLOP/s;"
          f" precision='auto' here: {policy} ({reason})")
    classes = 10
    rng = np.random.default_rng(0)
    train_rows, infer_rows, flops = [], [], {}
    for name in args.models:
        if name not in kerasnets.available_models():
            print(f"skip {name}: not registered yet")
            continue
        for size in args.image_size:
            started = time.perf_counter()
            keras.backend.clear_session()
            ours, reference = build_pair(name, size, classes)
            n = args.batch * args.steps
            x = rng.uniform(0, 255, (n, size, size, 3)).astype("float32")
            head = ours.output_shape[-1] == classes  # VGG away from 224 px: pooled features, an MSE target
            y = keras.utils.to_categorical(rng.integers(0, classes, n), classes) if head else \
                rng.normal(size=(n,) + tuple(ours.output_shape[1:])).astype("float32")
            sides = {"float32": ours}
            if policy != "float32" and not args.no_precision:
                sides[policy] = build_ours_under(policy, name, size, classes)
            for model in (*sides.values(), reference):
                model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9),
                              loss="categorical_crossentropy" if head else "mse")
            train_flops = 3 * forward_flops(ours)
            for side, model in sides.items():
                label = f"{name} train b{args.batch} {size}px" + ("" if side == "float32" else f" {side} (auto)")
                row = interleave(label, train_fn(model, x, y, args.batch, args.steps),
                                 train_fn(reference, x, y, args.batch, args.steps), work=n, rounds=args.rounds,
                                 target=1.10 if side == "float32" else 1.5)
                train_rows.append(row)
                rate = row.summary()["ours_median"] * train_flops
                peak = peaks["bfloat16" if "bfloat16" in side else "float32"]
                flops[label] = {"gflops_per_image": train_flops / 1e9, "gflop_per_s": rate / 1e9,
                                "share_of_peak": rate / peak,
                                "reference_share_of_float32_peak": row.summary()["reference_median"] * train_flops
                                / peaks["float32"]}
            for batch in () if args.no_inference else (1, min(32, n)):
                xb = x[:batch]
                infer_rows.append(interleave(
                    f"{name} infer b{batch} {size}px", infer_fn(ours, xb), infer_fn(reference, xb),
                    work=batch, rounds=args.rounds * (3 if batch == 1 else 1), target=1.0,
                ))
            print(f"{name} {size}px: {time.perf_counter() - started:.0f} s (builds, tracing, timed rounds)", flush=True)
    gpu = gpu_section(args)
    payloads = [report("training throughput vs keras.applications (model.fit)", train_rows,
                       extra={"flops": flops, "matmul_peak": peaks, "auto_precision": [policy, reason],
                              **({} if infer_rows else gpu)})]
    print(f"\n{'case':48s} {'GFLOP/img':>10s} {'GFLOP/s':>9s} {'share of peak':>14s} {'keras share':>12s}")
    for label, row in flops.items():
        print(f"{label:48s} {row['gflops_per_image']:10.2f} {row['gflop_per_s']:9.1f} {row['share_of_peak']:14.1%}"
              f" {row['reference_share_of_float32_peak']:12.1%}")
    if infer_rows:  # with --no-inference the GPU line rides on the training table
        payloads.append(report("inference throughput vs keras.applications (model call)", infer_rows, extra=gpu))
    finish(payloads, args.check)


if __name__ == "__main__":
    main()
