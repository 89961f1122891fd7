"""Shared fixtures and reference helpers for the test suites.

Core suite: `pytest tests` (TensorFlow backend, no torch needed).
Oracle suite: tests/oracle, comparing against torchvision; skipped without torch.
"""

from __future__ import annotations

import gc
import os
import pathlib
import sys


def _free_memory_goes_back_to_the_host(devices="/sys/bus/virtio/devices"):
    """Whether this machine is a VM whose balloon reports free memory to its host (virtio, feature bit 5).

    There a memory block the guest had left free is unbacked, and numpy's advice to take large arrays in
    transparent huge pages makes each first touch of one a 2 MB host fault: on the build VM ~22 ms per
    huge page against ~0.7 ms for the same 2 MB in 4 KB pages, where a machine that owns its memory pays
    about the same for both. A probe cannot tell it: blocks freed moments before are still backed."""
    import glob

    for device in glob.glob(os.path.join(devices, "*")):
        try:
            with open(os.path.join(device, "device")) as kind, open(os.path.join(device, "features")) as bits:
                if int(kind.read(), 16) == 5 and bits.read()[5:6] == "1":  # balloon; VIRTIO_BALLOON_F_REPORTING
                    return True
        except (OSError, ValueError):
            continue
    return False


# numpy reads its switch at import, in every process (this one's included: hence before `import numpy`).
# Four files (test_deploy, oracle/test_timm, test_weights_io_mat, test_readme) in one process, alternating,
# 2026-12-06: 3512-3589 huge pages faulted in, 192-193 s and 55-59 s of system time with numpy's advice; none,
# 164-165 s and 24-27 s without. Eight heavy files on two workers, whose memory goes from one to the other
# before the host takes it back: 170-171 s and 64-66 s with, 161-171 s and 58-63 s without.
if _free_memory_goes_back_to_the_host():
    os.environ.setdefault("NUMPY_MADVISE_HUGEPAGE", "0")

import numpy as np  # noqa: E402  (after the huge-page decision above)
import pytest  # noqa: E402

# TensorFlow's oneDNN builds pool large tensors in a BFC allocator that never returns memory: a worker
# that once held VGG-19 and keras' twin kept 8.7 GB for the rest of the run, and two such workers on the
# 24 GB machine left too little: CI lost a worker ("node down") and ran out of time. With the system allocator,
# freed is freed (tests/test_classic.py then leaves 1.6 GB, not 8.7); set before anything imports TensorFlow.
os.environ.setdefault("TF_ONEDNN_USE_SYSTEM_ALLOCATOR", "1")
# ...but glibc then hands every large freed tensor back to the kernel (munmap), and the next one is fresh pages
# that the kernel zeroes: on the build VM (free-page reporting to the host) clear_page was 48% of the CPU time of
# tests/test_classic.py. No mmap and no automatic trim keep freed memory in the process for the next tensor;
# _collect's malloc_trim still hands it back after a file where memory is short. (Transparent huge pages for
# the heap, glibc.malloc.hugetlb=1, measured worse: four heavy files run together, 140-142 s and 96-99 s of system time
# without, 145-152 s and 108-118 s with, alternating runs on 2026-12-05.) Read at process start: this reaches
# the xdist workers and every subprocess a test starts, not the process that reads this file.
os.environ.setdefault("GLIBC_TUNABLES", "glibc.malloc.mmap_max=0:glibc.malloc.trim_threshold=17179869184")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before the import of keras below

# The suite writes ~28 GB of files (weight files, checkpoints, exports), nearly all deleted right after.
# On a disk file system each write costs the kernel block allocation, writeback and, under `discard`,
# a trim: writing, reading and deleting a 348 MB file 8 times took 14-18 s of system time on the build
# VM's ext4 /tmp and 3.3 s on its tmpfs /dev/shm; tests/oracle/test_timm.py with test_folder_finetune.py
# (-n 2, twice each, alternating) 75-77 s of system time and 100-105 s with /tmp, 55-56 s and 90-93 s with
# tmpfs (2026-12-05). So the run's temporary files (pytest's tmp_path, tempfile's, the subprocesses' through
# TMPDIR) go to a folder in memory where the machine has one with room (a full run held at most 2.0 GB
# there), and the folder goes at the end of a run that passed. A TMPDIR the caller chose stands.
TEMP_IN_MEMORY_NEEDS_GB = 8
_TEMP_ROOT_VARIABLE = "KERASNETS_TEST_TEMP_ROOT"


def _memory_available():
    """The bytes of memory the system can still hand out (MemAvailable), or None where it does not say."""
    try:
        with open("/proc/meminfo") as meminfo:
            return next(int(line.split()[1]) * 1024 for line in meminfo if line.startswith("MemAvailable:"))
    except (OSError, StopIteration, ValueError, IndexError):  # not Linux
        return None


def _memory_file_system_with_room(mount="/dev/shm", needs=TEMP_IN_MEMORY_NEEDS_GB * 2**30):
    """`mount` if it is a tmpfs with `needs` bytes free and as much memory available, else None."""
    available = _memory_available()
    try:
        with open("/proc/mounts") as mounts:
            if available is None or not any(line.split()[1:3] == [mount, "tmpfs"] for line in mounts):
                return None
        free = os.statvfs(mount)
    except OSError:
        return None
    return mount if min(free.f_bavail * free.f_frsize, available) >= needs else None


def _temporary_files_in_memory():
    """Points TMPDIR at a fresh folder on a roomy tmpfs, for this process and those it starts."""
    import tempfile

    if "TMPDIR" in os.environ:
        return
    mount = _memory_file_system_with_room()
    if mount:
        os.environ["TMPDIR"] = os.environ[_TEMP_ROOT_VARIABLE] = tempfile.mkdtemp(prefix="kerasnets-tests-",
                                                                                 dir=mount)
        tempfile.tempdir = None  # gettempdir() may have been cached already (pytest's capture files)


# protobuf's Python runtime (upb, the only one TensorFlow uses) calls malloc_trim(0) after every 10,000 frees
# of its messages (python/protobuf.c, upb_trim_allocfunc; protobuf's main branch has since switched it off).
# TensorFlow frees that many protos while it traces a function or exports a model, so a worker hands its whole
# freed heap back to the kernel every few seconds, and pays a fresh zeroed page for each page it touches again:
# tests/test_classic.py and tests/test_deploy.py (-n 0, 2026-12-05) had the kernel allocate 29.1-29.4 GB of
# pages as they stand, 21.5 GB with protobuf's trim silenced, 11.6 GB with no trim after a test either (see
# _collect_big_garbage), and took 72-76 s of system time against 50 s. So the processes the suite starts
# (xdist workers, subprocesses) preload a malloc_trim that does nothing, where the machine has a C compiler
# and glibc; the suite's own trims (_return_freed_memory) reach glibc's by name and still hand memory back.
QUIET_MALLOC_TRIM = "int malloc_trim(unsigned long pad) { (void)pad; return 0; }\n"


def _quiet_trim_compiler():
    """The C compiler that builds QUIET_MALLOC_TRIM, or None where there is none or no glibc to quieten."""
    import shutil

    if os.uname().sysname != "Linux" or os.confstr("CS_GNU_LIBC_VERSION") is None:
        return None
    return shutil.which("cc") or shutil.which("gcc")


def _preload_a_quiet_malloc_trim():
    """Compiles QUIET_MALLOC_TRIM and adds it to LD_PRELOAD for the processes started from now on."""
    import subprocess
    import tempfile

    compiler = _quiet_trim_compiler()
    if not compiler:
        return None
    folder = tempfile.mkdtemp(prefix="kerasnets-quiet-trim-")
    source, library = os.path.join(folder, "quiet_trim.c"), os.path.join(folder, "libquiet_trim.so")
    with open(source, "w") as out:
        out.write(QUIET_MALLOC_TRIM)
    built = subprocess.run([compiler, "-O2", "-shared", "-fPIC", "-o", library, source], capture_output=True)
    if built.returncode == 0:
        os.environ["LD_PRELOAD"] = " ".join(filter(None, [library, os.environ.get("LD_PRELOAD")]))
    return folder


_QUIET_TRIM_FOLDER = []


def _cores_per_worker():
    """The cores this process may use, shared out among the xdist workers that run side by side."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))


# Each xdist worker's TensorFlow, torch and OpenMP pools get the worker's share of the cores, not all of them:
# on the 2-core build machine two workers with two intra-op and two inter-op threads each kept four busy threads
# on two cores, whose pools spin while they wait. Six heavy files together (-n 2, 2026-12-05): 187-189 s and
# 313-317 CPU seconds with the default pools, 148 s and 253 with one thread of each. Set in the workers only
# (the controller's environment reaches them, and without -n the one process keeps every core), before
# TensorFlow and torch start; the subprocesses that tests start inherit them.
THREADS_PER_WORKER = _cores_per_worker()
if os.environ.get("PYTEST_XDIST_WORKER"):
    for _variable in ("TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS", "OMP_NUM_THREADS"):
        os.environ[_variable] = str(THREADS_PER_WORKER)

try:
    # torchvision imported after TensorFlow segfaults (in triton via torch._dynamo);
    # importing it first, when it is installed, makes the order safe for every test.
    import torchvision  # noqa: F401
except ImportError:
    pass
else:
    import torch

    torch.set_num_threads(THREADS_PER_WORKER)  # the worker's share of the cores, as TensorFlow's above

import keras  # noqa: E402  (every test uses it: imported once here)

gc.collect()
gc.freeze()  # what the imports left, out of the collector's sight: see _collect

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The real files from other tools: ../shared/fixtures where the checkout sits beside it,
# else the copy vendored in tests/data/fixtures (same bytes; test_fixture_copies checks).
SHARED_FIXTURES = ROOT.parent / "shared" / "fixtures"
VENDORED_FIXTURES = ROOT / "tests" / "data" / "fixtures"
FIXTURES = SHARED_FIXTURES if SHARED_FIXTURES.is_dir() else VENDORED_FIXTURES


@pytest.fixture(scope="session")
def fixtures_dir():
    if not FIXTURES.is_dir():
        pytest.skip(f"shared fixtures not found at {FIXTURES}")
    return FIXTURES


@pytest.fixture(autouse=True)
def _seed():
    keras.utils.set_random_seed(1234)
    np.random.seed(1234)


def _resident_mb():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _return_freed_memory():
    """glibc keeps freed heap pages mapped; malloc_trim hands them back to the system."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


COLLECT_AFTER_GROWTH_MB = 1500
_resident_after_collection = [0.0]


def _collect(freeze=False, hand_back=True):
    """A full collection, freed pages handed back (with `hand_back`), and the resident size it left noted.

    `freeze` then moves what survived out of the collector's sight (gc.freeze). TensorFlow, torch and
    JAX leave millions of long-lived objects that each full collection walks: keras' clear_session()
    (one gc.collect) took 0.44 s with them in view and 0.03 s frozen, and tests/backends' parent spent
    22 of its 125 s on it. Done once the heavy modules are imported (above) and after each test file,
    whose models the collection has just freed: what survives then is modules and caches that live
    as long as the worker.
    """
    gc.collect()
    if freeze:
        gc.freeze()
    if hand_back:
        _return_freed_memory()
    _resident_after_collection[0] = _resident_mb()


@pytest.fixture(autouse=True)
def _collect_big_garbage():
    """A built model is a reference cycle: only a full collection frees it, and Python runs one by object
    count, not bytes, so a file that builds VGG after VGG held 7.6 GB until its end. A worker that grew
    COLLECT_AFTER_GROWTH_MB since its last collection collects after the test. Not after every test: with
    TensorFlow, torch and JAX loaded a collection takes a fraction of a second, and collecting after each
    test once a worker sat above a fixed 3 GB made tests/test_fuzz_readers.py 2.4x slower. The freed
    memory stays in the worker for the file's next tests: handing it back and faulting it in again
    was 10 of the 21.5 GB of pages the kernel allocated for tests/test_classic.py and test_deploy.py
    (see QUIET_MALLOC_TRIM); the file's end hands it back where memory is short
    (KEEP_FREED_MEMORY_WHILE_AVAILABLE_GB)."""
    yield
    if _resident_mb() > _resident_after_collection[0] + COLLECT_AFTER_GROWTH_MB:
        _collect(hand_back=False)


# What a file freed stays in its worker for the next file while the machine has this much memory available
# besides (MemAvailable at the file's end): pages handed back to the kernel cost a fresh zeroed page
# each when the next file touches them again. Eight heavy files (test_classic, npy_vgg, timm, weights_io_mat,
# slim_inception_vgg, weights_io_torch, inception, caffe_layouts; -n 2, twice each, alternating, 2026-12-06):
# 65.5-66.6 s of system time handing back after every file, 53.8-55.9 s keeping, user time equal, the
# largest worker 5.7 GB against 6.8-7.3 GB. Below it, or where the system does not say, it is handed back.
KEEP_FREED_MEMORY_WHILE_AVAILABLE_GB = 12


def _memory_short():
    """Whether a file's end hands freed memory back (see KEEP_FREED_MEMORY_WHILE_AVAILABLE_GB)."""
    available = _memory_available()
    return available is None or available < KEEP_FREED_MEMORY_WHILE_AVAILABLE_GB * 2**30


@pytest.fixture(scope="module", autouse=True)
def _release_models_after_each_file(request):
    """Frees what a test file built once it is done: a worker runs file after file, and without this
    its memory grew past 5 GB and one was killed for memory (24 GB, two workers, 2026-12-04).
    KERASNETS_TEST_RSS_LOG=path appends each file's resident MB (at its end, before and after
    release), seconds, and CPU seconds (user, system, then its waited-for children's user, system)
    and MB written (wchar: files, pipes, sockets; this process only):
    where a worker's memory and time go."""
    import time

    start, cpu = time.perf_counter(), os.times()
    written = _bytes_written()
    if not _resident_after_collection[0]:  # the worker's first file: its size before any test
        _resident_after_collection[0] = _resident_mb()
    yield
    before = _resident_mb()
    for value in list(vars(request.module).values()):  # a file's caches of reference runs die with it
        if callable(getattr(value, "cache_clear", None)):
            value.cache_clear()
    keras.backend.clear_session(free_memory=False)  # the one collection is _collect's
    _collect(freeze=True, hand_back=_memory_short())
    log = os.environ.get("KERASNETS_TEST_RSS_LOG")
    if log:
        with open(log, "a") as out:
            used = [now - then for now, then in zip(os.times(), cpu)]  # user, system, children's user, system
            out.write(f"{os.getpid()} {request.node.nodeid} {before:.0f} {_resident_mb():.0f} "
                      f"{time.perf_counter() - start:.1f} " + " ".join(f"{t:.1f}" for t in used[:4]) +
                      f" {(_bytes_written() - written) / 2**20:.0f}\n")


def _bytes_written():
    """Bytes this process has written to files, pipes and sockets so far (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/io") as io:
            return next(int(line.split()[1]) for line in io if line.startswith("wchar:"))
    except (OSError, StopIteration):
        return 0


def assert_close(actual, expected, rtol=1e-4, what="output"):
    """max |actual - expected| <= rtol * max |expected|: the project's parity bar."""
    from tests.references import relative_error

    actual, expected = np.asarray(actual), np.asarray(expected)
    assert actual.shape == expected.shape, f"{what}: shape {actual.shape} != {expected.shape}"
    error = relative_error(actual, expected)
    assert error <= rtol, f"{what}: max |diff| / max |ref| = {error:.3g} > {rtol}"


def assert_reloaded_outputs(loaded, original, model):
    """A saved and reloaded `model` computes what it did: bit for bit, except through BatchNormalization, which
    saves as keras' own layer (plain keras reloads it) while kerasnets' runs TensorFlow's fused kernel: float
    rounding apart there, held to the parity bar (on the AVX512_FP16/AMX Xeon of 2026-12-05: 3.6e-6 of the
    largest output for VGG-11-BN, 3.5e-5 for the SRGAN discriminator's single logit; 0 on AVX-512 EPYCs)."""
    if any(isinstance(layer, keras.layers.BatchNormalization) for layer in model._flatten_layers()):
        assert_close(loaded, original, what="reloaded output")
    else:
        np.testing.assert_array_equal(np.asarray(loaded), np.asarray(original))


def randomize_bn_statistics(model, seed=0):
    """Non-trivial moving mean/variance, so parity tests exercise BN inference."""
    rng = np.random.default_rng(seed)
    for layer in model._flatten_layers():
        if isinstance(layer, keras.layers.BatchNormalization):
            c = layer.moving_mean.shape
            layer.moving_mean.assign(rng.normal(0, 0.1, c).astype("float32"))
            layer.moving_variance.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            if layer.gamma is not None:
                layer.gamma.assign(rng.uniform(0.5, 1.5, c).astype("float32"))
            if layer.beta is not None:
                layer.beta.assign(rng.normal(0, 0.1, c).astype("float32"))


# xdist (`--dist loadfile`) hands each worker one file at a time from a queue. Its default queue order,
# most tests first, puts the heaviest few-test files (the fine-tunes: 8 tests, ~2.5 minutes; the exports:
# ~1.5 minutes; the kill-and-resume runs, one test of 20-30 s each) at the end, where one of them can keep a
# worker busy while the other has nothing left: in the runs of 2026-12-06 the last files were
# test_training_kill, test_weights_io_backends, test_fit_jax and test_training_resume, and the workers ended
# 15-17 s apart. These files go first, longest first: every file of 20 s or more and the two shorter ones
# whose tests are subprocess runs (each file's seconds in the full run of 2026-12-06 13:39, two workers on
# the 2-core build VM, from KERASNETS_TEST_RSS_LOG); the rest follow most tests first, as xdist ordered them.
# pytest.ini passes --no-loadscope-reorder so that xdist keeps this order.
HEAVY_FILES_FIRST = (
    "tests/backends/test_backends.py",  # 158: builds the registry three times (TF, JAX, torch)
    "tests/test_folder_finetune.py",  # 152: three trainings to an accuracy bar
    "tests/test_notebooks.py",  # 123: runs every notebook
    "tests/test_deploy.py",  # 97: ONNX, TFLite and SavedModel exports
    "tests/test_inception.py",  # 67
    "tests/test_superres.py",  # 64: FSRCNN to above bicubic
    "tests/oracle/test_slim_inception_vgg.py",  # 59
    "tests/test_cli_folder.py",  # 57: a killed run and its resumption, in subprocesses
    "tests/oracle/test_caffe_layouts.py",  # 48
    "tests/oracle/test_keras2_files.py",  # 46
    "tests/test_presets.py",  # 46: full-size preset files
    "tests/test_weights_io_options.py",  # 43
    "tests/oracle/test_timm.py",  # 42
    "tests/test_classic.py",  # 32
    "tests/test_training_resume.py",  # 28: subprocess runs
    "tests/test_npy_vgg.py",  # 26
    "tests/oracle/test_slim_resnet.py",  # 26
    "tests/backends/test_weights_io_backends.py",  # 26: subprocess runs
    "tests/test_from_weights.py",  # 25
    "tests/test_resnet_v2.py",  # 25
    "tests/test_resnet.py",  # 24
    "tests/oracle/test_cadene_senet.py",  # 23
    "tests/oracle/test_presets_torchvision.py",  # 22
    "tests/test_densenet.py",  # 22
    "tests/test_training_kill.py",  # 22: subprocess runs
    "tests/test_adversarial.py",  # 22
    "tests/oracle/test_weights_io_torch.py",  # 22
    "tests/oracle/test_residual_torchvision.py",  # 21
    "tests/test_mobilenet_v3.py",  # 20
    "tests/test_weights_io_sandbox.py",  # 20
    "tests/backends/test_fit_jax.py",  # 12: a subprocess run
    "tests/test_training_mirrored.py",  # 6: a subprocess run
)


def pytest_collection_modifyitems(session, config, items):
    """Heavy files first (see HEAVY_FILES_FIRST), then files with more tests first; a file's own order kept."""
    rank = {path: i for i, path in enumerate(HEAVY_FILES_FIRST)}
    counts = {}
    for item in items:
        counts[item.nodeid.split("::")[0]] = counts.get(item.nodeid.split("::")[0], 0) + 1

    def key(indexed):
        path = indexed[1].nodeid.split("::")[0]
        return (rank.get(path, len(rank)), -counts[path], path, indexed[0])

    items[:] = [item for _, item in sorted(enumerate(items), key=key)]


@pytest.hookimpl(tryfirst=True)  # before pytest's tmpdir plugin reads the temporary folder
def pytest_configure(config):
    config.addinivalue_line("markers", "slow: heavier tests (full-size models, training runs)")
    if not hasattr(config, "workerinput"):  # the run's first process: xdist workers inherit both
        _temporary_files_in_memory()
        _QUIET_TRIM_FOLDER.append(_preload_a_quiet_malloc_trim())


def pytest_sessionfinish(session, exitstatus):
    """The in-memory temporary folder goes with a run that passed (a failed run's stays, for its files),
    and the quiet malloc_trim's folder with every run."""
    import shutil

    if "tests.preloaded" in sys.modules:  # this process's forkserver, waited for: its children's CPU time counts
        sys.modules["tests.preloaded"].stop()
    if hasattr(session.config, "workerinput"):
        return
    for folder in filter(None, _QUIET_TRIM_FOLDER):  # the processes that preload it have it mapped: safe
        shutil.rmtree(folder, ignore_errors=True)
    root = os.environ.get(_TEMP_ROOT_VARIABLE)
    if not root:
        return
    if exitstatus == 0:
        # at this process's exit, after multiprocessing has deleted the folder of its forkserver's socket
        # (at priority -100) inside this one: deleted first, a run on one process ended with that deletion's
        # FileNotFoundError (`-n 0`: this process is the one that started tests.preloaded's server)
        from multiprocessing import util

        util.Finalize(None, shutil.rmtree, args=(root,), kwargs={"ignore_errors": True}, exitpriority=-101)
    else:
        print(f"\nthis run's temporary files, in memory until deleted: {root}")


def keras_weight_file(model):
    """A `WeightFile` holding `model`'s variables under their own layer names (keras convention).

    The test-side way to copy weights between two Keras models through the
    public assign step, e.g. keras.applications -> kerasnets.
    """
    from weights_io import WeightFile
    from weights_io.assign import weighted_layers

    tensors = {
        layer.name: {v.name: keras_to_numpy(v) for v in layer.weights} for layer in weighted_layers(model)
    }
    return WeightFile(tensors=tensors, convention="keras", format="keras-model")


def keras_to_numpy(variable):
    return keras.ops.convert_to_numpy(variable)


def copy_keras_weights(source, target, tmp_path=None):
    """keras.applications weights -> ours by layer name through weights_io (all or nothing).

    With `tmp_path`, through a Keras 3 `.weights.h5` file and the h5 reader;
    without, from memory (for the big variants, whose files are 100-250 MB).
    """
    import weights_io

    if tmp_path is not None:
        path = tmp_path / "reference.weights.h5"
        source.save_weights(path)
        return weights_io.load_keras_h5_weights(target, path, source="keras")
    return weights_io.assign_weights(target, keras_weight_file(source), weights_io.get_layout("keras"), strict=True)


def check_save_load_and_fit(model, x, y, tmp_path):
    """`model` (BN statistics randomised) reloads from .keras and .h5 with equal outputs, then trains a step."""
    from tests.references import infer

    randomize_bn_statistics(model)
    before = infer(model, x)
    for fmt in ("keras", "h5"):
        model.save(tmp_path / f"model.{fmt}")
        restored = keras.models.load_model(tmp_path / f"model.{fmt}")
        # the files hold keras' own BatchNormalization (what the fused layer saves as): equal to float
        # rounding, within 1e-5 of the output's scale
        np.testing.assert_allclose(infer(restored, x), before, rtol=0,
                                   atol=1e-5 * np.abs(before).max(), err_msg=fmt)
    restored.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    history = restored.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])
