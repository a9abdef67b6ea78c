#!/usr/bin/env python3
"""Drive the `coherency` scenario's e1 case: run a VM command, copy its output through, and when
the guest prints

    # e1: host-write offset=N length=L data=HEX

write the L bytes HEX at file offset N "from the host", then keep copying until the VM exits
(its exit status is ours).

    guest/tools/host-write.py --file F -- guest/run-qemu.sh "scenario=coherency"
    guest/tools/host-write.py --socket S -- build/cvmm run --control S ...
    guest/tools/host-write.py --exec 'tool host-write {offset} {hex}' -- COMMAND...

--file F   pwrite into F: under QEMU the host page cache is shared with the virtio-pmem file
           mapping, so this is the reference behaviour of a host tool changing the image.
--socket S send {"cmd":"host-write","offset":N,"data":"HEX"} to cvmm's control socket S (one
           JSON line each way, vmm/control.h) and print the reply on stderr.
--exec T   run T through the shell with {offset}, {length} and {hex} substituted (for cvmm:
           a command that sends `host-write` to its control socket).
"""
import argparse
import os
import re
import socket
import subprocess
import sys

LINE = re.compile(rb"^# e1: host-write offset=(\d+) length=(\d+) data=([0-9a-f]+)\s*$")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--file")
    ap.add_argument("--socket")
    ap.add_argument("--exec", dest="exec_")
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd and a.cmd[0] == "--" else a.cmd
    if not cmd or sum(bool(x) for x in (a.file, a.socket, a.exec_)) != 1:
        ap.error("need a command after --, and exactly one of --file / --socket / --exec")
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE)
    done = False
    for raw in iter(p.stdout.readline, b""):
        sys.stdout.buffer.write(raw)
        sys.stdout.buffer.flush()
        m = LINE.match(raw.replace(b"\r", b""))
        if not m or done:
            continue
        done = True
        off, length, data = int(m[1]), int(m[2]), bytes.fromhex(m[3].decode())
        if len(data) != length:
            print(f"host-write.py: length {length} but {len(data)} bytes of data", file=sys.stderr)
            continue
        if a.file:
            fd = os.open(a.file, os.O_WRONLY)
            try:
                os.pwrite(fd, data, off)
            finally:
                os.close(fd)
        elif a.socket:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.settimeout(30)
                s.connect(a.socket)
                s.sendall(b'{"cmd":"host-write","offset":%d,"data":"%s"}\n'
                          % (off, data.hex().encode()))
                reply = b""
                while not reply.endswith(b"\n"):
                    chunk = s.recv(4096)
                    if not chunk:
                        break
                    reply += chunk
            print(f"host-write.py: cvmm answered {reply.decode(errors='replace').strip()}",
                  file=sys.stderr)
        else:
            subprocess.run(a.exec_.format(offset=off, length=length, hex=data.hex()), shell=True,
                           check=False)
        print(f"host-write.py: host-write of {length} bytes at offset {off} done", file=sys.stderr)
    return p.wait()


if __name__ == "__main__":
    sys.exit(main())
