"""Ucolor (Li et al., TIP 2021): underwater image enhancement by multi-colour-space
embedding and medium-transmission-guided decoding, as REFERENCE.md describes it.

Inputs: an RGB image in [0, 1] and its transmission map t (H, W, 1). The HSV
and Lab views are computed inside the model (`RGBToHSV`, `RGBToLab(normalize
=True)` so Lab is on [0, 1] like the others).

Encoder: three streams (rgb, hsv, lab), three stages of 128/256/512 channels
with 2x2 max-pooling between. A stage is conv+ReLU, residual (conv-ReLU,
conv-ReLU, conv, +), conv+ReLU, residual again: eight 3x3 convs per stream.
Dense cross-space links: every RGB conv after a stage's first reads
concat[rgb, hsv, lab] of that position (3x the channels).
Fusion per stage: concat of the three streams (384/768/1536) -> squeeze-and-
excitation (ratio 16) -> conv3x3 + ReLU back to 128/256/512.
Decoder: RMT = 1 - t, max-pooled to each scale; each fused map f enters as
f + f * RMT; a one-stream stage (as above) at 512, bilinear x2, concat with
the next guided map, stage at 256, x2, concat, stage at 128, conv3x3 -> 3.

Parameter count (computed; no published number): with w = 128/256/512 and
c(i, o) = 9*i*o + o,
  hsv, lab streams:   c(3 or w/2, w) + 7 c(w, w) each stage;
  rgb stream:         c(3 or w/2, w) + 7 c(3w, w) (dense links);
  fusion:             SE(3w: 2 * 3w * 3w/16 + 3w/16 + 3w) + c(3w, w);
  decoder:            c(512, 512) + 7 c(512, 512); c(512 + 256, 256) +
                      7 c(256, 256); c(256 + 128, 128) + 7 c(128, 128); c(128, 3),
which `tests/test_ucolor.py` recomputes: 148,774,059 in all (the dense RGB
links alone are 3x the RGB stream's convs).

Layer names: ``{space}_stage{s}_conv1``, ``_res1_conv{1,2,3}``, ``_res1_add``,
``_conv2``, ``_res2_conv{1,2,3}``, ``_res2_add`` (space: rgb/hsv/lab),
``rgb_stage{s}_{conv}_links`` (the dense concat), ``stage{s}_pool_{space}``,
``fusion{s}_concat``/``_se``/``_conv``; ``rmt``, ``rmt{s}``, ``guide{s}_mul``/
``_add``; decoder ``decoder{s}_*`` with the stage names, ``decoder{s}_up``,
``decoder{s}_concat``; ``output``.
"""

from __future__ import annotations

import keras

from kerasnets.builder_utils import check_options, finish_model, resolve_input_shape
from kerasnets.layers import RGBToHSV, RGBToLab, SqueezeExcitation
from kerasnets.registry import register_model

SPACES = ("rgb", "hsv", "lab")
SE_RATIO = 16
# (conv name, ReLU after it); residual adds follow res1_conv3 and res2_conv3.
STAGE_CONVS = (("conv1", True), ("res1_conv1", True), ("res1_conv2", True), ("res1_conv3", False),
               ("conv2", True), ("res2_conv1", True), ("res2_conv2", True), ("res2_conv3", False))


def _conv(x, width, relu, name):
    return keras.layers.Conv2D(width, 3, padding="same", activation="relu" if relu else None, name=name)(x)


def _stage(streams, width, *, name, dense_rgb=False):
    """One stage on a dict of streams; with `dense_rgb`, RGB convs after the first read all three streams."""
    x = dict(streams)
    skip = {}
    for conv_name, relu in STAGE_CONVS:
        new = {}
        for space, tensor in x.items():
            if dense_rgb and space == "rgb" and conv_name != "conv1":
                tensor = keras.layers.Concatenate(name=f"rgb_{name}_{conv_name}_links")([x[s] for s in SPACES])
            new[space] = _conv(tensor, width, relu, f"{space}_{name}_{conv_name}" if len(x) > 1 else f"{name}_{conv_name}")
        if conv_name in ("conv1", "conv2"):
            skip = new
        if conv_name.endswith("conv3"):
            block = conv_name.split("_")[0]
            new = {space: keras.layers.Add(name=(f"{space}_{name}_{block}_add" if len(x) > 1 else f"{name}_{block}_add"))(
                [skip[space], new[space]]) for space in new}
        x = new
    return x


def _guide(fused, rmt, name):
    """f + f * RMT: more weight where the medium attenuates more (low transmission)."""
    weighted = keras.layers.Multiply(name=f"{name}_mul")([fused, rmt])
    return keras.layers.Add(name=f"{name}_add")([fused, weighted])


@register_model("ucolor", family="ucolor", input_shape=(128, 128, 3), task="image-to-image",
                reference="Li et al., TIP 2021 (Ucolor), structure as REFERENCE.md; count computed")
def build_ucolor(input_shape=None, weights=None, name=None, *, filters=128, **options):
    """Ucolor underwater enhancement network; see the module docstring.

    Args:
        input_shape: (H, W, 3) of the RGB image, H and W multiples of 4 (the
            paper tests on multiples of 8); the transmission input is (H, W, 1).
            Default (128, 128, 3), the training crop; None sizes are allowed.
        weights: path of a weight file, or None.
        name: model name.
        filters: first-stage width (128 in the paper); stages use f, 2f, 4f.

    Returns:
        A `keras.Model` with inputs [image, transmission] and an (H, W, 3) output.
    """
    check_options(options, (), "ucolor")
    if not isinstance(filters, int) or isinstance(filters, bool) or filters < 6:
        raise ValueError(f"`filters` must be an integer >= 6 (SE needs 3f/16 >= 1). Received: filters={filters!r}")
    widths = (filters, 2 * filters, 4 * filters)
    shape = resolve_input_shape(input_shape, default_shape=(128, 128, 3), min_size=4, channels=3, model_name="ucolor")
    if any(s is not None and s % 4 for s in shape[:2]):
        raise ValueError(f"Ucolor needs height and width that are multiples of 4. Received: input_shape={shape}")
    image = keras.Input(shape, name="image")
    transmission = keras.Input(shape[:2] + (1,), name="transmission")
    streams = {"rgb": image, "hsv": RGBToHSV(name="to_hsv")(image), "lab": RGBToLab(normalize=True, name="to_lab")(image)}
    fused = []
    for s, width in enumerate(widths, start=1):
        if s > 1:
            streams = {space: keras.layers.MaxPooling2D(2, name=f"stage{s}_pool_{space}")(t) for space, t in streams.items()}
        streams = _stage(streams, width, name=f"stage{s}", dense_rgb=True)
        x = keras.layers.Concatenate(name=f"fusion{s}_concat")([streams[space] for space in SPACES])
        x = SqueezeExcitation(ratio=SE_RATIO, name=f"fusion{s}_se")(x)
        fused.append(_conv(x, width, True, f"fusion{s}_conv"))
    rmt = [keras.layers.Rescaling(-1.0, offset=1.0, name="rmt")(transmission)]
    for s in (2, 3):
        rmt.append(keras.layers.MaxPooling2D(2, name=f"rmt{s}")(rmt[-1]))
    x = _guide(fused[2], rmt[2], "guide3")
    for s in (3, 2, 1):
        if s < 3:
            x = keras.layers.UpSampling2D(2, interpolation="bilinear", name=f"decoder{s}_up")(x)
            x = keras.layers.Concatenate(name=f"decoder{s}_concat")([x, _guide(fused[s - 1], rmt[s - 1], f"guide{s}")])
        x = _stage({"decoder": x}, widths[s - 1], name=f"decoder{s}")["decoder"]
    outputs = keras.layers.Conv2D(3, 3, padding="same", name="output")(x)
    return finish_model([image, transmission], outputs, name=name or "ucolor", weights=weights)
