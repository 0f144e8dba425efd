# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""How fast does the archive reader restore a file store of many small files, next to `tar -xf` + `sync`?

See README.md. Run with the collection on PYTHONPATH:

    PYTHONPATH=/tmp/lb-build python benchmarks/restore_many_files.py [--files 100000] [--rounds 5] [--dir DIR]
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

from ansible_collections.lifeboat.backup.plugins.module_utils import archive

# Run in a fresh interpreter that does nothing but the extraction, so that its VmHWM is the reader's own peak.
_EXTRACT = """
import sys
from ansible_collections.lifeboat.backup.plugins.module_utils import archive
with open(sys.argv[1], "rb") as handle:
    archive.read_archive(handle, db_dir=sys.argv[2], tree_dir=sys.argv[3])
with open("/proc/self/status") as status:
    print(next(line.split()[1] for line in status if line.startswith("VmHWM:")))
"""


def build_store(root, count):
    """``count`` files of 1 to 200 bytes in Mendix's tree/<xx>/<yy>/<name> layout."""
    for number in range(count):
        name = "%08x" % (number * 2654435761 % 2**32)
        directory = os.path.join(root, name[:2], name[2:4])
        if not os.path.isdir(directory):
            os.makedirs(directory)
        with open(os.path.join(directory, name), "wb") as handle:
            handle.write(name.encode() * (1 + number % 25))


def lifeboat_round(path, work):
    started = time.monotonic()
    process = subprocess.run(
        [sys.executable, "-c", _EXTRACT, path, os.path.join(work, "db"), os.path.join(work, "tree")],
        check=True, capture_output=True, text=True,
    )
    return time.monotonic() - started, int(process.stdout.split()[-1])


def tar_round(path, work):
    os.makedirs(work)
    started = time.monotonic()
    subprocess.run(["tar", "-xf", path, "-C", work], check=True)
    subprocess.run(["sync"], check=True)
    return time.monotonic() - started


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None, help="where to work (a disk, not tmpfs, to count the syncs)")
    options = parser.parse_args()
    base = tempfile.mkdtemp(prefix="lifeboat-bench-", dir=options.dir)
    try:
        store, dump, path = (os.path.join(base, name) for name in ("store", "dump.backup", "backup.tar"))
        build_store(store, options.files)
        with open(dump, "wb") as handle:
            handle.write(b"PGDMP" + os.urandom(1024 * 1024))
        with open(path, "wb") as handle:
            archive.write_archive(handle, manifest={}, metadata=archive.mendix_metadata(0, 0, "", 0, 0),
                                  databases=[("db", dump)], files_path=store)
        subprocess.run(["sync"], check=True)
        print("%d files, archive %.1f MiB, in %s" % (options.files, os.path.getsize(path) / 2**20, base), flush=True)
        ours, tars, peaks = [], [], []
        for number in range(options.rounds):  # interleaved: both see the same state of the machine
            work = os.path.join(base, "round")
            seconds, peak = lifeboat_round(path, work)
            ours.append(seconds)
            peaks.append(peak)
            shutil.rmtree(work)
            tars.append(tar_round(path, work))
            shutil.rmtree(work)
            print("round %d: read_archive %.2f s (VmHWM %d MiB), tar -xf + sync %.2f s"
                  % (number + 1, ours[-1], peak // 1024, tars[-1]), flush=True)
        print("median: read_archive %.2f s (%.0f files/s, VmHWM %d MiB), tar -xf + sync %.2f s; ratio %.2f"
              % (statistics.median(ours), options.files / statistics.median(ours), statistics.median(peaks) // 1024,
                 statistics.median(tars), statistics.median(ours) / statistics.median(tars)))
    finally:
        shutil.rmtree(base)


if __name__ == "__main__":
    main()
