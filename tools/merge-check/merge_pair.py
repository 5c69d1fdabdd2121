#!/usr/bin/env python3
"""Independent merge of a policy/reference ONNX pair (numpy), to check the engine's merged reference.

Written apart from src/engine/merge.ts, from the definitions in the README ("Choosing the
reference"): per floating-point initializer, with tau = policy - reference, in float32:

  linear       a*p + (1 - a)*r
  ties         r + a*tau where |tau| >= the k-th largest |tau|, k = max(1, floor(density*n)); else r
  dare_linear  r + a*(tau / density) where the mask draw < density; else r
               (mulberry32 seeded with FNV-1a of "<seed>:<name>", one draw per element)

A tensor stored identically in both graphs is kept as it is. Values are computed in float32 and
stored in the initializer's own type. Writes the merged model (all weights inline) to --out and
prints JSON: the sha256 over the merged floating-point initializers (name, NUL, stored bytes, in
graph order) and how many tensors differed.

  /usr/bin/python3 tools/merge-check/merge_pair.py --policy P.onnx --reference R.onnx \
      --method ties --alpha 0.5 --density 0.2 --out merged.onnx

Needs Debian's python3-onnx and python3-numpy. Also writes --dump DIR/<index>.bin (the stored
bytes of every merged floating-point initializer, in graph order) when asked, for tests that
compare values one by one.
"""
import argparse
import hashlib
import json
import math
import os
import sys

import numpy as np
import onnx
from onnx import numpy_helper

FLOAT_TYPES = {
    onnx.TensorProto.FLOAT: np.float32,
    onnx.TensorProto.FLOAT16: np.float16,
    onnx.TensorProto.DOUBLE: np.float64,
}
MASK32 = np.uint64(0xFFFFFFFF)


def fnv1a32(text):
    h = 0x811C9DC5
    for byte in text.encode("utf-8"):
        h = ((h ^ byte) * 0x01000193) & 0xFFFFFFFF
    return h


def mulberry32_draws(seed, n):
    """The first n outputs of mulberry32(seed) in [0, 1), vectorised (state k = seed + k*0x6D2B79F5)."""
    k = np.arange(1, n + 1, dtype=np.uint64)
    a = (np.uint64(seed) + k * np.uint64(0x6D2B79F5)) & MASK32

    def imul(x, y):
        return (x * y) & MASK32

    t = a
    t = imul(t ^ (t >> np.uint64(15)), t | np.uint64(1))
    t = t ^ ((t + imul(t ^ (t >> np.uint64(7)), t | np.uint64(61))) & MASK32)
    t = (t ^ (t >> np.uint64(14))) & MASK32
    return t.astype(np.float64) / 4294967296.0


def merge_values(name, r, p, method, alpha, density, seed):
    a = np.float32(alpha)
    if method == "linear":
        b = np.float32(1) - a
        return a * p + b * r
    tau = p - r
    n = tau.size
    if method == "ties":
        mag = np.abs(tau)
        k = max(1, int(math.floor(density * n)))
        threshold = np.partition(mag.ravel(), n - k)[n - k]
        return np.where(mag >= threshold, r + a * tau, r)
    if method == "dare_linear":
        d = np.float32(density)
        keep = (mulberry32_draws(fnv1a32(f"{seed}:{name}"), n) < density).reshape(tau.shape)
        return np.where(keep, r + a * (tau / d), r)
    raise SystemExit(f"unknown method {method}")


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", required=True)
    ap.add_argument("--reference", required=True)
    ap.add_argument("--method", required=True, choices=["linear", "ties", "dare_linear"])
    ap.add_argument("--alpha", type=float, required=True)
    ap.add_argument("--density", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--dump", help="directory for the stored bytes of the merged values, one <index>.bin per float initializer")
    args = ap.parse_args()

    ref = onnx.load(args.reference)
    pol = onnx.load(args.policy)
    policy = {t.name: t for t in pol.graph.initializer}
    if [t.name for t in ref.graph.initializer] != [t.name for t in pol.graph.initializer] and set(policy) != {t.name for t in ref.graph.initializer}:
        raise SystemExit("initializer names differ")
    digest = hashlib.sha256()
    merged = 0
    if args.dump:
        os.makedirs(args.dump, exist_ok=True)
    index = 0
    for i, t in enumerate(ref.graph.initializer):
        if t.data_type not in FLOAT_TYPES:
            continue
        dtype = FLOAT_TYPES[t.data_type]
        r_stored = numpy_helper.to_array(t)
        p_stored = numpy_helper.to_array(policy[t.name])
        if r_stored.shape != p_stored.shape or r_stored.dtype != p_stored.dtype:
            raise SystemExit(f"{t.name}: shape or type differs")
        if r_stored.tobytes() == p_stored.tobytes():
            out = r_stored
        else:
            with np.errstate(all="raise"):
                out32 = merge_values(t.name, r_stored.astype(np.float32), p_stored.astype(np.float32), args.method, args.alpha, args.density, args.seed)
            out = out32.astype(dtype)
            merged += 1
            ref.graph.initializer[i].CopyFrom(numpy_helper.from_array(out, t.name))
        digest.update(t.name.encode("utf-8") + b"\0")
        digest.update(np.ascontiguousarray(out).astype(out.dtype.newbyteorder("<")).tobytes())
        if args.dump:
            with open(os.path.join(args.dump, f"{index}.bin"), "wb") as f:
                f.write(np.ascontiguousarray(out).tobytes())
        index += 1
    onnx.save(ref, args.out)
    json.dump({"weights_sha256": digest.hexdigest(), "merged_tensors": merged, "tensors": index}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
