"""Custom layers, each a serializable `keras.layers.Layer` written with `keras.ops`."""

from kerasnets.layers.attention import SqueezeExcitation
from kerasnets.layers.caffe import CaffePooling2D, ChannelScale, WeightedSum, WithinChannelLRN
from kerasnets.layers.normalization import LocalResponseNormalization
from kerasnets.layers.color import RGBToHSV, RGBToLab
from kerasnets.layers.instance_norm import InstanceNormalization
from kerasnets.layers.pooling import MaxPoolingWithArgmax2D, MaxUnpooling2D
from kerasnets.layers.resampling import PixelShuffle, ReflectionPadding2D

__all__ = [
    "CaffePooling2D", "ChannelScale", "InstanceNormalization", "LocalResponseNormalization",
    "MaxPoolingWithArgmax2D", "MaxUnpooling2D", "PixelShuffle", "RGBToHSV", "RGBToLab", "ReflectionPadding2D",
    "SqueezeExcitation", "WeightedSum", "WithinChannelLRN",
]
