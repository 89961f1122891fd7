"""The suite's own machinery in tests/conftest.py: the in-memory temporary folder and the quiet malloc_trim.

Both only save time, so nothing else would notice them switched off; these tests do.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

import pytest

from tests import conftest

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
