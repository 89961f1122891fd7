"""ONNX export time: training.deploy's conversion against keras' `model.export(format="onnx")`.

Both go through tf2onnx. Keras' call lets tf2onnx deep-copy the whole graph, weights
included, before each optimizer pass (so that a failing pass can be skipped);
training.deploy runs the passes on the graph itself and converts again the copying way
only if a pass fails. Both sides write the same nodes (checked here: the op types in
order and onnxruntime's outputs on one batch), in interleaved rounds (harness.py).

    python benchmarks/onnx_export.py                    # ResNet-50 (10 classes, 32x32) and VGG16
    python benchmarks/onnx_export.py --models resnet50 --rounds 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from harness import interleave, report  # noqa: E402

MODELS = {
    "resnet50": dict(classes=10, input_shape=(32, 32, 3)),
    "vgg16": dict(include_top=False, input_shape=(32, 32, 3)),
}


def same_graph(path_a, path_b, x):
    """(same op types in order, max |diff| of onnxruntime's outputs) of two ONNX files."""
    import numpy as np
    import onnx

    from training.deploy import load_runtime

    ops = [[node.op_type for node in onnx.load(path).graph.node] for path in (path_a, path_b)]
    outputs = [load_runtime(path, "onnx")(x) for path in (path_a, path_b)]
    return ops[0] == ops[1], float(np.abs(outputs[0] - outputs[1]).max())


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=sorted(MODELS))
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)

    import numpy as np

    import kerasnets
    from training.deploy import _keras_export

    comparisons, checks = [], {}
    with tempfile.TemporaryDirectory() as folder:
        for name in args.models:
            model = kerasnets.build(name, **MODELS[name])
            x = np.random.default_rng(0).uniform(0, 255, (2,) + tuple(model.inputs[0].shape[1:])).astype("float32")
            model(x)
            ours_path, keras_path = os.path.join(folder, "ours.onnx"), os.path.join(folder, "keras.onnx")

            def ours():
                _keras_export(model, ours_path, "onnx")

            def reference():
                model.export(keras_path, format="onnx", verbose=False)

            comparisons.append(interleave(f"{name} ONNX export", ours, reference, work=1, rounds=args.rounds,
                                          warmup=0, unit="exports/s"))
            same_ops, worst = same_graph(ours_path, keras_path, x)
            checks[name] = {"same_op_types": same_ops, "max_abs_output_diff": worst}
            print(f"{name}: same op types {same_ops}, max |output diff| {worst:.3g}", flush=True)
    report("ONNX export: training.deploy vs keras model.export", comparisons, extra={"checks": checks})
    return 0


if __name__ == "__main__":
    sys.exit(main())
