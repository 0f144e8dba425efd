# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection tarball, built once for the tests of what users install (test_build, test_execution_environment)."""

from __future__ import annotations

import pathlib
import subprocess
import sys

import pytest
import yaml

COLLECTION_ROOT = pathlib.Path(__file__).resolve().parents[2]
GALAXY = yaml.safe_load((COLLECTION_ROOT / "galaxy.yml").read_text())
TARBALL = "%s-%s-%s.tar.gz" % (GALAXY["namespace"], GALAXY["name"], GALAXY["version"])


def galaxy(*args, cwd=None):
    """ansible-galaxy of the Python running the tests: the same ansible-core in every venv of `make test`."""
    done = subprocess.run([sys.executable, "-m", "ansible.cli.galaxy"] + list(args), capture_output=True,
                          text=True, cwd=cwd, check=False)
    assert done.returncode == 0, "ansible-galaxy %s failed:\n%s%s" % (" ".join(args), done.stdout, done.stderr)
    return done


@pytest.fixture(scope="session")
def ansible_galaxy():
    """``ansible_galaxy(*args, cwd=None)``: run ansible-galaxy, fail the test with its output if it fails."""
    return galaxy


@pytest.fixture(scope="session")
def built_collection(tmp_path_factory):
    """Path of the tarball ``ansible-galaxy collection build`` makes of this collection."""
    output = tmp_path_factory.mktemp("build")
    galaxy("collection", "build", "--output-path", str(output), str(COLLECTION_ROOT))
    return output / TARBALL
