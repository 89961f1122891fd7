# %% [markdown]
# # Squeeze-and-excitation weights and feature maps
#
# The notes' SE block: global average pool -> FC(C/r) -> ReLU -> FC(C) -> sigmoid, then
# each channel of the input is scaled by its weight. Here a small CNN with one SE layer
# learns the digits that ship with scikit-learn; we look at how the SE gate weighs the
# channels for different digits, and at the feature maps the convolutions produce.
# Everything is written to a temporary folder.

# %%
import os
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up log lines stay out of the outputs
import absl.logging

absl.logging.set_verbosity(absl.logging.ERROR)
import keras
import matplotlib.pyplot as plt
import numpy as np

from kerasnets.layers import SqueezeExcitation
from training.digits import load_digits_32

workdir = tempfile.mkdtemp(prefix="kerasnets-nb07-")
keras.utils.set_random_seed(0)
(x_train, y_train), (x_test, y_test) = load_digits_32()
x_train.shape, x_test.shape

# %% [markdown]
# A LeNet-like network with an SE layer after the second convolution (32 channels, ratio 4).

# %%
inputs = keras.Input((32, 32, 1))
x = keras.layers.Conv2D(16, 5, activation="relu", name="conv1")(inputs)
x = keras.layers.MaxPooling2D(2, name="pool1")(x)
x = keras.layers.Conv2D(32, 5, activation="relu", name="conv2")(x)
x = SqueezeExcitation(ratio=4, name="se")(x)
x = keras.layers.MaxPooling2D(2, name="pool2")(x)
x = keras.layers.Flatten()(x)
outputs = keras.layers.Dense(10, activation="softmax", name="predictions")(x)
model = keras.Model(inputs, outputs, name="se_cnn")
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
history = model.fit(x_train, y_train, epochs=10, batch_size=32, validation_split=0.1, verbose=2)
print("held-out accuracy: %.3f" % model.evaluate(x_test, y_test, verbose=0)[1])

# %% [markdown]
# ## The SE gate per digit
# `SqueezeExcitation.channel_weights` returns the sigmoid gate (one weight in [0, 1] per
# channel). Averaged over the test images of each digit, the gates differ: the layer
# re-weights channels depending on the input, which is the point of the block.

# %%
feature_model = keras.Model(model.input, model.get_layer("conv2").output)
se = model.get_layer("se")
gates = np.stack([
    keras.ops.convert_to_numpy(se.channel_weights(feature_model(x_test[y_test == d]))).mean(axis=0)
    for d in range(10)
])
fig, ax = plt.subplots(figsize=(9, 3.5))
im = ax.imshow(gates, aspect="auto", cmap="viridis", vmin=0, vmax=1)
ax.set_xlabel("channel of conv2")
ax.set_ylabel("digit")
ax.set_title("mean SE gate per digit")
fig.colorbar(im)
plt.show()
print("spread of the gates across digits, per channel (max - min), mean: %.3f" % (gates.max(0) - gates.min(0)).mean())

# %% [markdown]
# ## Feature maps
# The activations of conv1 (16 maps, 28x28) and conv2 (32 maps, 10x10) for one test digit.

# %%
sample = x_test[:1]
maps = {name: keras.Model(model.input, model.get_layer(name).output)(sample)[0] for name in ("conv1", "conv2")}
fig, axes = plt.subplots(3, 16, figsize=(16, 3.6))
axes[0, 0].imshow(sample[0, ..., 0], cmap="gray")
axes[0, 0].set_title(f"digit {y_test[0]}")
for ax in axes.ravel():
    ax.axis("off")
for i in range(16):
    axes[1, i].imshow(maps["conv1"][..., i], cmap="magma")
    axes[2, i].imshow(maps["conv2"][..., 2 * i], cmap="magma")
axes[1, 0].set_title("conv1", loc="left")
axes[2, 0].set_title("conv2 (every other map)", loc="left")
plt.show()
{name: tuple(m.shape) for name, m in maps.items()}
