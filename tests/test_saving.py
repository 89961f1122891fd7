"""Atomic saves survive SIGKILL; a directory lock keeps two writers apart."""

import os
import random
import shutil
import signal
import textwrap
import time

import keras
import numpy as np
import pytest

from kerasnets.saving import (
    DirectoryLock, DirectoryLockedError, link_atomically, save_model_atomically, save_weights_atomically,
)
from tests import preloaded

WRITER = textwrap.dedent(
    """
    import os, sys
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np
    import kerasnets
    from kerasnets.saving import save_model_atomically
    path = sys.argv[1]
    model = kerasnets.build_vgg11(include_top=False, input_shape=(32, 32, 3))
    version = 0
    while True:
        version += 1
        model.set_weights([np.full(w.shape, version, w.dtype) for w in model.get_weights()])
        save_model_atomically(model, path)
        print(version, flush=True)
    """
)


@pytest.mark.parametrize("suffix", [".h5", ".keras"])
def test_kill_during_save_leaves_a_whole_previous_file(tmp_path, suffix):
    """The writer is caught three times at a random moment with a save under way (its temporary file exists)
    and frozen there (SIGSTOP): what the disk holds then is what a kill at that instant leaves, and the model
    file must be one whole save. The first two times it goes on (one process, one TensorFlow start-up), the
    third it is killed (SIGKILL) and the file is read after its death."""
    path, seen = tmp_path / "out" / f"model{suffix}", tmp_path / "seen"
    path.parent.mkdir()
    seen.mkdir()
    rng = random.Random(0)
    proc = preloaded.start(WRITER, path)
    try:
        proc.readline()  # one complete save exists
        for catch in range(3):
            time.sleep(rng.uniform(0.0, 0.5))
            deadline = time.time() + 30
            while time.time() < deadline:
                # Freeze the writer before looking, so the save seen under way is still under way when we read.
                proc.send_signal(signal.SIGSTOP)
                if any(n.startswith(".tmp-") for n in os.listdir(path.parent)):
                    break
                proc.send_signal(signal.SIGCONT)
                time.sleep(0.001)
            assert any(n.startswith(".tmp-") for n in os.listdir(path.parent)), "no save caught under way"
            if catch == 2:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
            shutil.copyfile(path, seen / f"{catch}{suffix}")  # the file as the kill (or the freeze) left it
            proc.send_signal(signal.SIGCONT)
            model = keras.models.load_model(seen / f"{catch}{suffix}", compile=False)
            values = {float(np.unique(w)[0]) for w in model.get_weights()}
            assert len(values) == 1 and all(len(np.unique(w)) == 1 for w in model.get_weights()), \
                "weights from two different saves: the file was torn"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    assert proc.returncode == -signal.SIGKILL


def test_atomic_save_round_trip_and_permissions(tmp_path):
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    save_model_atomically(model, tmp_path / "m.keras")
    save_weights_atomically(model, tmp_path / "m.weights.h5")
    assert sorted(os.listdir(tmp_path)) == ["m.keras", "m.weights.h5"]  # no temporary left behind
    mode = os.stat(tmp_path / "m.keras").st_mode & 0o777
    umask = os.umask(0)
    os.umask(umask)
    assert mode == 0o666 & ~umask
    clone = keras.Sequential([keras.Input((4,)), keras.layers.Dense(2)])
    clone.load_weights(tmp_path / "m.weights.h5")
    np.testing.assert_array_equal(clone.get_weights()[0], model.get_weights()[0])


HOLDER = textwrap.dedent(
    """
    import sys, time
    from kerasnets.saving import DirectoryLock
    with DirectoryLock(sys.argv[1]):
        print("locked", flush=True)
        time.sleep(60)
    """
)


def test_second_writer_is_refused_and_lock_dies_with_its_process(tmp_path):
    holder = preloaded.start(HOLDER, tmp_path)
    try:
        assert holder.readline().strip() == "locked"
        with pytest.raises(DirectoryLockedError, match=f"pid {holder.pid}"):
            DirectoryLock(tmp_path).acquire()
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    with DirectoryLock(tmp_path):  # no stale lock after a kill
        pass


def test_link_atomically_links_or_copies(tmp_path, monkeypatch):
    """A hard link where the file system has them, else a copy of the same bytes; the target appears whole."""
    source = tmp_path / "epoch-001.weights.h5"
    source.write_bytes(b"weights" * 1000)
    linked = link_atomically(source, tmp_path / "backup" / "a.weights.h5")
    assert os.path.samefile(linked, source)

    def no_links(*args):
        raise OSError("hard links not supported")

    monkeypatch.setattr(os, "link", no_links)
    copied = link_atomically(source, tmp_path / "backup" / "b.weights.h5")
    assert not os.path.samefile(copied, source) and open(copied, "rb").read() == source.read_bytes()
    assert [p.name for p in (tmp_path / "backup").iterdir() if p.name.startswith(".tmp-")] == []
