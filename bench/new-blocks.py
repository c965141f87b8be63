#!/usr/bin/env python3
"""Writes the 4 KiB blocks of V2 that occur nowhere in V1 to OUT (each once): compressed, the
floor for any delta scheme. Prints how many there are.

    bench/new-blocks.py V1 V2 OUT
"""
import hashlib
import sys

v1, v2, out = sys.argv[1:4]
BLOCK = 4096


def blocks(path):
    with open(path, "rb") as f:
        while block := f.read(BLOCK):
            yield block


known = {hashlib.sha256(b).digest() for b in blocks(v1)}
new = 0
total = 0
with open(out, "wb") as f:
    for block in blocks(v2):
        total += 1
        digest = hashlib.sha256(block).digest()
        if digest not in known:
            known.add(digest)
            f.write(block)
            new += 1
print(f"{new} of {total} blocks of v2 occur nowhere in v1 ({new * 100 / total:.2f} %)")
