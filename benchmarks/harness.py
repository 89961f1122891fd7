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
    """Runs `fn()` once and returns `work` units per second."""
    start = time.perf_counter()
    fn()
    return work / (time.perf_counter() - start)


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
