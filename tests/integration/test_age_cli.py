# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Interoperability with the stock age CLI: what Lifeboat writes, age reads, and the other way round."""

from __future__ import annotations

import io
import os
import select
import shutil
import subprocess
import time

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import age
from ansible_collections.lifeboat.backup.plugins.module_utils.age import CHUNK_SIZE, AgeReader

pytestmark = [
    pytest.mark.age,
    pytest.mark.skipif(
        shutil.which("age") is None or shutil.which("age-keygen") is None,
        reason="the age CLI is not installed (apt-get install age): interoperability with it is not tested",
    ),
]

PASSPHRASE = "correct horse battery staple"
SIZES = [0, 1000, CHUNK_SIZE, 3 * CHUNK_SIZE + 7]


def run(*args):
    result = subprocess.run(args, capture_output=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr.decode(errors="replace")
    return result.stdout


def run_in_terminal(args, prompts, timeout=60):
    """Run ``args`` on a pseudo-terminal and type PASSPHRASE at each of ``prompts`` prompts.

    age reads passphrases only from a terminal: /dev/tty, or else stdin if it is one. The new session
    has no /dev/tty, so age uses the pseudo-terminal on stdin and never the terminal pytest runs in.
    """
    master, slave = os.openpty()
    process = subprocess.Popen(args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True)
    os.close(slave)
    output, answered = b"", 0
    deadline = time.monotonic() + timeout
    try:
        while True:
            if not select.select([master], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise AssertionError("%s timed out; the terminal showed %r" % (args[0], output))
            try:
                data = os.read(master, 4096)
            except OSError:  # EIO: the child closed the terminal
                data = b""
            if not data:
                break
            output += data
            while answered < prompts and output.count(b"passphrase") > answered:
                os.write(master, PASSPHRASE.encode() + b"\n")
                answered += 1
        assert process.wait(timeout) == 0, output.decode(errors="replace")
    finally:
        if process.poll() is None:
            process.kill()
        os.close(master)
    assert answered == prompts, output.decode(errors="replace")


@pytest.fixture
def keygen(tmp_path):
    """An identity file made by age-keygen, and its recipient."""
    path = tmp_path / "key.txt"
    run("age-keygen", "-o", str(path))
    return path, run("age-keygen", "-y", str(path)).decode().strip()


def test_age_keygen_identity_file_parses(keygen):
    path, recipient = keygen
    identities = age.read_identity_file(str(path))
    assert len(identities) == 1
    assert age.identity_to_recipient(identities[0]) == recipient
    assert "# public key: %s" % recipient in path.read_text()


@pytest.mark.parametrize("size", SIZES)
def test_our_x25519_file_decrypts_with_age(tmp_path, keygen, size):
    path, recipient = keygen
    plaintext = tmp_path / "plain"
    plaintext.write_bytes(os.urandom(size))
    # A second recipient: age must find its own stanza among several.
    other = age.generate_x25519_identity()[1]
    age.encrypt_file(str(plaintext), str(tmp_path / "file.age"), recipients=[other, recipient])
    # stdout, not -o: age creates the -o file only on its first write, so not at all for an empty plaintext.
    assert run("age", "-d", "-i", str(path), str(tmp_path / "file.age")) == plaintext.read_bytes()


@pytest.mark.parametrize("armor", [False, True])
@pytest.mark.parametrize("size", SIZES)
def test_age_file_decrypts_with_reader(tmp_path, keygen, size, armor):
    path, recipient = keygen
    plaintext = os.urandom(size)
    (tmp_path / "plain").write_bytes(plaintext)
    other = age.generate_x25519_identity()[1]
    options = ["-a"] if armor else []
    run("age", *options, "-r", other, "-r", recipient, "-o", str(tmp_path / "file.age"), str(tmp_path / "plain"))
    with open(tmp_path / "file.age", "rb") as handle:
        assert age.is_age(handle.read(64))
        handle.seek(0)
        reader = AgeReader(handle, identities=age.read_identity_file(str(path)))
        assert reader.armored is armor
        assert reader.read() == plaintext


def test_our_passphrase_file_decrypts_with_age(tmp_path):
    plaintext = os.urandom(2 * CHUNK_SIZE + 1)
    (tmp_path / "plain").write_bytes(plaintext)
    age.encrypt_file(str(tmp_path / "plain"), str(tmp_path / "file.age"), passphrase=PASSPHRASE, work_factor=10)
    run_in_terminal(["age", "-d", "-o", str(tmp_path / "out"), str(tmp_path / "file.age")], prompts=1)
    assert (tmp_path / "out").read_bytes() == plaintext


def test_age_passphrase_file_decrypts_with_reader(tmp_path):
    plaintext = os.urandom(CHUNK_SIZE + 1)
    (tmp_path / "plain").write_bytes(plaintext)
    # age asks for the passphrase and its confirmation.
    run_in_terminal(["age", "-p", "-o", str(tmp_path / "file.age"), str(tmp_path / "plain")], prompts=2)
    with open(tmp_path / "file.age", "rb") as handle:
        header = age.read_header(handle)
    assert header["passphrase"] and header["work_factor"] >= 10
    with open(tmp_path / "file.age", "rb") as handle:
        assert AgeReader(handle, passphrase=PASSPHRASE).read() == plaintext
    with open(tmp_path / "file.age", "rb") as handle, pytest.raises(age.AgeNoMatch, match="wrong passphrase"):
        AgeReader(io.BufferedReader(handle), passphrase="not it")
