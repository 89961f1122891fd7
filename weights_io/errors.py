"""The exceptions weights_io raises: one family, each naming the file and key."""

from __future__ import annotations


class WeightsIOError(Exception):
    """Base class of every error weights_io raises on purpose."""


class WeightFileError(WeightsIOError, ValueError):
    """A weight file is unreadable, truncated, malformed or of an unknown format."""

    def __init__(self, message, *, path=None, key=None):
        where = ""
        if path is not None:
            where += f" [file: {path}"
            where += f", key: {key}]" if key is not None else "]"
        super().__init__(message + where)
        self.path = path
        self.key = key


class UnsafePickleError(WeightFileError):
    """A pickle asks for a global outside the allowlist: refused, nothing executed."""

    def __init__(self, module, name, *, path=None):
        super().__init__(
            f"Refusing to unpickle the global '{module}.{name}': only plain arrays and containers are "
            "allowed in weight files, so code in the file is never executed. Whole-module pickles "
            "(torch.save(model)) must be re-saved as a state dict (torch.save(model.state_dict())).",
            path=path,
        )
        self.global_name = f"{module}.{name}"


class WeightMismatchError(WeightsIOError, ValueError):
    """Weights and model disagree; the model was left untouched. `.report` has the details."""

    def __init__(self, report):
        super().__init__(report.mismatch_message())
        self.report = report


class WeightOptionsWarning(UserWarning):
    """strict=False loaded a file into a model built with other options than its publisher's."""
