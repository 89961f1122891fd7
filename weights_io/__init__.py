"""Weight importers: other frameworks' files in, Keras weights out.

    from weights_io import load_npy_weights

    # model: any Keras model whose layer names a layout knows (kerasnets' VGG-16 here)
    report = load_npy_weights(model, "vgg16.npy")   # tensorflow-vgg layout
    print(report)

Readers (file -> neutral arrays) know nothing of Keras; layouts (our layer
names -> the source's) know nothing of files; one assign step converts,
checks everything and applies all or nothing.
"""

from weights_io.api import (
    load_keras_h5_weights, load_mat_weights, load_npy_weights, load_torch_weights, load_weights,
)
from weights_io.assign import assign_weights, export_weights
from weights_io.core import Layout, Report, WeightFile
from weights_io.errors import (
    UnsafePickleError, WeightFileError, WeightMismatchError, WeightOptionsWarning, WeightsIOError,
)
from weights_io.layouts import LAYOUTS, detect_layout, get_layout, register_layout, rule_layout
from weights_io.readers import READERS, detect_format, read_weights
from weights_io.writers import save_npy_weights, save_safetensors, save_torch_state_dict

__all__ = [
    "LAYOUTS", "READERS", "Layout", "Report", "UnsafePickleError", "WeightFile", "WeightFileError",
    "WeightMismatchError", "WeightOptionsWarning", "WeightsIOError", "assign_weights", "detect_format", "detect_layout", "export_weights",
    "get_layout", "load_keras_h5_weights", "load_mat_weights", "load_npy_weights", "load_torch_weights",
    "load_weights", "read_weights", "register_layout", "rule_layout", "save_npy_weights", "save_safetensors",
    "save_torch_state_dict",
]
