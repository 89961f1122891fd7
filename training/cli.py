"""The `kerasnets` command.

    kerasnets train                      # LeNet-5 on the bundled digits -> lenet5.h5
    kerasnets list                       # every model: family, input, parameters
    kerasnets summary vgg16 --receptive-field
    kerasnets convert --arch vgg16 --from vgg16.npy --to vgg16.h5
    kerasnets convert deploy.prototxt --weights net.caffemodel --out net.keras
    kerasnets train --model resnet34 --data flower_photos/ --weights resnet34.pth --epochs 3
    kerasnets train fsrcnn --train-file train.h5 --eval-file eval.h5 --scale 3
    kerasnets prepare --images-dir photos/ --output train.h5 --scale 3
    kerasnets predict --model model.keras --image tulip.jpg --classes class_indices.json
    kerasnets export resnet50 --format onnx --output resnet50.onnx --weights resnet50.weights.h5

It lives in `training`, the top of the stack (weights_io <- kerasnets <- training),
so that `kerasnets` never imports `training`. Heavy imports (Keras, TensorFlow)
happen inside each command, so `--help` is instant.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys


def _parse_option(text):
    """`key=value` -> (key, value), the value read as JSON or a Python literal when it parses
    (`true`/`True`, numbers, `[32,32,3]`/`(32,32,3)`), else kept as a string."""
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"options are key=value, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        pass
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


def _options(pairs):
    return dict(pairs or [])


def _param_cache_path():
    import kerasnets

    home = os.environ.get("KERASNETS_HOME", os.path.join(os.path.expanduser("~"), ".cache", "kerasnets"))
    return os.path.join(home, f"param_counts-{kerasnets.__version__}.json")


def _parameter_counts(names, refresh=False):
    """Builds each model once (shapes only) to count its parameters; cached per version."""
    import keras

    from kerasnets import parameter_count
    from kerasnets.registry import each_built_model

    path = _param_cache_path()
    cache = {}
    if os.path.exists(path) and not refresh:
        with open(path) as f:
            cache = json.load(f)
    todo = [n for n in names if n not in cache]
    if todo:
        print(f"counting parameters of {len(todo)} models (cached for next time)...", file=sys.stderr)
        bar = keras.utils.Progbar(len(todo), stateful_metrics=["model"])
        for i, (name, model) in enumerate(each_built_model(todo), 1):
            cache[name] = parameter_count(model)
            bar.update(i)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w") as f:
            json.dump(cache, f, indent=1, sort_keys=True)
    return cache


def cmd_list(args):
    from kerasnets import available_models, model_spec
    from kerasnets.summary import format_table

    names = available_models(family=args.family, task=args.task)
    counts = {} if args.no_params else _parameter_counts(names, refresh=args.refresh)
    rows = []
    for name in names:
        spec = model_spec(name)
        row = [name, spec.family, spec.task, spec.input_text]
        if not args.no_params:
            row.append(counts[name])
        rows.append(row)
    headers = ["model", "family", "task", "input"] + ([] if args.no_params else ["params"])
    print(format_table(headers, rows))
    return 0


def _weights_summary(path):
    """`summary --weights FILE`: what the file is, which network it holds, what it carries."""
    import numpy as np

    import weights_io
    from kerasnets.identify import rank_models

    weight_file = weights_io.read_weights(path, mmap=True)
    arrays = [a for params in weight_file.tensors.values() for a in params.values()]
    print(f"File: {path}")
    print(f"Format: {weight_file.format} ({weight_file.convention} convention)")
    print(f"Tensors: {len(arrays)} in {len(weight_file.tensors)} layers; "
          f"{sum(int(np.prod(np.shape(a))) for a in arrays):,} numbers")
    if weight_file.format == "caffemodel":
        print(_caffe_layer_table(weight_file))
    matches = rank_models(weight_file)
    if matches and matches[0].complete:
        print(f"Network: {matches[0].name} ({matches[0].layout} layout"
              + (", without its classifier)" if matches[0].headless else ")"))
    else:
        print("Network: none of the registered models takes the whole file; closest:")
        for match in matches[:3]:
            print(f"  {match.describe()}")
    for key, value in weight_file.metadata.items():
        text = str(value)
        print(f"Metadata {key}: {text[:200]}{'...' if len(text) > 200 else ''}")
    return 0


def _caffe_layer_table(weight_file):
    """Every layer of a caffemodel in file order: name, type, blob shapes (Caffe's axes), parameters."""
    import numpy as np

    from kerasnets.summary import format_table

    rows, total = [], 0
    for name, kind in weight_file.metadata["layer_types"].items():
        blobs = list(weight_file.tensors.get(name, {}).values())
        count = sum(int(np.prod(np.shape(b))) for b in blobs)
        total += count
        rows.append([name, kind, ", ".join("x".join(map(str, np.shape(b))) for b in blobs) or "-", f"{count:,}"])
    return format_table(["layer", "type", "blobs", "params"], rows) + f"\nParameters: {total:,}"


def cmd_summary(args):
    from kerasnets import build, parameter_count
    from kerasnets.summary import format_table, layer_table

    if args.weights:
        return _weights_summary(args.weights)
    if not args.name:
        raise ValueError("summary needs a model name or --weights FILE. Received: neither")
    options = _options(args.option)
    if args.input_shape:
        options["input_shape"] = tuple(args.input_shape)
    model = build(args.name, **options)
    headers = ["layer", "type", "output shape", "params"] + (["receptive field"] if args.receptive_field else [])
    print(f"Model: {model.name}")
    print(format_table(headers, layer_table(model, receptive_field=args.receptive_field)))
    print(f"Outputs: {[tuple(o.shape) for o in model.outputs]}")
    print(f"Parameters: {parameter_count(model):,} (BN moving statistics excluded); "
          f"{model.count_params():,} in all")
    return 0


def _optimizer_config(args):
    """`--optimizer`, `--momentum`, `--nesterov`, `--weight-decay` as a `training.optimizers.make_optimizer` config."""
    config = {}
    if args.optimizer == "sgd":
        config.update(momentum=0.9 if args.momentum is None else args.momentum, nesterov=args.nesterov)
    elif args.momentum is not None or args.nesterov:
        raise SystemExit("--momentum and --nesterov are SGD's: add --optimizer sgd")
    if args.weight_decay is not None:
        config["weight_decay"] = args.weight_decay
    return {"class_name": args.optimizer, "config": config}


def cmd_train(args):
    target = (args.target or args.model or "lenet5").lower()
    if target == "fsrcnn":
        from training import superres

        if not (args.train_file and args.eval_file):
            raise SystemExit("kerasnets train fsrcnn needs --train-file and --eval-file (make them with kerasnets prepare)")
        result = superres.train_fsrcnn(
            args.train_file, args.eval_file, scale=args.scale, outputs_dir=args.output_dir or "fsrcnn_outputs",
            epochs=args.epochs or 20, batch_size=args.batch_size or 16,
        )
        print(f"best epoch {result.best_epoch}: eval PSNR {result.best_psnr:.2f} dB -> {result.best_weights_path}")
        return 0
    if args.data is None:
        if target != "lenet5":
            raise SystemExit(f"--data DIR (one folder per class) is needed to train {target}")
        from training.digits import train_lenet5_digits

        result = train_lenet5_digits(output=args.output or "lenet5.h5", epochs=args.epochs or 25,
                                     batch_size=args.batch_size or 32, learning_rate=args.learning_rate or 1e-3,
                                     seed=args.seed, precision=args.precision, optimizer=_optimizer_config(args))
        return 0 if result["test_accuracy"] > 0 else 1
    from training.folder import train_on_folder
    from weights_io import WeightMismatchError

    try:
        train_on_folder(
            target, args.data, weights=args.weights, strict=not args.no_strict, options=_options(args.option),
            epochs=args.epochs or 10, batch_size=args.batch_size or 32, image_size=args.image_size,
            output_dir=args.output_dir or f"{target}_run", output=args.output, transfer=args.transfer,
            last_n=args.last_n, preprocessing=args.preprocessing, learning_rate=args.learning_rate,
            augmentation=None if args.augmentation == "none" else "default", val_dir=args.val_data,
            validation_split=args.validation_split, schedule=args.schedule, seed=args.seed,
            resume=args.resume, strategy=args.strategy, precision=args.precision,
            jit_compile={"auto": "auto", "on": True, "off": False}[args.jit_compile],
            steps_per_execution=args.steps_per_execution, optimizer=_optimizer_config(args),
        )
    except WeightMismatchError as err:
        raise ValueError(f"{err}\n(`kerasnets train --no-strict` loads what fits and lists the rest.)") from None
    return 0


def cmd_convert(args):
    from kerasnets.convert import convert

    if (args.file or args.src or "").endswith(".prototxt"):
        return _convert_caffe(args, args.file or args.src)
    if args.weights:  # a preset: no --from; its options and weights, saved as --to
        from kerasnets.saving import save_model_atomically, save_weights_atomically

        model = _build_with_preset(args.weights, _options(args.option))
        save = save_weights_atomically if args.dst.endswith(".weights.h5") else save_model_atomically
        save(model, args.dst)
        print(f"saved {args.dst} ({args.weights})")
        return 0
    args.src = args.src or args.file
    if not args.src:
        raise ValueError("convert needs a weight file (FILE or --from), or --weights <preset>. Received: neither")
    if not args.arch:  # the file says which network it holds
        return _convert_recognised(args)
    report = convert(args.arch, args.src, args.dst, source=args.source, strict=not args.no_strict,
                     progress=False if args.quiet else ("auto" if not args.progress else True),
                     **_options(args.option))
    print(report)
    if report.suggested_call:
        print(f"built as {report.suggested_call}")
    print(f"saved {args.dst}")
    return 0


def _convert_caffe(args, prototxt):
    """`convert deploy.prototxt --weights net.caffemodel --out net.keras`: kerasnets.from_caffe, saved."""
    from kerasnets.caffe import from_caffe
    from kerasnets.saving import save_model_atomically, save_weights_atomically

    if not args.dst.endswith((".weights.h5", ".keras", ".h5")):
        raise ValueError(f"--out must end with .keras, .h5 or .weights.h5. Received: {args.dst!r}")
    try:
        model = from_caffe(prototxt, args.weights, strict=not args.no_strict, **_options(args.option))
    except TypeError as err:  # an --option from_caffe does not take
        raise ValueError(f"--option: {err}") from None
    save = save_weights_atomically if args.dst.endswith(".weights.h5") else save_model_atomically
    save(model, args.dst)
    loaded = f"blobs of {args.weights}" if args.weights else "no weights (freshly initialised)"
    print(f"built {model.name} from {prototxt}: {len(model.layers)} layers, {model.count_params():,} parameters, "
          f"{loaded}")
    print(f"saved {args.dst}")
    return 0


def _convert_recognised(args):
    from kerasnets.convert import progress_line
    from kerasnets.identify import from_weights

    if not args.dst.endswith((".weights.h5", ".keras", ".h5")):
        raise ValueError(f"--out must end with .keras, .h5 or .weights.h5. Received: {args.dst!r}")
    model = from_weights(args.src, source=args.source, strict=not args.no_strict,
                         progress=progress_line() if args.progress else None, **_options(args.option))
    print(model.weights_report)
    from weights_io.core import build_record

    record = build_record(model)
    print(f"recognised {record.model if record else model.name}: {record.call() if record else ''}")
    if args.dst.endswith(".weights.h5"):
        model.save_weights(args.dst)
    else:
        model.save(args.dst)
    print(f"saved {args.dst}")
    return 0


def cmd_fetch_weights(args):
    from kerasnets import presets

    preset = presets.get_preset(args.preset)
    source, converted = presets.fetch(preset, weights_file=args.file)
    print(f"{preset.name}: source {source} (sha256 {presets.file_digest(source)})")
    print(f"{preset.name}: converted Keras weights {converted}")
    return 0


def cmd_weights_list(args):
    from kerasnets import presets
    from kerasnets.summary import format_table

    rows = []
    for p in presets.list_presets(model=args.model):
        acc = p.accuracy or {}
        score = (f"{acc['top1']:.2f}/{acc['top5']:.2f}" if acc.get("top1") and acc.get("top5")
                 else f"{acc['top1']:.1f}/-" if acc.get("top1") else f"{acc['set5_psnr']} dB" if "set5_psnr" in acc
                 else "-")
        rows.append([p.name, p.model, "yes" if p.default else "", p.format, p.preprocessing["mode"], score,
                     p.hash["algorithm"] if p.hash else "none (TOFU)", "manual" if p.manual_download else "auto"])
    print(format_table(["preset", "model", "imagenet", "format", "preprocessing", "top1/top5", "hash", "download"],
                       rows))
    return 0


def _build_with_preset(name, options):
    """`--weights <preset>` for convert: the preset's model, its options, its weights."""
    from kerasnets.presets import build_preset

    return build_preset(name, **options)


def _predict_preset(args):
    """`predict --weights <preset>`: resize, centre-crop, the preset's preprocessing, its class names."""
    from kerasnets import presets
    from kerasnets.imagenet import decode_predictions, load_image, preset_preprocessing

    preset = presets.get_preset(args.weights)
    model = presets.build_preset(preset.name)
    for path in args.image:
        x = load_image(path, preset.name)
        preds = model.predict(preset_preprocessing(preset.name)(x), verbose=0)
        for wnid, name, score in decode_predictions(preds, top=args.top_k)[0]:
            print(f"{path}\t{wnid}\t{name}\t{score:.4f}")
    return 0


def cmd_predict(args):
    if args.weights and not args.model:
        return _predict_preset(args)
    if not args.model:
        raise ValueError("predict needs --model <saved model> or --weights <preset>. Received: neither")
    from training.predict import predict_cli

    return predict_cli(args)


def cmd_export(args):
    from training.deploy import export_cli  # TensorFlow/onnxruntime only when exporting

    return export_cli(args)


def cmd_prepare(args):
    from training.superres import prepare_fsrcnn_h5

    path = prepare_fsrcnn_h5(args.images_dir, args.output, scale=args.scale, eval=args.eval,
                             augment=args.augment)
    print(f"wrote {path}")
    return 0


def build_parser():
    parser = argparse.ArgumentParser(
        prog="kerasnets",
        description="Classic CNNs in Keras 3: list and inspect models, import weights, train, predict.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    p = sub.add_parser("list", help="every registered model with family, input size and parameter count",
                       description="List registered models. Parameter counts build each model once and are cached.")
    p.add_argument("--family", help="only this family (vgg, resnet, ...)")
    p.add_argument("--task", help="only this task (classification, image-to-image, generative)")
    p.add_argument("--no-params", action="store_true", help="skip parameter counts (instant)")
    p.add_argument("--refresh", action="store_true", help="recount parameters, ignoring the cache")
    p.set_defaults(func=cmd_list)

    p = sub.add_parser("summary", help="layer table of one model",
                       description="Layer table (output shapes, parameters), optionally receptive fields.")
    p.add_argument("name", nargs="?", help="model name, e.g. vgg16 (see kerasnets list)")
    p.add_argument("--weights", metavar="FILE", help="summarise a weight file instead: format, the network it "
                   "holds (recognised by kerasnets.from_weights), tensors, metadata")
    p.add_argument("--receptive-field", action="store_true", help="add each layer's receptive field in pixels")
    p.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"), help="input shape, channels last")
    p.add_argument("--option", type=_parse_option, action="append", metavar="KEY=VALUE",
                   help="builder option, e.g. --option batch_norm=true --option include_top=false")
    p.set_defaults(func=cmd_summary)

    p = sub.add_parser("train", help="train a model (default: LeNet-5 on the bundled digits)",
                       description="With no arguments: LeNet-5 on scikit-learn's digits, saved to lenet5.h5. "
                       "With --data DIR: fine-tune --model on a folder-per-class image tree. "
                       "With 'fsrcnn': super-resolution training on h5 files from `kerasnets prepare`.")
    p.add_argument("target", nargs="?", help="'fsrcnn' for super-resolution; otherwise use --model")
    g = p.add_argument_group("model and weights")
    g.add_argument("--model", help="registered model name (default lenet5)")
    g.add_argument("--weights", help="weight file or preset to start from (.pth/.npy/.mat/.h5, resnet50.keras)")
    g.add_argument("--option", type=_parse_option, action="append", metavar="KEY=VALUE",
                   help="builder option, repeatable, e.g. --option padding=torch")
    g.add_argument("--no-strict", action="store_true", help="load a --weights file non-strictly and list what "
                   "was skipped (default: only a classifier of another size is replaced)")
    g.add_argument("--transfer", default="all", choices=["all", "last", "head"],
                   help="train all layers, only the last layers (--last-n blocks) and the head, or only a new head")
    g.add_argument("--last-n", type=int, default=1, help="with --transfer last: how many blocks train")
    g = p.add_argument_group("data")
    g.add_argument("--data", help="folder with one sub-folder of images per class")
    g.add_argument("--val-data", help="a separate validation folder (default: --validation-split of --data)")
    g.add_argument("--validation-split", type=float, default=0.2, help="fraction of each class held out")
    g.add_argument("--image-size", type=int, help="square input size (default: the model's)")
    g.add_argument("--augmentation", default="default", choices=["default", "none"],
                   help="default: small shifts and rotations, PCA lighting, on 0..255 pixels")
    g.add_argument("--preprocessing", help="input normalisation baked into the model (default: torch with a "
                   "weight file, the preset's with a preset, tf ([-1, 1]) from scratch)")
    g = p.add_argument_group("training")
    g.add_argument("--epochs", type=int)
    g.add_argument("--batch-size", type=int)
    g.add_argument("--learning-rate", type=float, help="the optimizer's rate (default 1e-4 from weights, else 1e-3)")
    g.add_argument("--optimizer", default="adam", choices=["adam", "adamw", "sgd"],
                   help="adam (default), adamw (decoupled weight decay) or sgd; Adam and SGD run TensorFlow's fused kernels")
    g.add_argument("--momentum", type=float, help="SGD's momentum (default 0.9)")
    g.add_argument("--nesterov", action="store_true", help="SGD with Nesterov momentum")
    g.add_argument("--weight-decay", type=float, help="decoupled weight decay (adamw default 0.004, else none)")
    g.add_argument("--schedule", choices=["step", "cosine", "plateau"], help="learning-rate schedule (default none)")
    g.add_argument("--seed", type=int, default=0, help="seeds the split, shuffling, augmentation and initialisation")
    g = p.add_argument_group("run directory")
    g.add_argument("--run-dir", "--output-dir", dest="output_dir", help="checkpoints, log, class_indices.json, "
                   "curves and the final model (default MODEL_run, e.g. resnet18_run)")
    g.add_argument("--output", help="where the final model is saved, .keras or .h5 (default lenet5.h5 for the "
                   "digits job; with --data the inference model, also kept as RUN_DIR/final.keras and final.h5)")
    g.add_argument("--resume", action=argparse.BooleanOptionalAction, default=True,
                   help="continue an interrupted run from RUN_DIR/backup (default); --no-resume starts afresh")
    g = p.add_argument_group("speed and distribution")
    g.add_argument("--strategy", choices=["mirrored", "multiworker"],
                   help="tf.distribute strategy (multiworker reads TF_CONFIG); default one device")
    g.add_argument("--precision", default="auto", choices=["auto", "float32", "mixed_float16", "mixed_bfloat16"],
                   help="auto (default): float16 on a GPU with tensor cores, bfloat16 on a CPU with AVX512_BF16 or "
                   "AMX, else float32; logits and loss stay float32 (mixed_float16 without a GPU: float32 and a warning)")
    g.add_argument("--jit-compile", default="auto", choices=["auto", "on", "off"], help="XLA compilation")
    g.add_argument("--steps-per-execution", type=int, default=1, help="batches per compiled call")
    g = p.add_argument_group("fsrcnn")
    g.add_argument("--train-file", help="training h5 from kerasnets prepare")
    g.add_argument("--eval-file", help="evaluation h5 from kerasnets prepare --eval")
    g.add_argument("--scale", type=int, default=3, help="upscaling factor")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("convert", help="import a weight file into a model and save it as .h5/.keras",
                       description="Build --arch as the publisher of --from built it (the builder options its "
                       "layout implies and its class count, unless --option names them), load --from through "
                       "weights_io (format and layout detected, all or nothing), print the report, save --to.")
    p.add_argument("file", nargs="?", help="weight file; without --model its network is recognised from it "
                   "(kerasnets.from_weights). A Caffe .prototxt is built as it stands (kerasnets.from_caffe), "
                   "its .caffemodel given by --weights")
    p.add_argument("--model", "--arch", dest="arch", help="model name, e.g. resnet50 (default: recognised)")
    p.add_argument("--from", dest="src", help="source weights (.pth/.npy/.npz/.mat/.h5/.safetensors/checkpoint)")
    p.add_argument("--weights", metavar="PRESET", help="a weights preset instead of --arch/--from "
                   "(see `kerasnets weights list`); with a .prototxt FILE, its .caffemodel")
    p.add_argument("--out", "--to", dest="dst", required=True, help="output .h5, .keras or .weights.h5")
    p.add_argument("--source", help="source layout (default: detected), e.g. torchvision-resnet")
    p.add_argument("--no-strict", action="store_true", help="load what fits, report the rest")
    p.add_argument("--progress", action="store_true", help="always draw the loading progress line (default: on a "
                   "terminal, for files over 50 MB)")
    p.add_argument("--quiet", action="store_true", help="no progress line")
    p.add_argument("--option", type=_parse_option, action="append", metavar="KEY=VALUE", help="builder option")
    p.set_defaults(func=cmd_convert)

    p = sub.add_parser("predict", help="top-k classes of an image",
                       description="Classify one image with a saved model and its class_indices.json.")
    p.add_argument("--model", help=".keras or .h5 model")
    p.add_argument("--weights", metavar="PRESET", help="a weights preset instead of --model: its model, "
                   "preprocessing and class names")
    p.add_argument("--image", required=True, nargs="+", help="image file(s)")
    p.add_argument("--classes", help="class_indices.json written by training")
    p.add_argument("--top-k", type=int, default=5)
    p.add_argument("--preprocessing", default=None, help="caffe, matconvnet, torch, tf or none")
    p.add_argument("--plot", help="save the image titled with the prediction to this PNG")
    p.set_defaults(func=cmd_predict)

    p = sub.add_parser("prepare", help="build FSRCNN h5 training/eval files from a folder of images",
                       description="Y-channel patches (train) or whole images (eval) in FSRCNN-pytorch's h5 layout.")
    p.add_argument("--images-dir", required=True)
    p.add_argument("--output", required=True)
    p.add_argument("--scale", type=int, default=3)
    p.add_argument("--eval", action="store_true", help="write the evaluation layout (groups lr/hr)")
    p.add_argument("--augment", action="store_true", help="scale/rotation augmentation (training files)")
    p.set_defaults(func=cmd_prepare)

    p = sub.add_parser("export", help="export a model to SavedModel/ONNX/TFLite/.keras/.h5, parity-checked",
                       description="Build MODEL (or load a saved .keras/.h5), export it, run the artifact in its "
                       "runtime on a random batch and fail (exit 1) if it differs from Keras by more than --rtol.")
    p.add_argument("model", help="registered model name (e.g. resnet50) or a saved .keras/.h5 model")
    p.add_argument("--format", required=True, choices=["saved_model", "onnx", "tflite", "keras", "h5"])
    p.add_argument("--output", required=True, help="output path (a directory for saved_model)")
    p.add_argument("--weights", help="weight file for the built model (.weights.h5/.h5/.npy/.pth/.mat)")
    p.add_argument("--input-shape", type=int, nargs=3, metavar=("H", "W", "C"), help="input shape, channels last")
    p.add_argument("--option", type=_parse_option, action="append", metavar="KEY=VALUE", help="builder option")
    p.add_argument("--rtol", type=float, default=1e-4, help="parity limit: max |diff| / max |keras output|")
    p.add_argument("--no-check", action="store_true", help="skip running the exported artifact")
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("fetch-weights", help="download, verify and convert a weights preset into the cache",
                       description="Fetch PRESET's file (or take --file), check its hash, convert it once and cache "
                       "the Keras weights under $KERASNETS_HOME (default ~/.cache/kerasnets).")
    p.add_argument("preset", help="preset name, e.g. resnet50.torchvision_v2 (see `kerasnets weights list`)")
    p.add_argument("--file", help="a local copy of the source file (manual downloads)")
    p.set_defaults(func=cmd_fetch_weights)

    p = sub.add_parser("weights", help="weights presets (`kerasnets weights list`)",
                       description="Named pretrained weights: source, hash, preprocessing, reported accuracy.")
    weights_sub = p.add_subparsers(dest="weights_command", metavar="ACTION", required=True)
    q = weights_sub.add_parser("list", help="every preset with model, format, preprocessing, accuracy, hash")
    q.add_argument("--model", help="only this model's presets")
    q.set_defaults(func=cmd_weights_list)
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError) as err:
        print(f"kerasnets {args.command}: error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
