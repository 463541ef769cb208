#!/usr/bin/env python3
"""An independent safetensors reader/writer (json + numpy only) to cross-check rlft's.

  safetensors_check.py read FILE     prints {name: {dtype, shape, values}} as JSON, values
                                     decoded to float/int ("nan", "inf", "-inf" as strings)
  safetensors_check.py write FILE    writes the tensors of expected() (data in reverse name
                                     order, __metadata__ {"format": "pt", "source": "python"})
  safetensors_check.py write-dir DIR writes expected() as two shards + the index

The format is parsed by hand from the specification (8-byte little-endian header length,
JSON header, row-major little-endian data), not with the safetensors package.
"""
import json
import math
import os
import struct
import sys

import numpy as np

NP = {"F64": "<f8", "F32": "<f4", "F16": "<f2", "I64": "<i8", "I32": "<i4", "I16": "<i2",
      "I8": "i1", "U8": "u1", "BOOL": "u1", "BF16": "<u2"}


def decode(dtype, raw, shape):
    a = np.frombuffer(raw, dtype=NP[dtype]).reshape(shape)
    if dtype == "BF16":  # the top half of a float32
        a = (a.astype(np.uint32) << 16).view(np.float32)
    if dtype == "BOOL":
        a = a != 0
    return a


def read(path):
    with open(path, "rb") as f:
        blob = f.read()
    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n].decode("utf-8"))
    data = blob[8 + n:]
    out = {}
    for name, e in header.items():
        if name == "__metadata__":
            out[name] = e
            continue
        b, end = e["data_offsets"]
        a = decode(e["dtype"], data[b:end], e["shape"])
        vals = []
        for v in a.reshape(-1).tolist():
            if isinstance(v, float) and not math.isfinite(v):
                v = "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
            vals.append(v)
        out[name] = {"dtype": e["dtype"], "shape": e["shape"], "values": vals}
    return out


def expected():
    """name -> (dtype, shape, numpy array); the C++ test computes the same formulas."""
    i = lambda n: np.arange(n)
    t = {}
    t["f32"] = ("F32", [3, 4], (i(12).astype(np.float32) * np.float32(0.1)).reshape(3, 4))
    t["f64"] = ("F64", [5], i(5) / 3.0)
    t["f16"] = ("F16", [2, 3], ((i(6) - 3) * 0.125).astype(np.float16).reshape(2, 3))
    # bf16: values exactly representable, stored as the top 16 bits of their float32.
    t["bf16"] = ("BF16", [7], (((i(7) - 3) * 0.25).astype(np.float32).view(np.uint32) >> 16).astype(np.uint16))
    t["i64"] = ("I64", [4], i(4).astype(np.int64) * 1000003 - 5)
    t["i32"] = ("I32", [4], i(4).astype(np.int32) * -7)
    t["i16"] = ("I16", [3], i(3).astype(np.int16) * 300)
    t["i8"] = ("I8", [5], (i(5) * 7 % 256 - 128).astype(np.int8))
    t["u8"] = ("U8", [5], (i(5) * 77 % 256).astype(np.uint8))
    t["bool"] = ("BOOL", [6], (i(6) % 3 == 0).astype(np.uint8))
    t["empty"] = ("F32", [0, 2], np.zeros((0, 2), np.float32))
    return t


def write(path, tensors):
    header, chunks, offset = {"__metadata__": {"format": "pt", "source": "python"}}, [], 0
    for name in sorted(tensors, reverse=True):
        dtype, shape, a = tensors[name]
        raw = np.ascontiguousarray(a).astype(a.dtype.newbyteorder("<")).tobytes()
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(chunks))


def write_dir(path):
    os.makedirs(path, exist_ok=True)
    t = expected()
    names = sorted(t)
    shards = [names[: len(names) // 2], names[len(names) // 2:]]
    weight_map, total = {}, 0
    for k, part in enumerate(shards):
        fname = "model-%05d-of-%05d.safetensors" % (k + 1, len(shards))
        write(os.path.join(path, fname), {n: t[n] for n in part})
        for n in part:
            weight_map[n] = fname
            total += t[n][2].nbytes
    with open(os.path.join(path, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2, sort_keys=True) + "\n")


def main():
    mode, path = sys.argv[1], sys.argv[2]
    if mode == "read":
        json.dump(read(path), sys.stdout)
    elif mode == "write":
        write(path, expected())
    elif mode == "write-dir":
        write_dir(path)
    else:
        sys.exit("unknown mode " + mode)


if __name__ == "__main__":
    main()
