# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the age v1 implementation: the C2SP conformance vectors, round trips, damage, keys, memory."""

from __future__ import annotations

import dataclasses
import hashlib
import io
import os
import stat
import subprocess
import sys
import tarfile
import threading
import tracemalloc
import zlib
from pathlib import Path

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import age
from ansible_collections.lifeboat.backup.plugins.module_utils.age import (
    CHUNK_SIZE,
    AgeArmorError,
    AgeError,
    AgeHeaderError,
    AgeHMACError,
    AgeNoMatch,
    AgePayloadError,
    AgeReader,
    AgeUnsupported,
    AgeWriter,
)

REPO = Path(__file__).resolve().parents[4]
# shared/ lies beside the git checkout; `make units` runs a copy at <build>/ansible_collections/lifeboat/backup
# and links shared/ into <build>.
_CANDIDATES = [base / "shared" / "testdata" / "age-cctv" for base in (REPO.parent, REPO.parents[2])]
VECTORS = next((path for path in _CANDIDATES if path.is_dir()), _CANDIDATES[0])
LOW = 10  # the lowest work factor AgeWriter accepts: scrypt in milliseconds
SPEC_IDENTITY = "AGE-SECRET-KEY-1GFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPYYSJZGFPQ4EGAEX"
SPEC_RECIPIENT = "age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwj"
needs_mlkem = pytest.mark.skipif(not age.HAS_MLKEM, reason="cryptography here lacks ML-KEM-768")

EXPECTED_ERROR = {
    "no match": AgeNoMatch,
    "HMAC failure": AgeHMACError,
    "header failure": AgeHeaderError,
    "payload failure": AgePayloadError,
    "armor failure": AgeArmorError,
}


@dataclasses.dataclass
class Vector:
    name: str
    expect: str
    payload: str | None
    identities: list
    passphrases: list
    armored: bool
    data: bytes

    @property
    def hybrid(self):
        return any(i.startswith("AGE-SECRET-KEY-PQ-") for i in self.identities)


def load_vector(path):
    """The CCTV layout: 'key: value' lines, an empty line, the age file (zlib-compressed if said so)."""
    head, _separator, data = path.read_bytes().partition(b"\n\n")
    fields = {"identity": [], "passphrase": []}
    for line in head.decode("utf-8").split("\n"):
        key, value = line.split(": ", 1)
        if key in ("identity", "passphrase"):
            fields[key].append(value)
        else:
            fields[key] = value
    if fields.get("compressed") == "zlib":
        data = zlib.decompress(data)
    return Vector(
        path.name,
        fields["expect"],
        fields.get("payload"),
        fields["identity"],
        fields["passphrase"],
        fields.get("armored") == "yes",
        data,
    )


def require_vectors():
    """Third-party data is used in place: a missing copy fails the tests that need it, it never skips them."""
    if not VECTORS.is_dir():
        pytest.fail("age test vectors not found at %s (shared/testdata/age-cctv is expected beside the repository)"
                    % VECTORS, pytrace=False)


def vector_params(only_hybrid=False):
    if not VECTORS.is_dir():
        return [pytest.param(None, id="vectors-missing")]
    vectors = [load_vector(p) for p in sorted(VECTORS.iterdir()) if p.name != "README.md"]
    # Hybrid (post-quantum) vectors carry an id prefix "hybrid/": pytest's summary counts them apart (-k hybrid).
    return [
        pytest.param(v, id=("hybrid/" if v.hybrid else "") + v.name) for v in vectors if v.hybrid or not only_hybrid
    ]


def open_vector(vector):
    # Two vectors carry no key at all (they fail before one is needed); the reader insists on one.
    identities = vector.identities or (None if vector.passphrases else [age.generate_x25519_identity()[0]])
    passphrase = vector.passphrases[0] if vector.passphrases else None
    return AgeReader(io.BytesIO(vector.data), identities=identities, passphrase=passphrase)


def drain(reader, size=4096):
    """Read until the end or an error; return (SHA-256 of what was released, error or None)."""
    digest = hashlib.sha256()
    try:
        for block in iter(lambda: reader.read(size), b""):
            digest.update(block)
    except AgeError as exc:
        return digest.hexdigest(), exc
    return digest.hexdigest(), None


@pytest.mark.parametrize("vector", vector_params())
def test_conformance_vector(vector):
    require_vectors()
    if vector.hybrid and not age.HAS_MLKEM:
        with pytest.raises(AgeUnsupported):
            drain(open_vector(vector))
        return
    if vector.expect in ("no match", "HMAC failure", "header failure"):
        # These must fail in the constructor, before any plaintext exists.
        with pytest.raises(EXPECTED_ERROR[vector.expect]) as caught:
            open_vector(vector)
        assert caught.value.__class__ is EXPECTED_ERROR[vector.expect]
        return
    try:
        reader = open_vector(vector)
    except AgeError as exc:
        released, error = None, exc
    else:
        released, error = drain(reader)
    if vector.expect == "success":
        assert error is None
        assert released == vector.payload
        assert reader.armored is vector.armored
    else:
        assert error.__class__ is EXPECTED_ERROR[vector.expect], error
        if vector.payload:
            assert released == vector.payload


@pytest.mark.parametrize("vector", vector_params(only_hybrid=True))
def test_hybrid_vector_without_mlkem_is_unsupported(vector, monkeypatch):
    require_vectors()
    monkeypatch.setattr(age, "HAS_MLKEM", False)
    with pytest.raises(AgeUnsupported, match="ML-KEM"):
        drain(open_vector(vector))


# Round trips ------------------------------------------------------------------------------------


def encrypt(plaintext, write_size=None, **kwargs):
    out = io.BytesIO()
    writer = AgeWriter(out, **kwargs)
    step = write_size or max(len(plaintext), 1)
    for start in range(0, len(plaintext), step):
        assert writer.write(plaintext[start : start + step]) == len(plaintext[start : start + step])
    writer.close()
    return out.getvalue()


def decrypt(ciphertext, **kwargs):
    return AgeReader(io.BytesIO(ciphertext), **kwargs).read()


def payload_offset(ciphertext):
    """Where the chunks start: after the header's MAC line and the 16-byte nonce."""
    return ciphertext.index(b"\n---") + ciphertext[ciphertext.index(b"\n---") + 1 :].index(b"\n") + 2 + 16


@pytest.fixture(scope="module")
def keys():
    return [age.generate_x25519_identity() for _index in range(3)]


SIZES = [0, 1, CHUNK_SIZE - 1, CHUNK_SIZE, CHUNK_SIZE + 1, 2 * CHUNK_SIZE, 3 * CHUNK_SIZE + 5]


@pytest.mark.parametrize("size", SIZES)
def test_round_trip_passphrase_and_chunking(size):
    plaintext = os.urandom(size)
    ciphertext = encrypt(plaintext, passphrase="correct horse", work_factor=LOW)
    assert decrypt(ciphertext, passphrase="correct horse") == plaintext
    # One chunk per started 64 KiB, at least one: a multiple of 64 KiB gets no extra empty chunk.
    chunks = max(1, -(-size // CHUNK_SIZE))
    assert len(ciphertext) - payload_offset(ciphertext) == size + 16 * chunks
    assert ciphertext.startswith(b"age-encryption.org/v1\n-> scrypt ")
    assert b" %d\n" % LOW in ciphertext[: payload_offset(ciphertext)]


@pytest.mark.parametrize("write_size", [1, 1000, CHUNK_SIZE, 5 * CHUNK_SIZE + 3])
def test_write_sizes_do_not_change_the_plaintext(keys, write_size):
    plaintext = os.urandom(2 * CHUNK_SIZE + 17) if write_size > 1 else os.urandom(CHUNK_SIZE + 3)
    ciphertext = encrypt(plaintext, write_size, recipients=[keys[0][1]])
    assert decrypt(ciphertext, identities=[keys[0][0]]) == plaintext


@pytest.mark.parametrize("count", [1, 3])
def test_round_trip_recipients_each_identity_opens(keys, count):
    plaintext = os.urandom(CHUNK_SIZE + 100)
    ciphertext = encrypt(plaintext, recipients=[k[1] for k in keys[:count]])
    assert ciphertext.count(b"\n-> X25519 ") == count
    for identity, _recipient in keys[:count]:
        assert decrypt(ciphertext, identities=[identity]) == plaintext


def test_single_recipient_string_and_identity_string(keys):
    ciphertext = encrypt(b"data", recipients=keys[0][1])
    assert decrypt(ciphertext, identities=keys[0][0]) == b"data"


@needs_mlkem
def test_round_trip_post_quantum(tmp_path):
    # No public generator for PQ keys; a fixed random seed encoded as age-keygen -pq would.
    identity = age._bech32_encode("AGE-SECRET-KEY-PQ-", os.urandom(32))
    recipient = age.identity_to_recipient(identity)
    assert recipient.startswith("age1pq1")
    plaintext = os.urandom(3000)
    ciphertext = encrypt(plaintext, recipients=[recipient])
    assert b"\n-> mlkem768x25519 " in ciphertext
    assert decrypt(ciphertext, identities=[identity]) == plaintext


@needs_mlkem
def test_post_quantum_and_classic_recipients_do_not_mix(keys):
    pq = age.identity_to_recipient(age._bech32_encode("AGE-SECRET-KEY-PQ-", os.urandom(32)))
    with pytest.raises(AgeError, match="cannot be mixed"):
        AgeWriter(io.BytesIO(), recipients=[pq, keys[0][1]])


def test_tarfile_stream_through_writer_and_reader(keys):
    members = {"a.txt": b"hello\n", "big.bin": os.urandom(3 * CHUNK_SIZE + 11), "empty": b""}
    out = io.BytesIO()
    writer = AgeWriter(out, recipients=[keys[0][1]])
    with tarfile.open(fileobj=writer, mode="w|gz") as archive:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    writer.close()
    found = {}
    with tarfile.open(fileobj=AgeReader(io.BytesIO(out.getvalue()), identities=[keys[0][0]]), mode="r|*") as archive:
        for member in archive:
            found[member.name] = archive.extractfile(member).read()
    assert found == members


def test_reader_is_a_proper_stream(keys):
    plaintext = os.urandom(2 * CHUNK_SIZE + 5)
    ciphertext = encrypt(plaintext, recipients=[keys[0][1]])
    reader = AgeReader(io.BytesIO(ciphertext), identities=[keys[0][0]])
    assert reader.readable() and not reader.seekable()
    assert reader.read(0) == b""
    assert reader.read(CHUNK_SIZE + 10) == plaintext[: CHUNK_SIZE + 10]
    buffer = bytearray(20)
    assert reader.readinto(buffer) == 20 and bytes(buffer) == plaintext[CHUNK_SIZE + 10 : CHUNK_SIZE + 30]
    assert reader.read() == plaintext[CHUNK_SIZE + 30 :]
    assert reader.read(10) == b""
    buffered = io.BufferedReader(AgeReader(io.BytesIO(ciphertext), identities=[keys[0][0]]))
    assert buffered.read() == plaintext


def test_writer_leaves_fileobj_open_and_close_is_idempotent(keys):
    out = io.BytesIO()
    writer = AgeWriter(out, recipients=[keys[0][1]])
    writer.write(b"x")
    writer.close()
    writer.close()
    assert not out.closed
    with pytest.raises(ValueError):
        writer.write(b"more")
    assert decrypt(out.getvalue(), identities=[keys[0][0]]) == b"x"


@pytest.mark.parametrize("fail", [False, True])
def test_writer_context_manager_finishes_only_on_success(keys, fail):
    out = io.BytesIO()
    with pytest.raises(RuntimeError) if fail else open(os.devnull):
        with AgeWriter(out, recipients=[keys[0][1]]) as writer:
            writer.write(os.urandom(CHUNK_SIZE * 2))
            if fail:
                raise RuntimeError("dump failed")
    reader = AgeReader(io.BytesIO(out.getvalue()), identities=[keys[0][0]])
    if fail:
        # The unfinished file must read as truncated, never as a shorter valid file.
        with pytest.raises(AgePayloadError, match="truncated"):
            reader.read()
    else:
        assert len(reader.read()) == CHUNK_SIZE * 2


# Wrong keys, damage -----------------------------------------------------------------------------


def test_wrong_key_fails_in_constructor(keys):
    ciphertext = encrypt(b"secret", recipients=[keys[0][1], keys[1][1]])
    with pytest.raises(AgeNoMatch, match="wrong passphrase or key") as caught:
        AgeReader(io.BytesIO(ciphertext), identities=[keys[2][0]])
    assert "2 X25519 keys" in str(caught.value)


@pytest.mark.parametrize(
    "kwargs, hint",
    [
        ({"passphrase": "wrong"}, "protected by a passphrase"),
        ({"identities": [SPEC_IDENTITY]}, "give the passphrase"),
    ],
)
def test_wrong_passphrase_or_no_passphrase(kwargs, hint):
    ciphertext = encrypt(b"secret", passphrase="right", work_factor=LOW)
    with pytest.raises(AgeNoMatch, match="wrong passphrase or key") as caught:
        AgeReader(io.BytesIO(ciphertext), **kwargs)
    assert hint in str(caught.value)


def test_passphrase_for_a_key_encrypted_file_hints_at_the_key(keys):
    ciphertext = encrypt(b"secret", recipients=[keys[0][1]])
    with pytest.raises(AgeNoMatch, match="give the matching secret key"):
        AgeReader(io.BytesIO(ciphertext), passphrase="whatever")


def replace_once(data, old, new):
    assert data.count(old) == 1
    return data.replace(old, new)


def flip_base64_char(text):
    """Change the first character of a base64 string to another valid one (keeps it canonical)."""
    return (b"B" if text[:1] == b"A" else b"A") + text[1:]


@pytest.mark.parametrize(
    "where, error",
    [
        ("version", AgeHeaderError),
        ("share", AgeNoMatch),
        ("body", AgeNoMatch),
        ("mac", AgeHMACError),
        ("arrow", AgeHeaderError),
        ("type", AgeNoMatch),
    ],
)
def test_tampered_header(keys, where, error):
    ciphertext = encrypt(b"payload", recipients=[keys[0][1]])
    lines = ciphertext[: payload_offset(ciphertext) - 16].split(b"\n")
    # lines: version, '-> X25519 <share>', body, '--- <mac>', ''
    if where == "version":
        lines[0] = b"age-encryption.org/v2"
    elif where == "share":
        lines[1] = b"-> X25519 " + flip_base64_char(lines[1][10:])
    elif where == "body":
        lines[2] = flip_base64_char(lines[2])
    elif where == "mac":
        lines[3] = b"--- " + flip_base64_char(lines[3][4:])
    elif where == "arrow":
        lines[1] = b"=>" + lines[1][2:]
    elif where == "type":
        lines[1] = b"-> x25519" + lines[1][9:]
    damaged = b"\n".join(lines) + ciphertext[payload_offset(ciphertext) - 16 :]
    with pytest.raises(error):
        AgeReader(io.BytesIO(damaged), identities=[keys[0][0]])


def test_changed_work_factor_does_not_open(keys):
    ciphertext = encrypt(b"payload", passphrase="pw", work_factor=LOW)
    with pytest.raises(AgeNoMatch):
        decrypt(replace_once(ciphertext, b" %d\n" % LOW, b" %d\n" % (LOW + 1)), passphrase="pw")


def chunked(keys, chunks=3):
    plaintext = os.urandom(CHUNK_SIZE * (chunks - 1) + 1000)
    ciphertext = encrypt(plaintext, recipients=[keys[0][1]])
    return plaintext, ciphertext, payload_offset(ciphertext)


def released_until_error(ciphertext, identity):
    reader = AgeReader(io.BytesIO(ciphertext), identities=[identity])
    released = bytearray()
    with pytest.raises(AgePayloadError) as caught:
        for block in iter(lambda: reader.read(1000), b""):
            released += block
    return bytes(released), str(caught.value)


@pytest.mark.parametrize("chunk", [0, 1, 2])
def test_modified_payload_releases_only_the_chunks_before(keys, chunk):
    plaintext, ciphertext, start = chunked(keys)
    position = start + chunk * (CHUNK_SIZE + 16) + 7
    damaged = ciphertext[:position] + bytes([ciphertext[position] ^ 1]) + ciphertext[position + 1 :]
    released, message = released_until_error(damaged, keys[0][0])
    assert released == plaintext[: chunk * CHUNK_SIZE]
    assert "chunk %d " % chunk in message


def test_reordered_chunks_fail_at_the_first(keys):
    ciphertext, start = chunked(keys)[1:]
    size = CHUNK_SIZE + 16
    first, second = ciphertext[start : start + size], ciphertext[start + size : start + 2 * size]
    swapped = ciphertext[:start] + second + first + ciphertext[start + 2 * size :]
    assert released_until_error(swapped, keys[0][0])[0] == b""


@pytest.mark.parametrize(
    "cut, error, released_chunks",
    [
        ("in-version", AgeHeaderError, None),
        ("in-stanza", AgeHeaderError, None),
        ("before-nonce", AgeHeaderError, None),
        ("in-nonce", AgeHeaderError, None),
        ("after-nonce", AgePayloadError, 0),
        ("in-chunk-0", AgePayloadError, 0),
        ("chunk-boundary", AgePayloadError, 1),
        ("two-chunks", AgePayloadError, 2),
        ("last-byte", AgePayloadError, 2),
    ],
)
def test_truncation(keys, cut, error, released_chunks):
    plaintext, ciphertext, start = chunked(keys)
    offsets = {
        "in-version": 10,
        "in-stanza": ciphertext.index(b"\n->") + 8,
        "before-nonce": start - 16,
        "in-nonce": start - 5,
        "after-nonce": start,
        "in-chunk-0": start + 100,
        "chunk-boundary": start + CHUNK_SIZE + 16,
        "two-chunks": start + 2 * (CHUNK_SIZE + 16),
        "last-byte": len(ciphertext) - 1,
    }
    truncated = ciphertext[: offsets[cut]]
    if released_chunks is None:
        with pytest.raises(error):
            AgeReader(io.BytesIO(truncated), identities=[keys[0][0]])
    else:
        released, _message = released_until_error(truncated, keys[0][0])
        assert released == plaintext[: released_chunks * CHUNK_SIZE]


@pytest.mark.parametrize("full_last_chunk", [True, False])
@pytest.mark.parametrize("extra", [b"\x00", os.urandom(CHUNK_SIZE + 16)])
def test_trailing_data_is_refused(keys, extra, full_last_chunk):
    plaintext = os.urandom(2 * CHUNK_SIZE + (0 if full_last_chunk else 1000))
    ciphertext = encrypt(plaintext, recipients=[keys[0][1]])
    released, message = released_until_error(ciphertext + extra, keys[0][0])
    if full_last_chunk:
        # The final chunk authenticates as final; what follows it is refused.
        assert released == plaintext
        assert "data follows" in message
    else:
        # Extra bytes join a short final chunk, which then fails to authenticate.
        assert released == plaintext[: 2 * CHUNK_SIZE]
        assert "chunk 2 " in message


def test_empty_plaintext(keys):
    ciphertext = encrypt(b"", recipients=[keys[0][1]])
    assert len(ciphertext) - payload_offset(ciphertext) == 16
    assert decrypt(ciphertext, identities=[keys[0][0]]) == b""


# Work factor ------------------------------------------------------------------------------------


@pytest.mark.parametrize("work_factor", [9, 23, 0, -1, "18", 18.0, True, None])
def test_writer_refuses_work_factor_out_of_range(work_factor):
    with pytest.raises(AgeError, match="work factor"):
        AgeWriter(io.BytesIO(), passphrase="pw", work_factor=work_factor)


def test_writer_accepts_the_highest_work_factor(monkeypatch):
    # Scrypt at 2^22 takes ~20 s and 4 GiB; record what would be derived instead.
    used = []

    class RecordingScrypt:
        def __init__(self, salt, length, n, r, p):
            used.append((n, r, p))

        def derive(self, secret):
            return bytes(32)

    monkeypatch.setattr(age, "Scrypt", RecordingScrypt)
    out = io.BytesIO()
    AgeWriter(out, passphrase="pw", work_factor=22).close()
    assert used == [(2**22, 8, 1)]
    assert age.read_header(io.BytesIO(out.getvalue()))["work_factor"] == 22


def test_reader_refuses_work_factor_above_limit_before_running_scrypt(monkeypatch):
    ciphertext = encrypt(b"data", passphrase="pw", work_factor=12)
    assert decrypt(ciphertext, passphrase="pw", max_work_factor=12) == b"data"

    def no_scrypt(**kwargs):
        raise AssertionError("scrypt ran although the work factor is above the limit")

    monkeypatch.setattr(age, "Scrypt", no_scrypt)
    # The message names the option that raises the limit.
    with pytest.raises(AgeHeaderError, match=r"2\^12, above the accepted limit 2\^11; .*encryption\.max_work_factor"):
        AgeReader(io.BytesIO(ciphertext), passphrase="pw", max_work_factor=11)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({}, "exactly one of passphrase or recipients"),
        ({"passphrase": "pw", "recipients": [SPEC_RECIPIENT]}, "exactly one of passphrase or recipients"),
        ({"recipients": []}, "no recipients"),
        ({"passphrase": ""}, "passphrase is empty"),
        ({"passphrase": 1234}, "must be a string"),
        ({"recipients": ["age1notakey"]}, "invalid age recipient"),
    ],
)
def test_writer_argument_errors(kwargs, message):
    with pytest.raises(AgeError, match=message):
        AgeWriter(io.BytesIO(), work_factor=LOW, **kwargs)


def test_reader_needs_a_key():
    with pytest.raises(AgeError, match="give a passphrase or identities"):
        AgeReader(io.BytesIO(b"age-encryption.org/v1\n"))


# Keys -------------------------------------------------------------------------------------------


def test_generated_identity_matches_its_recipient():
    identity, recipient = age.generate_x25519_identity()
    assert identity.startswith("AGE-SECRET-KEY-1") and len(identity) == 74
    assert recipient.startswith("age1") and len(recipient) == 62
    assert age.identity_to_recipient(identity) == recipient
    assert age.generate_x25519_identity()[0] != identity


def test_spec_example_keys():
    assert age.identity_to_recipient(SPEC_IDENTITY) == SPEC_RECIPIENT
    assert str(age.parse_recipient(SPEC_RECIPIENT)) == SPEC_RECIPIENT


@needs_mlkem
def test_spec_example_post_quantum_keys():
    recipient = age.identity_to_recipient(
        "AGE-SECRET-KEY-PQ-1XX76JRALNLXDMEW0CRK45QMCCH4X06SE84UN3VPM33W6HWDX0H3SK3ZQFR"
    )
    # The spec's recipient (1959 characters); its Bech32 checksum at the end covers all of it.
    assert len(recipient) == 1959
    assert recipient.startswith("age1pq1x34nzsvr0rxjsgdn8zgyhfe8j7ceq5r9rdelkjuh3y235jzxshfg87pzf5zrqtzdxz95paef6caq5")
    assert recipient.endswith("wze9pyyzk3tlhl53k2ykx3qheyty7saeq0d3fzv49zc0k")
    assert str(age.parse_recipient(recipient)) == recipient


@pytest.mark.parametrize(
    "text, error, message",
    [
        (SPEC_RECIPIENT[:-1] + "x", AgeError, "checksum"),
        (SPEC_RECIPIENT.upper(), AgeError, "expected a public key starting with age1"),
        ("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujwJ", AgeError, "mixes upper and lower"),
        ("age1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqq", AgeError, "checksum"),
        ("age1", AgeError, "too short"),
        ("age1zvkyg2lqzraa2lnjvqej32nkuu0ues2s82hzrye869xeexvn73equnujbj", AgeError, "outside the Bech32 alphabet"),
        (SPEC_RECIPIENT.replace("2lq", "2lp"), AgeError, "checksum"),
        ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH", AgeUnsupported, "SSH public keys"),
        (age._bech32_encode("age1yubikey", b"\x02" * 33), AgeUnsupported, "plugin 'yubikey'"),
        (age._bech32_encode("age", b"\x01" * 31), AgeError, "expected a public key"),
        (12, AgeError, "must be a string"),
    ],
)
def test_parse_recipient_errors(text, error, message):
    with pytest.raises(error, match=message) as caught:
        age.parse_recipient(text)
    assert caught.value.__class__ is error


@pytest.mark.parametrize(
    "text, error, message",
    [
        (SPEC_IDENTITY[:-1] + "Q", AgeError, "checksum"),
        (SPEC_IDENTITY.lower(), AgeError, "expected a secret key"),
        (SPEC_RECIPIENT, AgeError, "expected a secret key"),
        (age._bech32_encode("AGE-PLUGIN-YUBIKEY-", b"\x01" * 20), AgeUnsupported, "plugin identities"),
        (age._bech32_encode("AGE-SECRET-KEY-", b"\x01" * 33), AgeError, "expected a secret key"),
    ],
)
def test_parse_identity_errors_never_echo_the_key(text, error, message):
    with pytest.raises(error, match=message) as caught:
        age.parse_identity(text)
    assert caught.value.__class__ is error
    assert text[20:40] not in str(caught.value)


def test_post_quantum_identity_without_mlkem_is_unsupported(monkeypatch):
    monkeypatch.setattr(age, "HAS_MLKEM", False)
    with pytest.raises(AgeUnsupported, match="ML-KEM"):
        age.parse_identity(age._bech32_encode("AGE-SECRET-KEY-PQ-", b"\x01" * 32))


def test_read_identity_file(tmp_path):
    first, second = age.generate_x25519_identity()[0], SPEC_IDENTITY
    path = tmp_path / "keys.txt"
    path.write_text(
        "# created: 2024-01-01T00:00:00Z\n# public key: age1...\n%s\n\n  %s  \r\n# trailing comment\n" % (first, second)
    )
    assert age.read_identity_file(str(path)) == [first, second]


@pytest.mark.parametrize(
    "content, error, message",
    [
        (None, AgeError, "cannot read the age identity file"),
        (b"", AgeError, "holds no age key"),
        (b"# only a comment\n\n", AgeError, "holds no age key"),
        (b"# key\nAGE-SECRET-KEY-1NOTAKEY\n", AgeError, r"keys.txt, line 2: invalid age identity"),
        (b"\xff\xfe", AgeError, "not a text file"),
        (b"age-encryption.org/v1\n-> scrypt x 18\n", AgeUnsupported, "itself age-encrypted"),
    ],
)
def test_read_identity_file_errors(tmp_path, content, error, message):
    path = tmp_path / "keys.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(error, match=message) as caught:
        age.read_identity_file(str(path))
    assert caught.value.__class__ is error


# Header inspection ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "start, expected",
    [
        (b"age-encryption.org/v1\n-> X25519 abc", True),
        (b"-----BEGIN AGE ENCRYPTED FILE-----\nYWdl", True),
        (b"\n \r\n-----BEGIN AGE ENCRYPTED FILE-----\n", True),
        (b"-----BEGIN PGP MESSAGE-----\n", False),
        (b"\x1f\x8b\x08\x00", False),
        (b"ustar", False),
        (b"", False),
    ],
)
def test_is_age(start, expected):
    assert age.is_age(start) is expected


def test_read_header_passphrase_and_recipients(keys):
    assert age.read_header(io.BytesIO(encrypt(b"x", passphrase="pw", work_factor=LOW))) == {
        "armored": False,
        "stanzas": ["scrypt"],
        "passphrase": True,
        "work_factor": LOW,
    }
    assert age.read_header(io.BytesIO(encrypt(b"x", recipients=[k[1] for k in keys]))) == {
        "armored": False,
        "stanzas": ["X25519"] * 3,
        "passphrase": False,
        "work_factor": None,
    }


@pytest.mark.parametrize(
    "name, result",
    [
        ("armor_x25519", {"armored": True, "stanzas": ["X25519"], "passphrase": False, "work_factor": None}),
        ("scrypt_work_factor_23", {"armored": False, "stanzas": ["scrypt"], "passphrase": True, "work_factor": 23}),
        ("x25519_short_share", AgeHeaderError),
        ("scrypt_and_x25519", AgeHeaderError),
        ("armor_lowercase", AgeArmorError),
        ("hmac_garbage", AgeHeaderError),
    ],
)
def test_read_header_on_vectors(name, result):
    require_vectors()
    data = io.BytesIO(load_vector(VECTORS / name).data)
    if isinstance(result, dict):
        assert age.read_header(data) == result
    else:
        with pytest.raises(result):
            age.read_header(data)


def test_read_header_refuses_non_age():
    with pytest.raises(AgeHeaderError, match="not an age file"):
        age.read_header(io.BytesIO(b"PK\x03\x04 a zip file"))


# Files ------------------------------------------------------------------------------------------


def test_encrypt_and_decrypt_files(tmp_path, keys):
    source = tmp_path / "dump.tar"
    source.write_bytes(os.urandom(CHUNK_SIZE * 2 + 3))
    encrypted, restored = tmp_path / "dump.tar.age", tmp_path / "restored.tar"
    age.encrypt_file(str(source), str(encrypted), recipients=[keys[0][1]])
    age.decrypt_file(str(encrypted), str(restored), identities=[keys[0][0]])
    assert restored.read_bytes() == source.read_bytes()
    assert stat.S_IMODE(encrypted.stat().st_mode) == 0o600
    assert stat.S_IMODE(restored.stat().st_mode) == 0o600


@pytest.mark.parametrize("damage", ["wrong-key", "truncated"])
def test_failed_decrypt_file_leaves_nothing(tmp_path, keys, damage):
    encrypted, restored = tmp_path / "dump.tar.age", tmp_path / "restored.tar"
    age.encrypt_file(str(Path(__file__)), str(encrypted), recipients=[keys[0][1]])
    identity = keys[1][0] if damage == "wrong-key" else keys[0][0]
    if damage == "truncated":
        encrypted.write_bytes(encrypted.read_bytes()[:-1])
    with pytest.raises(AgeError, match=str(encrypted)):
        age.decrypt_file(str(encrypted), str(restored), identities=[identity])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dump.tar.age"]


def test_import_without_cryptography():
    code = (
        "import sys; sys.modules['cryptography'] = None\n"
        "from ansible_collections.lifeboat.backup.plugins.module_utils import age\n"
        "assert not age.HAS_CRYPTOGRAPHY and not age.HAS_MLKEM\n"
        "assert age.is_age(b'age-encryption.org/v1')\n"
        "try:\n"
        "    age.AgeWriter(None, passphrase='pw')\n"
        "except age.AgeError as exc:\n"
        "    print(exc)\n"
    )
    # A fresh interpreter, told where ansible_collections/ is: <root>/ansible_collections/lifeboat/backup/plugins/...
    root = Path(age.__file__).parents[5]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(root)] + sys.path))
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=False)
    assert result.returncode == 0, result.stderr
    assert "needs the Python package 'cryptography'" in result.stdout


# Memory -----------------------------------------------------------------------------------------


def test_constant_memory_for_300_mb(keys):
    total, block = 300 * 1024 * 1024, os.urandom(1024 * 1024)
    read_fd, write_fd = os.pipe()
    written = hashlib.sha256()
    failures = []

    def produce():
        try:
            with os.fdopen(write_fd, "wb") as sink:
                writer = AgeWriter(sink, recipients=[keys[0][1]])
                for index in range(total // len(block)):
                    data = index.to_bytes(8, "big") + block[8:]
                    written.update(data)
                    writer.write(data)
                writer.close()
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)

    tracemalloc.start()
    producer = threading.Thread(target=produce)
    producer.start()
    read = hashlib.sha256()
    size = 0
    with os.fdopen(read_fd, "rb") as source:
        reader = AgeReader(source, identities=[keys[0][0]])
        for data in iter(lambda: reader.read(1024 * 1024), b""):
            read.update(data)
            size += len(data)
    producer.join()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert not failures
    assert size == total and read.digest() == written.digest()
    # Buffers are a few chunks and the 1 MiB blocks; anything that keeps the stream would be >= 300 MB.
    assert peak < 50 * 1024 * 1024
