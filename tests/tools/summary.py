# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print what each stage of ``make test`` counted, ending with a total line; exit 1 when anything failed.

``make test`` runs every stage (lint, sanity, units, integration, molecule, ansible-oldest, ansible-newest)
even after a failure and records ``<stage> <exit status> <seconds>`` lines in ``<results>/stages``. A stage
that wrote JUnit XML files (``<results>/<stage>*.xml``) counts their tests; any other stage counts as one test.
A stage that failed without a failed test in its XML (it crashed, or a collection error) counts one failure more.
Each stage's line says how long it took, and a line the whole time. The output ends with
``total: N passed, N failed, N skipped`` for CI to read.
"""

from __future__ import annotations

import pathlib
import sys
import xml.etree.ElementTree as ET


def counts(path):
    root = ET.parse(path).getroot()
    suites = [root] if root.tag == "testsuite" else root.iter("testsuite")
    tests = failed = skipped = 0
    for suite in suites:
        tests += int(suite.get("tests", 0))
        failed += int(suite.get("failures", 0)) + int(suite.get("errors", 0))
        skipped += int(suite.get("skipped", 0))
    return [tests - failed - skipped, failed, skipped]


def stage_counts(results, stage, status):
    reports = sorted(results.glob(stage + "*.xml"))
    if not reports:
        return [1, 0, 0] if status == 0 else [0, 1, 0]
    total = [0, 0, 0]
    for path in reports:
        total = [a + b for a, b in zip(total, counts(path))]
    if status != 0 and total[1] == 0:
        total[1] = 1
    return total


def line(name, counted):
    return "%s: %d passed, %d failed, %d skipped" % ((name,) + tuple(counted))


def duration(seconds):
    return "%dm%02ds" % divmod(seconds, 60)


def main():
    results = pathlib.Path(sys.argv[1])
    total = [0, 0, 0]
    total_seconds = 0
    for record in (results / "stages").read_text().split("\n"):
        if not record.strip():
            continue
        stage, status, seconds = record.split()
        found = stage_counts(results, stage, int(status))
        print(line(stage, found) + " in " + duration(int(seconds))
              + ("" if status == "0" else " (exit status %s)" % status))
        total = [a + b for a, b in zip(total, found)]
        total_seconds += int(seconds)
    print("all stages took " + duration(total_seconds))
    # Alone on the last line, as CI reads it.
    print(line("total", total))
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
