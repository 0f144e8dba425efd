# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``encryption`` option: which age key protects an archive, and reading archives whatever their form."""

from __future__ import annotations

import contextlib

from ansible_collections.lifeboat.backup.plugins.module_utils import age, archive
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError

MODES = ["none", "passphrase", "database_password", "recipients"]


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
        return {"passphrase": settings["passphrase"]}
    if mode(params) == "database_password" or params.get("login_password"):
        return {"passphrase": _database_password(params)}
    return None


def recipients_of(params):
    """Public information about the key, for the catalog entry: never a secret."""
    chosen = mode(params)
    return {"mode": chosen, "recipients": list(_settings(params)["recipients"]) if chosen == "recipients" else []}


@contextlib.contextmanager
def open_source(path, params):
    """A readable stream of the plaintext archive at ``path``; age files are decrypted on the fly.

    A wrong key fails here, before anything was read or written.
    """
    try:
        handle = open(path, "rb")
    except OSError as exc:
        raise LifeboatError("cannot read %s: %s" % (path, exc.strerror))
    with handle:
        if not age.is_age(handle.read(64)):
            handle.seek(0)
            yield handle
            return
        handle.seek(0)
        options = reader_options(params)
        if options is None:
            raise LifeboatError("%s is encrypted (age); give encryption.passphrase, encryption.identity or "
                                "encryption.identity_file" % path)
        yield age.AgeReader(handle, **options)


def read_source(path, params, *, db_dir, tree_dir):
    """Open any accepted archive (plain, gzip, age-encrypted, Mendix snapshot, bare dump) into the two dirs."""
    with open_source(path, params) as stream:
        return archive.read_archive(stream, db_dir=db_dir, tree_dir=tree_dir, name=path)
