"""Hostile files (issue 10, reader side): code in pickles never runs; truncation never escapes as another error.

Each malicious pickle, inside a .npy, a legacy .pth and a zip .pth, would
create a canary file if anything executed it; every one must be refused with
`UnsafePickleError` naming the global, and the canary must not exist.
"""

from __future__ import annotations

import _compat_pickle
import builtins
import io
import os
import pickle
import subprocess
import zipfile

import numpy as np
import pytest

from tests.torch_files import example, legacy_bytes
from weights_io import READERS, UnsafePickleError, WeightFileError, detect_format, read_weights
from weights_io.writers import write_torch_state_dict


class Reduce:
    """Pickles as a call of `fn(*args)`: what an attacker puts in a weight file."""

    def __init__(self, fn, *args):
        self.fn, self.args = fn, args

    def __reduce__(self):
        return self.fn, self.args


def payloads(canary):
    touch = f"open({str(canary)!r}, 'w').write('pwned')"
    return {
        "os.system": (Reduce(os.system, f"touch {canary}"), f"{os.system.__module__}.system"),
        "builtins.eval": (Reduce(builtins.eval, touch), "builtins.eval"),
        "builtins.exec": (Reduce(builtins.exec, touch), "builtins.exec"),
        "subprocess.Popen": (Reduce(subprocess.Popen, ["touch", str(canary)]), "subprocess.Popen"),
        "nested": ({"conv1": {"weights": np.ones(3)}, "deep": [[{"x": Reduce(os.system, f"touch {canary}")}]]},
                   f"{os.system.__module__}.system"),
        "getattr": (Reduce(builtins.getattr, Reduce(builtins.__import__, "os"), "system"), "builtins.getattr"),
    }


# A whole-module torch.save(model): the pickle names the module class (written longhand: no torch here).
TORCH_MODULE = b"\x80\x02ctorch.nn.modules.conv\nConv2d\nq\x00)\x81q\x01}q\x02b."


def npy_bytes(obj_pickle):
    """A .npy header for a 0-d object array followed by the given pickle."""
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": "|O", "fortran_order": False, "shape": ()})
    return out.getvalue() + obj_pickle


def legacy_with(obj_pickle):
    head = pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2)
    head += pickle.dumps({"protocol_version": 1001, "little_endian": True}, protocol=2)
    return head + obj_pickle + pickle.dumps([], protocol=2)


def zip_with(obj_pickle, path):
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("archive/data.pkl", obj_pickle)
        archive.writestr("archive/version", "3\n")


CONTAINERS = ("npy", "legacy", "zip")


def py3_name(global_name):
    """Protocol-2 pickles spell some globals the Python 2 way (__builtin__.eval, commands.Popen)."""
    module, name = global_name.rsplit(".", 1)
    if (module, name) in _compat_pickle.NAME_MAPPING:
        module, name = _compat_pickle.NAME_MAPPING[module, name]
    module = _compat_pickle.IMPORT_MAPPING.get(module, module)
    return f"{module}.{name}"


def write(container, obj_pickle, path):
    if container == "zip":
        zip_with(obj_pickle, path)
    else:
        path.write_bytes(npy_bytes(obj_pickle) if container == "npy" else legacy_with(obj_pickle))


@pytest.mark.parametrize("container", CONTAINERS)
def test_malicious_pickles_refused_and_nothing_runs(tmp_path, container):
    canary = tmp_path / "canary"
    cases = {(name, protocol): (pickle.dumps(obj, protocol=protocol), glob)
             for name, (obj, glob) in payloads(canary).items() for protocol in (2, 4)}
    cases["torch-module", 2] = (TORCH_MODULE, "torch.nn.modules.conv.Conv2d")
    for (name, protocol), (data, glob) in cases.items():
        path = tmp_path / f"{name}{protocol}.{container}"
        write(container, data, path)
        with pytest.raises(UnsafePickleError) as info:
            read_weights(path)
        assert py3_name(info.value.global_name) == glob, name
        assert info.value.global_name in str(info.value) and path.name in str(info.value)
        assert not canary.exists(), f"{name} in {container} executed code"


def test_payload_before_the_state_dict_in_legacy_header(tmp_path):
    canary = tmp_path / "canary"
    evil = pickle.dumps(Reduce(os.system, f"touch {canary}"), protocol=2)
    path = tmp_path / "evil_sysinfo.pth"
    path.write_bytes(pickle.dumps(0x1950A86A20F9469CFC6C, protocol=2) + pickle.dumps(1001, protocol=2) + evil)
    with pytest.raises(UnsafePickleError):
        read_weights(path)
    assert not canary.exists()


def test_canary_would_have_been_written(tmp_path):
    """Guards the corpus: unpickled the unsafe way, the payloads really do run."""
    canary = tmp_path / "canary"
    pickle.loads(pickle.dumps(payloads(canary)["builtins.eval"][0], protocol=2))
    assert canary.exists()


def valid_files(tmp_path):
    """One small valid file per reader."""
    import h5py

    os_path = os.path.dirname(__file__)
    tensors, storages, _ = example()
    files = {}
    files["legacy.pth"] = legacy_bytes(tensors, storages)
    write_torch_state_dict({"a.weight": np.ones((4, 4), np.float32), "a.bias": np.zeros(4)}, tmp_path / "z.pth")
    files["zip.pth"] = (tmp_path / "z.pth").read_bytes()
    holder = np.empty((), dtype=object)
    holder[()] = {"conv1_1": [np.ones((3, 3, 3, 4), np.float32), np.zeros(4, np.float32)]}
    np.save(tmp_path / "v.npy", holder, allow_pickle=True)
    files["dict.npy"] = (tmp_path / "v.npy").read_bytes()
    for name in ("simplenn_net_v7.mat", "dagnn_v73.mat", "impulse_v5.mat"):
        files[name] = open(os.path.join(os_path, "data", name), "rb").read()
    with h5py.File(tmp_path / "k.h5", "w") as f:
        f.attrs["layer_names"] = [b"conv"]
        g = f.create_group("conv")
        g.attrs["weight_names"] = [b"conv/kernel:0", b"conv/bias:0"]
        g["conv/kernel:0"] = np.ones((3, 3, 1, 2), np.float32)
        g["conv/bias:0"] = np.zeros(2, np.float32)
    files["keras.h5"] = (tmp_path / "k.h5").read_bytes()
    return files


def test_truncation_at_many_offsets_is_always_weightfileerror(tmp_path):
    for name, data in valid_files(tmp_path).items():
        read_weights(_write(tmp_path, f"full_{name}", data))  # the intact file reads
        cuts = sorted(set(np.linspace(0, len(data) - 1, 40).astype(int)) | {1, 8, len(data) - 1, len(data) - 8})
        for cut in cuts:
            path = _write(tmp_path, f"cut{cut}_{name}", data[:cut])
            try:  # the reader itself, not read_weights' catch-all: each reader must raise WeightFileError
                READERS[detect_format(path)](str(path))
            except WeightFileError as err:
                assert path.name in str(err)
            except Exception as err:  # noqa: BLE001 - the point: no other type may escape
                pytest.fail(f"{name} cut at {cut}/{len(data)}: {type(err).__name__}: {err}")
            else:
                pytest.fail(f"{name} cut at {cut}/{len(data)} was read without error")


def _write(tmp_path, name, data):
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_a_zip_asking_for_an_unknown_extract_version_is_a_weight_file_error(tmp_path):
    """Found by the long fuzz run: zipfile raises NotImplementedError while listing such an archive."""
    import numpy as np

    from weights_io import WeightFileError, read_weights

    path = tmp_path / "w.npz"
    np.savez(path, conv1_W=np.zeros((3, 3, 2, 4), np.float32), conv1_b=np.zeros(4, np.float32))
    data = bytearray(path.read_bytes())
    central = data.index(b"PK\x01\x02")
    data[central + 6:central + 8] = (197).to_bytes(2, "little")  # version needed to extract: 19.7
    path.write_bytes(bytes(data))
    with pytest.raises(WeightFileError, match="zip file version 19.7"):
        read_weights(path)
