#!/usr/bin/env python3
"""Removes the custom `name` section (function names for stack traces, about a third of our
.wasm) from a WebAssembly file in place; the code is unchanged. wasm-pack keeps the section and
its binaryen step (wasm-opt), which would drop it, cannot be downloaded here.
Usage: scripts/wasm-strip-names.py www/pkg/scorediff_web_bg.wasm"""
import sys


def leb128(data, i):
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, i


def main(path):
    data = open(path, "rb").read()
    if data[:4] != b"\0asm":
        sys.exit(f"{path}: not a WebAssembly file")
    out, i = [data[:8]], 8
    while i < len(data):
        start = i
        section_id = data[i]
        size, body = leb128(data, i + 1)
        end = body + size
        name = None
        if section_id == 0:
            n, j = leb128(data, body)
            name = data[j:j + n]
        if name != b"name":
            out.append(data[start:end])
        i = end
    stripped = b"".join(out)
    open(path, "wb").write(stripped)
    print(f"{path}: {len(data)} -> {len(stripped)} bytes")


if __name__ == "__main__":
    main(sys.argv[1])
