#!/usr/bin/env python3
"""Make, without a VM, the files a power-cut run of the guest's `crash` scenario under cvmm
leaves: a blk write log in the dm-log-writes format with its base image, the disk and pmem
files, and the serial log. tests/integration/powercut.sh runs its crash-state pipeline
(cvmm-replay --crash-states, then guest/tools/check-crash.py) on them, to prove the pipeline
where no /dev/kvm is; the same pipeline then runs on cvmm's own logs where there is one.

  gen-crash-log.py --out-dir DIR --cut-after-flushes N [--seed S] [--order-seed X]
                   [--region BYTES] [--pmem-pages N] [--blk-pages N] [--pm-max N] [--bk-max N]
                   [--pmem-log] [--bug late-write] [--ops]

Independent of cvmm's C writer (devices/blk_log.h is the format it follows): the log is written
here from the format description (Linux Documentation/admin-guide/device-mapper/log-writes.rst):
sector 0 the superblock {u64 magic 0x6a736677736872, u64 version 1, u64 nr_entries,
u32 sectorsize 512}, then entries {u64 sector, u64 nr_sectors, u64 flags, u64 data_len} in a
512-byte sector, each followed by its nr_sectors sectors of data; FLUSH = 1.

What it simulates (guest/scenarios/crash.c, with the pmem window and the disk on two files,
[blk] offset 0, [blk] write_log = DIR/disk.log; the generations are drawn by check-crash.py's
Layout, the checker's replay of the guest's xorshift64 draws): generation g = 1, 2, ...
  1. the blk FLUSH: a FLUSH entry (every write of B_(g-1) is logged before it);
  2. the blk writes of B_g are submitted and the pmem stores of P_g made;
  3. the pmem FLUSH: P_g reaches the pmem file (and, with --pmem-log, DIR/pmem.log gets one
     CVMM_PMEM_WB entry, flag 1 << 8, per page the flush writes back, then a FLUSH entry);
  4. the blk writes complete in a random order (--order-seed) and are logged as they do;
  5. `crash: acked g` on the serial log.
[vm] power_cut = after-flushes:N counts both FLUSHes (blk: 2g - 1, pmem: 2g), as cvmm does, and
cuts right after the N-th completes: nothing after it reaches a file or a log. A cut at a pmem
FLUSH (N even) finds a random subset of B_g complete (they raced with the flush); the guest's
`crash: acked g` then appears only if all of B_g had completed, and only with a coin flip (the
guest may not have got to print it). DIR/disk.img holds every completed write (what the disk
file holds after a cut without cvmm's rewind to the last FLUSH).

--bug late-write plants the bug the pipeline exists to find: in every generation g, one write
of B_g is logged after the FLUSH that opens generation g + 1 instead of before it (a writer
that logs a completed write after the FLUSH that covers it). Every epoch's crash states without
that write (the state with no unit applied is always produced) then lack an acknowledged
write, and the checker must say so.

--ops also writes the blk side as a script for tests/tools/blk-log-drive.c, which runs it
through cvmm's own write log (devices/blk_log.c): DIR/ops.txt, one line each, `F` (a FLUSH),
`W SECTOR NR OFFSET` (a write of NR sectors whose data is at OFFSET of DIR/ops.bin) and `B`
(the writes since the last B or F were in flight together: wait for them all), in the guest's
order, cut where the power cut falls (only the writes that completed before it).

Prints one line: key=value pairs (flushes, entries, acked, last_flush, pmem_gens, bug).
"""
import argparse
import importlib.util
import os
import random
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
CHECKER = os.path.join(HERE, "..", "..", "guest", "tools", "check-crash.py")
spec = importlib.util.spec_from_file_location("check_crash", CHECKER)
cc = importlib.util.module_from_spec(spec)
spec.loader.exec_module(cc)

MAGIC = 0x6A736677736872
SECTOR = 512
FLUSH = 1
PMEM_WB = 1 << 8
PAGE = 4096


class LogWriter:
    """A dm-log-writes log, written from the format description."""

    def __init__(self, path):
        self.f = open(path, "wb")
        self.n = 0
        self.f.write(bytes(SECTOR))  # the superblock, rewritten at close

    def entry(self, sector, nr, flags, data=b""):
        assert len(data) == nr * SECTOR
        self.f.write(struct.pack("<QQQQ", sector, nr, flags, 0).ljust(SECTOR, b"\0"))
        self.f.write(data)
        self.n += 1

    def close(self):
        self.f.seek(0)
        self.f.write(struct.pack("<QQQI", MAGIC, 1, self.n, SECTOR).ljust(SECTOR, b"\0"))
        self.f.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out-dir", required=True)
    ap.add_argument("--cut-after-flushes", type=int, required=True)
    ap.add_argument("--seed", type=lambda x: int(x, 0), default=0x63726173)
    ap.add_argument("--order-seed", type=int, default=1)
    ap.add_argument("--region", type=lambda x: int(x, 0), default=8 << 20)
    ap.add_argument("--pmem-pages", type=int, default=96)
    ap.add_argument("--blk-pages", type=int, default=96)
    ap.add_argument("--pm-max", type=int, default=12)
    ap.add_argument("--bk-max", type=int, default=6)
    ap.add_argument("--pmem-log", action="store_true")
    ap.add_argument("--bug", choices=("late-write",))
    ap.add_argument("--ops", action="store_true")
    a = ap.parse_args()
    if a.ops and a.bug:
        ap.error("--ops and --bug: the script is the guest's side, the bug a writer's")
    if a.cut_after_flushes < 1:
        ap.error("--cut-after-flushes: at least 1")
    os.makedirs(a.out_dir, exist_ok=True)
    L = cc.Layout(a.seed, 0, a.region, a.pmem_pages, a.blk_pages, a.pm_max, a.bk_max)
    rng = random.Random(a.order_seed)
    size = a.region
    disk = bytearray(size)
    pmem = bytearray(size)      # the pmem file (what FLUSHes wrote back)
    window = bytearray(size)    # the guest's view of the window (stores land here)
    log = LogWriter(os.path.join(a.out_dir, "disk.log"))
    plog = LogWriter(os.path.join(a.out_dir, "pmem.log")) if a.pmem_log else None
    serial = [f"# crash: layout seed={a.seed:#x} base=0 region={a.region} "
              f"pmem_pages={a.pmem_pages} blk_pages={a.blk_pages} pm_max={a.pm_max} "
              f"bk_max={a.bk_max} start=1"]
    tag = L.tag
    ops = open(os.path.join(a.out_dir, "ops.txt"), "w") if a.ops else None
    opsbin = open(os.path.join(a.out_dir, "ops.bin"), "wb") if a.ops else None

    def data_of(page, w0, nw, g):
        o = page * PAGE + 8 * w0
        return struct.pack(f"<{nw}Q", *((g << 32 | (((o >> 3) + i) ^ tag) & 0xFFFFFFFF)
                                         for i in range(nw)))

    n = 0
    N = a.cut_after_flushes
    acked = pmem_gens = blk_flushes = 0
    late = None  # --bug: (sector, nr, data) held back past the next FLUSH
    g = 0
    while True:
        g += 1
        # 1. the blk FLUSH
        log.entry(0, 0, FLUSH)
        if ops:
            ops.write("F\n")
        blk_flushes += 1
        if late:
            log.entry(*late)
            late = None
        n += 1
        if n == N:
            break
        # 2. B_g submitted, P_g stored
        exts = L.generation(g)
        writes = []
        for page, w0, nw, kind in exts:
            d = data_of(page, w0, nw, g)
            o = page * PAGE + 8 * w0
            if kind == "pmem":
                window[o:o + len(d)] = d
            else:
                writes.append((o // SECTOR, nw * 8 // SECTOR, 0, d))
        rng.shuffle(writes)  # completion order
        # 3. the pmem FLUSH: the pages P_g dirtied reach the file
        dirty = sorted({page for page, _, _, kind in exts if kind == "pmem"})
        for page in dirty:
            o = page * PAGE
            pmem[o:o + PAGE] = window[o:o + PAGE]
            if plog:
                plog.entry(o // SECTOR, PAGE // SECTOR, PMEM_WB, bytes(window[o:o + PAGE]))
        if plog:
            plog.entry(0, 0, FLUSH)
        pmem_gens = g
        n += 1
        cut = n == N
        # 4. the blk writes complete (before the cut: a random subset of them)
        done = writes if not cut else writes[:rng.randrange(len(writes) + 1)]
        for i, w in enumerate(done):
            if a.bug and i == 0 and not cut:
                # planted in every generation: each epoch then holds a write of the one before
                late = w
            else:
                log.entry(*w)
            sec, nr, _, d = w
            disk[sec * SECTOR:sec * SECTOR + len(d)] = d
            if ops:
                ops.write(f"W {sec} {nr} {opsbin.tell()}\n")
                opsbin.write(d)
        if ops and done:
            ops.write("B\n")
        # 5. the ack
        if not cut or (len(done) == len(writes) and rng.randrange(2)):
            serial.append(f"crash: acked {g}")
            acked = g
        if cut:
            break
    # a write held back by --bug past a FLUSH that never came: it completed, so it is logged
    if late:
        log.entry(*late)
    log.close()
    if ops:
        ops.close()
        opsbin.close()
    if plog:
        plog.close()
    for name, buf in (("disk.log.base", bytes(size)), ("disk.img", disk), ("pmem.img", pmem)):
        with open(os.path.join(a.out_dir, name), "wb") as f:
            f.write(buf)
    if plog:
        with open(os.path.join(a.out_dir, "pmem.log.base"), "wb") as f:
            f.write(bytes(size))
    with open(os.path.join(a.out_dir, "serial.log"), "w") as f:
        f.write("\n".join(serial) + "\n")
    print(f"flushes={n} blk_flushes={blk_flushes} entries={log.n} acked={acked} "
          f"last_flush={blk_flushes} pmem_gens={pmem_gens} bug={a.bug or 'none'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
