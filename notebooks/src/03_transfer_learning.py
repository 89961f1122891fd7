# %% [markdown]
# # Transfer learning: the notes' three modes on a small photo folder
#
# The notes fine-tune a pretrained network on the flower photos in one of three ways:
# train every layer; load the weights and train only the last layers; or keep the
# backbone frozen and train a new head. `training.train_on_folder` (what
# `kerasnets train --data` runs) does all three with `transfer="all" | "last" | "head"`.
#
# No download here: a folder of three classes is cut from photos that ship with
# scikit-image, and a randomly initialised ResNet-18 saved to a file stands in for the
# ImageNet weights (with a real file or a preset the calls are the same). The point is
# which weights each mode trains, not the accuracy. Everything goes to a temporary folder.

# %%
import os
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up log lines stay out of the outputs
import absl.logging

absl.logging.set_verbosity(absl.logging.ERROR)
import keras
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
from PIL import Image

import kerasnets
from training.folder import train_on_folder
from training.metrics import confusion_matrix
from training.predict import predict_image

workdir = tempfile.mkdtemp(prefix="kerasnets-nb03-")
CLASSES = ("astronaut", "coffee", "rocket")
rng = np.random.default_rng(0)


def make_folder(root, per_class):
    """Random square crops (50-90% of the short side), half of them mirrored, 80x80 JPEGs."""
    for name in CLASSES:
        photo = getattr(skimage.data, name)()
        os.makedirs(os.path.join(root, name))
        for i in range(per_class):
            h, w = photo.shape[:2]
            side = int(min(h, w) * rng.uniform(0.5, 0.9))
            top, left = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
            crop = photo[top:top + side, left:left + side][:, ::-1 if rng.random() < 0.5 else 1]
            Image.fromarray(np.ascontiguousarray(crop)).resize((80, 80)).save(os.path.join(root, name, f"{i}.jpg"))


train_dir, val_dir = os.path.join(workdir, "train"), os.path.join(workdir, "val")
make_folder(train_dir, 12)
make_folder(val_dir, 5)
fig, axes = plt.subplots(1, 6, figsize=(12, 2.2))
for ax, (name, i) in zip(axes, [(c, i) for c in CLASSES for i in (0, 1)]):
    ax.imshow(Image.open(os.path.join(train_dir, name, f"{i}.jpg"))), ax.set_title(name), ax.axis("off")
plt.show()

# %% [markdown]
# ## The "pretrained" file and the three modes
# The file holds a 1000-class ResNet-18. `train_on_folder` loads it strictly into a
# 1000-class network, then replaces the head with one for the 3 classes here. `transfer="last"` with
# `last_n=3` trains the last three weighted layers; `"head"` only the new classifier.

# %%
image_size = 64
pretrained = kerasnets.build_resnet18(input_shape=(image_size, image_size, 3))
weights_file = os.path.join(workdir, "resnet18_pretrained.weights.h5")
pretrained.save_weights(weights_file)

results = {}
for mode in ("all", "last", "head"):
    results[mode] = train_on_folder(
        "resnet18", train_dir, val_dir=val_dir, weights=weights_file, transfer=mode, last_n=3, epochs=3,
        batch_size=8, image_size=image_size, learning_rate=1e-3, output_dir=os.path.join(workdir, f"run_{mode}"),
        verbose=0,
    )
    print(f"transfer={mode!r}: best val_accuracy {results[mode]['best_value']:.2f} at epoch "
          f"{results[mode]['best_epoch']}")

# %% [markdown]
# ## Which weights moved
# Compare each trained network with the file it started from: the first convolution,
# the last convolution and the classifier.

# %%
def changed(network, layer_name):
    now = network.get_layer(layer_name).get_weights()
    if layer_name == "predictions":
        return "new head"
    before = pretrained.get_layer(layer_name).get_weights()
    return "trained" if any(not np.array_equal(a, b) for a, b in zip(now, before)) else "frozen"


print(f"{'mode':6s} {'trainable params':>17s}  {'conv1_conv':10s} {'conv5_block2_2_conv':20s} predictions")
for mode, result in results.items():
    network = result["model"].get_layer("resnet18")
    trainable = sum(int(np.prod(v.shape)) for v in network.trainable_weights)
    print(f"{mode:6s} {trainable:17,d}  {changed(network, 'conv1_conv'):10s} "
          f"{changed(network, 'conv5_block2_2_conv'):20s} {changed(network, 'predictions')}")

# %% [markdown]
# ## Training curves

# %%
fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
for mode, result in results.items():
    history = result["history"]
    axes[0].plot(history["loss"], label=f"{mode} train"), axes[0].plot(history["val_loss"], "--", label=f"{mode} val")
    axes[1].plot(history["val_accuracy"], marker="o", label=mode)
axes[0].set_title("loss"), axes[1].set_title("validation accuracy")
for ax in axes:
    ax.set_xlabel("epoch"), ax.legend(fontsize=8)
plt.show()

# %% [markdown]
# ## Confusion matrix and predictions of the best mode
# With so few images and steps, which mode wins varies; training every layer of a network
# whose BatchNorm sees batches of 8 is the most fragile. `predict_image` resizes and centre-crops like validation (the saved model contains its
# own preprocessing) and returns (class, probability) pairs, best first.

# %%
best = max(results, key=lambda mode: results[mode]["best_value"])
model = results[best]["model"]
truth, guess, shown = [], [], []
for label, name in enumerate(CLASSES):
    for i in range(5):
        path = os.path.join(val_dir, name, f"{i}.jpg")
        predictions = predict_image(model, path, results[best]["paths"]["class_indices"], top_k=3)
        truth.append(label), guess.append(CLASSES.index(predictions[0][0]))
        if i == 0:
            shown.append((path, name, predictions))
matrix = confusion_matrix(truth, guess, num_classes=len(CLASSES))
fig, axes = plt.subplots(1, 4, figsize=(14, 3.4))
axes[0].imshow(matrix, cmap="Blues")
axes[0].set_xticks(range(3), CLASSES, rotation=30), axes[0].set_yticks(range(3), CLASSES)
axes[0].set_xlabel("predicted"), axes[0].set_ylabel("true"), axes[0].set_title(f"validation confusion ({best})")
for (r, c), n in np.ndenumerate(matrix):
    axes[0].text(c, r, int(n), ha="center", va="center")
for ax, (path, name, predictions) in zip(axes[1:], shown):
    ax.imshow(Image.open(path)), ax.axis("off")
    ax.set_title(f"true {name}\n" + "\n".join(f"{c} {p:.2f}" for c, p in predictions), fontsize=8)
plt.show()
