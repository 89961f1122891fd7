# %% [markdown]
# # Importing weights from other frameworks
#
# `build_vgg16(); load_npy_weights(...)`: one network, four file formats that other tools
# write: a tensorflow-vgg `.npy` dict, a MatConvNet `.mat`, a PyTorch state dict and a Keras
# h5. Each import transposes kernels and maps layer names; we check that the imported model
# computes what the source computed, then save to `.h5` and reload.
#
# To keep the notebook fast the network is VGG16's convolutional part (`include_top=False`)
# at 64x64; the full network with its 528 MB of weights loads the same way. The source
# weights are random: what matters here is that every format lands on the same numbers.
# Everything is written to a temporary folder.

# %%
try:  # torch, when installed, must be imported before TensorFlow
    import torch
    import torchvision
except ImportError:
    torch = None
import os
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up log lines stay out of the outputs
import absl.logging

absl.logging.set_verbosity(absl.logging.ERROR)
import keras
import numpy as np
import scipy.io

from kerasnets import build_vgg16
from kerasnets.preprocessing import MODES
from weights_io import (
    load_keras_h5_weights, load_mat_weights, load_npy_weights, load_torch_weights, save_npy_weights,
)

workdir = tempfile.mkdtemp(prefix="kerasnets-nb02-")
keras.utils.set_random_seed(0)
shape = (64, 64, 3)
source = build_vgg16(include_top=False, input_shape=shape)  # plays the network trained elsewhere
x = np.random.default_rng(0).uniform(0, 255, (2,) + shape).astype("float32")
expected = keras.ops.convert_to_numpy(source(x))


def max_rel_diff(model, reference=expected):
    out = keras.ops.convert_to_numpy(model(x))
    return float(np.abs(out - reference).max() / np.abs(reference).max())


# %% [markdown]
# ## 1. tensorflow-vgg `.npy`
# A pickled dict `{"conv1_1": [W, b], ...}` with kernels in TensorFlow's HWIO order.
# `save_npy_weights` writes that layout; `load_npy_weights` reads it with a restricted
# unpickler (nothing in the file is executed) and prints what went where.

# %%
npy_path = os.path.join(workdir, "vgg16.npy")
save_npy_weights(source, npy_path)
model = build_vgg16(include_top=False, input_shape=shape)
report = load_npy_weights(model, npy_path)
print(report)
print("max relative difference to the source: %.1e" % max_rel_diff(model))

# %% [markdown]
# ## 2. MatConvNet `.mat`
# A SimpleNN struct: a cell array `layers`, each conv layer with `weights = {W, b}`
# (W is H x W x in x out, b a column). We write one with scipy as MatConvNet lays it out.

# %%
cells = np.empty((1, 13), dtype=object)
conv_layers = [layer for layer in source.layers if isinstance(layer, keras.layers.Conv2D)]
for i, layer in enumerate(conv_layers):
    block, conv = layer.name.replace("block", "").split("_conv")
    weights = np.empty((1, 2), dtype=object)
    weights[0, 0], weights[0, 1] = layer.kernel.numpy(), layer.bias.numpy()[:, None]
    cells[0, i] = {"type": "conv", "name": f"conv{block}_{conv}", "weights": weights,
                   "stride": np.array([[1, 1]]), "pad": np.array([[1, 1, 1, 1]])}
mat_path = os.path.join(workdir, "vgg16.mat")
scipy.io.savemat(mat_path, {"layers": cells, "meta": {"normalization": {"averageImage": np.zeros((1, 1, 3))}}})
model = build_vgg16(include_top=False, input_shape=shape)
report = load_mat_weights(model, mat_path)
print(report.layout, "-", len(report.loaded), "arrays loaded")
print("max relative difference to the source: %.1e" % max_rel_diff(model))

# %% [markdown]
# ## 3. PyTorch state dict
# torchvision's `vgg16().features` saved by `torch.save`: kernels are OIHW, and the
# computation runs channels-first. Loading needs no torch: the file is read directly.
# Here the reference output is torchvision's own forward pass.

# %%
if torch is None:
    print("torch is not installed: skipping the state-dict example")
else:
    torch.manual_seed(0)
    features = torchvision.models.vgg16().features.eval()
    pth_path = os.path.join(workdir, "vgg16_features.pth")
    torch.save({f"features.{k}": v for k, v in features.state_dict().items()}, pth_path)
    model = build_vgg16(include_top=False, input_shape=shape)
    report = load_torch_weights(model, pth_path)
    print(report.layout, "-", len(report.loaded), "arrays loaded;", report.loaded[0])
    with torch.no_grad():
        torch_out = features(torch.from_numpy(x).permute(0, 3, 1, 2)).permute(0, 2, 3, 1).numpy()
    print("max relative difference to torchvision: %.1e" % max_rel_diff(model, torch_out))

# %% [markdown]
# ## 4. Keras h5
# keras.applications' VGG16 uses the same layer names as our builder, so its weight files
# (Keras 2 `.h5` downloads or Keras 3 `.weights.h5`) load by name.

# %%
theirs = keras.applications.VGG16(weights=None, include_top=False, input_shape=shape)
h5_path = os.path.join(workdir, "keras_vgg16.weights.h5")
theirs.save_weights(h5_path)
model = build_vgg16(include_top=False, input_shape=shape)
report = load_keras_h5_weights(model, h5_path)
print(report.layout, "-", len(report.loaded), "arrays loaded")
print("max relative difference to keras.applications: %.1e" % max_rel_diff(model, keras.ops.convert_to_numpy(theirs(x))))

# %% [markdown]
# ## Loading is all or nothing
# A file that does not fit (here: VGG16 weights into VGG19) raises and names every
# problem; the model is left exactly as it was.

# %%
from kerasnets import build_vgg19
from weights_io import WeightMismatchError

vgg19 = build_vgg19(include_top=False, input_shape=shape)
before = [w.copy() for w in vgg19.get_weights()]
try:
    load_npy_weights(vgg19, npy_path)
except WeightMismatchError as error:
    print(str(error)[:600])
print("model untouched:", all(np.array_equal(a, b) for a, b in zip(before, vgg19.get_weights())))

# %% [markdown]
# ## Save as `.h5`, reload

# %%
model_path = os.path.join(workdir, "vgg16.h5")
model.save(model_path)
reloaded = keras.models.load_model(model_path)
print("reloaded equals saved:", np.array_equal(keras.ops.convert_to_numpy(reloaded(x)),
                                              keras.ops.convert_to_numpy(model(x))))

# %% [markdown]
# ## The preprocessing each source expects
# Weights only work with the input scaling they were trained with. `kerasnets.preprocessing`
# holds the table (also used by presets and `training`).

# %%
for mode in MODES.values():
    order = "BGR" if mode.bgr else "RGB"
    print(f"{mode.name:10s} {order}  x*{mode.scale:.5g}{mode.offset:+g} - {mode.mean} / {mode.std}")
    print(f"{'':10s} {mode.weights}")
