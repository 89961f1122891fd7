"""How long FSRCNN x3 training (FSRCNN-pytorch settings) takes to beat bicubic on held-out photos.

    python benchmarks/fsrcnn_vs_bicubic.py            # up to 20 epochs
    python benchmarks/fsrcnn_vs_bicubic.py --quick    # up to 12 epochs

Train: scikit-image's astronaut, coffee, chelsea, rocket (x3 patches 7 -> 21,
stride 3, no augmentation: ~10.5k patches); held out: camera,
immunohistochemistry, coins (whole images). Adam 1e-3 with the deconvolution
at 1e-4, batch 16, seed 123. Prints the eval PSNR per epoch, the bicubic
PSNR, the first epoch and the wall-clock time at which FSRCNN beats bicubic,
and one `BENCH {json}` line for run_all.py.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

TRAIN = ("astronaut", "coffee", "chelsea", "rocket")
HELD_OUT = ("camera", "immunohistochemistry", "coins")


def _write(directory, names):
    import PIL.Image
    import skimage.data

    os.makedirs(directory, exist_ok=True)
    for name in names:
        PIL.Image.fromarray(getattr(skimage.data, name)()).save(os.path.join(directory, f"{name}.png"))
    return directory


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--epochs", type=int, default=None)
    parser.add_argument("--steps-per-execution", type=int, default=32)
    args = parser.parse_args(argv)
    epochs = args.epochs or (12 if args.quick else 20)

    from training.superres import bicubic_psnr, prepare_fsrcnn_h5, read_eval_h5, train_fsrcnn

    with tempfile.TemporaryDirectory() as tmp:
        patches = prepare_fsrcnn_h5(_write(os.path.join(tmp, "train"), TRAIN), os.path.join(tmp, "train.h5"), 3)
        prepare_fsrcnn_h5(_write(os.path.join(tmp, "eval"), HELD_OUT), os.path.join(tmp, "eval.h5"), 3, eval=True)
        bicubic = bicubic_psnr(read_eval_h5(os.path.join(tmp, "eval.h5")), 3)
        epoch_ends = []

        import keras

        class _Clock(keras.callbacks.Callback):
            def on_epoch_end(self, epoch, logs=None):
                epoch_ends.append(time.perf_counter())

        start = time.perf_counter()
        result = train_fsrcnn(os.path.join(tmp, "train.h5"), os.path.join(tmp, "eval.h5"), 3, None, epochs=epochs,
                              steps_per_execution=args.steps_per_execution, verbose=0, callbacks=[_Clock()])
    psnrs = result.history["eval_psnr"]
    first = next((i for i, p in enumerate(psnrs) if p > bicubic), None)
    seconds_to_beat = None if first is None else epoch_ends[first] - start
    print(f"{patches} train patches, {os.cpu_count()} CPUs; bicubic {bicubic:.2f} dB")
    print("eval PSNR per epoch: " + ", ".join(f"{p:.2f}" for p in psnrs))
    if first is None:
        print(f"FSRCNN did not beat bicubic within {epochs} epochs ({result.seconds:.0f} s); best {result.best_psnr:.2f} dB")
    else:
        print(f"FSRCNN beats bicubic first at epoch {first} ({first + 1} epochs, "
              f"{seconds_to_beat:.0f} s); best {result.best_psnr:.2f} dB at epoch {result.best_epoch}")
    print("BENCH " + json.dumps({
        "benchmark": "fsrcnn_vs_bicubic", "scale": 3, "train_patches": patches, "epochs": epochs,
        "bicubic_psnr": round(bicubic, 3), "eval_psnr": [round(p, 3) for p in psnrs],
        "best_psnr": round(result.best_psnr, 3), "first_epoch_beating_bicubic": first,
        "seconds_to_beat_bicubic": None if seconds_to_beat is None else round(seconds_to_beat, 1),
        "train_seconds": round(result.seconds, 1), "cpus": os.cpu_count(),
    }))


if __name__ == "__main__":
    main()
