"""Build time of every registered builder, and how it grows with depth.

Target (issue 9): each builder under 3 s on this CPU. Build time is measured
as the median of `--repeats` fresh builds after one warm-up build (the first
build of a session also pays for importing and tracing Keras internals).

    python benchmarks/build_time.py            # every model
    python benchmarks/build_time.py --family resnet --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import environment  # noqa: E402

TARGET_SECONDS = 3.0
DEPTH_SERIES = {
    "resnet": ["resnet18", "resnet34", "resnet50", "resnet101", "resnet152"],
    "densenet": ["densenet121", "densenet169", "densenet201"],
}


def time_builds(name, repeats, warmup=1):
    import keras

    import kerasnets

    times = []
    for _ in range(repeats + warmup):
        keras.backend.clear_session()
        start = time.perf_counter()
        model = kerasnets.build(name)
        times.append(time.perf_counter() - start)
        layers = len(model.layers)
        del model
    timed = times[warmup:]
    return statistics.median(timed), min(timed), max(timed), layers


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--family")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", nargs="*")
    parser.add_argument("--warmup", type=int, default=1,
                        help="untimed builds of each model first (0: one session warm-up build only; a "
                             "family's first build then also pays for its layer classes, so times err high)")
    args = parser.parse_args(argv)

    import kerasnets

    if args.warmup == 0:
        time_builds("lenet5", 1)  # imports and traces Keras' own internals once

    names = args.models or kerasnets.available_models(family=args.family)
    rows = []
    print(f"{'model':28s} {'median s':>9s} {'min':>7s} {'max':>7s} {'layers':>7s}  under {TARGET_SECONDS:.0f} s")
    for name in names:
        median, low, high, layers = time_builds(name, args.repeats, args.warmup)
        ok = median < TARGET_SECONDS
        rows.append({"model": name, "median_s": median, "min_s": low, "max_s": high, "layers": layers, "meets_target": ok})
        print(f"{name:28s} {median:9.2f} {low:7.2f} {high:7.2f} {layers:7d}  {'yes' if ok else 'NO'}", flush=True)
    by_name = {r["model"]: r for r in rows}
    scaling = {}
    for family, series in DEPTH_SERIES.items():
        present = [n for n in series if n in by_name]
        if len(present) > 1:
            first = by_name[present[0]]
            scaling[family] = [
                {"model": n, "layers_ratio": by_name[n]["layers"] / first["layers"],
                 "time_ratio": by_name[n]["median_s"] / first["median_s"]} for n in present
            ]
            print(f"\n{family}: build time grows with depth as " + ", ".join(
                f"{s['model']} x{s['time_ratio']:.2f} (layers x{s['layers_ratio']:.2f})" for s in scaling[family]))
    print("BENCH " + json.dumps({"benchmark": "build time", "environment": environment(), "results": rows,
                                 "scaling": scaling, "target_seconds": TARGET_SECONDS}))


if __name__ == "__main__":
    main()
