"""What the speed switches of `model.fit` buy on this machine.

Each switch is timed against the plain setting in the same process,
interleaved (harness.py): XLA (`jit_compile=True`), `steps_per_execution`,
and bfloat16 mixed precision, on our ResNet-50 training on synthetic data.
The defaults of `training.fit` follow these numbers (docs/benchmarks.md).

    python benchmarks/speed_switches.py --quick
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import interleave, report, training_timer  # noqa: E402


def make_trainer(name, image_size, classes, *, jit_compile=False, steps_per_execution=1, dtype_policy=None):
    import keras

    import kerasnets

    keras.config.set_dtype_policy(dtype_policy or "float32")
    model = kerasnets.build(name, input_shape=(image_size, image_size, 3), classes=classes)
    keras.config.set_dtype_policy("float32")
    model.compile(optimizer=keras.optimizers.SGD(0.01, momentum=0.9), loss="sparse_categorical_crossentropy",
                  jit_compile=jit_compile, steps_per_execution=steps_per_execution)
    return model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.batch, args.steps, args.rounds = 64, 8, 2, 2

    import numpy as np

    classes, n = 10, args.batch * args.steps
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, args.image_size, args.image_size, 3)).astype("float32")
    y = rng.integers(0, classes, n)

    def fit(model):
        def run():
            timer = training_timer()
            model.fit(x, y, batch_size=args.batch, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
            return timer.seconds

        return run

    base = make_trainer(args.model, args.image_size, classes)
    cases = {
        "jit_compile=True": make_trainer(args.model, args.image_size, classes, jit_compile=True),
        f"steps_per_execution={args.steps}": make_trainer(args.model, args.image_size, classes,
                                                           steps_per_execution=args.steps),
        "mixed_bfloat16": make_trainer(args.model, args.image_size, classes, dtype_policy="mixed_bfloat16"),
    }
    rows = [
        interleave(f"{args.model} {label} vs default", fit(model), fit(base), work=n, rounds=args.rounds)
        for label, model in cases.items()
    ]
    report(f"speed switches, {args.model} training b{args.batch} {args.image_size}px (ours = switch on)", rows)


if __name__ == "__main__":
    main()
