"""Long fuzz run of every weights_io reader: mutated genuine files must give a
WeightFile or a WeightFileError, nothing else (no crash, hang or raw exception).

    python -m tests.fuzz.fuzz_readers --examples 2000
"""

from __future__ import annotations

import argparse
import collections
import random
import tempfile
import time

from tests.fuzz.corpus import mutate, read_and_touch, write_seeds


def run(examples, seed=0):
    from weights_io import WeightFileError

    rng = random.Random(seed)
    counts = collections.Counter()
    failures = []
    with tempfile.TemporaryDirectory() as tmp:
        seeds = write_seeds(tmp)
        originals = {name: path.read_bytes() for name, path in seeds.items()}
        target = f"{tmp}/case"
        for i in range(examples):
            name = rng.choice(sorted(originals))
            data = originals[name]
            edits = [(rng.randrange(len(data)), rng.randrange(256)) for _ in range(rng.randrange(0, 8))]
            truncate = rng.randrange(len(data) + 1) if rng.random() < 0.4 else None
            with open(target, "wb") as f:
                f.write(mutate(data, edits, truncate))
            start = time.perf_counter()
            try:
                read_and_touch(target, mmap=i % 2 == 1)  # the loaders read mapped
                counts[(name, "read")] += 1
            except WeightFileError:
                counts[(name, "refused")] += 1
            except Exception as err:  # noqa: BLE001 - the point is to find these
                counts[(name, "CRASH")] += 1
                failures.append((name, edits, truncate, repr(err)[:200]))
            if time.perf_counter() - start > 5:
                failures.append((name, edits, truncate, "took over 5 s"))
    return counts, failures


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    counts, failures = run(args.examples, args.seed)
    for (name, outcome), n in sorted(counts.items()):
        print(f"{name:32s} {outcome:8s} {n}")
    print(f"{args.examples} inputs tried, {len(failures)} failures")
    for failure in failures[:20]:
        print("  ", failure)
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
