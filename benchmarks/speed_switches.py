"""What the speed switches of `model.fit` buy on this machine.

Each switch is timed against the plain setting in the same process,
interleaved (harness.py): XLA (`jit_compile=True`), `steps_per_execution`,
and bfloat16 mixed precision, on our ResNet-50 training on synthetic data.
The defaults of `training.fit` follow these numbers (docs/benchmarks.md).
`--fold` times inference instead: `kerasnets.fold_batch_norm(model)` against
the model it was made from, for ResNet-50 (batch 1 and 16) and
MobileNetV3-Large (batch 8). `--onednn` times training with oneDNN off
(`TF_ENABLE_ONEDNN_OPTS=0`) against TensorFlow's default, on. `--fused` times
Adam and SGD on TensorFlow's fused kernels (`training.optimizers.fuse_optimizer`,
what `training.fit` trains with) against Keras' own updates.

    python benchmarks/speed_switches.py --quick
    python benchmarks/speed_switches.py --fold
    python benchmarks/speed_switches.py --onednn --image-size 160
    python benchmarks/speed_switches.py --fused
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import interleave, report, training_timer  # noqa: E402


def make_trainer(name, image_size, classes, *, jit_compile=False, steps_per_execution=1, dtype_policy=None,
                 optimizer=None):
    import keras

    import kerasnets

    keras.config.set_dtype_policy(dtype_policy or "float32")
    model = kerasnets.build(name, input_shape=(image_size, image_size, 3), classes=classes)
    keras.config.set_dtype_policy("float32")
    model.compile(optimizer=optimizer or keras.optimizers.SGD(0.01, momentum=0.9),
                  loss="sparse_categorical_crossentropy", jit_compile=jit_compile,
                  steps_per_execution=steps_per_execution)
    return model


# (optimizer, model, image size, batch) of `--fused`: a small-image fine-tune (the tests' and notebooks'
# size) and ImageNet-sized training, where the convolutions' share of a step is larger
FUSED_CASES = (("adam", "resnet18", 32, 8), ("adam", "resnet50", 64, 8), ("adam", "resnet50", 224, 16),
               ("sgd", "resnet18", 32, 8))
OPTIMIZERS = {"adam": lambda keras: keras.optimizers.Adam(1e-3),
              "sgd": lambda keras: keras.optimizers.SGD(0.01, momentum=0.9)}


def fused_rows(args):
    """Keras' Adam and SGD on TensorFlow's fused kernels against Keras' own updates, per `FUSED_CASES` row."""
    import keras

    from training.optimizers import fuse_optimizer

    rows = []
    for optimizer, name, size, batch in FUSED_CASES:
        shape = argparse.Namespace(batch=batch, steps=args.steps, image_size=size)
        x, y = training_data(shape)
        fused = make_trainer(name, size, CLASSES, optimizer=OPTIMIZERS[optimizer](keras))
        assert fuse_optimizer(fused.optimizer)
        plain = make_trainer(name, size, CLASSES, optimizer=OPTIMIZERS[optimizer](keras))
        rows.append(interleave(f"{name} {size}px b{batch} fused {optimizer} vs Keras'", fit_round(fused, x, y, batch),
                               fit_round(plain, x, y, batch), work=len(x), rounds=args.rounds))
    return rows


def fold_rows(image_size, rounds, cases=(("resnet50", 1), ("resnet50", 16), ("mobilenet_v3_large", 8))):
    """Folded against unfolded `predict`, per (model, batch)."""
    import numpy as np

    import kerasnets

    rows = []
    for name, batch in cases:
        model = kerasnets.build(name, input_shape=(image_size, image_size, 3))
        folded = kerasnets.fold_batch_norm(model)
        x = np.random.default_rng(0).uniform(0, 255, (batch, image_size, image_size, 3)).astype("float32")
        rows.append(interleave(f"{name} b{batch} fold_batch_norm vs as built",
                               lambda m=folded: m.predict(x, batch_size=batch, verbose=0),
                               lambda m=model: m.predict(x, batch_size=batch, verbose=0), work=batch, rounds=rounds))
    return rows


CLASSES = 10  # of the synthetic training data


def training_data(args):
    import numpy as np

    n = args.batch * args.steps
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (n, args.image_size, args.image_size, 3)).astype("float32")
    return x, rng.integers(0, CLASSES, n)


def fit_round(model, x, y, batch):
    """A callable timing one epoch of `model.fit` over (x, y), training loop only (seconds)."""
    def run():
        timer = training_timer()
        model.fit(x, y, batch_size=batch, epochs=1, verbose=0, shuffle=False, callbacks=[timer])
        return timer.seconds

    return run


def serve_rounds(args):
    """Child process of `--onednn`: builds the trainer under its environment, times a round per stdin line."""
    x, y = training_data(args)
    run = fit_round(make_trainer(args.model, args.image_size, CLASSES), x, y, args.batch)
    for _ in sys.stdin:
        print("ROUND", run(), flush=True)


def onednn_row(args):
    """oneDNN off (TF_ENABLE_ONEDNN_OPTS=0) against on (TensorFlow's default on x86), one process each.

    The variable is read when TensorFlow starts, so each setting lives in a child of its own that
    stays up; the rounds alternate between the two as `interleave` does in one process.
    """
    import subprocess

    argv = ["--model", args.model, "--image-size", str(args.image_size), "--batch", str(args.batch),
            "--steps", str(args.steps)]
    children = {}
    for flag in ("0", "1"):
        env = dict(os.environ, TF_ENABLE_ONEDNN_OPTS=flag, TF_CPP_MIN_LOG_LEVEL="3")
        children[flag] = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--serve-rounds", *argv],
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def round_of(child):
        child.stdin.write("go\n")
        child.stdin.flush()
        for line in child.stdout:
            if line.startswith("ROUND "):
                return float(line.split()[1])
        raise RuntimeError("a benchmark child process ended early")

    try:
        return interleave(f"{args.model} TF_ENABLE_ONEDNN_OPTS=0 vs 1 (default)", lambda: round_of(children["0"]),
                          lambda: round_of(children["1"]), work=args.batch * args.steps, rounds=args.rounds)
    finally:
        for child in children.values():
            child.kill()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet50")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--fold", action="store_true", help="time fold_batch_norm at inference instead")
    parser.add_argument("--onednn", action="store_true",
                        help="time training with oneDNN off against on, in two child processes, instead")
    parser.add_argument("--fused", action="store_true",
                        help="time Adam and SGD on TensorFlow's fused kernels against Keras' own updates instead")
    parser.add_argument("--serve-rounds", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.batch, args.steps, args.rounds = 64, 8, 2, 2
    if args.serve_rounds:
        return serve_rounds(args)
    if args.fold:
        report(f"BatchNormalization folded into convolutions, inference {args.image_size}px (ours = folded)",
               fold_rows(args.image_size, max(args.rounds, 5)))
        return
    if args.fused:
        report("optimizer updates, training (ours = TensorFlow's fused kernels)", fused_rows(args))
        return
    if args.onednn:
        report(f"oneDNN, {args.model} training b{args.batch} {args.image_size}px (ours = oneDNN off)",
               [onednn_row(args)])
        return

    x, y = training_data(args)
    n = len(x)
    base = make_trainer(args.model, args.image_size, CLASSES)
    cases = {
        "jit_compile=True": make_trainer(args.model, args.image_size, CLASSES, jit_compile=True),
        f"steps_per_execution={args.steps}": make_trainer(args.model, args.image_size, CLASSES,
                                                           steps_per_execution=args.steps),
        "mixed_bfloat16": make_trainer(args.model, args.image_size, CLASSES, dtype_policy="mixed_bfloat16"),
    }
    rows = [
        interleave(f"{args.model} {label} vs default", fit_round(model, x, y, args.batch),
                   fit_round(base, x, y, args.batch), work=n, rounds=args.rounds)
        for label, model in cases.items()
    ]
    report(f"speed switches, {args.model} training b{args.batch} {args.image_size}px (ours = switch on)", rows)


if __name__ == "__main__":
    main()
