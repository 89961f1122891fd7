"""Python script processes forked from one that has imported Keras, TensorFlow and our packages already.

The kill-and-resume, atomic-save and strategy tests need real processes (killed with SIGKILL, frozen
with SIGSTOP, holding a lock, configuring devices before TensorFlow's first op), not what the process
imports: each of their 16 fresh interpreters spent 4-6 CPU seconds importing TensorFlow and Keras
before its first line of work. `start` forks them instead from a multiprocessing forkserver that
imports `PRELOAD` once per test process. A forked child is a process like any other (its own pid,
signals, file locks, exit status), and TensorFlow has run no op in the server, so a child can still
configure its devices first. The five files that use it (kill, resume, mirrored, saving, CLI folder;
-n 2, alternating runs on the 2-core build VM, 2026-12-06) took 168-176 CPU-s and 100-104 s with
fresh interpreters, 111-112 CPU-s and 68 s forked. The notebooks' kernels start the same way
(`launch_kernel`): tests/test_notebooks.py (-n 1, alternating) 165 and 177 CPU-s with kernels
jupyter_client started, 134 and 140 forked.

The child's stdout and stderr go to two files, read back by `readline` (stdout), `communicate` (both)
and `output` (both as one text), so a child never blocks on a pipe nobody reads.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# torchvision first, where installed (multiprocessing skips a preload that fails to import): torch imported
# after TensorFlow segfaults (see tests/conftest.py), and notebook 02 imports it
PRELOAD = ["torchvision", "numpy", "keras", "kerasnets", "training.fit", "training.cli", "ipykernel.kernelapp"]

_context = []


def _forkserver():
    if not _context:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context.append(context)
    return _context[0]


def _run_script(script, argv, env, cwd, outputs, new_session):
    """The child: stdout and stderr to `outputs`, `env` as its environment, `script` run as `python -c`
    runs it in `cwd`."""
    if new_session:  # its own process group, as Popen(start_new_session=True) gives: killpg reaches it alone
        os.setsid()
    os.chdir(cwd)
    os.environ.clear()
    os.environ.update(env)
    _reread_environment()
    for stream, path in zip((1, 2), outputs):
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(descriptor, stream)
        os.close(descriptor)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = ["-c", *argv]
    exec(compile(script, "<string>", "exec"), {"__name__": "__main__"})


def _reread_environment():
    """What the preloaded modules read from the environment at import, read again from the child's: the
    server's environment is that of the test that started it (a notebook test's TMPDIR, since deleted)."""
    tempfile.tempdir = None  # TMPDIR
    if "matplotlib" in sys.modules and os.environ.get("MPLBACKEND"):  # as matplotlib/__init__.py does
        sys.modules["matplotlib"].rcParams["backend"] = os.environ["MPLBACKEND"]


class Process:
    """What the tests used of `subprocess.Popen` (pid, poll, wait, send_signal, kill, communicate,
    returncode), with `readline` for the child's stdout; `returncode` is -N for a child killed by signal N."""

    stdin = stdout = stderr = None  # no pipes: the output goes to files (jupyter_client closes what is set)

    def __init__(self, script, args, env, cwd, new_session):
        self.outputs = []
        for suffix in (".out", ".err"):
            handle, path = tempfile.mkstemp(prefix="preloaded-", suffix=suffix)
            os.close(handle)
            self.outputs.append(path)
        self._read = 0
        self._process = _forkserver().Process(target=_run_script, args=(script, [str(a) for a in args], env, cwd,
                                                                        self.outputs, new_session))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self):
        return self._process.exitcode

    def poll(self):
        return self.returncode

    def wait(self, timeout=None):
        self._process.join(timeout)
        if self._process.exitcode is None:
            raise TimeoutError(f"process {self.pid} still runs after {timeout} s")
        return self._process.exitcode

    def send_signal(self, number):
        if self._process.exitcode is None:
            os.kill(self.pid, number)

    def kill(self):
        self.send_signal(signal.SIGKILL)

    def terminate(self):
        self.send_signal(signal.SIGTERM)

    def readline(self, timeout=120.0, poll=0.01):
        """The child's next line of stdout ('' once it has exited with no more)."""
        deadline = time.monotonic() + timeout
        while True:
            with open(self.outputs[0]) as f:
                f.seek(self._read)
                line = f.readline()
            if line.endswith("\n") or (line and self.poll() is not None):
                self._read += len(line.encode())
                return line
            if self.poll() is not None and not line:
                return ""
            if time.monotonic() > deadline:
                raise TimeoutError(f"process {self.pid} wrote no line within {timeout} s")
            time.sleep(poll)

    def communicate(self, timeout=None):
        """Waits for the child and returns (stdout, stderr), as Popen does with both piped."""
        self.wait(timeout)
        texts = []
        for path in self.outputs:
            with open(path) as f:
                texts.append(f.read())
        return tuple(texts)

    def output(self, timeout=None):
        """Waits for the child and returns its stdout followed by its stderr, for a failure's message."""
        return "".join(self.communicate(timeout))

    def __del__(self):
        for path in getattr(self, "outputs", ()):
            try:
                os.unlink(path)
            except OSError:
                pass


def start(script, *args, env=None, cwd=ROOT, new_session=False):
    """Runs `script` with `args` as `python -c script args...` would, forked.

    Args:
        env: the child's whole environment (None: this process's, as subprocess gives it).
        cwd: the child's working folder (default the repository's root).
        new_session: the child leads a session and process group of its own.
    """
    return Process(script, args, dict(os.environ if env is None else env), os.fspath(cwd), new_session)


def launch_kernel(cmd, env=None, cwd=None, **_):
    """`jupyter_client.launcher.launch_kernel` (`python -m ipykernel_launcher -f CONNECTION`), forked.

    In its own process group, as jupyter_client's own launch gives it: the kernel manager signals the
    group. Without JPY_PARENT_PID: ipykernel would take the server, its parent here, for a dead one.
    """
    module = cmd.index("-m") + 1
    env = {k: v for k, v in (os.environ if env is None else env).items() if k != "JPY_PARENT_PID"}
    script = f"import runpy\nrunpy.run_module({cmd[module]!r}, run_name='__main__', alter_sys=True)\n"
    kernel = start(script, *cmd[module + 1:], env=env, cwd=cwd or os.getcwd(), new_session=True)
    deadline = time.monotonic() + 60
    while os.getpgid(kernel.pid) != kernel.pid:  # the manager reads the group right away: wait for setsid
        if kernel.poll() is not None or time.monotonic() > deadline:
            kernel.kill()  # one still running after the deadline: reading its output must not wait for it
            raise RuntimeError(f"the kernel did not start: {kernel.output(timeout=30)}")
        time.sleep(0.001)
    return kernel


def stop():
    """Stops this process's forkserver and waits for it, so that its children's CPU time is counted."""
    if not _context:
        return
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # noqa: SLF001 - the public API has no stop; the tests' accounting needs it
    _context.clear()
