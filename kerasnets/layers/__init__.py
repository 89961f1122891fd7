"""Custom layers, each a serializable `keras.layers.Layer` written with `keras.ops`."""

from kerasnets.layers.attention import SqueezeExcitation
from kerasnets.layers.normalization import LocalResponseNormalization

__all__ = ["LocalResponseNormalization", "SqueezeExcitation"]
