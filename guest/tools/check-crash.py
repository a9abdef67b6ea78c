#!/usr/bin/env python3
"""Check a file left behind by the `crash` scenario: every acknowledged byte must be there.

    guest/tools/check-crash.py FILE --serial LOG [--serial LOG2 ...] [--acked G] [--max-gen M]
                               [--blk-file DISK] [--file-offset 0] [--quiet] [--selftest]
                               [--only blk|pmem]
    guest/tools/check-crash.py --batch LIST      (lines: FILE [blk=DISK] [only=blk|pmem]
                                                  [acked=G] [maxgen=M] LOG [LOG...])

The guest (guest/scenarios/crash.c) prints its layout once per run,
    # crash: layout seed=0x... base=N region=N pmem_pages=N blk_pages=N pm_max=N bk_max=N start=S
then runs generations g = S, S + 1, ...; generation g stores the pmem extents P_g and writes the blk
extents B_g, and prints `crash: acked g` when P_1..P_g and B_1..B_(g-1) are durable (B_g has
completed; the blk FLUSH that covers it opens generation g + 1). With gens=N the last line is
`crash: done N`: everything up to generation N durable. Give every serial log of the runs that wrote
FILE (a first run and the resume=1 runs after it, in any order); they must agree on the layout.
G is the highest generation acknowledged in any of them (--acked overrides it); a write is
acknowledged if it is in P_k with k <= G, or in B_k with k <= G - 1 (k <= N after `done N`).
M, the highest generation that may have written anything, is G + 1 (a run prints the ack of g
before it begins generation g + 1, and cvmm writes each console line whole at its newline, so a
line that is missing was never finished; a resumed run starts at most at G + 1) unless
--max-gen says otherwise; after `done N` it is N.

The file started out all zeros. This script replays generations 1..M exactly as the guest drew them
(same xorshift64 draws, same pools) and checks every 8-byte word of the two pools:

  * a word that no acknowledged write covers holds 0, or the value of a later unacknowledged
    generation (<= M) that writes it;
  * a word whose last acknowledged write is from generation k holds enc(o, k), or enc(o, j)
    for a later generation j <= M that writes it: never an older generation's value, never
    zero, never garbage;
  * a word that is none of those whole values passes only if each of its BYTES is the byte of
    one allowed value (a write that reached the file torn within a word; counted and reported,
    but not a failure: the promise is per byte);

and that every byte of FILE outside the two pools (the rest of the region, and the file outside
the region) is still zero. enc(o, g) = g << 32 | ((o / 8) ^ T) & 0xffffffff, with
T = mix64(seed) & 0xffffffff and o the window offset (the file offset minus --file-offset,
0 when the window maps the file from its start, as in the harness). A resumed run rewrites
B_(S-1) and P_S, B_S with the same values: never older than acknowledged, so the model is one
sequence of generations whatever the runs were.

With --only blk (or pmem) FILE is that view's image alone: a disk file of its own, or a state
replayed from the view's write log (cvmm-replay, tests/integration/powercut.sh), which holds
only that view's writes. Only that view's pool pages are checked (with --acked and --max-gen
the rules of a chosen point: for the blk state between the disk's j-th and (j+1)-th FLUSH of
a run from generation 1, --acked j --max-gen j), and the rest of FILE must be zero.

With --blk-file the disk was a separate file (same size, [blk] offset 0): the blk pool pages
are checked there, and both files must be zero outside their pools. Logs that do not exist
(a VM killed before it opened its console) count as empty; with no layout line at all, no
generation began and the file must be all zeros. --selftest damages copies of a passing FILE in
memory in each way a lost or misplaced write would, and passes only if every one is caught (and
two legitimate crash leftovers are not). --batch checks many files in one process (startup
costs about a second on a loaded 2-core host).

Exit 0 if everything holds, 1 with the first mismatches listed (offset, pool, what the word
holds, what it must hold, which generations wrote it), 2 on bad input (no layout line, logs
that disagree).
"""
import argparse
import re
import struct
import sys
from array import array

MASK = (1 << 64) - 1
PAGE = 4096
WORDS = PAGE // 8
SECTORS = PAGE // 512


def mix64(z):
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


class Rng:
    """xorshift64, as in guest/scenarios/fsx_io.h."""

    def __init__(self, state):
        self.s = state

    def next(self, n):
        x = self.s
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        self.s = x
        return x % n


LAYOUT_KEYS = ("seed", "base", "region", "pmem_pages", "blk_pages", "pm_max", "bk_max")


def parse_logs(paths):
    layout, acked, done, starts = None, 0, 0, []
    for p in paths:
        try:
            with open(p, "rb") as f:
                text = f.read().decode("latin-1")
        except FileNotFoundError:  # killed before the VM opened its console
            continue
        # only whole lines: cvmm writes a console line at its '\n'
        lines = text.split("\n")[:-1]
        for ln in lines:
            ln = ln.rstrip("\r")
            m = re.match(r"^# crash: layout (.*) start=(\d+)$", ln)
            if m:
                kv = dict(x.split("=", 1) for x in m.group(1).split())
                lay = tuple(int(kv[k], 0) for k in LAYOUT_KEYS)
                if layout is not None and lay != layout:
                    sys.exit(f"check-crash: {p}: layout {lay} differs from an earlier log's "
                             f"{layout}")
                layout = lay
                starts.append(int(m.group(2)))
                continue
            m = re.match(r"^crash: acked (\d+)$", ln)
            if m:
                acked = max(acked, int(m.group(1)))
            m = re.match(r"^crash: done (\d+)$", ln)
            if m:
                done = max(done, int(m.group(1)))
    return layout, acked, done, starts


class Layout:
    def __init__(self, seed, base, region, np_, nb, pm_max, bk_max):
        self.seed, self.base, self.region = seed, base, region
        self.np, self.nb, self.pm_max, self.bk_max = np_, nb, pm_max, bk_max
        self.npages = region // PAGE
        self.tag = mix64(seed) & 0xFFFFFFFF
        r = Rng(mix64(seed ^ 0x706F6F6C) | 1)
        taken = {0}
        self.pmem_pool = [0]
        while len(self.pmem_pool) < np_:
            p = r.next(self.npages)
            if p not in taken:
                taken.add(p)
                self.pmem_pool.append(p)
        self.blk_pool = []
        while len(self.blk_pool) < nb:
            p = r.next(self.npages)
            if p not in taken:
                taken.add(p)
                self.blk_pool.append(p)
        self.kind = {p: "pmem" for p in self.pmem_pool}
        self.kind.update({p: "blk" for p in self.blk_pool})
        self._gen = {}

    def generation(self, g):
        """[(page, first word, word count, 'pmem'|'blk')] that generation g writes."""
        if g in self._gen:
            return self._gen[g]
        self._gen[g] = out = self._draw(g)
        return out

    def _draw(self, g):
        r = Rng(mix64(self.seed ^ ((g * 0xD6E8FEB86659FD93) & MASK)) | 1)
        r.next(2)  # order: pmem stores before or after the blk writes (no effect on the data)
        out = []
        for _ in range(1 + r.next(self.pm_max)):
            page = self.pmem_pool[r.next(self.np)]
            if r.next(4) < 2:
                out.append((page, 0, WORDS, "pmem"))
            else:
                w0 = r.next(WORDS)
                out.append((page, w0, 1 + r.next(WORDS - w0), "pmem"))
        out.append((0, 0, 8, "pmem"))  # the header
        seen = set()
        for _ in range(1 + r.next(self.bk_max)):
            page = self.blk_pool[r.next(self.nb)]
            s0, ns = 0, SECTORS
            if r.next(4) >= 2:
                s0 = r.next(SECTORS)
                ns = 1 + r.next(SECTORS - s0)
            if page not in seen:
                seen.add(page)
                out.append((page, s0 * 64, ns * 64, "blk"))
        return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


def check(path, logs, acked=None, max_gen=None, file_offset=0, quiet=False, out=print,
          data=None, blk_path=None, only=None):
    """Check one file (or its bytes, `data`) against its serial logs; returns 0 (ok),
    1 (FAIL) or 2 (bad input). blk_path: the blk pool pages are in this file instead.
    only ('blk' or 'pmem'): the file is one view's image (a disk, or a state replayed from
    its write log): only that view's pool pages are checked, the rest must be zero."""
    if only not in (None, "blk", "pmem"):
        out(f"check-crash: --only {only}: blk or pmem")
        return 2
    if only and blk_path:
        out("check-crash: --only and --blk-file do not go together")
        return 2
    layout, G, done, starts = parse_logs(logs)
    if data is None:
        data = read(path)
    bdata = read(blk_path) if blk_path else None
    if layout is None:
        # no run got as far as its layout line, so none began a generation: all zeros
        if acked or any(data) or (bdata and any(bdata)):
            out("check-crash: FAIL: no `# crash: layout` line in " + ", ".join(logs)
                + (f" but acked={acked}" if acked else ", but the file is not all zeros"))
            return 1
        out("check-crash: ok: no run began a generation (no layout line); the file is all zeros")
        return 0
    G = max(G, done) if acked is None else acked
    Gb = G if done and done >= G else G - 1  # blk extents acknowledged up to this generation
    M = (G if done and done >= G else G + 1) if max_gen is None else max_gen
    if starts and max(starts) > G + 1:
        out(f"check-crash: FAIL: a run started at generation {max(starts)}, beyond "
            f"G + 1 = {G + 1}: its resume header was not acknowledged data")
        return 1
    L = layout_of(layout)

    # last[page][w]: the generation of the last acknowledged write of word w (0: none);
    # later[(page, w)]: the later generations <= M that write it.
    kinds = {p: k for p, k in L.kind.items() if only is None or k == only}
    last = {p: array("I", bytes(4 * WORDS)) for p in kinds}
    later = {}
    for g in range(1, M + 1):
        for page, w0, nw, kind in L.generation(g):
            if page not in kinds:
                continue
            if g <= (G if kind == "pmem" else Gb):
                last[page][w0:w0 + nw] = array("I", [g]) * nw
            else:
                for w in range(w0, w0 + nw):
                    later.setdefault((page, w), []).append(g)

    data = bytearray(data)
    bdata = bytearray(bdata) if bdata is not None else data
    fo = file_offset + L.base
    for p, d in ((path, data), (blk_path, bdata)):
        if len(d) < fo + L.region:
            out(f"check-crash: FAIL: {p} is {len(d)} bytes, shorter than the region's end "
                f"{fo + L.region}")
            return 1

    bad, torn, nwords = [], [], 0
    tag = L.tag
    for page in sorted(kinds):
        off = fo + page * PAGE
        src = bdata if L.kind[page] == "blk" else data
        words = struct.unpack_from("<512Q", src, off)
        lp = last[page]
        wbase = (L.base + page * PAGE) >> 3  # window word index of word 0
        for w in range(WORDS):
            v = words[w]
            k = lp[w]
            lo = ((wbase + w) ^ tag) & 0xFFFFFFFF
            nwords += 1
            if k:
                if v == (k << 32 | lo):
                    continue
            elif v == 0:
                continue
            lt = later.get((page, w), ())
            if lt and (v & 0xFFFFFFFF) == lo and (v >> 32) in lt:
                continue
            allowed = [(k << 32 | lo) if k else 0] + [j << 32 | lo for j in lt]
            vb = v.to_bytes(8, "little")
            abytes = [x.to_bytes(8, "little") for x in allowed]
            if all(any(vb[i] == ab[i] for ab in abytes) for i in range(8)):
                torn.append((page, w, v, k, lt))
            else:
                bad.append((page, w, v, k, lt))
        # the pool page is checked: zero it here so that the rest of the file can be compared
        # with zeros in one go
        src[off:off + PAGE] = bytes(PAGE)

    def who(page, w):
        return [g for g in range(1, M + 1)
                for (p, w0, nw, _) in L.generation(g) if p == page and w0 <= w < w0 + nw]

    def describe(v, o):
        if v == 0:
            return "zero"
        if (v & 0xFFFFFFFF) == (((o - file_offset) >> 3) ^ tag) & 0xFFFFFFFF:
            return f"generation {v >> 32}"
        return "garbage (no generation's word for this offset)"

    rc = 0
    if bad:
        rc = 1
        out(f"check-crash: FAIL: {len(bad)} of {nwords} words of the pools hold data older than "
            f"acknowledged, or wrong (acked G={G}, max generation M={M}, seed {L.seed:#x})")
        for page, w, v, k, lt in bad[:12]:
            o = fo + page * PAGE + 8 * w
            hist = ",".join(map(str, who(page, w)[-8:]))
            out(f"  file offset {o:#x} ({L.kind[page]} page {page} word {w}): holds {v:#018x} = "
                f"{describe(v, o)}; must hold generation {k if k else '0 (zero)'}"
                + (f" or one of {list(lt)}" if lt else "")
                + f"; written in generations ...{hist}")
        if len(bad) > 12:
            out(f"  ... and {len(bad) - 12} more")
        pages = sorted({b[0] for b in bad})
        out(f"  bad words in {len(pages)} pages: "
            + ", ".join(f"{L.kind[p]} {p}" for p in pages[:24]))
    for p, d in ((path, data), (blk_path, bdata)) if blk_path else ((path, data),):
        if d != bytes(len(d)):
            rc = 1
            nz = next(i for i in range(0, len(d), PAGE) if d[i:i + PAGE] != bytes(PAGE))
            i = nz + next(j for j in range(PAGE) if d[nz + j])
            out(f"check-crash: FAIL: {p} offset {i:#x} (outside the {only + ' ' if only else ''}"
                f"pool{'' if only else 's'}: nothing writes there) holds {d[i]:#04x}, not zero")
    if torn and not quiet:
        out(f"check-crash: note: {len(torn)} words hold bytes of two allowed generations "
            f"(a write torn within the word), e.g. file offset "
            f"{fo + torn[0][0] * PAGE + 8 * torn[0][1]:#x}")
    if rc == 0:
        out(f"check-crash: ok: acked G={G}, max generation M={M}: {nwords} words in "
            f"{len(kinds)} {only + ' ' if only else ''}pool pages hold acknowledged-or-later "
            f"data, the rest of the {len(data)}-byte file is zero")
    return rc


def selftest(path, logs, file_offset=0, blk_path=None):
    """The checker must fail on each kind of damage a lost or misplaced write leaves, and pass
    what a crash may legitimately leave. Needs a file that passes, with G >= 2. Damages pmem
    pool words only, and checks with M = G + 1."""
    layout, G, done, _ = parse_logs(logs)
    G = max(G, done)
    L = layout_of(layout)
    with open(path, "rb") as f:
        orig = f.read()
    M = G + 1
    # a word last written at k <= G that an earlier generation j < k wrote too, and one that
    # generation M = G + 1 writes
    hist = {}
    for g in range(1, M + 1):
        for page, w0, nw, kind in L.generation(g):
            if kind != "pmem":  # damage FILE itself, also when the disk is another file
                continue
            for w in (w0, w0 + nw - 1):
                hist.setdefault((page, w), []).append(g)
    stale = next(((p, w, h) for (p, w), h in hist.items()
                  if len([g for g in h if g <= G]) >= 2 and M not in h), None)
    nxt = next(((p, w, h) for (p, w), h in hist.items()
                if M in h and [g for g in h if g <= G]), None)
    if stale is None or nxt is None:
        print("check-crash: selftest: the file has too few generations to damage (G=%d)" % G)
        return 2
    tag = L.tag

    def off(p, w):
        return file_offset + L.base + p * PAGE + 8 * w

    def enc(p, w, g):
        return g << 32 | (((L.base + p * PAGE + 8 * w) >> 3) ^ tag) & 0xFFFFFFFF

    def put(d, p, w, v):
        d[off(p, w):off(p, w) + 8] = v.to_bytes(8, "little")
        return d

    sp, sw, sh = stale
    k = max(g for g in sh if g <= G)
    older = max(g for g in sh if g < k)
    npg, nw_, nh = nxt
    nk = max(g for g in nh if g <= G)
    free_page = next(p for p in range(L.npages) if p not in L.kind)
    cases = [
        ("an acknowledged word holds an older generation (a lost write)", True,
         lambda d: put(d, sp, sw, enc(sp, sw, older))),
        ("an acknowledged word is zero", True, lambda d: put(d, sp, sw, 0)),
        ("one byte of an acknowledged word is flipped", True,
         lambda d: d.__setitem__(off(sp, sw) + 3, d[off(sp, sw) + 3] ^ 0x40) or d),
        ("an acknowledged word holds its generation's word for another offset", True,
         lambda d: put(d, sp, sw, enc(sp, sw + 1, k))),
        ("a word holds a generation beyond G + 1", True,
         lambda d: put(d, sp, sw, enc(sp, sw, M + 1))),
        ("a byte outside the pools is not zero", True,
         lambda d: d.__setitem__(file_offset + L.base + free_page * PAGE + 100, 1) or d),
        ("a whole page of the file is zero", True,
         lambda d: d.__setitem__(slice(off(sp, 0), off(sp, 0) + PAGE), bytes(PAGE)) or d),
        ("a word holds generation G + 1, which writes it (allowed)", False,
         lambda d: put(d, npg, nw_, enc(npg, nw_, M))),
        ("a word holds bytes of generation k and of G + 1 (torn within the word: allowed)", False,
         lambda d: put(d, npg, nw_, int.from_bytes(
             enc(npg, nw_, nk).to_bytes(8, "little")[:5]
             + enc(npg, nw_, M).to_bytes(8, "little")[5:], "little"))),
    ]
    failures = 0
    for name, must_fail, damage in cases:
        res = []
        rc = check(path, logs, max_gen=M, file_offset=file_offset, out=res.append, quiet=True,
                   data=damage(bytearray(orig)), blk_path=blk_path)
        good = (rc == 1) if must_fail else (rc == 0)
        failures += not good
        verdict = ("caught" if rc == 1 else "passed") + ("" if good else " (WRONG)")
        print(f"check-crash: selftest: {name}: {verdict}")
        if not good:
            for r in res:
                print("  " + r)
    return 1 if failures else 0


_layouts = {}


def layout_of(key):
    if key not in _layouts:
        _layouts[key] = Layout(*key)
    return _layouts[key]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", nargs="?")
    ap.add_argument("--serial", action="append", default=[])
    ap.add_argument("--acked", type=int,
                    help="the last acknowledged generation (default: from the logs)")
    ap.add_argument("--max-gen", type=int,
                    help="the last generation that may have begun (default G + 1)")
    ap.add_argument("--file-offset", type=lambda x: int(x, 0), default=0)
    ap.add_argument("--blk-file", help="the disk is this file (blk pool pages are checked here)")
    ap.add_argument("--only", choices=("blk", "pmem"),
                    help="FILE is this view's image alone (a disk, a replayed crash state)")
    ap.add_argument("--batch", metavar="LIST",
                    help="one check per line: FILE [blk=BLKFILE] [only=blk|pmem] [acked=G] "
                    "[maxgen=M] LOG [LOG...]")
    ap.add_argument("--quiet", action="store_true")
    ap.add_argument("--selftest", action="store_true",
                    help="damage copies of FILE (which must pass) in memory: each must fail")
    a = ap.parse_args()
    if a.batch:
        worst = 0
        with open(a.batch) as f:
            for n, line in enumerate(f, 1):
                words = line.split()
                if not words:
                    continue
                opt = {}
                while len(words) > 1 and re.match(r"^(blk|only|acked|maxgen)=", words[1]):
                    k, v = words.pop(1).split("=", 1)
                    opt[k] = v
                res = []
                rc = check(words[0], words[1:], file_offset=a.file_offset, quiet=a.quiet,
                           out=res.append, blk_path=opt.get("blk"), only=opt.get("only"),
                           acked=int(opt["acked"]) if "acked" in opt else None,
                           max_gen=int(opt["maxgen"]) if "maxgen" in opt else None)
                print(f"{words[0]}: {'ok' if rc == 0 else 'FAIL'}")
                for r in res:
                    print("  " + r)
                worst = max(worst, rc)
        return worst
    if not a.file or not a.serial:
        ap.error("FILE and --serial LOG, or --batch LIST")
    if a.selftest:
        return selftest(a.file, a.serial, a.file_offset, a.blk_file)
    return check(a.file, a.serial, a.acked, a.max_gen, a.file_offset, a.quiet,
                 blk_path=a.blk_file, only=a.only)


if __name__ == "__main__":
    sys.exit(main())
