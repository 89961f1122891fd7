"""Interleaved A/B timing: the only kind of speed claim this project makes.

The machines are shared and noisy, so a benchmark never reports a lone time:
both sides run in the same process, alternating (A B, B A, A B, ...), and
the result is the per-round ratio with its min / median / max. Each script
prints a table and one JSON line (prefixed `BENCH `) for `run_all.py` to
collect.
"""

from __future__ import annotations

import dataclasses
import json
import os
import platform
import statistics
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


@dataclasses.dataclass
class Comparison:
    """Throughputs of `ours` and `reference` over interleaved rounds."""

    name: str
    unit: str
    ours: list
    reference: list
    target: float | None = None

    @property
    def ratios(self):
        return [o / r for o, r in zip(self.ours, self.reference)]

    def summary(self):
        ratios = self.ratios
        return {
            "name": self.name,
            "unit": self.unit,
            "ours_median": statistics.median(self.ours),
            "reference_median": statistics.median(self.reference),
            "ratio_min": min(ratios),
            "ratio_median": statistics.median(ratios),
            "ratio_max": max(ratios),
            "rounds": len(ratios),
            "target": self.target,
            "meets_target": None if self.target is None else statistics.median(ratios) >= self.target,
        }


def throughput(fn, work):
    """Runs `fn()` once and returns `work` units per second.

    A `fn` that times its own work returns the seconds it took (a float); the call's wall time is used
    otherwise.
    """
    start = time.perf_counter()
    seconds = fn()
    if not isinstance(seconds, float):
        seconds = time.perf_counter() - start
    return work / seconds


def training_timer():
    """A callback that times `fit`'s training loop, from its start to its last step's end.

    Why: on TensorFlow, `fit` on numpy arrays returns up to ~1.7 s after its last step, while tf.data's
    autotuning of the finished epoch winds down (measured 2026-12-04: ResNet-50's three steps end 3.4-3.8 s
    into the call, and the call returns at 5.15 s or 10.3 s whichever model it trains; a dataset with
    autotuning off shows no wait). The wait comes once per `fit` call, not per step, and alike for both
    models: timing whole calls pulled every ratio towards 1.
    """
    import keras

    class TrainingTime(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start = time.perf_counter()

        def on_train_end(self, logs=None):
            self.seconds = time.perf_counter() - self.start

    return TrainingTime()


def interleave(name, ours, reference, *, work, rounds=5, warmup=1, unit="images/s", target=None):
    """Times `ours()` against `reference()` in alternating order; returns a `Comparison`.

    Args:
        name: row label.
        ours, reference: zero-argument callables doing `work` units each.
        work: units per call (images, bytes, ...), for the throughput.
        rounds: measured rounds; each runs both sides once, order alternating.
        warmup: untimed calls of each side first (tracing, caches).
        unit: label of the throughput.
        target: the ratio ours/reference the issue asks for, if any.
    """
    for _ in range(warmup):
        ours()
        reference()
    a, b = [], []
    for i in range(rounds):
        if i % 2 == 0:
            a.append(throughput(ours, work))
            b.append(throughput(reference, work))
        else:
            b.append(throughput(reference, work))
            a.append(throughput(ours, work))
    return Comparison(name=name, unit=unit, ours=a, reference=b, target=target)


def environment():
    import keras
    import numpy

    info = {
        "date": time.strftime("%Y-%m-%d"),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "keras": keras.__version__,
        "backend": keras.backend.backend(),
        "numpy": numpy.__version__,
    }
    try:
        import tensorflow as tf

        info["tensorflow"] = tf.__version__
    except ImportError:
        pass
    return info


def report(title, comparisons, extra=None):
    """Prints the ratio table and the `BENCH {json}` line."""
    rows = [c.summary() for c in comparisons]
    print(f"\n{title}")
    header = f"{'case':40s} {'ours':>12s} {'reference':>12s} {'ratio min/median/max':>24s} {'target':>7s}"
    print(header)
    print("-" * len(header))
    for row in rows:
        ratio = f"{row['ratio_min']:.2f}/{row['ratio_median']:.2f}/{row['ratio_max']:.2f}"
        target = "" if row["target"] is None else (">=%.2f" % row["target"])
        print(f"{row['name']:40s} {row['ours_median']:12.2f} {row['reference_median']:12.2f} {ratio:>24s} {target:>7s}"
              f"  {row['unit']}")
    payload = {"benchmark": title, "environment": environment(), "results": rows}
    if extra:
        payload.update(extra)
    print("BENCH " + json.dumps(payload))
    sys.stdout.flush()
    return payload


# ------------------------------------------------------------------ targets, FLOPs, peaks
def add_check_flag(parser):
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a ratio misses its target (the issue's numbers)")


def missed_targets(payloads):
    """Rows of `BENCH` payloads whose median missed their target: [(benchmark, row name)]."""
    missed = []
    for payload in payloads:
        for row in payload.get("results", []):
            verdict = row.get("meets_target", row.get("meets_targets"))
            if verdict is False:
                missed.append((payload.get("benchmark", "?"), row.get("name", row.get("format", "?"))))
    return missed


def finish(payloads, check):
    """With `check`, exits 1 naming every missed target; otherwise returns."""
    missed = missed_targets(payloads)
    if check and missed:
        for benchmark, name in missed:
            print(f"MISSED: {benchmark}: {name}")
        sys.exit(1)


def forward_flops(model):
    """Multiply-adds x 2 of one image's forward pass through the convolutions and dense layers.

    Counted from the layers' shapes (batch axis excluded); normalisations, activations and pooling are
    left out (a few percent of a CNN's arithmetic). Training costs about 3x this (forward, and the
    gradients with respect to the inputs and to the weights).
    """
    import math

    import keras

    from weights_io.assign import weighted_layers

    total = 0

    def size(shape):
        return math.prod(int(d) for d in shape[1:] if d is not None)

    for layer in weighted_layers(model):
        if not hasattr(layer, "output"):
            continue
        try:
            out_shape, in_shape = layer.output.shape, layer.input.shape
        except (AttributeError, ValueError):
            continue
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            kh, kw = layer.kernel_size
            total += 2 * size(out_shape) * kh * kw
        elif isinstance(layer, keras.layers.Conv2DTranspose):
            kh, kw = layer.kernel_size
            total += 2 * size(in_shape) * kh * kw * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            kh, kw = layer.kernel_size
            total += 2 * size(out_shape) * kh * kw * int(in_shape[-1]) // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * size(out_shape) * int(in_shape[-1])
    return total


def matmul_peak(dtype="float32", n=2048, repeats=5):
    """This machine's measured matrix-multiply throughput in FLOP/s (the best of `repeats`), through Keras."""
    import keras
    import numpy as np

    a = keras.ops.convert_to_tensor(np.random.default_rng(0).standard_normal((n, n)), dtype)
    best = 0.0
    for i in range(repeats + 1):
        start = time.perf_counter()
        float(keras.ops.convert_to_numpy(keras.ops.sum(keras.ops.cast(keras.ops.matmul(a, a), "float32"))))
        elapsed = time.perf_counter() - start
        if i:  # the first call warms up
            best = max(best, 2 * n**3 / elapsed)
    return best
