"""FSRCNN training as FSRCNN-pytorch (yjn870) does it: h5 data, Adam with a slow deconv, best epoch by PSNR.

Data (``prepare_fsrcnn_h5``, the repository's ``prepare.py``): every image of
a folder (sorted names) is converted to RGB; its size is rounded down to a
multiple of `scale` by a PIL bicubic resize, the LR image is a PIL bicubic
downscale by `scale`, and both go to the Y channel
``Y = 16 + (64.738 R + 129.057 G + 25.064 B) / 256`` (0..255, float32).

* train file: datasets ``lr`` (N, p, p) and ``hr`` (N, p*s, p*s) of patches
  taken every `stride` LR pixels (the repository steps by `scale`); patch
  size p = 10 / 7 / 6 for x2 / x3 / x4. ``augment=True`` adds downscaled
  copies (0.9 .. 0.6) and 90/180/270 degree rotations of each image first.
* eval file: groups ``lr`` and ``hr`` holding one whole image per key
  ``str(i)``.

Training (``train_fsrcnn``, its ``train.py``): inputs and targets divided by
255, MSE loss, Adam(lr) on every layer except the deconvolution, which gets
0.1 x lr. Keras optimizers have no parameter groups, so `ScaledLRAdam`
multiplies the learning rate per variable inside Adam's update step: each
variable keeps its own moments and gets exactly the update a torch Adam
parameter group with that learning rate would give, and the whole thing
stays an ordinary optimizer under `model.fit`, on every backend. After every
epoch the weights are saved (``epoch_{N}.weights.h5``, N from 0 as in the
repository), PSNR is measured on the eval images (predictions clipped to
[0, 1], one image at a time) and the best epoch's weights are kept
(``best.weights.h5``) and restored into the returned model.
"""

from __future__ import annotations

import argparse
import dataclasses
import glob
import os
import time

import h5py
import keras
import numpy as np

from kerasnets.saving import link_atomically, save_weights_atomically
from training.fit import build_optimizer
from training.image_metrics import rgb_to_y
from training.optimizers import adam_update

__all__ = [
    "FSRCNN_PATCH_SIZES", "EvalPSNR", "FSRCNNTrainResult", "FSRCNNTrainSequence", "ScaledLRAdam",
    "add_prepare_arguments", "add_train_arguments", "bicubic_psnr", "calc_psnr", "evaluate_psnr",
    "prepare_fsrcnn_h5", "read_eval_h5", "run_prepare", "run_train", "train_fsrcnn",
]

# FSRCNN-pytorch utils.calc_patch_size: LR patch side per scale
FSRCNN_PATCH_SIZES = {2: 10, 3: 7, 4: 6}
AUGMENT_SCALES = (1.0, 0.9, 0.8, 0.7, 0.6)
AUGMENT_ROTATIONS = (0, 90, 180, 270)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".ppm", ".pgm", ".gif", ".webp")


def _pil():
    try:
        import PIL.Image
    except ImportError as err:  # pragma: no cover - pillow is a training dependency
        raise ImportError("FSRCNN data preparation needs Pillow: pip install pillow") from err
    return PIL.Image


def _check_scale(scale, known=None):
    if not isinstance(scale, int) or isinstance(scale, bool) or scale < 1:
        raise ValueError(f"`scale` must be an integer >= 1. Received: scale={scale!r}")
    if known is not None and scale not in known:
        raise ValueError(
            f"No default patch size for scale {scale} (FSRCNN-pytorch knows {sorted(known)}); pass `patch_size`. "
            f"Received: scale={scale!r}"
        )


def list_images(images_dir):
    """Image files directly in `images_dir`, sorted by name (the repository's ``sorted(glob(dir/*))``)."""
    if not os.path.isdir(images_dir):
        raise ValueError(f"`images_dir` must be a directory. Received: images_dir={images_dir!r}")
    paths = [p for p in sorted(glob.glob(os.path.join(glob.escape(os.fspath(images_dir)), "*")))
             if p.lower().endswith(IMAGE_EXTENSIONS) and os.path.isfile(p)]
    if not paths:
        raise ValueError(f"No image files ({', '.join(IMAGE_EXTENSIONS)}) in {images_dir!r}")
    return paths


def lr_hr_pair(image, scale):
    """(lr_y, hr_y) float32 arrays in 0..255 from a PIL RGB image, as the repository's prepare.py.

    The HR image is *resized* (bicubic) to the nearest smaller multiple of
    `scale`, not cropped; the LR image is its bicubic downscale.
    """
    pil = _pil()
    hr = image.resize(((image.width // scale) * scale, (image.height // scale) * scale), resample=pil.BICUBIC)
    lr = hr.resize((hr.width // scale, hr.height // scale), resample=pil.BICUBIC)
    return rgb_to_y(np.asarray(lr, np.float32)), rgb_to_y(np.asarray(hr, np.float32))


def _augmented(image):
    pil = _pil()
    for s in AUGMENT_SCALES:
        scaled = image.resize((int(image.width * s), int(image.height * s)), resample=pil.BICUBIC)
        for angle in AUGMENT_ROTATIONS:
            yield scaled.rotate(angle, expand=True)


def _patches(lr, hr, scale, patch_size, stride):
    p, q = patch_size, patch_size * scale
    rows = range(0, lr.shape[0] - p + 1, stride)
    cols = range(0, lr.shape[1] - p + 1, stride)
    lr_out = [lr[i:i + p, j:j + p] for i in rows for j in cols]
    hr_out = [hr[i * scale:i * scale + q, j * scale:j * scale + q] for i in rows for j in cols]
    return lr_out, hr_out


def prepare_fsrcnn_h5(images_dir, output_path, scale, eval=False, patch_size=None, stride=None, augment=False):
    """Builds an FSRCNN-pytorch train or eval h5 file from a folder of images.

    Args:
        images_dir: folder of images (any PIL-readable RGB/gray files).
        output_path: the h5 file to write (overwritten).
        scale: upscaling factor (2, 3, 4; others need `patch_size`).
        eval: write the eval layout (whole images in groups ``lr``/``hr``
            keyed ``"0"``, ``"1"``, ...) instead of training patches.
        patch_size: LR patch side; default 10 / 7 / 6 for x2 / x3 / x4.
        stride: step between patches in LR pixels; default `scale`, as the
            repository's loop ``range(0, h - p + 1, scale)``.
        augment: the repository's ``--with-aug``: each image also at 0.9,
            0.8, 0.7, 0.6 of its size, each of those rotated by 0/90/180/270.

    Returns:
        Number of patches (train) or images (eval) written.
    """
    _check_scale(scale, None if (eval or patch_size) else FSRCNN_PATCH_SIZES)
    patch_size = patch_size or (None if eval else FSRCNN_PATCH_SIZES[scale])
    stride = stride or scale
    if not eval and (not isinstance(patch_size, int) or patch_size < 1):
        raise ValueError(f"`patch_size` must be a positive integer. Received: patch_size={patch_size!r}")
    if not isinstance(stride, int) or stride < 1:
        raise ValueError(f"`stride` must be a positive integer. Received: stride={stride!r}")
    pil = _pil()
    paths = list_images(images_dir)
    os.makedirs(os.path.dirname(os.path.abspath(output_path)), exist_ok=True)
    with h5py.File(output_path, "w") as f:
        if eval:
            lr_group, hr_group = f.create_group("lr"), f.create_group("hr")
            for i, path in enumerate(paths):
                with pil.open(path) as image:
                    lr, hr = lr_hr_pair(image.convert("RGB"), scale)
                lr_group.create_dataset(str(i), data=lr)
                hr_group.create_dataset(str(i), data=hr)
            return len(paths)
        lr_patches, hr_patches = [], []
        for path in paths:
            with pil.open(path) as image:
                rgb = image.convert("RGB")
            for variant in (_augmented(rgb) if augment else (rgb,)):
                lr, hr = lr_hr_pair(variant, scale)
                new_lr, new_hr = _patches(lr, hr, scale, patch_size, stride)
                lr_patches += new_lr
                hr_patches += new_hr
        if not lr_patches:
            raise ValueError(f"Images in {images_dir!r} are smaller than one {patch_size}x{patch_size} LR patch")
        f.create_dataset("lr", data=np.stack(lr_patches).astype(np.float32))
        f.create_dataset("hr", data=np.stack(hr_patches).astype(np.float32))
        return len(lr_patches)


class FSRCNNTrainSequence(keras.utils.PyDataset):
    """Batches of (lr, hr) patches from a train h5 file, divided by 255, shape (B, p, p, 1).

    Shuffled every epoch with `seed` (the repository's DataLoader shuffle);
    the last batch may be smaller (its default ``drop_last=False``).

    Args:
        path: train h5 file from `prepare_fsrcnn_h5`.
        batch_size: patches per batch.
        shuffle: reshuffle the order at every epoch.
        seed: seed of the shuffling.
        in_memory: read the whole file once (fast); False reads each batch
            from disk, for files larger than memory.
    """

    def __init__(self, path, batch_size=16, shuffle=True, seed=123, in_memory=True, **kwargs):
        super().__init__(**kwargs)
        self.path = os.fspath(path)
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self._rng = np.random.default_rng(seed)
        with h5py.File(self.path, "r") as f:
            if "lr" not in f or "hr" not in f or not isinstance(f["lr"], h5py.Dataset):
                raise ValueError(f"{self.path} is not an FSRCNN train file (datasets 'lr' and 'hr')")
            self.size = len(f["lr"])
            self._data = (f["lr"][...], f["hr"][...]) if in_memory else None
        self._order = np.arange(self.size)
        self.on_epoch_end()

    def __len__(self):
        return -(-self.size // self.batch_size)

    def on_epoch_end(self):
        if self.shuffle:
            self._order = self._rng.permutation(self.size)

    def __getitem__(self, index):
        idx = np.sort(self._order[index * self.batch_size:(index + 1) * self.batch_size])
        if self._data is not None:
            lr, hr = self._data[0][idx], self._data[1][idx]
        else:
            with h5py.File(self.path, "r") as f:
                lr, hr = f["lr"][idx], f["hr"][idx]
        return (lr[..., None] / 255.0).astype(np.float32), (hr[..., None] / 255.0).astype(np.float32)


def read_eval_h5(path):
    """The eval file's images as a list of (lr, hr) float32 arrays (H, W, 1) in [0, 1]."""
    with h5py.File(path, "r") as f:
        if not isinstance(f.get("lr"), h5py.Group) or not isinstance(f.get("hr"), h5py.Group):
            raise ValueError(f"{path} is not an FSRCNN eval file (groups 'lr' and 'hr')")
        return [((f["lr"][str(i)][...] / 255.0)[..., None].astype(np.float32),
                 (f["hr"][str(i)][...] / 255.0)[..., None].astype(np.float32)) for i in range(len(f["lr"]))]


def calc_psnr(a, b):
    """FSRCNN-pytorch's ``10 * log10(1 / mse)`` for arrays in [0, 1] (numpy, float64)."""
    mse = np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2)
    return float(10.0 * np.log10(1.0 / mse))


def evaluate_psnr(model, eval_data):
    """Mean PSNR of `model` over (lr, hr) pairs, predictions clipped to [0, 1], one image at a time."""
    scores = []
    for lr, hr in eval_data:
        pred = keras.ops.convert_to_numpy(model(lr[None], training=False))[0]
        scores.append(calc_psnr(np.clip(pred, 0.0, 1.0), hr))
    return float(np.mean(scores))


def bicubic_psnr(eval_data, scale):
    """Mean PSNR of PIL bicubic upscaling of the LR Y images: the baseline FSRCNN must beat."""
    pil = _pil()
    scores = []
    for lr, hr in eval_data:
        up = pil.fromarray(lr[..., 0].astype(np.float32), mode="F").resize(
            (lr.shape[1] * scale, lr.shape[0] * scale), resample=pil.BICUBIC)
        scores.append(calc_psnr(np.clip(np.asarray(up), 0.0, 1.0), hr[..., 0]))
    return float(np.mean(scores))


@keras.saving.register_keras_serializable(package="kerasnets")
class ScaledLRAdam(keras.optimizers.Adam):
    """Adam with a learning-rate multiplier per layer (torch's parameter groups).

    Args:
        learning_rate: base learning rate.
        lr_multipliers: ``{layer_name: factor}``; a variable whose path has
            `layer_name` as a component (``"deconv/kernel"``) is updated with
            ``factor * learning_rate``. FSRCNN: ``{"deconv": 0.1}``.
        **kwargs: the other `keras.optimizers.Adam` arguments.
    """

    def __init__(self, learning_rate=1e-3, lr_multipliers=None, **kwargs):
        super().__init__(learning_rate=learning_rate, **kwargs)
        self.lr_multipliers = {str(k): float(v) for k, v in (lr_multipliers or {}).items()}
        self._factors = {}

    def _factor_for(self, variable):
        parts = variable.path.split("/")
        factors = [f for name, f in self.lr_multipliers.items() if name in parts]
        return factors[0] if factors else 1.0

    def build(self, var_list):
        super().build(var_list)
        self._factors = {self._get_variable_index(v): self._factor_for(v) for v in var_list}
        unused = [n for n in self.lr_multipliers if not any(n in v.path.split("/") for v in var_list)]
        if unused:
            raise ValueError(f"`lr_multipliers` names layers with no trainable variables: {unused}")

    def update_step(self, gradient, variable, learning_rate):
        factor = self._factors.get(self._get_variable_index(variable), 1.0)
        if factor != 1.0:
            learning_rate = learning_rate * factor
        adam_update(self, gradient, variable, learning_rate)  # TensorFlow's fused kernel there

    def get_config(self):
        return {**super().get_config(), "lr_multipliers": dict(self.lr_multipliers)}


class EvalPSNR(keras.callbacks.Callback):
    """Per epoch: save ``epoch_{N}.weights.h5``, measure eval PSNR, keep the best weights.

    Adds ``eval_psnr`` to the epoch logs (so History records it).

    Args:
        eval_data: list of (lr, hr) arrays, e.g. `read_eval_h5(path)`.
        outputs_dir: folder for the weight files, or None to write nothing.
        verbose: print ``eval psnr`` per epoch, as the repository does.
    """

    def __init__(self, eval_data, outputs_dir=None, verbose=1):
        super().__init__()
        self.eval_data = eval_data
        self.outputs_dir = outputs_dir
        self.verbose = verbose
        self.best_epoch, self.best_psnr, self.best_weights = -1, -np.inf, None

    def on_epoch_end(self, epoch, logs=None):
        epoch_file = None
        if self.outputs_dir:
            epoch_file = save_weights_atomically(self.model, os.path.join(self.outputs_dir, f"epoch_{epoch}.weights.h5"))
        value = evaluate_psnr(self.model, self.eval_data)
        if logs is not None:
            logs["eval_psnr"] = value
        if self.verbose:
            print(f"epoch {epoch}: eval psnr {value:.2f}")
        if value > self.best_psnr:
            self.best_epoch, self.best_psnr = epoch, value
            self.best_weights = [np.array(w) for w in self.model.get_weights()]
            if epoch_file:  # the same weights: a second name for the epoch's file
                link_atomically(epoch_file, os.path.join(self.outputs_dir, "best.weights.h5"))


@dataclasses.dataclass
class FSRCNNTrainResult:
    """What `train_fsrcnn` returns."""

    history: dict
    best_epoch: int
    best_psnr: float
    best_weights_path: str | None
    model: keras.Model
    seconds: float


def train_fsrcnn(train_file, eval_file, scale, outputs_dir, epochs=20, batch_size=16, lr=1e-3, *,
                 weights_file=None, seed=123, deconv_lr_factor=0.1, d=56, s=12, m=4, in_memory=True,
                 steps_per_execution=1, callbacks=None, verbose=1):
    """Trains FSRCNN on h5 files from `prepare_fsrcnn_h5`, as FSRCNN-pytorch's train.py.

    Args:
        train_file: train h5 (datasets ``lr``, ``hr``).
        eval_file: eval h5 (groups ``lr``, ``hr``).
        scale: upscaling factor; must match the files.
        outputs_dir: weights go to ``{outputs_dir}/x{scale}/`` (``epoch_N`` and
            ``best`` ``.weights.h5``), as the repository.
        epochs: number of epochs (the repository's 20 by default).
        batch_size: patches per step (16).
        lr: Adam learning rate (1e-3); the deconvolution uses
            ``deconv_lr_factor * lr``.
        weights_file: start from these weights (any file
            `kerasnets.build_fsrcnn(weights=...)` takes: ``.weights.h5``, an
            FSRCNN-pytorch ``.pth``).
        seed: seeds initialisation and shuffling (the repository's 123).
        deconv_lr_factor: learning-rate factor of the last layer (0.1).
        d, s, m: FSRCNN widths and depth (56, 12, 4).
        in_memory: load the train file into memory (see `FSRCNNTrainSequence`).
        steps_per_execution: Keras' steps per compiled call; FSRCNN steps
            are tiny, so 16-64 removes most per-step overhead on CPU.
        callbacks: more Keras callbacks (run after the PSNR tracker).
        verbose: Keras fit verbosity; also prints the eval PSNR per epoch.

    Returns:
        `FSRCNNTrainResult`: the Keras history (``loss``, ``eval_psnr`` per
        epoch), best epoch and PSNR, the best weights' path, and the model
        holding the best weights.
    """
    import kerasnets

    _check_scale(scale)
    for value, arg in ((epochs, "epochs"), (batch_size, "batch_size")):
        if not isinstance(value, int) or value < 1:
            raise ValueError(f"`{arg}` must be a positive integer. Received: {arg}={value!r}")
    if not lr > 0:
        raise ValueError(f"`lr` must be positive. Received: lr={lr!r}")
    keras.utils.set_random_seed(seed)
    train = FSRCNNTrainSequence(train_file, batch_size=batch_size, seed=seed, in_memory=in_memory)
    eval_data = read_eval_h5(eval_file)
    lr_patch = train[0][0].shape[1]
    hr_patch = train[0][1].shape[1]
    if hr_patch != lr_patch * scale:
        raise ValueError(f"{train_file} holds x{hr_patch // lr_patch} patches ({lr_patch} -> {hr_patch}); "
                         f"Received: scale={scale}")
    model = kerasnets.build_fsrcnn(scale=scale, d=d, s=s, m=m, weights=weights_file)
    model.compile(optimizer=ScaledLRAdam(lr, {"deconv": deconv_lr_factor}), loss="mse",
                  steps_per_execution=steps_per_execution)
    build_optimizer(model)
    run_dir = os.path.join(os.fspath(outputs_dir), f"x{scale}") if outputs_dir else None
    if run_dir:
        os.makedirs(run_dir, exist_ok=True)
    tracker = EvalPSNR(eval_data, run_dir, verbose=verbose)
    start = time.perf_counter()
    history = model.fit(train, epochs=epochs, callbacks=[tracker, *(callbacks or ())], verbose=verbose)
    seconds = time.perf_counter() - start
    model.set_weights(tracker.best_weights)
    if verbose:
        print(f"best epoch: {tracker.best_epoch}, psnr: {tracker.best_psnr:.2f}")
    return FSRCNNTrainResult(
        history=history.history, best_epoch=tracker.best_epoch, best_psnr=tracker.best_psnr,
        best_weights_path=os.path.join(run_dir, "best.weights.h5") if run_dir else None, model=model,
        seconds=seconds,
    )


def add_prepare_arguments(parser):
    """Adds FSRCNN-pytorch prepare.py's flags to an argparse parser (``kerasnets prepare``)."""
    parser.add_argument("--images-dir", required=True, help="folder of training or evaluation images")
    parser.add_argument("--output-path", required=True, help="h5 file to write")
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--with-aug", action="store_true", help="add 0.9-0.6 downscales x 4 rotations")
    parser.add_argument("--eval", action="store_true", help="write the eval layout (whole images)")
    parser.add_argument("--patch-size", type=int, default=None, help="LR patch side (10/7/6 for x2/x3/x4)")
    parser.add_argument("--stride", type=int, default=None, help="patch step in LR pixels (default: scale)")
    return parser


def run_prepare(args):
    """Runs `prepare_fsrcnn_h5` from parsed `add_prepare_arguments` flags; returns the count written."""
    count = prepare_fsrcnn_h5(args.images_dir, args.output_path, args.scale, eval=args.eval,
                              patch_size=args.patch_size, stride=args.stride, augment=args.with_aug)
    print(f"wrote {count} {'images' if args.eval else 'patches'} to {args.output_path}")
    return count


def add_train_arguments(parser):
    """Adds FSRCNN-pytorch train.py's flags to an argparse parser (``kerasnets train fsrcnn``)."""
    parser.add_argument("--train-file", required=True)
    parser.add_argument("--eval-file", required=True)
    parser.add_argument("--outputs-dir", required=True)
    parser.add_argument("--weights-file", default=None)
    parser.add_argument("--scale", type=int, default=2)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-epochs", type=int, default=20)
    parser.add_argument("--seed", type=int, default=123)
    return parser


def run_train(args):
    """Runs `train_fsrcnn` from parsed `add_train_arguments` flags; returns its result."""
    return train_fsrcnn(args.train_file, args.eval_file, args.scale, args.outputs_dir, epochs=args.num_epochs,
                        batch_size=args.batch_size, lr=args.lr, weights_file=args.weights_file, seed=args.seed)


def main(argv=None):
    """``python -m training.superres prepare|train ...`` until the CLI wires these in."""
    parser = argparse.ArgumentParser(prog="python -m training.superres")
    sub = parser.add_subparsers(dest="command", required=True)
    add_prepare_arguments(sub.add_parser("prepare", help="build FSRCNN h5 files from a folder of images"))
    add_train_arguments(sub.add_parser("train", help="train FSRCNN on h5 files"))
    args = parser.parse_args(argv)
    return run_prepare(args) if args.command == "prepare" else run_train(args)


if __name__ == "__main__":
    main()
