"""DenseNet layout: torchvision names onto ours.

Ours (kerasnets.densenet, keras.applications' names): ``conv1_conv``,
``conv1_bn``, ``conv{s}_block{b}_0_bn`` / ``_1_conv`` / ``_1_bn`` /
``_2_conv``, ``pool{s}_bn`` / ``pool{s}_conv`` (transitions), ``bn``,
``predictions``.

torchvision densenet121/161/169/201: ``features.conv0``, ``features.norm0``,
``features.denseblock{s-1}.denselayer{b}.{norm1,conv1,norm2,conv2}``,
``features.transition{s-1}.{norm,conv}``, ``features.norm5``,
``classifier``. (Pre-0.4 torchvision checkpoints spell ``norm.1``/``conv.1``;
torchvision renames those on load, so rename them before using this layout.)
"""

from __future__ import annotations

from weights_io.layouts import register_layout, rule_layout

_LAYER_PARTS = {"0_bn": "norm1", "1_conv": "conv1", "1_bn": "norm2", "2_conv": "conv2"}

register_layout(
    rule_layout(
        "torchvision-densenet",
        [
            (r"conv1_conv", "features.conv0"),
            (r"conv1_bn", "features.norm0"),
            (
                r"conv(\d)_block(\d+)_(0_bn|1_conv|1_bn|2_conv)",
                lambda m: f"features.denseblock{int(m.group(1)) - 1}.denselayer{m.group(2)}.{_LAYER_PARTS[m.group(3)]}",
            ),
            (r"pool(\d)_bn", lambda m: f"features.transition{int(m.group(1)) - 1}.norm"),
            (r"pool(\d)_conv", lambda m: f"features.transition{int(m.group(1)) - 1}.conv"),
            (r"bn", "features.norm5"),
            (r"predictions", "classifier"),
        ],
        description="torchvision densenet*: features.conv0/norm0, features.denseblockN.denselayerJ.{norm1,conv1,norm2,"
        "conv2}, features.transitionN.{norm,conv}, features.norm5, classifier.",
        first_conv="conv1_conv",
        options={"bn_epsilon": 1e-5, "conv_bias": False},
    )
)

# keras.applications' DenseNet as tf.keras (Keras 2) named it, in its hosted .h5
# files and in any tf.keras save_weights: the stem is "conv1/conv" and "conv1/bn"
# (Keras 3 renamed them to ours, conv1_conv / conv1_bn); every other layer has our name.
register_layout(
    rule_layout(
        "keras-legacy-densenet",
        [
            (r"conv1_conv", "conv1/conv"),
            (r"conv1_bn", "conv1/bn"),
            (r"(conv\d_block\d+_(?:0_bn|1_conv|1_bn|2_conv)|pool\d_(?:bn|conv)|bn|predictions)", "{0}"),
        ],
        description="tf.keras (Keras 2) DenseNet names, as in keras.applications' hosted .h5 files: conv1/conv, "
        "conv1/bn, then ours (convS_blockB_{0_bn,1_conv,1_bn,2_conv}, poolS_{bn,conv}, bn, predictions).",
        first_conv="conv1_conv",
        options={"bn_epsilon": 1.001e-5, "conv_bias": False},
    )
)
