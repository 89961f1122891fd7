"""Python script processes forked from one that has imported Keras, TensorFlow and our packages already.

The kill-and-resume, atomic-save and strategy tests need real processes (killed with SIGKILL, frozen
with SIGSTOP, holding a lock, configuring devices before TensorFlow's first op), not what the process
imports: each of their 16 fresh interpreters spent 4-6 CPU seconds importing TensorFlow and Keras
before its first line of work. `start` forks them instead from a multiprocessing forkserver that
imports `PRELOAD` once per test process. A forked child is a process like any other (its own pid,
signals, file locks, exit status), and TensorFlow has run no op in the server, so a child can still
configure its devices first. The five files that use it (kill, resume, mirrored, saving, CLI folder;
-n 2, alternating runs on the 2-core build VM, 2026-12-06) took 168-176 CPU-s and 100-104 s with
fresh interpreters, 111-112 CPU-s and 68 s forked.

The child's stdout and stderr go to two files, read back by `readline` (stdout) and `communicate`
(both), so a child never blocks on a pipe nobody reads.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PRELOAD = ["numpy", "keras", "kerasnets", "training.fit", "training.cli"]

_context = []


def _forkserver():
    if not _context:
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(PRELOAD)
        _context.append(context)
    return _context[0]


def _run_script(script, argv, env, outputs):
    """The child: stdout and stderr to `outputs`, `env` over the server's environment, `script` run as
    `python -c` runs it."""
    os.chdir(ROOT)
    os.environ.update(env)
    for stream, path in zip((1, 2), outputs):
        descriptor = os.open(path, os.O_WRONLY | os.O_APPEND)
        os.dup2(descriptor, stream)
        os.close(descriptor)
    sys.stdout = open(1, "w", buffering=1, closefd=False)
    sys.stderr = open(2, "w", buffering=1, closefd=False)
    sys.argv = ["-c", *argv]
    exec(compile(script, "<string>", "exec"), {"__name__": "__main__"})


class Process:
    """What the tests used of `subprocess.Popen` (pid, poll, wait, send_signal, kill, communicate,
    returncode), with `readline` for the child's stdout; `returncode` is -N for a child killed by signal N."""

    def __init__(self, script, args, env):
        self.outputs = []
        for suffix in (".out", ".err"):
            handle, path = tempfile.mkstemp(prefix="preloaded-", suffix=suffix)
            os.close(handle)
            self.outputs.append(path)
        self._read = 0
        self._process = _forkserver().Process(target=_run_script,
                                              args=(script, [str(a) for a in args], dict(env or {}), self.outputs))
        self._process.start()
        self.pid = self._process.pid

    @property
    def returncode(self):
        return self._process.exitcode

    def poll(self):
        return self._process.exitcode

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

    def __del__(self):
        for path in getattr(self, "outputs", ()):
            try:
                os.unlink(path)
            except OSError:
                pass


def start(script, *args, env=None):
    """Runs `script` with `args` as `python -c script args...` would (from the repository root), forked."""
    return Process(script, args, env)


def stop():
    """Stops this process's forkserver and waits for it, so that its children's CPU time is counted."""
    if not _context:
        return
    from multiprocessing import forkserver

    forkserver._forkserver._stop()  # noqa: SLF001 - the public API has no stop; the tests' accounting needs it
    _context.clear()
