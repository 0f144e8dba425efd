# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``encryption`` option: which age key protects an archive, and reading archives whatever their form."""

from __future__ import annotations

import contextlib
import hashlib

from ansible_collections.lifeboat.backup.plugins.module_utils import age, archive
from ansible_collections.lifeboat.backup.plugins.module_utils.common import CHUNK_SIZE, LifeboatError

MODES = ["none", "passphrase", "database_password", "recipients"]
# How far encryption.max_work_factor may be raised: at 2^24 one try of scrypt takes 16 GiB and over a minute.
MAX_WORK_FACTOR_CEILING = 24


def encryption_argument_spec():
    """The ``encryption`` option of every module that reads or writes archives (doc fragment encryption)."""
    return dict(
        type="dict",
        default={"mode": "none"},
        options=dict(
            mode=dict(type="str", default="none", choices=MODES),
            passphrase=dict(type="str", no_log=True),
            recipients=dict(type="list", elements="str"),
            identity=dict(type="str", no_log=True),
            identity_file=dict(type="path"),
            work_factor=dict(type="int", default=age.DEFAULT_WORK_FACTOR),
            max_work_factor=dict(type="int", default=age.MAX_WORK_FACTOR),
        ),
        mutually_exclusive=[("identity", "identity_file")],
    )


def _settings(params):
    return params.get("encryption") or {"mode": "none"}


def _database_password(params):
    password = params.get("login_password")
    if not password:
        raise LifeboatError("encryption mode database_password needs login_password: the environment's database "
                            "password is the backup's passphrase")
    return password


def mode(params):
    return _settings(params).get("mode") or "none"


def writer_options(params):
    """AgeWriter keyword arguments for a new archive, or None when it is not to be encrypted."""
    settings = _settings(params)
    chosen = mode(params)
    if chosen == "none":
        return None
    work_factor = settings.get("work_factor") or age.DEFAULT_WORK_FACTOR
    if not age.MIN_WORK_FACTOR <= work_factor <= age.MAX_WORK_FACTOR:
        raise LifeboatError("invalid work factor %d (encryption.work_factor): use an integer from %d to %d"
                            % (work_factor, age.MIN_WORK_FACTOR, age.MAX_WORK_FACTOR))
    options = {"work_factor": work_factor}
    # Checked here, not in the argument spec: reading an archive of these modes needs other keys.
    if chosen == "recipients":
        if not settings.get("recipients"):
            raise LifeboatError("encryption mode recipients needs encryption.recipients (age public keys)")
        for recipient in settings["recipients"]:
            age.parse_recipient(recipient)
        options["recipients"] = list(settings["recipients"])
    elif chosen == "passphrase":
        if not settings.get("passphrase"):
            raise LifeboatError("encryption mode passphrase needs encryption.passphrase")
        options["passphrase"] = settings["passphrase"]
    else:
        options["passphrase"] = _database_password(params)
    return options


def key_given(params):
    """Whether the task names a key to read archives with. A login_password alone is none (module_defaults may set
    it for every task): reader_options tries it only when nothing else is given."""
    settings = _settings(params)
    named = any(settings.get(key) for key in ("passphrase", "identity", "identity_file"))
    return named or mode(params) == "database_password"


def reader_options(params):
    """AgeReader keyword arguments from whatever key the caller gave (mode need not be set to read)."""
    settings = _settings(params)
    identities = []
    if settings.get("identity"):
        identities.append(settings["identity"])
    if settings.get("identity_file"):
        identities.extend(age.read_identity_file(settings["identity_file"]))
    if identities:
        return {"identities": identities}
    if settings.get("passphrase"):
        return {"passphrase": settings["passphrase"], "max_work_factor": _max_work_factor(settings)}
    if mode(params) == "database_password" or params.get("login_password"):
        return {"passphrase": _database_password(params), "max_work_factor": _max_work_factor(settings)}
    return None


def _max_work_factor(settings):
    """The highest scrypt work factor a passphrase file may ask for: checked before scrypt runs, so that a
    crafted file cannot make the node spend minutes and gigabytes."""
    value = settings.get("max_work_factor")
    if value is None:
        return age.MAX_WORK_FACTOR
    if not isinstance(value, int) or not age.MIN_WORK_FACTOR <= value <= MAX_WORK_FACTOR_CEILING:
        raise LifeboatError("invalid encryption.max_work_factor %r: use an integer from %d to %d (default %d)"
                            % (value, age.MIN_WORK_FACTOR, MAX_WORK_FACTOR_CEILING, age.MAX_WORK_FACTOR))
    return value


def recipients_of(params):
    """Public information about the key, for the catalog entry: never a secret."""
    chosen = mode(params)
    return {"mode": chosen, "recipients": list(_settings(params)["recipients"]) if chosen == "recipients" else []}


@contextlib.contextmanager
def open_source(path, params, sha256=None):
    """A readable stream of the plaintext archive at ``path``; age files are decrypted on the fly.

    A wrong key fails here, before anything was read or written. With ``sha256`` (the catalog's), the file is
    hashed as it streams and a mismatch raises when the stream is left, after it was read to its end.
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise LifeboatError("cannot read %s: %s" % (path, exc.strerror))
    with handle:
        encrypted = age.is_age(handle.read(64))
        handle.seek(0)
        raw = handle if sha256 is None else _Digesting(handle)
        if not encrypted:
            yield raw
        else:
            options = reader_options(params)
            if options is None:
                raise LifeboatError("%s is encrypted (age); give encryption.passphrase, encryption.identity or "
                                    "encryption.identity_file" % path)
            yield age.AgeReader(raw, **options)
        if sha256 is not None:
            raw.check(path, sha256)


class _Digesting:
    """A file hashed while it is read, so that checking it against the catalog costs no second pass."""

    def __init__(self, handle):
        self._handle = handle
        self._digest = hashlib.sha256()

    def read(self, size=-1):
        data = self._handle.read(size)
        self._digest.update(data)
        return data

    def check(self, path, expected):
        while self.read(CHUNK_SIZE):
            pass
        if self._digest.hexdigest() != expected:
            raise LifeboatError("%s does not match its catalog entry: its SHA-256 is %s, the catalog recorded %s; the "
                                "archive was damaged or replaced after the backup. Nothing was changed: restore "
                                "another backup" % (path, self._digest.hexdigest(), expected))


def read_source(path, params, *, sha256=None, **options):
    """Open any accepted archive (plain, gzip, age-encrypted, Mendix snapshot, bare dump) into ``db_dir`` and
    ``tree_dir`` (see archive.read_archive for them and the other ``options``)."""
    with open_source(path, params, sha256) as stream:
        return archive.read_archive(stream, name=path, **options)
