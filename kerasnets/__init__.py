"""kerasnets: the classic convolutional networks as Keras 3 functional models.

    import kerasnets
    model = kerasnets.build_vgg16()            # or kerasnets.build("vgg16")
    kerasnets.available_models()               # every registered name

Every builder takes the keras.applications arguments (`include_top`,
`weights`, `input_shape`, `input_tensor`, `pooling`, `classes`,
`classifier_activation`, `name`) plus options of its family.
"""

from kerasnets import imagenet, layers, presets, shapes
from kerasnets.presets import build_preset
from kerasnets.summary import parameter_count
from kerasnets.fold import fold_batch_norm
from kerasnets.alexnet import build_alexnet, build_zfnet
from kerasnets.lenet import build_lenet5
from kerasnets.segnet import build_segnet
from kerasnets.ucolor import build_ucolor
from kerasnets.unet import build_unet
from kerasnets.srgan import build_srgan_discriminator, build_srgan_generator, build_srresnet
from kerasnets.fsrcnn import build_fsrcnn
from kerasnets.gan import (
    build_cyclegan_discriminator,
    build_cyclegan_generator,
    build_dcgan_discriminator,
    build_dcgan_generator,
    build_patchgan_discriminator,
    build_pix2pix_generator,
)
from kerasnets.registry import available_models, build, model_spec, register_model
from kerasnets.convert import build_for_weights
from kerasnets.densenet import (
    build_densenet,
    build_densenet121,
    build_densenet161,
    build_densenet169,
    build_densenet201,
)
from kerasnets.googlenet import build_googlenet
from kerasnets.inception import build_inception_v2, build_inception_v3, build_inception_v4
from kerasnets.inception_resnet import build_inception_resnet_v1, build_inception_resnet_v2
from kerasnets.mobilenet_v3 import build_mobilenet_v3, build_mobilenet_v3_large, build_mobilenet_v3_small
from kerasnets.resnet import (
    build_resnet,
    build_resnet18,
    build_resnet34,
    build_resnet50,
    build_resnet101,
    build_resnet152,
    build_resnet50_v2,
    build_resnet101_v2,
    build_resnet152_v2,
    build_resnext50_32x4d,
    build_resnext101_32x8d,
    build_se_resnet50,
    build_se_resnet101,
    build_se_resnet152,
    build_se_resnext50_32x4d,
)
from kerasnets.vgg import (
    build_vgg,
    build_vgg11,
    build_vgg11_bn,
    build_vgg13,
    build_vgg13_bn,
    build_vgg16,
    build_vgg16_bn,
    build_vgg19,
    build_vgg19_bn,
)

__version__ = "0.1.0"

__all__ = [name for name in dir() if name.startswith("build") or name in (
    "available_models", "model_spec", "register_model", "layers", "shapes", "parameter_count", "presets",
    "imagenet", "fold_batch_norm")] + ["from_weights", "from_caffe"]


def __getattr__(name):
    # kerasnets.from_weights comes from kerasnets.identify on first use, so that
    # `python -m kerasnets.identify --refresh` does not run a module already imported
    if name == "from_weights":
        from kerasnets.identify import from_weights

        return from_weights
    if name == "from_caffe":
        from kerasnets.caffe import from_caffe

        return from_caffe
    raise AttributeError(f"module 'kerasnets' has no attribute {name!r}")
