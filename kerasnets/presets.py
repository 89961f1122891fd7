"""Named pretrained weights: `weights="imagenet"` or `weights="resnet50.torchvision_v2"`.

A preset is a row of ``kerasnets/data/presets.json`` (data, not code, as
torchvision bundles URL, preprocessing, categories and metrics with each
weight entry): the model and builder options it fits, the publisher's URL,
file name and hash, the file's format and `weights_io` layout, the input
preprocessing it was trained with, its class list and published accuracy.

Loading a preset (`load_preset`, or any builder's ``weights=``):

1. a converted copy in the cache (``$KERASNETS_HOME/converted/<preset>.weights.h5``,
   default home ``~/.cache/kerasnets``) is used as is: no source, no conversion;
2. otherwise the source file is taken from the cache (``$KERASNETS_HOME/weights/``),
   from ``weights_file=`` / the directory ``$KERASNETS_WEIGHTS_DIR``, or
   downloaded with `keras.utils.get_file` (from ``$KERASNETS_WEIGHTS_MIRROR/<file
   name>`` when that base URL is set: a local or in-house copy of the
   publishers' files, manual-download rows included); its hash is checked (torchvision:
   the sha256 prefix in the file name, keras: md5; sources that publish no
   hash are trusted on first use: the sha256 is printed and recorded, and
   later files must match it);
3. it is converted once through `weights_io` into the preset's model and the
   result saved atomically to the cache; then loaded into the caller's model
   by layer name, dropping the classifier when ``include_top=False``.

Two kinds of source need more than a URL:

* ``archive`` rows (TF-slim's model zoo ``.tar.gz``): the archive is the
  hashed source file; at conversion only its checkpoint members are extracted,
  through `kerasnets.archives.extract_checkpoint` (no absolute paths, ``..``,
  links, devices or FIFOs, size limits), into a temporary folder removed after.
* ``hub`` rows (timm's ``model.safetensors`` on the Hugging Face hub):
  ``huggingface_hub.hf_hub_download(repo_id, filename, revision)``, which keeps
  the file in its own cache (``$HF_HUB_CACHE``, else ``$HF_HOME/hub``) and talks
  to ``$HF_ENDPOINT``; both are read at each call, not at import.

Offline with no file, the error names the file, where to put it, its URL and
hash. A preset never falls back to random weights.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import os
import re
import sys

import numpy as np

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data")
_TABLE = os.path.join(DATA_DIR, "presets.json")
# Bumped when the converted-cache layout changes, so stale caches are rebuilt.
_CACHE_VERSION = 1


class PresetUnavailableError(FileNotFoundError):
    """The preset's weight file is neither cached nor given nor downloadable."""


@dataclasses.dataclass(frozen=True)
class Preset:
    """One row of the preset table; see the module docstring and docs/presets.md."""

    name: str
    model: str
    options: dict
    task: str
    publisher: str
    url: str | None
    manual_download: bool
    file_name: str
    file_size_mb: float | None
    hash: dict | None
    format: str
    layout: str
    key_renames: list
    head: list
    preprocessing: dict
    classes: dict | None
    accuracy: dict | None
    default: bool
    aliases: tuple = ()
    # Classes the file's classifier has before the preset's first class (1: TF-slim's
    # "background" row, which Cadene's Inception v4 keeps in the file and drops on load).
    drop_leading_classes: int = 0
    # Full-match patterns of source keys the publisher's own loader deletes (old torch saved
    # InstanceNorm running statistics that junyanz's CycleGAN code removes before loading).
    drop_keys: tuple = ()
    # TF-slim zoo archives: {"type": "tar.gz", "checkpoint": "<name>.ckpt"}, the member(s) to extract.
    archive: dict | None = None
    # Hugging Face hub files: {"repo_id": "timm/<tag>", "filename": "model.safetensors", "revision": "main"}.
    hub: dict | None = None

    @property
    def num_classes(self):
        return self.classes["count"] if self.classes else None

    def builder_kwargs(self, **overrides):
        """The options that build this preset's network, updated by `overrides`."""
        return {**self.options, **overrides}


@functools.lru_cache(maxsize=None)
def _table():
    with open(_TABLE) as f:
        rows = json.load(f)["presets"]
    return {row["name"]: Preset(**row) for row in rows}


def list_presets(model=None):
    """The presets, optionally only those of one registered model.

    Args:
        model: registry name (``"resnet50"``) or None for all.

    Returns:
        A list of `Preset`, in table order.
    """
    return [p for p in _table().values() if model is None or p.model == model]


def get_preset(name):
    """The `Preset` called `name`; ValueError naming close ones otherwise."""
    table = _table()
    if name not in table:
        stem = str(name).split(".")[0]
        close = [n for n in table if n.split(".")[0] == stem] or sorted(table)[:8]
        raise ValueError(
            f"Unknown weights preset. Known presets include {close} (`kerasnets weights list` shows all). "
            f"Received: weights={name!r}"
        )
    return table[name]


def default_preset(model):
    """The preset `weights="imagenet"` means for registry name `model`, or None."""
    for preset in _table().values():
        if preset.default and (preset.model == model or model in preset.aliases):
            return preset
    return None


def is_preset(weights):
    """True when `weights` names a preset (or is "imagenet"); an existing file of that name wins."""
    return isinstance(weights, str) and (weights == "imagenet" or weights in _table()) and not os.path.exists(weights)


def resolve(weights, model_name):
    """`weights` ("imagenet" or a preset name) -> `Preset`, for a model built as `model_name`."""
    if weights != "imagenet":
        return get_preset(weights)
    preset = default_preset(model_name)
    if preset is None:
        have = sorted({p.model for p in _table().values() if p.default})
        raise ValueError(
            f"No default ImageNet preset for a model named {model_name!r}: `weights='imagenet'` picks the preset "
            f"by registry name (models with one: {have}); with a custom `name=` pass the preset itself, e.g. "
            "weights='resnet50.torchvision_v2' (`kerasnets weights list`). Received: weights='imagenet'"
        )
    return preset


def home():
    """The cache root: ``$KERASNETS_HOME`` or ``~/.cache/kerasnets`` (shared with the CLI's caches)."""
    return os.environ.get("KERASNETS_HOME", os.path.join(os.path.expanduser("~"), ".cache", "kerasnets"))


def source_path(preset):
    """Where the downloaded source file of `preset` lives in the cache."""
    return os.path.join(home(), "weights", preset.file_name)


def converted_path(preset):
    """Where the converted Keras weights of `preset` live in the cache."""
    return os.path.join(home(), "converted", f"{preset.name}.weights.h5")


def file_digest(path, algorithm="sha256"):
    """Hex digest of the file at `path`, read in 1 MiB chunks."""
    digest = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _expected(preset):
    """(algorithm, expected hex or prefix, how) for the file of `preset`, or (None, None, None)."""
    if preset.hash:
        algorithm = preset.hash["algorithm"]
        return ("sha256" if algorithm == "sha256-prefix" else algorithm), preset.hash["value"], algorithm
    recorded = _tofu_record(preset)
    if os.path.exists(recorded):
        with open(recorded) as f:
            return "sha256", f.read().strip(), "sha256 recorded on first use"
    return None, None, None


def _tofu_record(preset):
    return os.path.join(home(), "weights", f"{preset.file_name}.sha256")


def verify_file(path, preset):
    """Checks `path` against the preset's hash; returns its sha256.

    Raises:
        ValueError: the file's hash differs from the published (or recorded) one.
    """
    sha256 = file_digest(path, "sha256")
    algorithm, expected, how = _expected(preset)
    if expected is None:
        # Nothing published: trust on first use, and hold later files to it.
        os.makedirs(os.path.dirname(_tofu_record(preset)), exist_ok=True)
        with open(_tofu_record(preset), "w") as f:
            f.write(sha256 + "\n")
        print(f"kerasnets: {preset.name}: the publisher gives no hash for {preset.file_name}; trusting this file "
              f"on first use, sha256 {sha256} (recorded in {_tofu_record(preset)})", file=sys.stderr)
        return sha256
    actual = sha256 if algorithm == "sha256" else file_digest(path, algorithm)
    if not actual.startswith(expected):
        raise ValueError(
            f"Hash mismatch for {preset.name}: {path} has {algorithm} {actual}, expected "
            f"{expected}{'...' if how == 'sha256-prefix' else ''} ({how}). The file is corrupt, truncated or "
            f"a different file; delete it and fetch it again. Received: weights={preset.name!r}"
        )
    return sha256


def _unavailable(preset, reason):
    where = source_path(preset)
    algorithm, expected, how = _expected(preset)
    hash_text = f"{how} {expected}" if expected else "none published (trusted on first use)"
    how_to = ("download it by hand from the page (not a direct link)" if preset.manual_download
              else "download it")
    if preset.hub:
        reason += (f" (Hugging Face hub repo {preset.hub['repo_id']!r}, file {preset.hub['filename']!r}, revision "
                   f"{preset.hub['revision']!r}; endpoint $HF_ENDPOINT, cache $HF_HOME/hub)")
    return PresetUnavailableError(
        f"Weights for preset {preset.name!r} are not available: {reason}. {how_to.capitalize()}: "
        f"{preset.url}\n  file name: {preset.file_name}\n  put it at: {where}\n  (or pass weights_file=<path>, "
        f"or put it in $KERASNETS_WEIGHTS_DIR, or serve it at $KERASNETS_WEIGHTS_MIRROR/{preset.file_name})\n"
        f"  hash: {hash_text}\n  then run again, or "
        f"`kerasnets fetch-weights {preset.name} --file <path>`."
    )


def _mirror():
    return os.environ.get("KERASNETS_WEIGHTS_MIRROR", "").rstrip("/")


def source_url(preset):
    """Where `preset`'s file downloads from: ``$KERASNETS_WEIGHTS_MIRROR/<file name>`` if set, else its URL."""
    return f"{_mirror()}/{preset.file_name}" if _mirror() else preset.url


def _download(preset, target):
    import keras

    part = target + ".part"
    if os.path.exists(part):
        os.remove(part)  # a killed download; get_file would take it for a finished one
    try:
        fetched = keras.utils.get_file(
            os.path.basename(part), source_url(preset), cache_dir=os.path.dirname(os.path.dirname(part)),
            cache_subdir=os.path.basename(os.path.dirname(part)),
        )
    except Exception as err:  # get_file raises bare Exception for URL errors
        if os.path.exists(part):
            os.remove(part)
        raise _unavailable(preset, f"the download from {source_url(preset)} failed ({err})") from err
    try:
        verify_file(fetched, preset)
    except ValueError:
        os.remove(fetched)
        raise
    os.replace(fetched, target)
    return target


def _hub_cache_dir():
    """huggingface_hub's cache folder from the environment now (its constants are frozen at its import)."""
    if os.environ.get("HF_HUB_CACHE"):
        return os.environ["HF_HUB_CACHE"]
    if os.environ.get("HF_HOME"):
        return os.path.join(os.environ["HF_HOME"], "hub")
    return None  # huggingface_hub's default, ~/.cache/huggingface/hub


def _from_hub(preset, download):
    """The preset's file through `huggingface_hub.hf_hub_download` (from its cache only unless `download`)."""
    try:
        from huggingface_hub import hf_hub_download
    except ImportError as err:
        raise _unavailable(preset, "downloading from the Hugging Face hub needs `pip install huggingface_hub`") from err
    hub = preset.hub
    try:
        path = hf_hub_download(repo_id=hub["repo_id"], filename=hub["filename"], revision=hub["revision"],
                               cache_dir=_hub_cache_dir(), endpoint=os.environ.get("HF_ENDPOINT") or None,
                               local_files_only=not download)
    except Exception as err:  # huggingface_hub raises its own HTTP, offline and not-found errors; all mean "not here"
        what = "downloading is off and it is not in the hub cache" if not download else "the download failed"
        raise _unavailable(preset, f"{what} ({type(err).__name__}: {err})") from err
    verify_file(path, preset)
    return path


def locate_source(preset, weights_file=None, download=True):
    """The path of a verified source file for `preset`.

    Looks in the cache, then at `weights_file` or ``$KERASNETS_WEIGHTS_DIR/<file name>``,
    then downloads (unless `download` is False or the URL is a web page).

    Raises:
        PresetUnavailableError: nowhere to get the file from (names file, place, URL, hash).
        ValueError: a file was found but its hash is wrong.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if weights_file is not None:
        if not os.path.isfile(weights_file):
            raise _unavailable(preset, f"weights_file {os.fspath(weights_file)!r} does not exist")
        verify_file(weights_file, preset)
        return os.fspath(weights_file)
    local = _local_source(preset)
    if local is not None:
        verify_file(local, preset)
        return local
    offline = not download or _offline()
    if preset.hub:
        return _from_hub(preset, download=not offline)
    if (preset.manual_download or not preset.url) and not _mirror():
        raise _unavailable(preset, "it has no direct download link and no local copy was found")
    if offline:
        raise _unavailable(preset, "it is not in the cache and downloading is off (download=False or KERASNETS_OFFLINE)")
    cached = source_path(preset)
    os.makedirs(os.path.dirname(cached), exist_ok=True)
    return _download(preset, cached)


def _local_source(preset):
    """The source file of `preset` in the cache or ``$KERASNETS_WEIGHTS_DIR`` (not yet verified), or None."""
    user_dir = os.environ.get("KERASNETS_WEIGHTS_DIR")
    for path in (source_path(preset), os.path.join(user_dir, preset.file_name) if user_dir else None):
        if path and os.path.isfile(path):
            return path
    return None


def _offline():
    return os.environ.get("KERASNETS_OFFLINE", "") not in ("", "0")


def _rename_keys(weight_file, renames):
    if not renames:
        return weight_file
    from weights_io.core import group_flat

    flat = weight_file.flat()
    for pattern, replacement in renames:
        regex = re.compile(pattern)
        flat = {regex.sub(replacement, key): value for key, value in flat.items()}
    weight_file.tensors = group_flat(flat)
    return weight_file


def _drop_keys(weight_file, patterns):
    if not patterns:
        return weight_file
    from weights_io.core import group_flat

    regexes = [re.compile(pattern) for pattern in patterns]
    flat = weight_file.flat()
    weight_file.tensors = group_flat({key: value for key, value in flat.items()
                                      if not any(regex.fullmatch(key) for regex in regexes)})
    return weight_file


def _drop_absent_head(weight_file, layer_names, head_sources):
    """Removes the classifier's source layers when the model was built without them."""
    for ours, source in head_sources.items():
        if ours not in layer_names:
            weight_file.tensors.pop(source, None)
    return weight_file


def convert_source_into(model, preset, path):
    """Reads the preset's source file and assigns it to `model` (all or nothing).

    The model must have the preset's architecture (with or without its
    classifier). Returns the `weights_io.Report`.
    """
    from weights_io import read_weights

    if not preset.archive:
        return convert_weight_file_into(model, preset, read_weights(path, mmap=True))
    import tempfile

    from kerasnets.archives import extract_checkpoint

    work = os.path.join(home(), "weights")
    os.makedirs(work, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{preset.name}-", dir=work) as folder:
        checkpoint = extract_checkpoint(path, folder, preset.archive["checkpoint"])
        # read into memory (no mmap): the extracted files go when the folder does
        return convert_weight_file_into(model, preset, read_weights(checkpoint))


def convert_weight_file_into(model, preset, weight_file):
    """`convert_source_into` after reading: key renames, head dropping, strict assign."""
    from weights_io import assign_weights, get_layout
    from weights_io.assign import weighted_layers

    layout = get_layout(preset.layout)
    weight_file = _rename_keys(weight_file, preset.key_renames)
    weight_file = _drop_keys(weight_file, preset.drop_keys)
    names = [layer.name for layer in weighted_layers(model)]
    head_sources = layout.map_names(list(preset.head))
    weight_file = _drop_absent_head(weight_file, names, head_sources)
    if preset.drop_leading_classes:
        _drop_leading_classes(weight_file, head_sources.get("predictions"), preset.drop_leading_classes)
    return assign_weights(model, weight_file, layout, strict=True, release=True)


def _drop_leading_classes(weight_file, classifier, count):
    """Slices the first `count` classes off the classifier's arrays (axis 0 in torch files, last in Keras)."""
    params = weight_file.tensors.get(classifier)
    if params is None:
        return  # include_top=False: the classifier is gone already
    axis = 0 if weight_file.convention == "torch" else -1
    for param, array in params.items():
        params[param] = np.take(array, np.arange(count, array.shape[axis]), axis=axis)


def build_preset(name, **kwargs):
    """Builds the preset's model with its builder options and loads its weights.

    Args:
        name: a preset name, e.g. ``"resnet50.keras"``.
        **kwargs: builder arguments (``include_top``, ``input_shape``, ...);
            they override the preset's options.

    Returns:
        A `keras.Model` with the preset's weights.
    """
    from kerasnets.registry import build

    preset = get_preset(name)
    return build(preset.model, weights=preset.name, **preset.builder_kwargs(**kwargs))


def _canonical(preset, shapes_only=False, **overrides):
    """The preset's network as its options build it; with `shapes_only`, its layers without weight values
    (`build_for_shapes`: for comparing configurations, at a fraction of the cost)."""
    from kerasnets.registry import build, build_for_shapes

    kwargs = preset.builder_kwargs(**overrides)
    if preset.task == "classification":
        kwargs.setdefault("include_top", True)
    return (build_for_shapes if shapes_only else build)(preset.model, **kwargs)


def _comparable(config, head=False):
    """A layer config without what may differ between two builds of one network (a head's activation:
    `classifier_activation=None` asks for logits from the same weights)."""
    ignored = ("name", "trainable", "dtype") + (("activation",) if head else ())
    return {k: v for k, v in config.items() if k not in ignored}


def _built_with_preset_options(model, preset):
    """Whether kerasnets built `model` as the preset's network with its options (head and input size aside):
    the same builder and options make the same layers, so there is nothing to compare."""
    from kerasnets.registry import model_spec
    from weights_io.core import build_record

    record = build_record(model)
    expected = {**model_spec(preset.model).builder.option_defaults, **preset.options}
    head = ("include_top", "pooling", "classes", "classifier_activation", "input_shape")
    return record is not None and record.model == preset.model and not record.differences(expected, ignore=head)


def check_architecture(model, preset):
    """ValueError unless `model` is the preset's network (its builder options), up to the head.

    Weights of the right shapes can still be wrong for a network built with
    other options (BN epsilon, padding, built-in rescaling): those differences
    are in the layer configs, so the model's layers are compared with a
    backbone built with the preset's options (unless its build record has them).
    """
    if _built_with_preset_options(model, preset):
        return
    shape = tuple(model.inputs[0].shape[1:])
    overrides = {"input_shape": shape, "weights": None}
    if preset.task == "classification":
        overrides.update(include_top=False, pooling=None)
    try:
        reference = _canonical(preset, shapes_only=True, **overrides)
    except ValueError as err:
        raise ValueError(f"Preset {preset.name!r} cannot be built for input shape {shape}: {err}") from err
    ours = {layer.name: layer for layer in model.layers}
    differences = []
    for layer in reference.layers:
        if type(layer).__name__ == "InputLayer":
            continue
        mine = ours.get(layer.name)
        if mine is None:
            differences.append(f"layer {layer.name!r} is missing")
        elif type(mine) is not type(layer) or (_comparable(mine.get_config(), layer.name in preset.head)
                                               != _comparable(layer.get_config(), layer.name in preset.head)):
            differences.append(f"layer {layer.name!r} differs")
        if len(differences) >= 3:
            break
    if differences:
        options = ", ".join(f"{k}={v!r}" for k, v in preset.options.items()) or "the defaults"
        raise ValueError(
            f"Preset {preset.name!r} fits {preset.model} built with options {options} ({'; '.join(differences)}). "
            f"Pass those options, or use kerasnets.build_preset({preset.name!r}, ...). "
            f"Received: weights={preset.name!r} for model {model.name!r}"
        )


def _converted_is_current(preset):
    path = converted_path(preset)
    try:
        with open(path + ".json") as f:
            meta = json.load(f)
    except (OSError, ValueError):
        return False
    return os.path.isfile(path) and meta.get("preset") == preset.name and meta.get("cache_version") == _CACHE_VERSION


def check_reachable(preset):
    """Raises `load_preset`'s PresetUnavailableError now, before a network is built for nothing.

    Passes when the converted cache, a source file in the cache or ``$KERASNETS_WEIGHTS_DIR``, or a
    download allowed can supply the weights (files are hashed later, once, when loaded). Found
    missing only after the build, a DenseNet-201 spent 3 s building first.
    """
    preset = get_preset(preset) if isinstance(preset, str) else preset
    if _converted_is_current(preset) or _local_source(preset) is not None:
        return
    if not _offline() and (preset.hub or (preset.url and not preset.manual_download)):
        return  # load_preset downloads it
    locate_source(preset, download=False)  # nothing local: raises, naming the file and where to put it


def ensure_converted(preset, weights_file=None, download=True):
    """The converted-cache path of `preset`, converting the source once if needed."""
    from kerasnets.saving import atomic_path

    preset = get_preset(preset) if isinstance(preset, str) else preset
    path = converted_path(preset)
    if _converted_is_current(preset):
        return path
    source = locate_source(preset, weights_file=weights_file, download=download)
    sha256 = file_digest(source)
    model = _canonical(preset, weights=None)
    convert_source_into(model, preset, source)
    with atomic_path(path) as tmp:
        model.save_weights(tmp)
    with atomic_path(path + ".json") as tmp:
        with open(tmp, "w") as f:
            json.dump({"preset": preset.name, "cache_version": _CACHE_VERSION, "source": preset.file_name,
                       "source_sha256": sha256}, f)
    return path


def load_preset(model, preset, *, weights_file=None, download=True):
    """Loads preset weights into `model` (built with the preset's options).

    Args:
        model: a Keras model of the preset's architecture, with or without
            its classifier, any input size the network accepts.
        preset: a `Preset` or preset name.
        weights_file: a local copy of the source file (checked against the hash).
        download: allow downloading when nothing is cached or given.

    Returns:
        The `weights_io.Report` of the assignment.
    """
    from weights_io import assign_weights, get_layout, read_weights
    from weights_io.assign import weighted_layers

    preset = get_preset(preset) if isinstance(preset, str) else preset
    check_architecture(model, preset)
    path = ensure_converted(preset, weights_file=weights_file, download=download)
    weight_file = read_weights(path, format="keras-h5", mmap=True, trusted=True)  # our own converted cache
    names = [layer.name for layer in weighted_layers(model)]
    weight_file = _drop_absent_head(weight_file, names, {name: name for name in preset.head})
    return assign_weights(model, weight_file, get_layout("keras"), strict=True, release=True)


def fetch(preset, weights_file=None):
    """Downloads (or takes `weights_file`), verifies and converts; returns (source, converted) paths."""
    preset = get_preset(preset) if isinstance(preset, str) else preset
    source = locate_source(preset, weights_file=weights_file)
    return source, ensure_converted(preset, weights_file=weights_file)
