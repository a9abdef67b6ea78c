#!/usr/bin/env python3
"""Check the backing files and fault counters after the guest's `faults` scenario.

    guest/tools/check-faults.py files OUTPUT DEV=FILE...     e.g. blk0=d.img pmem0=x.img
    guest/tools/check-faults.py counts OUTPUT STATS_JSON DEV=NAME...   e.g. blk0=d pmem1=y

OUTPUT is the guest's console output. `files`: for each DEV, the file must be exactly its model:
zeros (a fresh file) with every `# faults: DEV data seed=S bytes=OFF+LEN` extent of the
lib/pattern.h pattern applied in the order printed (a window's offset is its file's offset, a
disk's byte is the file's byte). Every byte of the file is compared, so a failed write that
reached the file anyway, a torn write with more (or fewer) sectors than the rule's K, or pmem
data that never got written back, shows as the first differing byte. `counts`: the guest's
`# faults: DEV injected=N` must equal the device's "faults_injected" in cvmm's --stats-json
(devices.NAME.stats for a disk, devices.NAME.stats.device for a pmem window). Exit 0 if all
hold, 1 with one line per problem.
"""
import json
import re
import struct
import sys

MASK = (1 << 64) - 1


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def pattern(seed, off, length):
    """Bytes [off, off + length) of the pattern with this seed (off, length multiples of 8)."""
    k = (seed * 0x9E3779B97F4A7C15) & MASK
    w0 = off // 8
    n = length // 8
    return struct.pack(f"<{n}Q", *(mix64((w0 + i) ^ k) for i in range(n)))


def lines(out, dev, what):
    pat = re.compile(rf"^# faults: {re.escape(dev)} {what}$")
    return [m for m in (pat.match(l.rstrip("\r")) for l in out.splitlines()) if m]


def check_file(out, dev, path):
    ext = lines(out, dev, r"data seed=(0x[0-9a-f]+) bytes=(\d+)\+(\d+)")
    if not ext:
        return f"{dev}: the guest printed no '# faults: {dev} data ...' line"
    with open(path, "rb") as f:
        got = f.read()
    model = bytearray(len(got))
    owner = {}
    for i, m in enumerate(ext):
        seed, off, length = int(m[1], 16), int(m[2]), int(m[3])
        if off % 8 or length % 8 or off + length > len(model):
            return f"{dev}: extent {off}+{length} is not inside the {len(model)}-byte file"
        model[off:off + length] = pattern(seed, off, length)
        owner[i] = (seed, off, length)
    if got == bytes(model):
        return None
    at = next(i for i in range(len(got)) if got[i] != model[i])
    last = [e for e in owner.values() if e[1] <= at < e[1] + e[2]]
    src = (f"the extent seed={last[-1][0]:#x} bytes={last[-1][1]}+{last[-1][2]}" if last
           else "no extent: it must still be 0 (nothing was to reach it)")
    nbad = sum(1 for i in range(len(got)) if got[i] != model[i])
    return (f"{dev} ({path}): byte {at} (0x{at:x}) is 0x{got[at]:02x}, expected "
            f"0x{model[at]:02x} from {src}; {nbad} bytes differ")


def device_count(stats, name):
    d = stats["devices"][name]
    s = d["stats"]
    if d["kind"] == "pmem":
        s = s["device"]
    return s["faults_injected"]


def main(argv):
    if len(argv) < 3 or argv[0] not in ("files", "counts"):
        print(__doc__, file=sys.stderr)
        return 2
    mode, out = argv[0], open(argv[1], errors="replace").read()
    stats = None
    pairs = argv[2:]
    if mode == "counts":
        stats = json.load(open(argv[2]))
        pairs = argv[3:]
    bad = []
    for p in pairs:
        dev, _, arg = p.partition("=")
        if mode == "files":
            why = check_file(out, dev, arg)
            if why:
                bad.append(why)
            else:
                print(f"{dev}: {arg} is exactly what the guest says reached it")
            continue
        ms = lines(out, dev, r"injected=(\d+)")
        if len(ms) != 1:
            bad.append(f"{dev}: {len(ms)} '# faults: {dev} injected=N' lines, wanted 1")
            continue
        try:
            have = device_count(stats, arg)
        except (KeyError, TypeError) as e:
            bad.append(f"{dev}: no faults_injected for device {arg!r} in the stats ({e})")
            continue
        if have != int(ms[0][1]):
            bad.append(f"{dev}: the guest saw {ms[0][1]} injected faults, cvmm's stats for "
                       f"{arg!r} say faults_injected {have}")
        else:
            print(f"{dev}: {have} faults injected on {arg!r}, as the guest saw")
    for b in bad:
        print(b, file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
