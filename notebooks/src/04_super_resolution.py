# %% [markdown]
# # FSRCNN x3: prepare, train, compare with bicubic
#
# The notes' FSRCNN recipe (FSRCNN-pytorch): images -> luminance (Y) patches in an h5 file
# -> train with Adam (the deconvolution at 0.1x the learning rate) -> keep the epoch with
# the best PSNR on held-out images. The baseline to beat is bicubic upscaling.
#
# Training here is a few epochs on four photos that ship with scikit-image, to show the API
# in about a minute: `benchmarks/fsrcnn_vs_bicubic.py` measured FSRCNN passing bicubic after
# about six epochs on this data; real quality needs the paper's 91-image set and long training.
# The last section shows what that gives: the released FSRCNN x3 of FSRCNN_Tensorflow (the model
# OpenCV's dnn_superres runs), through its preset. Everything is written to a temporary folder.

# %%
import os
import tempfile

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up log lines stay out of the outputs
import absl.logging

absl.logging.set_verbosity(absl.logging.ERROR)
import keras
import matplotlib.pyplot as plt
import numpy as np
import PIL.Image
import skimage.data

from training.superres import bicubic_psnr, calc_psnr, prepare_fsrcnn_h5, read_eval_h5, train_fsrcnn

workdir = tempfile.mkdtemp(prefix="kerasnets-nb04-")
keras.utils.set_random_seed(0)
for folder, names in (("train", ("astronaut", "coffee", "chelsea", "rocket")),
                      ("eval", ("camera", "immunohistochemistry", "coins"))):
    os.makedirs(os.path.join(workdir, folder))
    for name in names:
        PIL.Image.fromarray(getattr(skimage.data, name)()).save(os.path.join(workdir, folder, name + ".png"))

# %% [markdown]
# ## Prepare
# Training file: 33x33 HR patches (stride 11 LR pixels) with their bicubic-downscaled LR
# patches; evaluation file: whole images. Both hold the Y channel only.

# %%
train_file, eval_file = os.path.join(workdir, "train.h5"), os.path.join(workdir, "eval.h5")
patches = prepare_fsrcnn_h5(os.path.join(workdir, "train"), train_file, scale=3)
prepare_fsrcnn_h5(os.path.join(workdir, "eval"), eval_file, scale=3, eval=True)
eval_data = read_eval_h5(eval_file)
bicubic = bicubic_psnr(eval_data, 3)
print(f"{patches} training patches; {len(eval_data)} evaluation images; bicubic PSNR {bicubic:.2f} dB")

# %% [markdown]
# ## Train
# `train_fsrcnn` keeps per-epoch and best weights under `outputs_dir/x3/`.

# %%
result = train_fsrcnn(train_file, eval_file, 3, os.path.join(workdir, "outputs"), epochs=4,
                      steps_per_execution=32, verbose=2)
psnrs = result.history["eval_psnr"]
print("eval PSNR per epoch:", ", ".join(f"{p:.2f}" for p in psnrs))
print(f"best {result.best_psnr:.2f} dB at epoch {result.best_epoch}; bicubic {bicubic:.2f} dB; "
      f"{result.seconds:.0f} s")
plt.plot(range(len(psnrs)), psnrs, marker="o", label="FSRCNN")
plt.axhline(bicubic, color="gray", ls="--", label="bicubic")
plt.xlabel("epoch"), plt.ylabel("eval PSNR (dB)"), plt.legend()
plt.show()

# %% [markdown]
# ## Before and after
# A crop of a held-out image: the LR input enlarged by nearest neighbour, bicubic,
# FSRCNN (best epoch) and the original. PSNR over the whole image is in each title.

# %%
lr, hr = eval_data[2]
model = result.model
sr = np.clip(keras.ops.convert_to_numpy(model(lr[None], training=False))[0, ..., 0], 0, 1)
up = np.clip(np.asarray(PIL.Image.fromarray(lr[..., 0], mode="F").resize(
    (lr.shape[1] * 3, lr.shape[0] * 3), resample=PIL.Image.BICUBIC)), 0, 1)


def show_crops(lr, outputs, hr, size=96):
    """The same crop of: the LR image enlarged by nearest neighbour, each (title, output), the original;
    each output's PSNR over the whole image in its title."""
    top, left = hr.shape[0] // 3, hr.shape[1] // 3
    panels = ([("LR (nearest)", np.repeat(np.repeat(lr, 3, axis=0), 3, axis=1))]
              + [(f"{title} {calc_psnr(image, hr):.2f} dB", image) for title, image in outputs] + [("original", hr)])
    fig, axes = plt.subplots(1, len(panels), figsize=(3.25 * len(panels), 3.6))
    for ax, (title, image) in zip(axes, panels):
        ax.imshow(image[top:top + size, left:left + size], cmap="gray", vmin=0, vmax=1)
        ax.set_title(title)
        ax.axis("off")
    plt.show()


show_crops(lr[..., 0], [("bicubic", up), ("FSRCNN", sr)], hr[..., 0])


# %% [markdown]
# ## The released model
# `fsrcnn.opencv_x3` is FSRCNN_Tensorflow's x3 model (trained on the 91-image set, fine-tuned on
# General100; a sub-pixel output instead of the deconvolution), downloaded once (40 KB) and checked
# against its sha256. It was trained on the full-range luma of OpenCV's YCrCb (`y_full`) with LR
# images made by plain bicubic sampling (`cv2.INTER_CUBIC`, no antialiasing), so the held-out
# images are prepared that way here: `preprocess_input(..., preset=...)` and scikit-image's
# `resize(order=3, anti_aliasing=False)`.

# %%
import skimage.transform

import kerasnets
from kerasnets.imagenet import preprocess_input

# downloads from GitHub on first use; the committed outputs were made offline, from a local copy
released = kerasnets.build_preset("fsrcnn.opencv_x3")
rows = []
for name in ("camera", "immunohistochemistry", "coins"):
    rgb = np.asarray(PIL.Image.open(os.path.join(workdir, "eval", name + ".png")).convert("RGB"), "float32")
    h, w = rgb.shape[0] // 3 * 3, rgb.shape[1] // 3 * 3
    hr_y = preprocess_input(rgb[:h, :w], preset="fsrcnn.opencv_x3")[..., 0]
    lr_y = skimage.transform.resize(hr_y, (h // 3, w // 3), order=3, anti_aliasing=False).astype("float32")
    up_y = np.clip(skimage.transform.resize(lr_y, (h, w), order=3), 0, 1)
    sr_y = np.clip(keras.ops.convert_to_numpy(released(lr_y[None, ..., None], training=False))[0, ..., 0], 0, 1)
    rows.append((name, lr_y, up_y, sr_y, hr_y))
    print(f"{name:22s} bicubic {calc_psnr(up_y, hr_y):.2f} dB   released FSRCNN {calc_psnr(sr_y, hr_y):.2f} dB")

name, lr_y, up_y, sr_y, hr_y = rows[2]
show_crops(lr_y, [("bicubic", up_y), ("released FSRCNN", sr_y)], hr_y)
