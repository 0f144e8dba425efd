# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Print the test counts of the JUnit XML files in a directory, ending with a total line.

`make test` runs several tools one after the other; its output has to end with one line that
says how many tests ran (``total: N passed, N failed, N skipped``) for CI to see them.
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
    return tests - failed - skipped, failed, skipped


def line(name, passed, failed, skipped):
    return "%s: %d passed, %d failed, %d skipped" % (name, passed, failed, skipped)


def main():
    total = [0, 0, 0]
    for path in sorted(pathlib.Path(sys.argv[1]).glob("*.xml")):
        result = counts(path)
        print(line(path.stem, *result))
        total = [a + b for a, b in zip(total, result)]
    print(line("total", *total))
    return 1 if total[1] else 0


if __name__ == "__main__":
    sys.exit(main())
