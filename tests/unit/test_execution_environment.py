# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""An execution environment gets what the modules need: ansible-builder makes a build context for an EE that
installs the built tarball through requirements.yml, and its introspection reads meta/execution-environment.yml
(requirements.txt, bindep.txt) from the installed collection. No container engine runs here: the image build
itself is not tested."""

from __future__ import annotations

import pathlib
import re
import shutil
import subprocess
import sys

import yaml

COLLECTION_ROOT = pathlib.Path(__file__).resolve().parents[2]


def readme_definition():
    """The EE definition README.md shows (its YAML block of ``version: 3``)."""
    blocks = re.findall(r"```yaml\n(.*?)```", (COLLECTION_ROOT / "README.md").read_text(), re.S)
    return next(yaml.safe_load(block) for block in blocks if block.startswith("version: 3"))


def builder(*args, cwd):
    done = subprocess.run([sys.executable, "-m", "ansible_builder"] + list(args), capture_output=True, text=True,
                          cwd=cwd, check=False)
    assert done.returncode == 0, "ansible-builder %s failed:\n%s%s" % (" ".join(args), done.stdout, done.stderr)
    return done.stdout


def user_dir(tmp_path, built_collection):
    """A user's directory: the tarball and the collection's requirements.yml."""
    shutil.copy(built_collection, tmp_path)
    shutil.copy(COLLECTION_ROOT / "requirements.yml", tmp_path)
    return tmp_path


def test_requirements_yml_installs_the_built_tarball(tmp_path, built_collection, ansible_galaxy):
    requirements = yaml.safe_load((COLLECTION_ROOT / "requirements.yml").read_text())
    named = [entry["name"] for entry in requirements["collections"]]
    assert named == ["./" + built_collection.name], "requirements.yml must name %s (galaxy.yml's version)" % (
        built_collection.name)
    work = user_dir(tmp_path, built_collection)
    ansible_galaxy("collection", "install", "--force", "-r", "requirements.yml", "-p", "installed",
                   cwd=work)
    assert (work / "installed" / "ansible_collections" / "lifeboat" / "backup" / "MANIFEST.json").exists()

    found = yaml.safe_load(builder("introspect", "--sanitize", "installed", cwd=work))
    python = " ".join(found["python"])
    system = " ".join(found["system"])
    for needed in ("psycopg>=3.1", "cryptography>="):
        assert needed in python, "meta/execution-environment.yml gives no %s: %s" % (needed, found)
    for needed in ("libpq5 [platform:dpkg]", "libpq [platform:rpm]", "postgresql-client [platform:dpkg]",
                   "postgresql [platform:rpm]"):
        assert needed in system, "meta/execution-environment.yml gives no %s: %s" % (needed, found)


def test_ansible_builder_creates_the_build_context(tmp_path, built_collection):
    work = user_dir(tmp_path, built_collection)
    definition = readme_definition()
    assert definition["additional_build_files"] == [{"src": built_collection.name, "dest": "."}], (
        "README.md's EE definition names another tarball than %s" % built_collection.name)
    (work / "execution-environment.yml").write_text(yaml.safe_dump(definition))
    builder("create", "--context", "context", "--output-filename", "Containerfile", cwd=work)
    context = work / "context"
    assert (context / "_build" / built_collection.name).exists()
    assert (context / "_build" / "requirements.yml").read_text() == (work / "requirements.yml").read_text()
    containerfile = (context / "Containerfile").read_text()
    assert "introspect" in containerfile and "install-from-bindep" in containerfile
