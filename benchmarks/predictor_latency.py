"""Batch-1 latency of training.deploy.predictor vs the eager call and model.predict.

The predictor picks its path by measurement (tf.function with/without XLA,
onnxruntime on TensorFlow; jax.jit on JAX); this script times that choice
against `model(x)` (eager) and `model.predict(x)` in interleaved rounds
(harness.py). Target: predictor >= 3x the eager call's images/s.

    python benchmarks/predictor_latency.py                  # ResNet50, MobileNetV3, VGG16 at 224
    python benchmarks/predictor_latency.py --quick          # 96x96, fewer rounds
    KERAS_BACKEND=jax python benchmarks/predictor_latency.py --models resnet50
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import interleave, report  # noqa: E402

MODELS = {"resnet50": {}, "mobilenet_v3_large": {}, "vgg16": {}}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--calls", type=int, default=5, help="batch-1 calls per timed side per round")
    parser.add_argument("--quick", action="store_true", help="96x96 inputs (VGG16 without its top), 3 rounds")
    args = parser.parse_args(argv)
    if args.quick:
        args.image_size, args.rounds = 96, 3

    import numpy as np

    import kerasnets
    from training.deploy import predictor

    comparisons, choices = [], {}
    for name in args.models:
        options = dict(MODELS.get(name, {}))
        if args.image_size != 224 or name.startswith("vgg") and args.quick:
            options.update(input_shape=(args.image_size, args.image_size, 3))
            if name.startswith(("vgg", "alexnet")):
                options["include_top"] = False  # flattening head pinned to 224
        model = kerasnets.build(name, **options)
        x = np.random.default_rng(0).uniform(-1, 1, (1,) + tuple(model.inputs[0].shape[1:])).astype("float32")
        fast = predictor(model)
        choices[name] = {"choice": fast.choice, "timings_ms": {k: 1e3 * v for k, v in fast.timings.items()},
                         "rejected": fast.rejected}
        print(f"{name}: predictor chose {fast.choice}; batch-1 ms {choices[name]['timings_ms']}", flush=True)

        def run(fn):
            def calls():
                for _ in range(args.calls):
                    fn(x)
            return calls

        comparisons.append(interleave(f"{name} predictor vs eager", run(fast), run(lambda v: model(v, training=False)),
                                      work=args.calls, rounds=args.rounds, unit="images/s", target=3.0))
        comparisons.append(interleave(f"{name} predictor vs model.predict", run(fast),
                                      run(lambda v: model.predict(v, verbose=0)), work=args.calls,
                                      rounds=args.rounds, unit="images/s"))
    report("predictor batch-1 latency", comparisons, extra={"choices": choices, "image_size": args.image_size})
    return 0


if __name__ == "__main__":
    sys.exit(main())
