"""Preprocessing modes: the table lives in `kerasnets.preprocessing` (kerasnets cannot import
training, and presets need it); re-exported here for the training API."""

from kerasnets.preprocessing import MODES, Preprocess, PreprocessingMode, get_mode, preprocess_input

__all__ = ["MODES", "Preprocess", "PreprocessingMode", "get_mode", "preprocess_input"]
