#!/usr/bin/env python3
"""Where an install of BUNDLE (of one image) stands when FRACTION of the bundle's bytes have
arrived: the image byte at which the chunk then arriving starts (an install writes chunks in
order). Reads the seek table for the frames and `zstd -dc | tar -tv` for the entries' sizes.

    bench/cut-point.py BUNDLE FRACTION
"""
import struct
import subprocess
import sys

path, fraction = sys.argv[1], float(sys.argv[2])
data = open(path, "rb").read()
count = struct.unpack("<I", data[-9:-5])[0]
table = data[-(9 + 8 * count):-9]
frames = [struct.unpack("<II", table[i * 8:i * 8 + 8]) for i in range(count)]
listing = subprocess.run(["sh", "-c", f"zstd -dc '{path}' | tar -tv"],
                         capture_output=True, text=True, check=True).stdout.splitlines()
sizes = [int(line.split()[2]) for line in listing]


def padded(n):
    return (n + 511) // 512 * 512


# manifest.toml and manifest.sig entries, then the image's own header: its data follows.
data_start = 512 + padded(sizes[0]) + 512 + padded(sizes[1]) + 512
arrived = fraction * len(data)
compressed = decompressed = 0
for c, d in frames:
    if compressed + c > arrived:
        break
    compressed += c
    decompressed += d
print(max(0, decompressed - data_start))
