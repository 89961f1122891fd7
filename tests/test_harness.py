"""The suite's own machinery: tests/conftest.py's in-memory temporary folder and quiet malloc_trim, and
tests/preloaded.py's forked script processes.

The first two only save time, so nothing else would notice them switched off; these tests do. The third
stands in for `subprocess.Popen` in the kill-and-resume tests, which trust its pids and exit statuses.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from tests import conftest, preloaded

# In a process started under the suite: a 256 MB block freed into glibc's heap (the suite's GLIBC_TUNABLES
# keep it there), then malloc_trim by the name any library links against, then glibc's own.
TRIM_PROBE = """
import ctypes, os
def resident():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
block = bytearray(256 * 2**20)
del block
held = resident()
ctypes.CDLL(None).malloc_trim(0)
after_linked = resident()
ctypes.CDLL("libc.so.6").malloc_trim(0)
print(held, after_linked, resident())
"""


def test_started_processes_keep_freed_memory_from_the_linked_malloc_trim():
    """protobuf's periodic malloc_trim (linked by name) hands nothing back; glibc's, called by name, does."""
    if conftest._quiet_trim_compiler() is None:
        pytest.skip("no C compiler or no glibc for the quiet malloc_trim: the suite runs without it")
    assert "quiet_trim" in os.environ.get("LD_PRELOAD", "")
    out = subprocess.run([sys.executable, "-c", TRIM_PROBE], capture_output=True, text=True, check=True).stdout
    held, after_linked, after_glibc = map(float, out.split())
    assert held - after_linked < 32, (held, after_linked)  # the quiet one
    assert held - after_glibc > 200, (held, after_glibc)  # glibc's, reached by name


def test_temporary_files_go_to_memory_where_there_is_room(tmp_path):
    root = os.environ.get(conftest._TEMP_ROOT_VARIABLE)
    if conftest._memory_file_system_with_room() is None and root is None:
        pytest.skip("no tmpfs with room on this machine: temporary files stay where TMPDIR says")
    assert root and os.path.isdir(root)
    assert tempfile.gettempdir() == root == os.environ["TMPDIR"]
    assert str(tmp_path).startswith(root + os.sep)


def test_a_tmpdir_the_caller_chose_stands(monkeypatch, tmp_path):
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.delenv(conftest._TEMP_ROOT_VARIABLE, raising=False)
    conftest._temporary_files_in_memory()
    assert os.environ["TMPDIR"] == str(tmp_path) and conftest._TEMP_ROOT_VARIABLE not in os.environ


def test_no_memory_folder_without_the_room():
    assert conftest._memory_file_system_with_room(needs=2**60) is None
    assert conftest._memory_file_system_with_room(mount="/no/such/mount") is None


PROBE = """
import os, sys, time
print(os.getcwd(), sys.argv[1:], os.environ["PROBE_VALUE"], os.getppid() != int(sys.argv[1]), flush=True)
print("to stderr", file=sys.stderr, flush=True)
import keras  # preloaded: no import time
print(keras.backend.backend(), flush=True)
if sys.argv[2] == "sleep":
    time.sleep(60)
raise SystemExit(int(sys.argv[2]))
"""


def test_preloaded_processes_behave_as_subprocesses():
    """Arguments, environment, working folder, stdout apart from stderr, exit status, SIGKILL's -9; and
    each its own process, not a child of this one."""
    import signal

    import keras

    done = preloaded.start(PROBE, os.getpid(), 3, env={**os.environ, "PROBE_VALUE": "seen"})
    assert done.readline() == f"{conftest.ROOT} ['{os.getpid()}', '3'] seen True\n"
    out, err = done.communicate(timeout=60)
    assert done.returncode == 3 and done.pid != os.getpid()
    assert out.endswith(f"{keras.backend.backend()}\n") and err == "to stderr\n"
    assert done.output() == out + err
    sleeper = preloaded.start(PROBE, os.getpid(), "sleep", env={**os.environ, "PROBE_VALUE": "x"})
    sleeper.readline()
    assert sleeper.poll() is None
    sleeper.send_signal(signal.SIGKILL)
    assert sleeper.wait(timeout=30) == -signal.SIGKILL
    failing = preloaded.start("1 / 0")
    out, err = failing.communicate(timeout=60)
    assert failing.returncode == 1 and "ZeroDivisionError" in err


def test_preloaded_processes_take_this_process_environment_not_the_servers(tmp_path, monkeypatch):
    """A child gets the environment of the test that starts it, and the temporary folder it names: not
    the server's, which is that of whichever test started the server (its TMPDIR deleted since)."""
    probe = "import os, tempfile\nprint(os.environ['TMPDIR'], tempfile.gettempdir(), flush=True)\n"
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
        monkeypatch.setenv("TMPDIR", str(tmp_path / name))
        out, err = preloaded.start(probe).communicate(timeout=60)
        assert out.split() == [str(tmp_path / name)] * 2, err


@pytest.mark.parametrize("kind, features, expected", [
    ("0x0005", "01100101" + "0" * 56, True),  # the build VM's balloon: statistics, deflate on OOM, reporting
    ("0x0005", "01100000" + "0" * 56, False),  # a balloon that does not report free pages
    ("0x0001", "11000101" + "0" * 56, False),  # a network card, whose bit 5 means something else
])
def test_free_page_reporting_is_read_from_the_balloon(tmp_path, kind, features, expected):
    (tmp_path / "virtio0").mkdir()
    (tmp_path / "virtio0" / "device").write_text(kind + "\n")
    (tmp_path / "virtio0" / "features").write_text(features + "\n")
    (tmp_path / "virtio1").mkdir()  # a device whose files cannot be read
    assert conftest._free_memory_goes_back_to_the_host(str(tmp_path)) is expected
    assert conftest._free_memory_goes_back_to_the_host(str(tmp_path / "absent")) is False
