"""Regenerates kerasnets/data/presets.json and kerasnets/data/imagenet_classes.txt.

Run once by hand (needs torchvision; nothing is downloaded):

    python benchmarks/make_preset_data.py

Provenance of every fact in the table:

* torchvision rows: read from the installed torchvision's weight enums
  (URL, the sha256 prefix torch.hub checks in the file name, acc@1/acc@5,
  resize/crop/mean/std) and its ImageNet category list.
* keras rows: URLs and md5 hashes from keras' own source
  (keras/src/applications/*.py, passed to get_file as file_hash); top-1 for
  MobileNetV3 from the table in keras' mobilenet_v3.py docstring; VGG16/19
  top-1/top-5 errors from the keras-applications README table. Where no
  figure was checked the accuracy is null.
* MatConvNet and tensorflow-vgg rows: the URLs their publishers give
  (vlfeat.org model page; machrisaa/tensorflow-vgg README, a mega.nz page,
  not a direct download). Neither publishes a hash: null, so the loader
  trusts the first file it sees and prints its sha256.
* Cadene rows (pretrainedmodels 0.7.4, the SE-ResNet/SE-ResNeXt, BN-Inception
  and Inception v4 ports timm's legacy models also use): URL, input size,
  colour order, range, mean/std from its `pretrained_settings`; the sha256
  prefix torch.hub checks is in each file name; top-1/top-5 are the "Our
  porting" rows of its README; resize = floor(crop / 0.875), bilinear, as its
  `utils.TransformImage` does.
* SegNet rows: the links of SegNet-Tutorial's Example_Models/segnet_model_zoo.md
  (no hash published: null); classes and input size from the zoo's prototxts;
  BGR 0..255 with no mean, as its test and webcam scripts feed frames.
* FSRCNN-pytorch rows: the Dropbox pages in yjn870/FSRCNN-pytorch's README
  (pages, not direct downloads: manual), Set5 PSNR from the same README.
* FSRCNN_Tensorflow rows (Saafke/FSRCNN_Tensorflow, Apache-2.0; the FSRCNN
  models OpenCV's dnn_superres documents): models/FSRCNN_x{2,3,4}.pb at the
  repository's commit 6a4812c (so the URL cannot change under the hash: the
  sha256 is that commit's file, the publisher gives none), and FSRCNN-small_x*.pb
  (FSRCNN-s); d, s, m = 56, 12, 4 (small: 32, 5, 1, its main.py) and a sub-pixel
  output (its fsrcnn.py); input Y of OpenCV's COLOR_BGR2YCrCb
  (full range) / 255, LR images by cv2.INTER_CUBIC (its data_utils.py); no
  published score.
* junyanz CycleGAN rows: the names and URL pattern of
  scripts/download_cyclegan_model.sh (direct links, no hash published:
  trusted on first use); the test-time settings of its test.py and README
  (`--model test --no_dropout`, resnet_9blocks, instance norm, 256x256 in
  [-1, 1]); no published score.
* Caffe rows (`caffe_rows`): BVLC model zoo files (models/bvlc_*/readme.md in
  BVLC/caffe: caffemodel_url, sha1, center-crop top-1/top-5); the VGG_ILSVRC
  files from the Oxford VGG very-deep page (no hash published: trusted on
  first use); He's ResNets from KaimingHe/deep-residual-networks' README (a
  OneDrive folder: manual download, no hash; its 1-crop top-1/top-5 errors).
  Preprocessing "caffe" (BGR minus the per-channel ImageNet mean; BVLC's
  AlexNet/CaffeNet and He's ResNets subtract a whole mean image, whose
  channel means these are).
* junyanz pix2pix rows: the names and URL pattern of
  scripts/download_pix2pix_model.sh (edges2shoes, sat2map, map2sat,
  facades_label2photo, day2night; direct links, no hash), the same
  preprocessing, and `netG=unet_256` with batch norm: our U-Net with
  `variant="torch"`, as `test.py --eval` runs it.
"""

from __future__ import annotations

import json
import os
import re

HERE = os.path.dirname(os.path.abspath(__file__))
DATA = os.path.join(HERE, os.pardir, "kerasnets", "data")

TORCH_MEAN, TORCH_STD = [0.485, 0.456, 0.406], [0.229, 0.224, 0.225]
CAFFE = {"mode": "caffe", "color": "BGR", "scale": 1.0, "mean": [103.939, 116.779, 123.68], "std": None,
         "input_size": [224, 224], "resize": None, "crop": 224, "interpolation": None}
IMAGENET = {"name": "imagenet", "count": 1000, "file": "imagenet_classes.txt"}

# Our builder options that reproduce each source's network (see tests/oracle and the family tests).
TORCHVISION_OPTIONS = {
    "densenet": {"bn_epsilon": 1e-5},
    "mobilenet_v3": {"padding": "torch", "include_preprocessing": False},
    # torchvision sets transform_input=True whenever it loads these pretrained weights
    "googlenet": {"variant": "torchvision", "transform_input": True},
    "inception_v3": {"variant": "torchvision", "transform_input": True},
}
KERAS_RESNET = {"stride_placement": "v1", "conv_bias": True, "bn_epsilon": 1.001e-5, "padding": "keras"}

# Layers that exist only with include_top=True (our names): their source arrays are dropped otherwise.
HEADS = {
    "vgg": ["fc1", "fc2", "predictions"],
    "alexnet": ["fc6", "fc7", "predictions"],
    "resnet": ["predictions"],
    "densenet": ["predictions"],
    "mobilenet_v3": ["conv_2", "logits"],
    # the published files also hold the auxiliary classifiers, which inference builds leave out
    "googlenet": ["predictions"] + [f"aux{i}_{part}" for i in (1, 2)
                                    for part in ("proj_conv", "proj_bn", "fc", "predictions")],
    "inception_v3": ["predictions", "aux_conv0_conv", "aux_conv0_bn", "aux_conv1_conv", "aux_conv1_bn",
                     "aux_predictions"],
}
TORCHVISION_LAYOUTS = {
    "vgg": "torchvision-vgg", "alexnet": "torchvision-alexnet", "resnet": "torchvision-resnet",
    "densenet": "torchvision-densenet", "mobilenet_v3": "torchvision-mobilenet-v3",
    "googlenet": "torchvision-googlenet", "inception_v3": "torchvision-inception-v3",
}
# Pre-0.4 torchvision DenseNet checkpoints spell 'norm.1'; torchvision renames on load, so do we.
DENSENET_RENAMES = [[r"^(.*denselayer\d+\.(?:norm|relu|conv))\.((?:[12])\.(?:weight|bias|running_mean|running_var))$",
                     r"\1\2"]]

TORCHVISION_MODELS = {
    "alexnet": "alexnet", "vgg11": "vgg", "vgg11_bn": "vgg", "vgg13": "vgg", "vgg13_bn": "vgg", "vgg16": "vgg",
    "vgg16_bn": "vgg", "vgg19": "vgg", "vgg19_bn": "vgg", "resnet18": "resnet", "resnet34": "resnet",
    "resnet50": "resnet", "resnet101": "resnet", "resnet152": "resnet", "resnext50_32x4d": "resnet",
    "resnext101_32x8d": "resnet", "densenet121": "densenet", "densenet161": "densenet", "densenet169": "densenet",
    "densenet201": "densenet", "mobilenet_v3_large": "mobilenet_v3", "mobilenet_v3_small": "mobilenet_v3",
    "googlenet": "googlenet", "inception_v3": "inception_v3",
}


def torchvision_rows():
    from torchvision.models import get_model_weights

    rows = []
    for model, family in TORCHVISION_MODELS.items():
        enum = get_model_weights(model)
        for weights in enum:
            if not weights.name.startswith("IMAGENET1K_V"):
                continue  # IMAGENET1K_FEATURES (vgg16): a features-only port without a classifier
            version = weights.name.split("_")[-1].lower()
            transform = weights.transforms()
            metrics = weights.meta["_metrics"]["ImageNet-1K"]
            file_name = weights.url.rsplit("/", 1)[1]
            rows.append({
                "name": f"{model}.torchvision_{version}",
                "model": model,
                "options": TORCHVISION_OPTIONS.get(family, {}),
                "task": "classification",
                "publisher": f"torchvision {type(weights).__name__}.{weights.name}",
                "url": weights.url,
                "manual_download": False,
                "file_name": file_name,
                "file_size_mb": weights.meta.get("_file_size"),
                "hash": {"algorithm": "sha256-prefix", "value": re.search(r"-([a-f0-9]+)\.", file_name).group(1)},
                "format": "pth",
                "layout": TORCHVISION_LAYOUTS[family],
                "key_renames": DENSENET_RENAMES if family == "densenet" else [],
                "head": HEADS[family],
                "preprocessing": {
                    "mode": "torch", "color": "RGB", "scale": 1 / 255, "mean": TORCH_MEAN, "std": TORCH_STD,
                    "input_size": [transform.crop_size[0]] * 2, "resize": transform.resize_size[0],
                    "crop": transform.crop_size[0], "interpolation": transform.interpolation.value,
                },
                "classes": IMAGENET,
                "accuracy": {"top1": metrics["acc@1"], "top5": metrics["acc@5"], "source": "torchvision"},
                "default": weights == enum.DEFAULT,
            })
    return rows


def keras_row(name, model, family, url, md5, options, preprocessing, accuracy, layout="keras"):
    return {
        "name": name, "model": model, "options": options, "task": "classification",
        "publisher": "keras.applications", "url": url, "manual_download": False,
        "file_name": url.rsplit("/", 1)[1], "file_size_mb": None,
        "hash": {"algorithm": "md5", "value": md5}, "format": "keras-h5", "layout": layout, "key_renames": [],
        "head": ["predictions"] if layout == "keras-order" else HEADS[family], "preprocessing": preprocessing, "classes": IMAGENET, "accuracy": accuracy,
        "default": False,
    }


KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
KERAS_TORCH = {"mode": "torch", "color": "RGB", "scale": 1 / 255, "mean": TORCH_MEAN, "std": TORCH_STD,
               "input_size": [224, 224], "resize": None, "crop": 224, "interpolation": None}
# MobileNetV3 from keras has Rescaling(1/127.5, -1) inside the model: feed raw 0..255 RGB.
KERAS_RAW = {"mode": "raw", "color": "RGB", "scale": 1.0, "mean": None, "std": None,
             "input_size": [224, 224], "resize": None, "crop": 224, "interpolation": None}
KERAS_SOURCE = "keras-applications README / keras source docstring"
KERAS_IO = "keras.io/api/applications table"
# Inception v3 / Inception-ResNet v2 from keras: [-1, 1] RGB at 299 (keras' inception preprocess_input).
KERAS_TF_299 = {"mode": "tf", "color": "RGB", "scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3,
                "input_size": [299, 299], "resize": None, "crop": 299, "interpolation": None}


def keras_rows():
    return [
        keras_row("vgg16.keras", "vgg16", "vgg", KERAS_BASE + "vgg16/vgg16_weights_tf_dim_ordering_tf_kernels.h5",
                  "64373286793e3c8b2b4e3219cbf3544b", {}, CAFFE,
                  {"top1": 71.268, "top5": 90.05, "source": KERAS_SOURCE}),
        keras_row("vgg19.keras", "vgg19", "vgg", KERAS_BASE + "vgg19/vgg19_weights_tf_dim_ordering_tf_kernels.h5",
                  "cbe5617147190e668d6c5d5026f83318", {}, CAFFE,
                  {"top1": 71.256, "top5": 89.988, "source": KERAS_SOURCE}),
        keras_row("resnet50.keras", "resnet50", "resnet",
                  KERAS_BASE + "resnet/resnet50_weights_tf_dim_ordering_tf_kernels.h5",
                  "2cb95161c43110f7111970584f804107", KERAS_RESNET, CAFFE,
                  {"top1": 74.704, "top5": 92.02, "source": "keras-applications README (100 - top-1/top-5 error)"}),
        keras_row("resnet101.keras", "resnet101", "resnet",
                  KERAS_BASE + "resnet/resnet101_weights_tf_dim_ordering_tf_kernels.h5",
                  "f1aeb4b969a6efcfb50fad2f0c20cfc5", KERAS_RESNET, CAFFE,
                  {"top1": 76.4, "top5": 92.8, "source": KERAS_IO}),
        keras_row("resnet152.keras", "resnet152", "resnet",
                  KERAS_BASE + "resnet/resnet152_weights_tf_dim_ordering_tf_kernels.h5",
                  "100835be76be38e30d865e96f2aaae62", KERAS_RESNET, CAFFE,
                  {"top1": 76.6, "top5": 93.1, "source": KERAS_IO}),
        keras_row("densenet121.keras", "densenet121", "densenet",
                  KERAS_BASE + "densenet/densenet121_weights_tf_dim_ordering_tf_kernels.h5",
                  "9d60b8095a5708f2dcce2bca79d332c7", {}, KERAS_TORCH,
                  {"top1": 74.52, "top5": 91.978, "source": "keras-applications README (100 - top-1/top-5 error)"},
                  layout="keras-legacy-densenet"),
        keras_row("densenet169.keras", "densenet169", "densenet",
                  KERAS_BASE + "densenet/densenet169_weights_tf_dim_ordering_tf_kernels.h5",
                  "d699b8f76981ab1b30698df4c175e90b", {}, KERAS_TORCH,
                  {"top1": 76.074, "top5": 93.108, "source": "keras-applications README (100 - top-1/top-5 error)"},
                  layout="keras-legacy-densenet"),
        keras_row("densenet201.keras", "densenet201", "densenet",
                  KERAS_BASE + "densenet/densenet201_weights_tf_dim_ordering_tf_kernels.h5",
                  "1ceb130c1ea1b78c3bf6114dbdfd8807", {}, KERAS_TORCH,
                  {"top1": 77.064, "top5": 93.458, "source": "keras-applications README (100 - top-1/top-5 error)"},
                  layout="keras-legacy-densenet"),
        keras_row("mobilenet_v3_large.keras", "mobilenet_v3_large", "mobilenet_v3",
                  KERAS_BASE + "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float.h5",
                  "59e551e166be033d707958cf9e29a6a7", {}, KERAS_RAW,
                  {"top1": 75.6, "top5": None, "source": "keras mobilenet_v3.py docstring"},
                  layout="keras-legacy-mobilenet-v3"),
        keras_row("mobilenet_v3_small.keras", "mobilenet_v3_small", "mobilenet_v3",
                  KERAS_BASE + "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float.h5",
                  "8768d4c2e7dee89b9d02b2d03d65d862", {}, KERAS_RAW,
                  {"top1": 68.1, "top5": None, "source": "keras mobilenet_v3.py docstring"},
                  layout="keras-legacy-mobilenet-v3"),
        # Keras 2 files whose conv/BN layers are named by a session counter: loaded by order.
        keras_row("inception_v3.keras", "inception_v3", "inception_v3",
                  KERAS_BASE + "inception_v3/inception_v3_weights_tf_dim_ordering_tf_kernels.h5",
                  "9a0d58056eeedaa3f26cb7ebd46da564", {}, KERAS_TF_299,
                  {"top1": 77.9, "top5": 93.7, "source": KERAS_IO}, layout="keras-order"),
        keras_row("inception_resnet_v2.keras", "inception_resnet_v2", "inception_resnet_v2",
                  KERAS_BASE + "inception_resnet_v2/inception_resnet_v2_weights_tf_dim_ordering_tf_kernels.h5",
                  "e693bd0210a403b3192acc6073ad2e96", {}, KERAS_TF_299,
                  {"top1": 80.3, "top5": 95.3, "source": KERAS_IO}, layout="keras-order"),
    ]


def vgg_file_rows():
    rows = []
    for depth in (16, 19):
        rows.append({
            "name": f"vgg{depth}.matconvnet", "model": f"vgg{depth}", "options": {}, "task": "classification",
            "publisher": "MatConvNet pretrained models (VGG-VD import)",
            "url": f"https://www.vlfeat.org/matconvnet/models/imagenet-vgg-verydeep-{depth}.mat",
            "manual_download": False, "file_name": f"imagenet-vgg-verydeep-{depth}.mat", "file_size_mb": None,
            "hash": None, "format": "mat", "layout": "tensorflow-vgg", "key_renames": [],
            "head": HEADS["vgg"],
            "preprocessing": {"mode": "matconvnet", "color": "RGB", "scale": 1.0, "mean": [123.68, 116.779, 103.939],
                              "std": None, "input_size": [224, 224], "resize": None, "crop": 224,
                              "interpolation": "bilinear"},
            "classes": IMAGENET, "accuracy": None, "default": False,
        })
        rows.append({
            "name": f"vgg{depth}.tensorflow_vgg", "model": f"vgg{depth}", "options": {}, "task": "classification",
            "publisher": "machrisaa/tensorflow-vgg (caffe VGG_ILSVRC_{depth}_layers converted)",
            "url": {16: "https://mega.nz/#!YU1FWJrA!O1ywiCS2IiOlUCtCpI6HTJOMrneN-Qdv3ywQP5poecM",
                    19: "https://mega.nz/#!xZ8glS6J!MAnE91ND_WyfZ_8mvkuSa2YcA7q-1ehfSm-Q1fxOvvs"}[depth],
            "manual_download": True, "file_name": f"vgg{depth}.npy", "file_size_mb": None,
            "hash": None, "format": "npy", "layout": "tensorflow-vgg", "key_renames": [], "head": HEADS["vgg"],
            "preprocessing": CAFFE, "classes": IMAGENET, "accuracy": None, "default": False,
        })
    return rows


CADENE_BASE = "http://data.lip6.fr/cadene/pretrainedmodels/"
CADENE_SENET_SE = {"stride_placement": "v1", "stem_pool": "ceil"}  # SEResNetBottleneck: stride on the 1x1
# (model, file, options, layout, preprocessing mode, input size, top-1, top-5, leading classes to drop)
CADENE = [
    ("se_resnet50", "se_resnet50-ce0d4300.pth", CADENE_SENET_SE, "cadene-senet", "torch", 224, 77.636, 93.752, 0),
    ("se_resnet101", "se_resnet101-7e38fcc6.pth", CADENE_SENET_SE, "cadene-senet", "torch", 224, 78.396, 94.258, 0),
    ("se_resnet152", "se_resnet152-d17c99b7.pth", CADENE_SENET_SE, "cadene-senet", "torch", 224, 78.658, 94.374, 0),
    ("se_resnext50_32x4d", "se_resnext50_32x4d-a260b3a4.pth", {"stem_pool": "ceil"}, "cadene-senet", "torch",
     224, 79.076, 94.434, 0),
    ("inception_v2", "bn_inception-52deb4733.pth", {"variant": "cadene"}, "cadene-bninception", "bninception",
     224, 73.524, 91.562, 0),
    # TF-slim's 1001 classes: row 0 is "background", which pretrainedmodels drops for 'imagenet'
    ("inception_v4", "inceptionv4-8e4777a0.pth", {}, "cadene-inception-v4", "tf", 299, 80.062, 94.926, 1),
]
CADENE_MODES = {
    "torch": {"mode": "torch", "color": "RGB", "scale": 1 / 255, "mean": TORCH_MEAN, "std": TORCH_STD},
    "tf": {"mode": "tf", "color": "RGB", "scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3},
    "bninception": {"mode": "bninception", "color": "BGR", "scale": 1.0, "mean": [104.0, 117.0, 128.0],
                    "std": [1.0, 1.0, 1.0]},
}


def cadene_rows():
    return [{
        "name": f"{model}.cadene", "model": model, "options": options, "task": "classification",
        "publisher": "Cadene pretrained-models.pytorch (pretrainedmodels 0.7.4)", "url": CADENE_BASE + file_name,
        "manual_download": False, "file_name": file_name, "file_size_mb": None,
        "hash": {"algorithm": "sha256-prefix", "value": re.search(r"-([a-f0-9]+)\.", file_name).group(1)},
        "format": "pth", "layout": layout, "key_renames": [], "head": ["predictions"],
        "preprocessing": {**CADENE_MODES[mode], "input_size": [size, size], "resize": int(size / 0.875),
                          "crop": size, "interpolation": "bilinear"},
        "classes": IMAGENET, "accuracy": {"top1": top1, "top5": top5, "source": "pretrainedmodels README"},
        "default": False, "drop_leading_classes": drop,
    } for model, file_name, options, layout, mode, size, top1, top5, drop in CADENE]


BVLC = "http://dl.caffe.berkeleyvision.org/"
HE_ONEDRIVE = "https://onedrive.live.com/?authkey=%21AAFW2-FVoxeVRck&id=4006CBB8476FF777%2117887&cid=4006CBB8476FF777"
VGG_CAFFE = "https://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
# (preset, model, layout, url, manual, file, sha1, input size, top-1, top-5, accuracy source)
CAFFE_FILES = [
    ("alexnet.bvlc", "alexnet", "caffe-alexnet", BVLC + "bvlc_alexnet.caffemodel", False,
     "bvlc_alexnet.caffemodel", "9116a64c0fbe4459d18f4bb6b56d647b63920377", 227, 57.1, 80.2, "BVLC model zoo readme"),
    ("alexnet.bvlc_caffenet", "alexnet", "caffe-caffenet", BVLC + "bvlc_reference_caffenet.caffemodel", False,
     "bvlc_reference_caffenet.caffemodel", "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46", 227, 57.4, 80.4,
     "BVLC model zoo readme"),
    ("googlenet.bvlc", "googlenet", "caffe-googlenet", BVLC + "bvlc_googlenet.caffemodel", False,
     "bvlc_googlenet.caffemodel", "405fc5acd08a3bb12de8ee5e23a96bec22f08204", 224, 68.7, 88.9,
     "BVLC model zoo readme"),
    ("vgg16.caffe", "vgg16", "tensorflow-vgg", VGG_CAFFE + "VGG_ILSVRC_16_layers.caffemodel", False,
     "VGG_ILSVRC_16_layers.caffemodel", None, 224, None, None, None),
    ("vgg19.caffe", "vgg19", "tensorflow-vgg", VGG_CAFFE + "VGG_ILSVRC_19_layers.caffemodel", False,
     "VGG_ILSVRC_19_layers.caffemodel", None, 224, None, None, None),
] + [
    (f"resnet{depth}.he_caffe", f"resnet{depth}", "caffe-resnet", HE_ONEDRIVE, True, f"ResNet-{depth}-model.caffemodel",
     None, 224, round(100 - top1, 1), round(100 - top5, 1), "KaimingHe/deep-residual-networks README (1-crop)")
    for depth, top1, top5 in ((50, 24.7, 7.8), (101, 23.6, 7.1), (152, 23.0, 6.7))
]


def caffe_rows():
    return [{
        "name": name, "model": model, "options": _layout_options(layout, model), "task": "classification",
        "publisher": {"caffe-resnet": "KaimingHe/deep-residual-networks (Caffe)",
                      "tensorflow-vgg": "Oxford VGG very deep ConvNets (Caffe, ILSVRC-2014)"}.get(
                          layout, "BVLC Caffe model zoo"),
        "url": url, "manual_download": manual, "file_name": file_name, "file_size_mb": None,
        "hash": {"algorithm": "sha1", "value": sha1} if sha1 else None, "format": "caffemodel", "layout": layout,
        "key_renames": [], "head": HEADS[kerasnets_family(model)],
        "preprocessing": {**CAFFE, "input_size": [size, size], "resize": 256, "crop": size,
                          "interpolation": "bilinear"},
        "classes": IMAGENET,
        "accuracy": {"top1": top1, "top5": top5, "source": source} if top1 else None, "default": False,
    } for name, model, layout, url, manual, file_name, sha1, size, top1, top5, source in CAFFE_FILES]


SEGNET_ZOO = "http://mi.eng.cam.ac.uk/~agk34/resources/SegNet/"
# SegNet-Tutorial's model zoo (Example_Models/segnet_model_zoo.md): (preset, file, classes, input size, what);
# the class counts and input sizes are those of the zoo's inference prototxts (conv1_1_D's num_output,
# input_dim). No hash is published: pinned on first use.
SEGNET_FILES = [
    ("segnet.camvid", "segnet_weights_driving_webdemo.caffemodel", 12, (360, 480),
     "road scenes (CamVid; the SegNet web demo's 12 classes)"),
    ("segnet.sun", "segnet_sun.caffemodel", 38, (360, 480), "indoor scenes (SUN RGB-D's 37 classes and void)"),
    ("segnet.sun_low_resolution", "segnet_sun_low_resolution.caffemodel", 38, (224, 224),
     "indoor scenes (SUN RGB-D's 37 classes and void) at 224x224"),
    ("segnet.pascal", "segnet_pascal.caffemodel", 21, (224, 224), "Pascal VOC 2012 (20 classes and background)"),
]


def segnet_rows():
    """caffe-segnet's VGG-16 SegNets: BGR 0..255 in, per-pixel class scores out (Caffe appends an ArgMax)."""
    return [{
        "name": name, "model": "segnet",
        "options": {**_layout_options("caffe-segnet", "segnet"), "classes": classes,
                    "input_shape": [height, width, 3]},
        "task": "segmentation",
        "publisher": f"SegNet-Tutorial model zoo (Kendall, Badrinarayanan, Cipolla; caffe-segnet): {what}; "
                     "CC BY-NC 4.0",
        "url": SEGNET_ZOO + file_name, "manual_download": False, "file_name": file_name, "file_size_mb": None,
        "hash": None, "format": "caffemodel", "layout": "caffe-segnet", "key_renames": [], "head": ["score_conv"],
        "preprocessing": {"mode": "segnet", "color": "BGR", "scale": 1.0, "mean": None, "std": None,
                          "input_size": [height, width], "resize": None, "crop": None, "interpolation": "bilinear"},
        "classes": None, "accuracy": None, "default": False,
    } for name, file_name, classes, (height, width), what in SEGNET_FILES]


def kerasnets_family(model):
    import kerasnets

    family = kerasnets.model_spec(model).family
    return "googlenet" if model == "googlenet" else family


FSRCNN_PAGES = {
    2: ("https://www.dropbox.com/s/1k3dker6g7hz76s/fsrcnn_x2.pth?dl=0", 37.12),
    3: ("https://www.dropbox.com/s/pm1ed2nyboulz5z/fsrcnn_x3.pth?dl=0", 33.22),
    4: ("https://www.dropbox.com/s/vsvumpopupdpmmu/fsrcnn_x4.pth?dl=0", 30.50),
}


def fsrcnn_rows():
    return [{
        "name": f"fsrcnn.x{scale}", "model": "fsrcnn", "options": {"scale": scale}, "task": "image-to-image",
        "publisher": "yjn870/FSRCNN-pytorch, FSRCNN(56,12,4) trained on 91-image",
        "url": url, "manual_download": True, "file_name": f"fsrcnn_x{scale}.pth", "file_size_mb": None,
        "hash": None, "format": "pth", "layout": "fsrcnn-pytorch", "key_renames": [], "head": [],
        "preprocessing": {"mode": "y", "color": "Y (YCbCr, BT.601 studio range)", "scale": 1 / 255, "mean": None,
                          "std": None, "input_size": None, "resize": None, "crop": None,
                          "interpolation": "bicubic (the LR image is a bicubic x1/scale downsample)"},
        "classes": None, "accuracy": {"set5_psnr": psnr, "source": "FSRCNN-pytorch README"}, "default": False,
    } for scale, (url, psnr) in FSRCNN_PAGES.items()]


FSRCNN_TENSORFLOW = "https://raw.githubusercontent.com/Saafke/FSRCNN_Tensorflow/6a4812c4ef1c4f5947d79beafa32a05a6eb4a94d/models/"
# (preset suffix, file, scale, builder options beyond the scale, sha256 of the file at the pinned commit)
FSRCNN_TENSORFLOW_FILES = [
    ("x2", "FSRCNN_x2.pb", 2, {}, "366b33f0084c7b3f2bf6724f0a2c77bca94fcec9d7b6d72389d330073b380d5c"),
    ("x3", "FSRCNN_x3.pb", 3, {}, "efd38655a815908c6c8954db6052f128e76a735f1de657894c477d0dc0b64481"),
    ("x4", "FSRCNN_x4.pb", 4, {}, "5c68d18db561aed8ead4ffedf1b897ea615baaf60ebf6c35f8e641f8fa4a21bf"),
    # FSRCNN-s: d, s, m = 32, 5, 1 (its main.py --small)
    ("small_x2", "FSRCNN-small_x2.pb", 2, {"d": 32, "s": 5, "m": 1},
     "429e4793d049c1ae16ddbbc322fd11c3c08831c0c20137390b4d098976a2b0d9"),
    ("small_x3", "FSRCNN-small_x3.pb", 3, {"d": 32, "s": 5, "m": 1},
     "58e72d0c4231b8e754180e787d7348f45ae6230ee3c5af7dc12b558467f593f7"),
    ("small_x4", "FSRCNN-small_x4.pb", 4, {"d": 32, "s": 5, "m": 1},
     "92a9f57c28494813b4dc073b51a300cb909401454d77541bcdc96b4d55901d02"),
]


def fsrcnn_tensorflow_rows():
    return [{
        "name": f"fsrcnn.opencv_{suffix}", "model": "fsrcnn",
        "options": {"scale": scale, **sizes, "upsampler": "subpixel"}, "task": "image-to-image",
        "publisher": (f"Saafke/FSRCNN_Tensorflow (OpenCV dnn_superres), FSRCNN{'-s' if sizes else ''}"
                      f"({sizes.get('d', 56)},{sizes.get('s', 12)},{sizes.get('m', 4)}) sub-pixel, T91 + General100"),
        "url": f"{FSRCNN_TENSORFLOW}{file_name}", "manual_download": False,
        "file_name": file_name, "file_size_mb": 0.01 if sizes else 0.04,
        "hash": {"algorithm": "sha256", "value": sha256}, "format": "tf-graphdef", "layout": "fsrcnn-tensorflow",
        "key_renames": [], "head": [],
        "preprocessing": {"mode": "y_full", "color": "Y (OpenCV COLOR_BGR2YCrCb, full range)", "scale": 1 / 255,
                          "mean": None, "std": None, "input_size": None, "resize": None, "crop": None,
                          "interpolation": "bicubic (the LR image is a cv2.INTER_CUBIC x1/scale downsample)"},
        "classes": None, "accuracy": None, "default": False,
    } for suffix, file_name, scale, sizes, sha256 in FSRCNN_TENSORFLOW_FILES]


JUNYANZ = "junyanz/pytorch-CycleGAN-and-pix2pix"
CYCLEGAN_BASE = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/"
# The names scripts/download_cyclegan_model.sh accepts; each file is one generator (latest_net_G.pth).
CYCLEGAN_GENERATORS = (
    "apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
    "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
    "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
    "iphone2dslr_flower",
)
# The files were saved by torch < 0.4, whose InstanceNorm2d carried running_mean/var buffers. junyanz's
# loader deletes them (__patch_instance_norm_state_dict): its norms (track_running_stats=False) use each
# image's own statistics, as ours do. The generator has no BatchNorm, so these are exactly the running
# statistics of its norm layers; the preset drops them, and any other stray array still fails the load.
INSTANCE_NORM_STATS = [r"model\.\d+(\.conv_block\.\d+)?\.running_(mean|var)"]
# Test time: load_size = crop_size = 256, a bicubic resize to 256x256 (junyanz stretches, load_image
# keeps the aspect and centre-crops), then Normalize(0.5, 0.5): RGB in [-1, 1].
JUNYANZ_PREPROCESSING = {"mode": "tf", "color": "RGB", "scale": 1 / 255, "mean": [0.5] * 3, "std": [0.5] * 3,
                         "input_size": [256, 256], "resize": 256, "crop": 256, "interpolation": "bicubic"}


def junyanz_rows():
    """CycleGAN generators as `--model test --no_dropout` runs them (resnet_9blocks, instance norm)."""
    return [{
        "name": f"cyclegan_generator.{name}", "model": "cyclegan_generator", "options": {},
        "task": "image-to-image", "publisher": f"{JUNYANZ} pretrained CycleGAN generator {name}",
        "url": f"{CYCLEGAN_BASE}{name}.pth", "manual_download": False,
        # prefixed: pix2pix publishes files of the same names (sat2map, map2sat, facades_label2photo)
        "file_name": f"cyclegan_{name}.pth", "file_size_mb": None, "hash": None, "format": "pth",
        "layout": "junyanz-resnet-generator", "key_renames": [], "head": [],
        "preprocessing": JUNYANZ_PREPROCESSING, "classes": None, "accuracy": None, "default": False,
        "drop_keys": INSTANCE_NORM_STATS,
    } for name in CYCLEGAN_GENERATORS]


PIX2PIX_BASE = "http://efrosgans.eecs.berkeley.edu/pix2pix/models-pytorch/"
# The names scripts/download_pix2pix_model.sh announces; each file is one unet_256 generator (latest_net_G.pth).
PIX2PIX_GENERATORS = ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night")


def junyanz_pix2pix_rows():
    """pix2pix generators (unet_256, batch norm) in eval mode; BN files need no drop_keys
    (torch < 0.4 wrote no num_batches_tracked, and the reader ignores it when present)."""
    return [{
        "name": f"pix2pix_generator.{name}", "model": "pix2pix_generator", "options": {"variant": "torch"},
        "task": "image-to-image", "publisher": f"{JUNYANZ} pretrained pix2pix generator {name}",
        "url": f"{PIX2PIX_BASE}{name}.pth", "manual_download": False,
        # prefixed: CycleGAN publishes files of the same names
        "file_name": f"pix2pix_{name}.pth", "file_size_mb": None, "hash": None, "format": "pth",
        "layout": "junyanz-unet-generator", "key_renames": [], "head": [],
        "preprocessing": JUNYANZ_PREPROCESSING, "classes": None, "accuracy": None, "default": False,
    } for name in PIX2PIX_GENERATORS]


MILESIAL = "milesial/Pytorch-UNet"
MILESIAL_BASE = f"https://github.com/{MILESIAL}/releases/download/v3.0/"
# hubconf.py's unet_carvana: UNet(n_channels=3, n_classes=2, bilinear=False), which is our padded U-Net with
# BN (bias-free convs, eps 1e-5); outputs are logits (predict.py takes the argmax). For inputs whose sides are
# multiples of 16 their Up's F.pad is a no-op; our builder accepts only those sizes.
MILESIAL_OPTIONS = {"padding": "same", "batch_norm": True, "bn_epsilon": 1e-5, "classes": 2,
                    "classifier_activation": None, "input_shape": [None, None, 3]}
# BasicDataset.preprocess: PIL bicubic resize of both sides by the scale factor, RGB, /255 (no mean/std).
MILESIAL_PREPROCESSING = {"mode": "none", "color": "RGB", "scale": 1 / 255, "mean": None, "std": None,
                          "input_size": None, "resize": None, "crop": None, "interpolation": "bicubic"}


def milesial_rows():
    """The Carvana car-masking U-Nets of milesial/Pytorch-UNet's v3.0 release, one per training scale."""
    return [{
        "name": f"unet.milesial_carvana_scale{scale}", "model": "unet", "options": MILESIAL_OPTIONS,
        "task": "segmentation",
        "publisher": f"{MILESIAL} v3.0 Carvana U-Net (background, car), trained on images scaled by {scale}: "
                     f"resize by {scale} before predicting",
        "url": f"{MILESIAL_BASE}unet_carvana_scale{scale}_epoch2.pth", "manual_download": False,
        "file_name": f"unet_carvana_scale{scale}_epoch2.pth", "file_size_mb": None, "hash": None, "format": "pth",
        "layout": "milesial-unet", "key_renames": [], "head": [], "preprocessing": MILESIAL_PREPROCESSING,
        # the file's 'mask_values' entry is a list, not a tensor: the reader skips it
        "classes": None,
        "accuracy": {"dice": 0.988423, "source": f"{MILESIAL} README (Kaggle Carvana test set; the README does "
                                                 "not say which scale's file)"},
        "default": False,
    } for scale in ("0.5", "1.0")]


# ---------------------------------------------------------------- TF-slim archives and timm on the hub

IMAGENET_CLASSES = {"name": "imagenet", "count": 1000, "file": "imagenet_classes.txt"}

def _layout_options(layout, model, extra=None):
    """The builder options `layout` implies for `model`, those its builder takes."""
    import inspect

    import kerasnets
    import weights_io

    spec = kerasnets.model_spec(model)
    implied = weights_io.get_layout(layout).implied_options(spec.family, model)
    params = inspect.signature(spec.builder).parameters
    has_kwargs = any(p.kind is p.VAR_KEYWORD for p in params.values())
    opts = {k: v for k, v in implied.items() if k in params or has_kwargs}
    opts.update(extra or {})
    return opts

def _head_of(rows, model, default=("predictions",)):
    for r in rows:
        if r["model"] == model and r["task"] == "classification":
            return list(r["head"])
    return list(default)

SLIM_TF = {"mode": "tf", "color": "RGB", "scale": 1 / 255, "mean": [0.5, 0.5, 0.5], "std": [0.5, 0.5, 0.5]}
SLIM_VGG = {"mode": "matconvnet", "color": "RGB", "scale": 1.0, "mean": [123.68, 116.78, 103.94], "std": None}
SLIM_README = "tensorflow/models research/slim README (single centre crop)"
# (registry model, slim name, archive date, checkpoint member, layout, preprocessing, size, top1, top5, extra options)
SLIM = [
    ("googlenet", "inception_v1", "2016_08_28", "inception_v1.ckpt", "tf-slim-inception-v1", SLIM_TF, 224, 69.8, 89.6),
    ("inception_v3", "inception_v3", "2016_08_28", "inception_v3.ckpt", "tf-slim-inception-v3", SLIM_TF, 299, 78.0, 93.9),
    ("inception_v4", "inception_v4", "2016_09_09", "inception_v4.ckpt", "tf-slim-inception-v4", SLIM_TF, 299, 80.2, 95.2),
    ("inception_resnet_v2", "inception_resnet_v2", "2016_08_30", "inception_resnet_v2_2016_08_30.ckpt",
     "tf-slim-inception-resnet-v2", SLIM_TF, 299, 80.4, 95.3),
    ("resnet50", "resnet_v1_50", "2016_08_28", "resnet_v1_50.ckpt", "tf-slim-resnet-v1", SLIM_VGG, 224, 75.2, 92.2),
    ("resnet101", "resnet_v1_101", "2016_08_28", "resnet_v1_101.ckpt", "tf-slim-resnet-v1", SLIM_VGG, 224, 76.4, 92.9),
    ("resnet152", "resnet_v1_152", "2016_08_28", "resnet_v1_152.ckpt", "tf-slim-resnet-v1", SLIM_VGG, 224, 76.8, 93.2),
    ("resnet50_v2", "resnet_v2_50", "2017_04_14", "resnet_v2_50.ckpt", "tf-slim-resnet-v2", SLIM_TF, 299, 75.6, 92.8),
    ("resnet101_v2", "resnet_v2_101", "2017_04_14", "resnet_v2_101.ckpt", "tf-slim-resnet-v2", SLIM_TF, 299, 77.0, 93.7),
    ("resnet152_v2", "resnet_v2_152", "2017_04_14", "resnet_v2_152.ckpt", "tf-slim-resnet-v2", SLIM_TF, 299, 77.8, 94.1),
    ("vgg16", "vgg_16", "2016_08_28", "vgg_16.ckpt", "tf-slim-vgg", SLIM_VGG, 224, 71.5, 89.8),
    ("vgg19", "vgg_19", "2016_08_28", "vgg_19.ckpt", "tf-slim-vgg", SLIM_VGG, 224, 71.1, 89.8),
]
def slim_rows(rows):
    """TF-slim model zoo archives (tar.gz of a checkpoint), no published hash: first use pins one."""
    import weights_io

    new = []
    for model, slim, date, ckpt, layout, prep, size, top1, top5 in SLIM:
        archive = f"{slim}_{date}.tar.gz"
        background = weights_io.get_layout(layout).background_classes is not None and not slim.startswith(("vgg", "resnet_v1"))
        inception = prep["mode"] == "tf"
        new.append({
            "name": f"{model}.tf_slim", "model": model, "options": _layout_options(layout, model), "task": "classification",
            "publisher": f"TF-slim model zoo {slim} ({archive}; {'1001 classes, background first' if background else '1000 classes'})",
            "url": f"http://download.tensorflow.org/models/{archive}", "manual_download": False,
            "file_name": archive, "file_size_mb": None, "hash": None, "format": "tf-checkpoint", "layout": layout,
            "key_renames": [], "head": ["predictions"] if model == "googlenet" else _head_of(rows, model),
            "preprocessing": {**prep, "input_size": [size, size],
                              # slim's inception_preprocessing: central 87.5% crop, bilinear resize to the size;
                              # vgg_preprocessing: shorter side to 256, central crop
                              "resize": round(size / 0.875) if inception else 256, "crop": size, "interpolation": "bilinear"},
            "classes": dict(IMAGENET_CLASSES), "accuracy": {"top1": top1, "top5": top5, "source": SLIM_README},
            "default": False, "aliases": [], "archive": {"type": "tar.gz", "checkpoint": ckpt},
        })
    return new

TIMM_TORCH = {"mode": "torch", "color": "RGB", "scale": 1 / 255, "mean": [0.485, 0.456, 0.406], "std": [0.229, 0.224, 0.225]}
TIMM_INCEPTION = {**SLIM_TF}
RESULTS = "timm results/results-imagenet.csv (huggingface/pytorch-image-models aa4b585), img_size {size}"
# (registry model, timm tag, layout, preprocessing, size, crop_pct, interpolation, top1, top5, extra options)
TIMM = [
    ("resnet50", "resnet50.a1_in1k", "torchvision-resnet", TIMM_TORCH, 224, 0.95, "bicubic", 80.382, 94.598),
    ("resnet50", "resnet50.tv_in1k", "torchvision-resnet", TIMM_TORCH, 224, 0.875, "bilinear", 76.156, 92.866),
    ("resnext50_32x4d", "resnext50_32x4d.a1h_in1k", "torchvision-resnet", TIMM_TORCH, 224, 0.95, "bicubic", 81.140, 95.320),
    ("se_resnet50", "seresnet50.a1_in1k", "torchvision-resnet", TIMM_TORCH, 224, 0.95, "bicubic", 80.012, 94.704),
    ("densenet121", "densenet121.tv_in1k", "torchvision-densenet", TIMM_TORCH, 224, 0.875, "bicubic", 74.750, 92.158),
    ("inception_v3", "inception_v3.tv_in1k", "torchvision-inception-v3", TIMM_INCEPTION, 299, 0.875, "bicubic", 77.472, 93.468),
    ("inception_v4", "inception_v4.tf_in1k", "cadene-inception-v4", TIMM_INCEPTION, 299, 0.875, "bicubic", 80.144, 94.982),
    ("inception_resnet_v2", "inception_resnet_v2.tf_in1k", "timm-inception-resnet-v2", TIMM_INCEPTION, 299, 0.8975, "bicubic", 80.434, 95.312),
    ("mobilenet_v3_large", "mobilenetv3_large_100.ra_in1k", "timm-mobilenet-v3", TIMM_TORCH, 224, 0.875, "bicubic", 75.784, 92.528),
    ("mobilenet_v3_small", "mobilenetv3_small_100.lamb_in1k", "timm-mobilenet-v3", TIMM_TORCH, 224, 0.875, "bicubic", 67.636, 87.638),
    ("vgg16", "vgg16.tv_in1k", "timm-vgg", TIMM_TORCH, 224, 0.875, "bilinear", 71.594, 90.398),
    ("vgg16_bn", "vgg16_bn.tv_in1k", "timm-vgg", TIMM_TORCH, 224, 0.875, "bilinear", 73.354, 91.490),
    ("vgg19", "vgg19.tv_in1k", "timm-vgg", TIMM_TORCH, 224, 0.875, "bilinear", 72.400, 90.878),
    ("vgg19_bn", "vgg19_bn.tv_in1k", "timm-vgg", TIMM_TORCH, 224, 0.875, "bilinear", 74.230, 91.848),
]
def timm_rows(rows):
    """timm's model.safetensors on the Hugging Face hub (revision \"main\": no commit hash could be looked up offline;
    the first-use sha256 still pins the file)."""
    new = []
    for model, tag, layout, prep, size, crop_pct, interp, top1, top5 in TIMM:
        repo = f"timm/{tag}"
        new.append({
            "name": f"{model}.timm_{tag.split('.', 1)[1]}", "model": model, "options": _layout_options(layout, model),
            "task": "classification", "publisher": f"timm {tag} (Hugging Face hub {repo}, timm 1.0.31 pretrained_cfg)",
            "url": f"https://huggingface.co/{repo}/resolve/main/model.safetensors", "manual_download": False,
            "file_name": f"{tag}.safetensors", "file_size_mb": None, "hash": None, "format": "safetensors",
            "layout": layout, "key_renames": [], "head": _head_of(rows, model),
            "preprocessing": {**prep, "input_size": [size, size], "resize": int(size / crop_pct), "crop": size,
                              "interpolation": interp},
            "classes": dict(IMAGENET_CLASSES), "accuracy": {"top1": top1, "top5": top5, "source": RESULTS.format(size=size)},
            "default": False, "aliases": [],
            # no commit hash could be looked up offline: "main" (the TOFU sha256 still pins the file on first use)
            "hub": {"repo_id": repo, "filename": "model.safetensors", "revision": "main"},
        })
    return new


def main():
    from torchvision.models._meta import _IMAGENET_CATEGORIES

    rows = (torchvision_rows() + keras_rows() + vgg_file_rows() + cadene_rows() + fsrcnn_rows() + fsrcnn_tensorflow_rows()
            + junyanz_rows() + junyanz_pix2pix_rows() + milesial_rows() + caffe_rows() + segnet_rows())
    rows += slim_rows(rows) + timm_rows(rows)
    # "imagenet" = the builder's default preset: one whose options are the builder's defaults.
    # torchvision's DEFAULT, except where the builder's default options are keras.applications'.
    defaults = {row["model"]: row["name"] for row in rows if row["default"] and row["task"] == "classification"}
    for model in ("densenet121", "densenet169", "densenet201", "mobilenet_v3_large", "mobilenet_v3_small"):
        defaults[model] = f"{model}.keras"
    # torchvision's GoogLeNet/Inception v3 weights need transform_input=True (v3 also variant='torchvision'),
    # which the builders do not default to: reachable by name or build_preset, not as "imagenet"
    for model in ("googlenet", "inception_v3"):
        defaults.pop(model, None)
    defaults["inception_v4"] = "inception_v4.cadene"  # the builder's defaults are TF-slim's network
    for row in rows:
        row["default"] = defaults.get(row["model"]) == row["name"]
        # what "imagenet" also answers to: the builder's model name when it differs from the registry's
        row["aliases"] = ["alexnet_torchvision"] if row["model"] == "alexnet" else []
    with open(os.path.join(DATA, "presets.json"), "w") as f:
        json.dump({"format_version": 1, "presets": rows}, f, indent=1)
        f.write("\n")
    with open(os.path.join(DATA, "imagenet_classes.txt"), "w") as f:
        f.write("\n".join(_IMAGENET_CATEGORIES) + "\n")
    print(f"{len(rows)} presets, {len(_IMAGENET_CATEGORIES)} ImageNet classes")


if __name__ == "__main__":
    main()
