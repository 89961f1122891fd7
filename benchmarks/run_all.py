"""Runs every benchmark script and prints one summary of its ratios.

    python benchmarks/run_all.py --quick     # the CI-sized run: under 10 minutes on 2 cores
    python benchmarks/run_all.py --targets --check   # the runs the speed targets are judged by

Each script runs in its own process (fresh memory, fresh Keras session); their
`BENCH {json}` lines are collected into benchmarks/results-<date>.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from harness import missed_targets  # noqa: E402

# script -> extra arguments for --quick
SCRIPTS = {
    "model_throughput.py": ["--quick"],
    "speed_switches.py": ["--quick"],
    "build_time.py": ["--repeats", "1", "--warmup", "0"],
    "weight_import.py": ["--rounds", "2"],
    "input_pipeline.py": ["--quick"],
    "predictor_latency.py": ["--quick"],
    "onnx_export.py": ["--models", "vgg16", "--rounds", "3"],
    "build_with_weights.py": ["--models", "resnet50", "--rounds", "3"],
}

# script -> arguments for --targets: issue 19's "done when" run, every target with --check
TARGETS = {
    "model_throughput.py": ["--models", "resnet50", "densenet121", "--image-size", "160", "224", "--batch", "16",
                            "--steps", "3", "--rounds", "5", "--no-inference"],
    "weight_import.py": ["--formats", "mat", "--rounds", "5"],
    "input_pipeline.py": ["--rounds", "5"],
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--targets", action="store_true",
                        help="only the scripts with speed targets, at the sizes the targets name (about 20 min)")
    parser.add_argument("--only", nargs="*", help="script names to run")
    parser.add_argument("--check", action="store_true", help="exit with status 1 when any target is missed")
    args = parser.parse_args(argv)
    results, started = [], time.time()
    for script, quick_args in SCRIPTS.items():
        if (args.only and script not in args.only) or (args.targets and script not in TARGETS):
            continue
        path = os.path.join(HERE, script)
        if not os.path.exists(path):
            print(f"== {script}: not present, skipped")
            continue
        print(f"== {script}", flush=True)
        t0 = time.time()
        extra = TARGETS[script] if args.targets else quick_args if args.quick else []
        proc = subprocess.run([sys.executable, path] + extra, capture_output=True, text=True)
        for line in proc.stdout.splitlines():
            if line.startswith("BENCH "):
                results.append(json.loads(line[6:]))
            else:
                print("   " + line)
        if proc.returncode:
            print(f"   FAILED ({proc.returncode}): {proc.stderr.strip().splitlines()[-1:]}")
        print(f"   ({time.time() - t0:.0f} s)", flush=True)
    out = os.path.join(HERE, f"results-{time.strftime('%Y-%m-%d')}.json")
    with open(out, "w") as f:
        json.dump(results, f, indent=1)
    print(f"\n{len(results)} result tables in {time.time() - started:.0f} s -> {out}")
    missed = missed_targets(results)
    for benchmark, name in missed:
        print(f"MISSED: {benchmark}: {name}")
    if args.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
