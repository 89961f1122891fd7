"""Time and peak memory of importing a full-size VGG16 (528 MB) or ResNet-50 (98 MB) from each format.

Each measurement runs in a fresh subprocess. A load first builds the model
(`build_vgg16()`; `--model resnet50`: `build_resnet50()`), so that its own weights
are not counted, then resets the kernel's peak-RSS mark (/proc/self/clear_refs)
and loads the file with weights_io; the reference reads the file's bytes once. Reported, interleaved over rounds:

* time ratio  = load time / read-bytes time          (target <= 2)
* memory ratio = peak RSS growth during load / file size (target <= 2)

    python benchmarks/weight_import.py --formats npy h5 --rounds 3
    python benchmarks/weight_import.py --model resnet50 --formats tf-ckpt safetensors

`safetensors`, `tf-ckpt` (a V2 checkpoint TensorFlow's SaveV2 writes under
the variables' Keras paths, loaded through its data shard) and `caffemodel`
(VGG_ILSVRC_16_layers as Caffe stores it) load the same VGG16. ResNet-50 files come
in the formats whose writers are not VGG's own: h5, tf-ckpt, and pth and safetensors in
torchvision's (= timm's) names.
`--formats tf-ckpt-read` times reading a ResNet-50-sized V2 checkpoint alone
(`read_weights`, no model): in this process (`trusted=True`) and through the
reader process, whose own peak RSS growth is reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(1, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the checkout: tests.fuzz

from harness import add_check_flag, environment, finish  # noqa: E402

CHILD = r"""
import os, sys, time
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
mode, path = sys.argv[1:3]
def rss(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
if mode == "read":  # the reference needs no model (and no TensorFlow start-up: quicker runs)
    start = time.perf_counter()
    with open(path, "rb") as f:
        data = f.read()
    print("RESULT", time.perf_counter() - start, len(data))
    sys.exit()
import kerasnets
model = kerasnets.build(sys.argv[3])
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = rss("VmRSS:")
start = time.perf_counter()
from weights_io import load_weights
load_weights(model, path)
elapsed = time.perf_counter() - start
print("RESULT", elapsed, rss("VmHWM:") - base)
"""


def write_npy(path, model):
    import numpy as np

    params = {}
    for b in range(1, 6):
        for c in range(1, 5):
            name = f"block{b}_conv{c}"
            if any(layer.name == name for layer in model.layers):
                layer = model.get_layer(name)
                params[f"conv{b}_{c}"] = [layer.kernel.numpy(), layer.bias.numpy()]
    for ours, theirs in (("fc1", "fc6"), ("fc2", "fc7"), ("predictions", "fc8")):
        layer = model.get_layer(ours)
        params[theirs] = [layer.kernel.numpy(), layer.bias.numpy()]
    array = np.empty((), dtype=object)
    array[()] = params
    np.save(path, array, allow_pickle=True)


def write_h5(path, model):
    model.save_weights(path)


def write_pth(path, model):
    from weights_io import save_torch_state_dict

    save_torch_state_dict(model, path, layout=MODELS[model.name]["torch_layout"])


def write_mat(path, model):
    """A MatConvNet SimpleNN file (MATLAB v5, what vl_simplenn models ship as): layers{i}.weights = {W, b}."""
    import numpy as np
    import scipy.io

    layers = []
    for b in range(1, 6):
        for c in range(1, 5):
            name = f"block{b}_conv{c}"
            if any(layer.name == name for layer in model.layers):
                layer = model.get_layer(name)
                layers.append((f"conv{b}_{c}", layer.kernel.numpy(), layer.bias.numpy()))
    fc6 = model.get_layer("fc1")
    layers.append(("fc6", fc6.kernel.numpy().reshape(7, 7, 512, -1), fc6.bias.numpy()))
    for ours, theirs in (("fc2", "fc7"), ("predictions", "fc8")):
        layer = model.get_layer(ours)
        layers.append((theirs, layer.kernel.numpy()[None, None], layer.bias.numpy()))
    cells = np.empty((1, len(layers)), dtype=object)
    for i, (name, kernel, bias) in enumerate(layers):
        weights = np.empty((1, 2), dtype=object)
        weights[0, 0], weights[0, 1] = kernel, bias[:, None]
        cells[0, i] = {"type": "conv", "name": name, "weights": weights, "stride": np.array([[1, 1]]),
                       "pad": np.array([[1, 1, 1, 1]]) if name.startswith("conv") else np.array([[0, 0, 0, 0]])}
    scipy.io.savemat(path, {"layers": cells, "meta": {"normalization": {"averageImage": np.zeros((1, 1, 3))}}})


def write_safetensors(path, model):
    from weights_io import save_safetensors

    save_safetensors(model, path, layout=MODELS[model.name]["torch_layout"])


def write_tf_ckpt(path, model):
    """A V2 checkpoint of the model's variables under their Keras paths (block1_conv1/kernel), written by
    TensorFlow; `path` is its data shard, which `load_weights` accepts for the whole checkpoint."""
    import tensorflow as tf

    prefix = path[: path.index(".data-")]
    names = [v.path for v in model.weights]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[v.value for v in model.weights])


def write_caffemodel(path, model):
    """VGG_ILSVRC_16_layers as Caffe stores it (a V2 NetParameter: conv1_1..fc8, OIHW kernels, fc6 over
    the CHW flattening), encoded here from caffe.proto's field numbers: layer 100; name 1, type 2,
    blobs 7; BlobProto shape 7 (BlobShape dim 1, packed), data 5 (packed float)."""
    import numpy as np

    from tests.fuzz.corpus import pb_field as _pb_bytes, pb_varint as _pb_varint  # the tests' protobuf encoder

    def blob(array):
        shape = _pb_bytes(1, b"".join(_pb_varint(d) for d in array.shape))
        return _pb_bytes(7, shape) + _pb_bytes(5, np.ascontiguousarray(array, "<f4").tobytes())

    with open(path, "wb") as f:
        f.write(_pb_bytes(1, b"VGG_ILSVRC_16_layers"))
        for b in range(1, 6):
            for c in range(1, 4):
                name = f"block{b}_conv{c}"
                if any(layer.name == name for layer in model.layers):
                    layer = model.get_layer(name)
                    kernel = layer.kernel.numpy().transpose(3, 2, 0, 1)  # HWIO -> OIHW
                    body = _pb_bytes(1, f"conv{b}_{c}".encode()) + _pb_bytes(2, b"Convolution")
                    f.write(_pb_bytes(100, body + _pb_bytes(7, blob(kernel)) + _pb_bytes(7, blob(layer.bias.numpy()))))
        for ours, theirs in (("fc1", "fc6"), ("fc2", "fc7"), ("predictions", "fc8")):
            layer = model.get_layer(ours)
            kernel = layer.kernel.numpy()
            if ours == "fc1":  # our rows run over H, W, C; Caffe's over C, H, W
                kernel = kernel.reshape(7, 7, 512, -1).transpose(2, 0, 1, 3).reshape(25088, -1)
            body = _pb_bytes(1, theirs.encode()) + _pb_bytes(2, b"InnerProduct")
            f.write(_pb_bytes(100, body + _pb_bytes(7, blob(kernel.T)) + _pb_bytes(7, blob(layer.bias.numpy()))))


# The formats whose writers above take any model; the others write VGG16's publisher layouts.
ANY_MODEL = ("pth", "h5", "safetensors", "tf-ckpt")
# --model: the registry name (also the built model's name), its title in the output, and the publisher
# names its .pth and .safetensors files are written in
MODELS = {"vgg16": {"title": "VGG16", "torch_layout": "torchvision-vgg"},
          "resnet50": {"title": "ResNet-50", "torch_layout": "torchvision-resnet"}}
WRITERS = {"npy": (".npy", write_npy), "pth": (".pth", write_pth), "mat": (".mat", write_mat),
           "h5": (".weights.h5", write_h5), "safetensors": (".safetensors", write_safetensors),
           "tf-ckpt": (".ckpt.data-00000-of-00001", write_tf_ckpt), "caffemodel": (".caffemodel", write_caffemodel)}


TF_CHILD = r"""
import os, sys, time
mode, path = sys.argv[1], sys.argv[2]
def rss(field, pid="self"):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1]) * 1024
from weights_io.readers import read_weights
from weights_io import sandbox
trusted = mode == "tf-trusted"
if not trusted:  # start the reader process first: its start-up is not the file's cost
    read_weights(sys.argv[3])
    worker = sandbox._WORKER.proc.pid
    with open(f"/proc/{worker}/clear_refs", "w") as f:
        f.write("5")
    worker_base = rss("VmRSS:", worker)
with open("/proc/self/clear_refs", "w") as f:
    f.write("5")
base = rss("VmRSS:")
start = time.perf_counter()
result = read_weights(path, trusted=trusted)
for array in result.flat().values():
    array.sum()
elapsed = time.perf_counter() - start
extra = 0 if trusted else rss("VmHWM:", worker) - worker_base
print("RESULT", elapsed, rss("VmHWM:") - base, extra)
"""


def write_tf_checkpoint(directory):
    """A V2 checkpoint of keras ResNet50(weights=None)'s variables (~98 MB); returns its prefix and data size."""
    import keras
    import tensorflow as tf

    model = keras.applications.ResNet50(weights=None)
    prefix = os.path.join(directory, "resnet50", "model.ckpt")
    os.makedirs(os.path.dirname(prefix))
    names = [v.path for v in model.weights]
    tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[""] * len(names),
                      tensors=[v.value for v in model.weights])
    return prefix


def bench_tf_checkpoint(rounds, workdir):
    """Rows for the V2 checkpoint: in-process and sandboxed read vs the raw read of the shard's bytes."""
    import numpy as np

    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as tmp:
        call_in_child("write_tf_checkpoint", tmp)
        prefix = os.path.join(tmp, "resnet50", "model.ckpt")
        warm = os.path.join(tmp, "warm.npy")
        obj = np.empty((), dtype=object)
        obj[()] = {"a": [np.zeros(3, "float32")]}
        np.save(warm, obj, allow_pickle=True)
        shard = prefix + ".data-00000-of-00001"
        size = os.path.getsize(shard) + os.path.getsize(prefix + ".index")
        with open(shard, "rb") as f:
            while f.read(1 << 24):
                pass
        for mode in ("tf-trusted", "tf-sandbox"):
            reads, loads = [], []
            for i in range(rounds):
                for step in (("read", "load") if i % 2 == 0 else ("load", "read")):
                    if step == "read":
                        reads.append(run_child("read", shard))
                    else:
                        out = subprocess.run([sys.executable, "-c", TF_CHILD, mode, prefix, warm],
                                             capture_output=True, text=True, check=True)
                        line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT"))
                        _, seconds, peak, worker = line.split()
                        loads.append((float(seconds), int(peak), int(worker)))
            ratios = [l[0] / r[0] for l, r in zip(loads, reads)]
            mem = [l[1] / size for l in loads]
            worker_mem = [l[2] / size for l in loads]
            row = {"format": mode, "file_mb": size / 2**20, "rounds": rounds,
                   "read_s": statistics.median(r[0] for r in reads), "load_s": statistics.median(l[0] for l in loads),
                   "time_ratio_min": min(ratios), "time_ratio_median": statistics.median(ratios),
                   "time_ratio_max": max(ratios), "peak_rss_ratio_median": statistics.median(mem),
                   "peak_rss_ratio_max": max(mem), "worker_peak_rss_ratio_max": max(worker_mem)}
            rows.append(row)
            print(f"{mode:10s} {row['file_mb']:6.0f} MB  read {row['read_s']:.3f}s  load {row['load_s']:.3f}s  "
                  f"time x{row['time_ratio_min']:.2f}/{row['time_ratio_median']:.2f}/{row['time_ratio_max']:.2f}  "
                  f"peak RSS x{row['peak_rss_ratio_median']:.2f} (max {row['peak_rss_ratio_max']:.2f}; "
                  f"reader process max {row['worker_peak_rss_ratio_max']:.2f})", flush=True)
    return rows


CHILD_CALL = r"""
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
sys.path[:0] = sys.argv[2:4]
import weight_import
getattr(weight_import, sys.argv[1])(*sys.argv[4:])
"""


def call_in_child(function, *args):
    """Runs `weight_import.<function>(*args)`, which writes a file, in a process of its own, then syncs.

    Why a process: a parent holding a built model slowed every timed child (seen 2026-12-04: a .mat load
    took 3.4-3.9 s with a VGG16 alive here, 1.2 s without; TensorFlow's pool keeps what a freed model
    held), so the parent never builds one. Why the sync: the writer's dirty pages go to disk now, not
    during the timed reads (a .mat load timed right after its write took 4.6 s, 1.2-1.3 s once the disk
    was quiet).
    """
    here = os.path.dirname(os.path.abspath(__file__))
    subprocess.run([sys.executable, "-c", CHILD_CALL, function, here, os.path.dirname(here), *args], check=True)
    os.sync()


def write_model_file(model_name, fmt, path):
    """The `fmt` file of a freshly built `model_name` (run by `call_in_child`)."""
    import kerasnets

    WRITERS[fmt][1](path, kerasnets.build(model_name))


def run_child(mode, path, model_name=None):
    """(seconds, peak RSS growth) of one fresh process: "read" the file's bytes, or "load" it into `model_name`."""
    args = [mode, path] + ([model_name] if model_name else [])
    out = subprocess.run([sys.executable, "-c", CHILD, *args], capture_output=True, text=True, check=True)
    line = next(l for l in out.stdout.splitlines() if l.startswith("RESULT"))
    _, seconds, peak = line.split()
    return float(seconds), int(peak)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--formats", nargs="+", choices=[*WRITERS, "tf-ckpt-read"],
                        help=f"default: {list(WRITERS)} (resnet50: {list(ANY_MODEL)}); tf-ckpt-read times reading "
                             "a ResNet-50 checkpoint, no model")
    parser.add_argument("--model", choices=list(MODELS), default="vgg16",
                        help=f"the model the files hold; resnet50 takes the formats {list(ANY_MODEL)}")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workdir", default=None, help="where the 528 MB files go (default: a temp dir)")
    add_check_flag(parser)
    args = parser.parse_args(argv)
    if args.formats is None:
        args.formats = list(WRITERS) if args.model == "vgg16" else list(ANY_MODEL)
    if args.model != "vgg16":
        vgg_only = sorted(set(args.formats) - set(ANY_MODEL) - {"tf-ckpt-read"})
        if vgg_only:
            parser.error(f"--formats {' '.join(vgg_only)} write VGG16's publisher layouts only; "
                         f"with --model {args.model} choose from {' '.join(ANY_MODEL)}")
    if "tf-ckpt-read" in args.formats:
        rows = bench_tf_checkpoint(args.rounds, args.workdir)
        print("BENCH " + json.dumps({"benchmark": "weight import (ResNet-50 TF checkpoint)",
                                     "environment": environment(), "results": rows}))
        args.formats = [f for f in args.formats if f != "tf-ckpt-read"]
        if not args.formats:
            return

    rows = []
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        for fmt in args.formats:
            path = os.path.join(tmp, args.model + WRITERS[fmt][0])
            call_in_child("write_model_file", args.model, fmt, path)
            size = os.path.getsize(path)
            reads, loads = [], []
            with open(path, "rb") as f:  # warm the page cache for both sides (no child: it costs a TF start-up)
                while f.read(1 << 24):
                    pass
            for i in range(args.rounds):
                order = ("read", "load") if i % 2 == 0 else ("load", "read")
                for mode in order:
                    (reads if mode == "read" else loads).append(run_child(mode, path, args.model))
            time_ratios = [l[0] / r[0] for l, r in zip(loads, reads)]
            mem_ratios = [l[1] / size for l in loads]
            row = {
                "format": fmt, "file_mb": size / 2**20,
                "read_s": statistics.median(r[0] for r in reads), "load_s": statistics.median(l[0] for l in loads),
                "time_ratio_min": min(time_ratios), "time_ratio_median": statistics.median(time_ratios),
                "time_ratio_max": max(time_ratios),
                "peak_rss_ratio_median": statistics.median(mem_ratios), "peak_rss_ratio_max": max(mem_ratios),
            }
            row["meets_targets"] = row["time_ratio_median"] <= 2 and row["peak_rss_ratio_max"] <= 2
            rows.append(row)
            os.remove(path)
            print(f"{fmt:6s} {row['file_mb']:7.0f} MB  read {row['read_s']:.2f}s  load {row['load_s']:.2f}s  "
                  f"time x{row['time_ratio_min']:.2f}/{row['time_ratio_median']:.2f}/{row['time_ratio_max']:.2f}  "
                  f"peak RSS x{row['peak_rss_ratio_median']:.2f} (max {row['peak_rss_ratio_max']:.2f})", flush=True)
    payload = {"benchmark": f"weight import ({MODELS[args.model]['title']})", "environment": environment(),
               "results": rows}
    print("BENCH " + json.dumps(payload))
    finish([payload], args.check)


if __name__ == "__main__":
    main()
