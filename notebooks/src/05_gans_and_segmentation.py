# %% [markdown]
# # GANs, segmentation networks and Ucolor: the API on tiny data
#
# Each GAN here is a `keras.Model` trainer whose `train_step` alternates the discriminator
# and generator updates of its paper, so `fit` drives it like any model. We run a few steps
# of pix2pix, CycleGAN and SRGAN on small images cut from scikit-image's photos, look at the
# output shapes of U-Net and SegNet, and run Ucolor forward with its three colour spaces.
# Nothing here trains long enough to look good: the point is the calls and the shapes.

# %%
import os

os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ start-up log lines stay out of the outputs
import absl.logging

absl.logging.set_verbosity(absl.logging.ERROR)
import keras
import matplotlib.pyplot as plt
import numpy as np
import skimage.data
from PIL import Image

import kerasnets
from training.adversarial import CycleGANTrainer, Pix2PixTrainer, SRGANTrainer

keras.utils.set_random_seed(0)
rng = np.random.default_rng(0)


def crops(photo, n, size):
    """n random size x size crops of a photo, scaled to [-1, 1] (the GANs' tanh range)."""
    h, w = photo.shape[:2]
    out = []
    for _ in range(n):
        top, left = rng.integers(0, h - 4 * size), rng.integers(0, w - 4 * size)
        patch = Image.fromarray(photo[top:top + 4 * size, left:left + 4 * size]).resize((size, size))
        out.append(np.asarray(patch, np.float32) / 127.5 - 1)
    return np.stack(out)


# %% [markdown]
# ## pix2pix: paired translation, here grayscale -> colour
# U-Net generator with skips (3 down-samplings at 32x32) and a PatchGAN on
# concat(source, target); loss = GAN + 100 x L1, as the paper.

# %%
colour = crops(skimage.data.astronaut(), 16, 32)
gray = np.repeat(colour.mean(axis=-1, keepdims=True), 3, axis=-1)
pix2pix = Pix2PixTrainer(kerasnets.build_pix2pix_generator(input_shape=(32, 32, 3), num_downs=3, filters=8),
                         kerasnets.build_patchgan_discriminator(input_shape=(32, 32, 3), filters=8))
pix2pix.compile()
history = pix2pix.fit(gray, colour, batch_size=8, epochs=3, verbose=0).history
print({k: np.round(v, 3).tolist() for k, v in history.items()})

# %% [markdown]
# ## CycleGAN: unpaired, coffee <-> chelsea (the cat)
# Two ResNet generators with reflection padding and instance norm, two PatchGANs,
# least-squares GAN losses, cycle weight 10 and identity weight 5.

# %%
x, y = crops(skimage.data.coffee(), 8, 32), crops(skimage.data.chelsea(), 8, 32)
cyclegan = CycleGANTrainer(*(kerasnets.build_cyclegan_generator(input_shape=(32, 32, 3), filters=8) for _ in range(2)),
                           *(kerasnets.build_cyclegan_discriminator(input_shape=(32, 32, 3), filters=8)
                             for _ in range(2)))
cyclegan.compile()
history = cyclegan.fit(x, y, batch_size=4, epochs=2, verbose=0).history
print({k: np.round(v, 3).tolist() for k, v in history.items()})

# %% [markdown]
# ## SRGAN: x2 super-resolution with a pixel-MSE content loss
# (The paper's VGG54 content loss is `training.perceptual.VGGContentLoss`; it needs
# ImageNet VGG19 weights, so this offline example uses pixel MSE.)

# %%
hr = crops(skimage.data.rocket(), 8, 32)
lr = np.stack([np.asarray(Image.fromarray(((h + 1) * 127.5).astype(np.uint8)).resize((16, 16), Image.BICUBIC),
                          np.float32) / 127.5 - 1 for h in hr])
srgan = SRGANTrainer(kerasnets.build_srgan_generator(scale=2, input_shape=(16, 16, 3), blocks=2, filters=16),
                     kerasnets.build_srgan_discriminator(input_shape=(32, 32, 3)))  # content loss: pixel MSE
srgan.compile()
history = srgan.fit(lr, hr, batch_size=4, epochs=2, verbose=0).history
print({k: np.round(v, 4).tolist() for k, v in history.items()})

show = lambda a: np.clip((a + 1) / 2, 0, 1)
outputs = [("gray (pix2pix in)", gray[0]), ("pix2pix out", pix2pix.generator(gray[:1])[0]),
           ("coffee (CycleGAN in)", x[0]), ("CycleGAN G(x)", cyclegan.generator_g(x[:1])[0]),
           ("LR (SRGAN in)", lr[0]), ("SRGAN out", srgan.generator(lr[:1])[0])]
fig, axes = plt.subplots(1, 6, figsize=(14, 2.6))
for ax, (title, image) in zip(axes, outputs):
    ax.imshow(show(keras.ops.convert_to_numpy(image))), ax.set_title(title, fontsize=9), ax.axis("off")
plt.show()

# %% [markdown]
# ## U-Net and SegNet: output shapes
# The paper's U-Net is unpadded: a 572x572 tile gives a 388x388 map (each 3x3 conv loses a
# border, the skips are centre-cropped). `padding="same"` keeps the size. SegNet (VGG16-BN
# encoder) unpools with the max-pooling indices and keeps the size too.

# %%
for title, model in [
    ("U-Net paper (valid)", kerasnets.build_unet(input_shape=(572, 572, 1), classes=2, filters=8)),
    ("U-Net same padding", kerasnets.build_unet(input_shape=(128, 128, 3), classes=5, padding="same", filters=8)),
    ("SegNet", kerasnets.build_segnet(input_shape=(64, 64, 3), classes=12)),
]:
    print(f"{title:22s} {tuple(model.input_shape[1:])} -> {tuple(model.output_shape[1:])}  "
          f"({kerasnets.parameter_count(model):,} parameters)")

# %% [markdown]
# ## Ucolor: three colour-space encoders, SE fusion, transmission-guided decoder
# The network converts its RGB input to HSV and Lab inside the model (layers in
# `kerasnets.layers.color`); a transmission map (here a smooth stand-in for the medium
# transmission estimate) weights the decoder. We show the three colour spaces the encoders
# see and the (untrained) output.

# %%
image = np.asarray(Image.fromarray(skimage.data.coffee()).resize((64, 64)), np.float32)[None] / 255.0
transmission = np.linspace(0.3, 1.0, 64, dtype=np.float32)[None, :, None, None].repeat(64, axis=2)
ucolor = kerasnets.build_ucolor(input_shape=(64, 64, 3), filters=16)
enhanced = keras.ops.convert_to_numpy(ucolor([image, transmission]))
hsv = keras.ops.convert_to_numpy(ucolor.get_layer("to_hsv")(image))
lab = keras.ops.convert_to_numpy(ucolor.get_layer("to_lab")(image))
panels = [("RGB", image[0]), ("HSV: hue", hsv[0, ..., 0]), ("Lab: L (normalised)", lab[0, ..., 0]),
          ("transmission", transmission[0, ..., 0]), ("Ucolor output (untrained)", np.clip(enhanced[0], 0, 1))]
fig, axes = plt.subplots(1, 5, figsize=(14, 2.8))
for ax, (title, panel) in zip(axes, panels):
    ax.imshow(panel, cmap=None if panel.ndim == 3 else "viridis"), ax.set_title(title, fontsize=9), ax.axis("off")
plt.show()
print(f"Ucolor: inputs {[tuple(i.shape[1:]) for i in ucolor.inputs]} -> {tuple(ucolor.output_shape[1:])}")
