#!/usr/bin/env python3
"""Check that pages of a file hold the guest's deterministic pattern (guest/lib/pattern.h).

    guest/tools/check-pattern.py FILE --pages 0,1,15,8192 [--seed 0x63766d6d] [--offset 0]
    guest/tools/check-pattern.py FILE --range 0-37 ...       (pages [0, 37))

The guest prints the page list and seed (`# pmem: pattern seed=0x... pages=...`,
`# pmem-enospc: pages [0, P) hold the pattern (seed 0x...)`). Window offset o is file offset
o + --offset (0 for a pmem window that maps the file from its start). Exit 0 if every byte
matches, 1 with the first mismatch otherwise.
"""
import argparse
import struct
import sys

MASK = (1 << 64) - 1
PAGE = 4096


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def page_bytes(seed, page):
    k = (seed * 0x9E3779B97F4A7C15) & MASK
    w0 = page * PAGE // 8
    return struct.pack("<512Q", *(mix64((w0 + i) ^ k) for i in range(PAGE // 8)))


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file")
    ap.add_argument("--pages", default="")
    ap.add_argument("--range", default="")
    ap.add_argument("--seed", default="0x63766d6d")
    ap.add_argument("--offset", default="0")
    a = ap.parse_args()
    seed, base = int(a.seed, 0), int(a.offset, 0)
    pages = [int(p, 0) for p in a.pages.split(",") if p]
    if a.range:
        lo, hi = (int(x, 0) for x in a.range.split("-"))
        pages += range(lo, hi)
    if not pages:
        ap.error("no pages given")
    with open(a.file, "rb") as f:
        for p in pages:
            f.seek(base + p * PAGE)
            got, want = f.read(PAGE), page_bytes(seed, p)
            if got != want:
                i = next((i for i in range(min(len(got), PAGE)) if got[i] != want[i]), len(got))
                print(f"page {p}: byte {i} is {got[i] if i < len(got) else 'EOF'}, "
                      f"expected {want[i]}", file=sys.stderr)
                return 1
    print(f"{len(pages)} pages match the pattern (seed {seed:#x})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
