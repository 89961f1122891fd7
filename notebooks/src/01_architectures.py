# %% [markdown]
# # The classic architectures side by side
#
# One representative of every classification family: parameter counts and model size,
# the notes' output-size and receptive-field formulas layer by layer, and how the
# receptive field grows with depth in VGG16 and ResNet50.

# %%
import os
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up log lines stay out of the outputs
import absl.logging

absl.logging.set_verbosity(absl.logging.ERROR)
import keras
import matplotlib.pyplot as plt

import kerasnets
from kerasnets import parameter_count
from kerasnets.registry import build_for_shapes
from kerasnets.shapes import conv_output_size, receptive_fields

workdir = tempfile.mkdtemp(prefix="kerasnets-nb01-")
REPRESENTATIVES = ["lenet5", "alexnet", "zfnet", "vgg16", "vgg19", "googlenet", "inception_v3",
                   "inception_v4", "inception_resnet_v2", "resnet18", "resnet50", "resnet152",
                   "resnext50_32x4d", "se_resnet50", "densenet121", "mobilenet_v3_large", "mobilenet_v3_small"]
names = [n for n in REPRESENTATIVES if n in kerasnets.available_models()]
len(names), len(kerasnets.available_models())

# %%
rows = []
for name in names:
    # shapes without values: counting needs no initialiser run (VGG16's 138M random numbers among them)
    model = build_for_shapes(name)
    params = parameter_count(model)
    rows.append((name, kerasnets.model_spec(name).family, params, params * 4 / 2**20))
    del model
    keras.backend.clear_session()
print(f"{'model':22s} {'family':12s} {'parameters':>14s} {'float32 MB':>11s}")
for name, family, params, mb in rows:
    print(f"{name:22s} {family:12s} {params:14,d} {mb:11.1f}")

# %% [markdown]
# The notes: "GoogLeNet has about 1/20 of VGG's parameters" (the 1x1 reductions and the
# missing fully-connected layers).

# %%
counts = {name: params for name, _, params, _ in rows}
if "googlenet" in counts:
    print("VGG16 / GoogLeNet parameters: %.1f" % (counts["vgg16"] / counts["googlenet"]))
fig, ax = plt.subplots(figsize=(9, 4))
ax.barh([r[0] for r in rows], [r[2] / 1e6 for r in rows], color="tab:blue")
ax.set_xlabel("parameters (millions)")
ax.invert_yaxis()
fig.tight_layout()
plt.show()

# %% [markdown]
# ## Output sizes: N = floor((W - F + 2P) / S) + 1
# The notes' worked example: (2, 3, 32, 32) -> conv(5, s1, p1) -> 30 -> maxpool(2, 2) -> 15
# -> conv(5, 1, 1) -> 13 -> maxpool(2, s1) -> 12.

# %%
size = 32
for label, (f, s, p) in [("conv 5x5 s1 p1", (5, 1, 1)), ("maxpool 2 s2", (2, 2, 0)),
                         ("conv 5x5 s1 p1", (5, 1, 1)), ("maxpool 2 s1", (2, 1, 0))]:
    size = conv_output_size(size, f, s, p)
    print(f"{label:16s} -> {size}")

# %% [markdown]
# ## Receptive fields: F(i) = (F(i+1) - 1) * S(i) + K(i)
# `receptive_fields(model)` walks the built graph; VGG16's pool5 sees 212 x 212 pixels.

# %%
vgg = build_for_shapes("vgg16", include_top=False)
for row in receptive_fields(vgg):
    print(f"{row.layer:14s} {row.kind:14s} out {str(row.output_shape[1:]):16s} RF {row.receptive_field}")

# %%
def growth(model):
    """(depth in weighted spatial layers, receptive field) along the graph."""
    points, depth = [], 0
    for row in receptive_fields(model):
        if row.kind in ("Conv2D", "MaxPooling2D", "AveragePooling2D") and row.receptive_field:
            depth += 1
            points.append((depth, row.receptive_field))
    return points

fig, ax = plt.subplots(figsize=(7, 4))
for name in ("vgg16", "resnet50"):
    if name in kerasnets.available_models():
        pts = growth(build_for_shapes(name, include_top=False))
        ax.plot([p[0] for p in pts], [p[1] for p in pts], label=name)
        print(name, "final receptive field:", pts[-1][1])
ax.set_xlabel("conv/pool layers from the input")
ax.set_ylabel("receptive field (pixels)")
ax.legend()
plt.show()
