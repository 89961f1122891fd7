"""Long fuzz run of every weights_io reader: mutated genuine files must give a
WeightFile or a WeightFileError, nothing else (no crash, hang or raw exception).

    python -m tests.fuzz.fuzz_readers --examples 2000 [--large-mb 528] [--keep failures/]

Each input is read by `read_weights` (which parses in its limited reader
process) inside a long-lived harness process with a watchdog of its own: an
input that crashes or hangs the harness, or raises anything but a
`WeightFileError`, is a failure, and its bytes are kept. Refusals that came
from the reader process's limits (a parser that looped, crashed or ran out of
memory) are counted apart, as "contained". The hostile Caffe prototxts of the
corpus (`corpus.prototxt_hostile`) follow: each must end in a ValueError naming
its fault before `kerasnets.from_caffe` builds anything.
"""

from __future__ import annotations

import argparse
import collections
import multiprocessing
import os
import pathlib
import random
import tempfile
import time

from tests.fuzz.corpus import (
    HANGING_SEED_PREFIX, mutate, read_and_touch, structured_mutation, write_hostile_seeds, write_issue_seeds,
    write_large_seeds, write_seeds,
)

# What a refusal by the reader process's limits says (weights_io.sandbox).
_CONTAINED = ("wall-clock limit", "CPU-time limit", "crashed on it", "memory limit", "stopped answering")


def _harness(connection, read_seconds):
    """The harness process: reads each path it is sent, answers (outcome, detail)."""
    from weights_io import WeightFileError, sandbox

    sandbox.BASE_SECONDS = read_seconds
    while True:
        request = connection.recv()
        if request is None:
            return
        path, mmap = request
        try:
            read_and_touch(path, mmap)
            connection.send(("read", ""))
        except WeightFileError as err:
            contained = any(text in str(err) for text in _CONTAINED)
            connection.send(("contained" if contained else "refused", str(err)[:300]))
        except BaseException as err:  # noqa: BLE001 - the point is to find these
            connection.send(("STRAY", f"{type(err).__name__}: {err}"[:300]))


class Harness:
    """A harness process with a watchdog; restarted after it crashed or hung."""

    def __init__(self, read_seconds, watchdog_seconds):
        self.read_seconds, self.watchdog = read_seconds, watchdog_seconds
        self.context = multiprocessing.get_context("spawn")
        self.process = None

    def _start(self):
        self.connection, child = self.context.Pipe()
        self.process = self.context.Process(target=_harness, args=(child, self.read_seconds), daemon=True)
        self.process.start()

    def read(self, path, mmap):
        if self.process is None or not self.process.is_alive():
            self._start()
        self.connection.send((str(path), mmap))
        if not self.connection.poll(self.watchdog):
            self.stop()
            return "HANG", f"no answer within {self.watchdog} s"
        try:
            return self.connection.recv()
        except EOFError:
            code = self.process.exitcode
            self.process = None
            return "CRASH", f"the harness process died (exit code {code})"

    def stop(self):
        if self.process is not None:
            self.process.kill()
            self.process.join()
            self.process = None


def run(examples, seed=0, *, large_mb=0, issue_files=True, keep=None, read_seconds=10.0, watchdog_seconds=120.0,
        log=None, hostile=False):
    """Reads `examples` mutated files; returns (counts {(seed name, kind, outcome): n}, failures).

    With `issue_files`, the seeds include a tf-keras `.h5` (where tf-keras is installed),
    and its two damaged forms that hang libhdf5 are read once each, as they are, before
    the mutated inputs: their reads end at the reader process's limit ("contained",
    kind "as-is"). They are not mutated: nearly every mutation of them hangs as they do,
    and each hang costs the whole time limit of CPU (15 of the 160 inputs of the test's
    run, 23 of its 38 s). With `hostile`, the malformed `.safetensors` files
    (`corpus.safetensors_hostile`) are seeds too.
    """
    rng = random.Random(seed)
    counts = collections.Counter()
    failures = []
    harness = Harness(read_seconds, watchdog_seconds)
    with tempfile.TemporaryDirectory() as tmp:
        seeds = write_seeds(tmp)
        if large_mb:
            seeds.update(write_large_seeds(tmp, large_mb))
        if issue_files:
            seeds.update(write_issue_seeds(tmp))
        if hostile:
            seeds.update(write_hostile_seeds(tmp))
        hanging = sorted(name for name in seeds if name.startswith(HANGING_SEED_PREFIX))
        originals = {name: pathlib.Path(path).read_bytes() for name, path in seeds.items() if name not in hanging}
        target = pathlib.Path(tmp) / "case"

        def read(index, name, kind, case, mmap):
            target.write_bytes(case)
            start = time.perf_counter()
            outcome, detail = harness.read(target, mmap=mmap)
            counts[(name, kind, outcome)] += 1
            if outcome in ("HANG", "CRASH", "STRAY"):
                kept = None
                if keep is not None:
                    os.makedirs(keep, exist_ok=True)
                    kept = os.path.join(keep, f"{index:06d}-{name.replace('/', '_')}-{kind}.bin")
                    pathlib.Path(kept).write_bytes(case)
                failures.append((index, name, kind, outcome, detail, kept))
            if log is not None and time.perf_counter() - start > 2:
                log(f"  input {index} ({name}, {kind}): {outcome} after {time.perf_counter() - start:.1f} s")

        try:
            for name in hanging:
                read(-1, name, "as-is", pathlib.Path(seeds[name]).read_bytes(), mmap=False)
            for i in range(examples):
                name = rng.choice(sorted(originals))
                data = originals[name]
                if i % 2:  # the structured damages; else the old byte edits and cuts
                    kind, case = structured_mutation(rng, data)
                else:
                    edits = [(rng.randrange(len(data)), rng.randrange(256)) for _ in range(rng.randrange(0, 8))]
                    truncate = rng.randrange(len(data) + 1) if rng.random() < 0.4 else None
                    kind, case = "edits", mutate(data, edits, truncate)
                read(i, name, kind, case, mmap=i % 4 >= 2)  # the loaders read mapped
        finally:
            harness.stop()
    return counts, failures


def refuse_prototxts(directory):
    """Runs `kerasnets.from_caffe` on every hostile prototxt of the corpus; returns the cases that did not
    end in a ValueError (WeightFileError included) saying what the corpus expects, with what happened."""
    from kerasnets.caffe import from_caffe
    from tests.fuzz.corpus import prototxt_hostile

    wrong = []
    for case, (text, says) in sorted(prototxt_hostile().items()):
        path = pathlib.Path(directory) / f"{case}.prototxt"
        path.write_bytes(text.encode("utf-8", "surrogateescape"))
        try:
            from_caffe(path)
            wrong.append((case, "built a model"))
        except ValueError as err:
            if says not in str(err):
                wrong.append((case, str(err)))
        except Exception as err:  # noqa: BLE001 - any other exception is the finding
            wrong.append((case, f"{type(err).__name__}: {err}"))
    return wrong


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--large-mb", type=float, default=0, help="add a .h5 and a .mat of this size (VGG16: 528)")
    parser.add_argument("--keep", default="fuzz-failures", help="folder for the inputs that failed")
    parser.add_argument("--read-seconds", type=float, default=10.0, help="the reader process's base time limit")
    args = parser.parse_args(argv)
    counts, failures = run(args.examples, args.seed, large_mb=args.large_mb, keep=args.keep,
                           read_seconds=args.read_seconds, log=print, hostile=True)
    totals = collections.Counter()
    for (name, kind, outcome), n in sorted(counts.items()):
        print(f"{name:28s} {kind:12s} {outcome:10s} {n}")
        totals[outcome] += n
    print(f"{args.examples} inputs: " + ", ".join(f"{n} {outcome}" for outcome, n in sorted(totals.items())))
    print(f"{len(failures)} failures (crash, hang or stray exception)")
    for failure in failures[:20]:
        print("  ", failure)
    from tests.fuzz.corpus import prototxt_hostile

    with tempfile.TemporaryDirectory() as tmp:
        wrong = refuse_prototxts(tmp)
    print(f"{len(prototxt_hostile())} hostile prototxts: {len(prototxt_hostile()) - len(wrong)} refused before "
          f"building, {len(wrong)} otherwise")
    for case in wrong:
        print("  ", case)
    return 1 if failures or wrong else 0


if __name__ == "__main__":
    raise SystemExit(main())
