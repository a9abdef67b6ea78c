#!/usr/bin/env python3
"""An independent reader of dm-log-writes logs, written from the format description
(Linux Documentation/admin-guide/device-mapper/log-writes.rst, xfstests src/log-writes/),
not from cvmm's C code. Used by tests/unit/test_blk_log.c to check the bytes cvmm writes.

  read_log_writes.py LOG --dump
      one line per entry: INDEX FLAGS SECTOR NR_SECTORS DATA_LEN SHA256-OF-DATA|-  [MARK]
  read_log_writes.py LOG --base BASE --out IMAGE [--end-at-entry N]
      BASE with entries 0..N applied (DISCARD zeroes its range)

Strict: exits 1 with a message on anything the format does not allow: wrong magic,
version or sector size, a superblock or entry sector not zero-padded, data_len on a
non-mark entry, unknown flags, an all-zero entry, a FLUSH/MARK with sectors, a truncated
entry, or bytes after the last entry."""
import hashlib
import struct
import sys

MAGIC = 0x6A736677736872
FLUSH, FUA, DISCARD, MARK, METADATA = 1, 2, 4, 8, 16
# cvmm's own bit (devices/blk_log.h): a 4 KiB page written back from a pmem window, replayed
# as a plain write of its 8 sectors.
PMEM_WB = 256


def die(msg):
    sys.stderr.write("read_log_writes: %s\n" % msg)
    sys.exit(1)


def parse(path):
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 512:
        die("truncated superblock")
    magic, version, nr, ss = struct.unpack_from("<QQQI", blob, 0)
    if magic != MAGIC:
        die("bad magic %#x" % magic)
    if version != 1:
        die("bad version %d" % version)
    if ss != 512:
        die("sector size %d, cvmm writes 512" % ss)
    if any(blob[28:ss]):
        die("superblock sector not zero-padded")
    pos = ss
    entries = []
    for i in range(nr):
        if pos + ss > len(blob):
            die("entry %d truncated" % i)
        sector, nsec, flags, dlen = struct.unpack_from("<QQQQ", blob, pos)
        rest = blob[pos + 32:pos + ss]
        if flags & ~(FLUSH | FUA | DISCARD | MARK | METADATA | PMEM_WB):
            die("entry %d: unknown flags %#x" % (i, flags))
        if flags == 0 and nsec == 0:
            die("entry %d: all-zero entry" % i)
        mark = None
        if flags & MARK:
            if nsec or sector or dlen == 0 or dlen > ss - 32:
                die("entry %d: bad mark header" % i)
            mark = rest[:dlen].decode()
            if 0 in rest[:dlen] or any(rest[dlen:]):
                die("entry %d: mark text not NUL-free or not zero-padded" % i)
        else:
            if dlen != 0:
                die("entry %d: data_len %d on a non-mark entry" % (i, dlen))
            if any(rest):
                die("entry %d: header sector not zero-padded" % i)
        if flags & FLUSH and nsec:
            die("entry %d: FLUSH with sectors (cvmm writes empty flushes)" % i)
        if flags & PMEM_WB and (flags != PMEM_WB or nsec != 8 or sector % 8):
            die("entry %d: PMEM_WB must be one 4 KiB page, alone" % i)
        pos += ss
        data = b""
        if not flags & DISCARD:
            data = blob[pos:pos + nsec * ss]
            if len(data) != nsec * ss:
                die("entry %d: data truncated" % i)
            pos += nsec * ss
        entries.append((i, flags, sector, nsec, dlen, data, mark))
    if pos != len(blob):
        die("%d bytes after entry %d (nr_entries %d)" % (len(blob) - pos, nr - 1, nr))
    return ss, entries


def main(argv):
    if len(argv) < 2:
        die("usage: read_log_writes.py LOG --dump | --base B --out O [--end-at-entry N]")
    log = argv[0]
    args = argv[1:]
    ss, entries = parse(log)
    if args == ["--dump"]:
        for (i, flags, sector, nsec, dlen, data, mark) in entries:
            h = hashlib.sha256(data).hexdigest() if data else "-"
            line = "%d %d %d %d %d %s" % (i, flags, sector, nsec, dlen, h)
            if mark is not None:
                line += " " + mark
            print(line)
        return 0
    opts = dict(zip(args[0::2], args[1::2]))
    if len(args) % 2 or set(opts) - {"--base", "--out", "--end-at-entry"}:
        die("bad arguments %r" % args)
    end = int(opts.get("--end-at-entry", len(entries) - 1))
    if end >= len(entries):
        die("no entry %d" % end)
    img = bytearray(open(opts["--base"], "rb").read())
    for (i, flags, sector, nsec, dlen, data, mark) in entries[:end + 1]:
        off = sector * ss
        if off + nsec * ss > len(img):
            die("entry %d past the end of the image" % i)
        if flags & DISCARD:
            img[off:off + nsec * ss] = bytes(nsec * ss)
        elif nsec:
            img[off:off + nsec * ss] = data
    with open(opts["--out"], "wb") as f:
        f.write(img)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
