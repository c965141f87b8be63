#!/usr/bin/env python3
"""Turns the staged tree of release v1 into v2, deterministically, the way a release changes a
root file system: 20 files replaced by other binaries of about their size, 61 patched (a few
percent of each rewritten in place), 10 deleted, 2 added. Prints the share of content changed.

    bench/make-v2.py STAGE FILES ALL_FILES
FILES lists v1's files (absolute paths, staged under STAGE); ALL_FILES is "path<TAB>size" for
every candidate on this machine, from which replacements and additions are taken.
"""
import os
import random
import sys

stage, files_list, all_list = sys.argv[1:4]
rnd = random.Random(2)
files = [line.rstrip("\n") for line in open(files_list)]
in_v1 = set(files)
others = []
for line in open(all_list):
    path, size = line.rstrip("\n").split("\t")
    if path not in in_v1:
        others.append((path, int(size)))


def staged(path):
    return os.path.join(stage, path.lstrip("/"))


sizes = {p: os.path.getsize(staged(p)) for p in files if os.path.isfile(staged(p))}
total = sum(sizes.values())
moderate = sorted(p for p, s in sizes.items() if 64 << 10 <= s <= 4 << 20)
chosen = rnd.sample(moderate, 20 + 61 + 10)
replaced, patched, deleted = chosen[:20], chosen[20:81], chosen[81:]
changed = 0

for path in replaced:
    size = sizes[path]
    donor = min(others, key=lambda o: abs(o[1] - size))
    others.remove(donor)
    data = open(donor[0], "rb").read()
    open(staged(path), "wb").write(data)
    changed += len(data)

for path in patched:
    size = sizes[path]
    length = max(4096, size // 8)
    offset = rnd.randrange(0, max(1, size - length))
    with open(staged(path), "r+b") as f:
        f.seek(offset)
        f.write(rnd.randbytes(length // 2) + bytes(length - length // 2))
    changed += length

for path in deleted:
    os.remove(staged(path))

for donor in rnd.sample([o for o in others if 64 << 10 <= o[1] <= 2 << 20], 2):
    target = os.path.join(stage, "usr/local/bin", os.path.basename(donor[0]))
    os.makedirs(os.path.dirname(target), exist_ok=True)
    data = open(donor[0], "rb").read()
    open(target, "wb").write(data)
    changed += len(data)

print(f"v2: 20 replaced, 61 patched, 10 deleted, 2 added: {changed} of {total} content bytes "
      f"({changed * 100 / total:.2f} %)")
