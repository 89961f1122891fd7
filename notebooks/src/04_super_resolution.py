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
nearest = np.repeat(np.repeat(lr[..., 0], 3, axis=0), 3, axis=1)
top, left, size = hr.shape[0] // 3, hr.shape[1] // 3, 96
panels = [("LR (nearest)", nearest, None), ("bicubic", up, calc_psnr(up, hr[..., 0])),
          ("FSRCNN", sr, calc_psnr(sr, hr[..., 0])), ("original", hr[..., 0], None)]
fig, axes = plt.subplots(1, 4, figsize=(13, 3.6))
for ax, (title, image, psnr) in zip(axes, panels):
    ax.imshow(image[top:top + size, left:left + size], cmap="gray", vmin=0, vmax=1)
    ax.set_title(title if psnr is None else f"{title} {psnr:.2f} dB")
    ax.axis("off")
plt.show()
