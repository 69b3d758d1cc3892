#!/usr/bin/env python3
"""Lossless packing of the CIFAR-10 binary batches for the device machine.

The device tool carries at most 64 MiB per call; the six CIFAR-10 batches are
176 MiB, and xz alone gets them to about 141 MiB. This packs each batch file as

    labels (10,000 bytes) + prediction residuals, plane-major, all through xz -9

where the residual of a pixel is (pixel - MED(left, up, up-left)) mod 256 (the
LOCO-I / JPEG-LS median edge detector, per channel, first row predicted from
the left, first column from above), and the red and blue residuals are stored
minus the green one (mod 256). That halves the size (about 15.6 MB a batch).
Decoding rebuilds the original `.bin` files byte for byte and checks each one's
SHA-256 against the manifest written at packing time.

  pack:   pack_cifar.py pack   SRC_DIR OUT_DIR [FILE ...]
  unpack: pack_cifar.py unpack PACK_DIR DST_DIR      (every *.cifarxz in PACK_DIR)
  verify: pack_cifar.py verify PACK_DIR SRC_DIR      (unpack in memory, compare)

Needs numpy only (and the standard library's lzma, hashlib).
"""
import hashlib
import json
import lzma
import os
import sys

import numpy as np

REC = 3073  # 1 label byte + 3 x 32 x 32 pixel bytes
MAGIC = b"CIFXZ1\n"


def med_predict(img):
    """MED prediction of every pixel from the true neighbours; img int16 [N, 3, 32, 32]."""
    a = np.zeros_like(img)
    b = np.zeros_like(img)
    c = np.zeros_like(img)
    a[..., :, 1:] = img[..., :, :-1]
    b[..., 1:, :] = img[..., :-1, :]
    c[..., 1:, 1:] = img[..., :-1, :-1]
    mx, mn = np.maximum(a, b), np.minimum(a, b)
    pred = np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))
    pred[..., 0, :] = a[..., 0, :]
    pred[..., :, 0] = b[..., :, 0]
    return pred


def encode(raw: bytes) -> bytes:
    arr = np.frombuffer(raw, dtype=np.uint8).reshape(-1, REC)
    labels = arr[:, 0].copy()
    img = arr[:, 1:].reshape(-1, 3, 32, 32).astype(np.int16)
    res = (img - med_predict(img)) % 256
    res[:, 0] = (res[:, 0] - res[:, 1]) % 256
    res[:, 2] = (res[:, 2] - res[:, 1]) % 256
    planes = np.ascontiguousarray(res.astype(np.uint8).transpose(1, 0, 2, 3))
    body = labels.tobytes() + planes.tobytes()
    return MAGIC + len(labels).to_bytes(4, "little") + lzma.compress(body, preset=9)


def decode(blob: bytes) -> bytes:
    assert blob[: len(MAGIC)] == MAGIC, "not a packed CIFAR batch"
    n = int.from_bytes(blob[len(MAGIC) : len(MAGIC) + 4], "little")
    body = lzma.decompress(blob[len(MAGIC) + 4 :])
    labels = np.frombuffer(body[:n], dtype=np.uint8)
    res = np.frombuffer(body[n:], dtype=np.uint8).reshape(3, n, 32, 32).transpose(1, 0, 2, 3).astype(np.int16)
    res[:, 0] = (res[:, 0] + res[:, 1]) % 256
    res[:, 2] = (res[:, 2] + res[:, 1]) % 256
    img = np.zeros((n, 3, 32, 32), dtype=np.int16)
    # Sequential over the 1,024 positions, vectorised over images and channels.
    for y in range(32):
        for x in range(32):
            if y == 0 and x == 0:
                p = 0
            elif y == 0:
                p = img[:, :, 0, x - 1]
            elif x == 0:
                p = img[:, :, y - 1, 0]
            else:
                a, b, c = img[:, :, y, x - 1], img[:, :, y - 1, x], img[:, :, y - 1, x - 1]
                mx, mn = np.maximum(a, b), np.minimum(a, b)
                p = np.where(c >= mx, mn, np.where(c <= mn, mx, a + b - c))
            img[:, :, y, x] = (res[:, :, y, x] + p) % 256
    out = np.empty((n, REC), dtype=np.uint8)
    out[:, 0] = labels
    out[:, 1:] = img.astype(np.uint8).reshape(n, -1)
    return out.tobytes()


def _unpack_one(job):
    cmd, src, dst, name = job
    raw = decode(open(os.path.join(src, name + ".cifarxz"), "rb").read())
    man = json.load(open(os.path.join(src, name + ".json")))
    digest = hashlib.sha256(raw).hexdigest()
    if digest != man["sha256"] or len(raw) != man["bytes"]:
        raise SystemExit(f"{name}: SHA-256 mismatch after unpacking")
    if cmd == "unpack":
        tmp = os.path.join(dst, name + ".tmp")
        open(tmp, "wb").write(raw)
        os.replace(tmp, os.path.join(dst, name))
    else:
        assert raw == open(os.path.join(dst, name), "rb").read(), f"{name}: differs from {dst}"
    return f"{name}: {len(raw)} bytes, sha256 {digest[:16]}... ok"


def main():
    cmd = sys.argv[1]
    if cmd == "pack":
        src, dst = sys.argv[2], sys.argv[3]
        names = sys.argv[4:] or [f"data_batch_{i}.bin" for i in range(1, 6)] + ["test_batch.bin"]
        os.makedirs(dst, exist_ok=True)
        for name in names:
            raw = open(os.path.join(src, name), "rb").read()
            blob = encode(raw)
            assert decode(blob) == raw, f"{name}: round trip failed"
            open(os.path.join(dst, name + ".cifarxz"), "wb").write(blob)
            man = {"file": name, "bytes": len(raw), "sha256": hashlib.sha256(raw).hexdigest(), "packed_bytes": len(blob)}
            json.dump(man, open(os.path.join(dst, name + ".json"), "w"))
            print(f"{name}: {len(raw)} -> {len(blob)} bytes ({len(blob) / len(raw):.3f}), round trip ok", flush=True)
    elif cmd in ("unpack", "verify"):
        src, dst = sys.argv[2], sys.argv[3]
        if cmd == "unpack":
            os.makedirs(dst, exist_ok=True)
        names = [f[: -len(".cifarxz")] for f in sorted(os.listdir(src)) if f.endswith(".cifarxz")]
        from concurrent.futures import ProcessPoolExecutor  # one process per file
        with ProcessPoolExecutor(max_workers=max(1, min(len(names), os.cpu_count() or 1))) as ex:
            for line in ex.map(_unpack_one, [(cmd, src, dst, n) for n in names]):
                print(line, flush=True)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
