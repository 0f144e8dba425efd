# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_download on the node: hand a catalog archive to the connection user.

The controller half is the action plugin ``plugins/action/backup_download.py``; it tells the module through
the internal option ``_export_dir`` where the connection user can fetch a copy from.
"""

from __future__ import annotations

import os
import shutil

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog, entry_result
from ansible_collections.lifeboat.backup.plugins.module_utils.common import CHUNK_SIZE, LifeboatError, check_name


def download(params, check_mode=False):
    """Resolve the backup to download; with ``_export_dir``, put a copy there for the connection user."""
    name = check_name(params["environment"], "environment")
    catalog = Catalog(params["catalog"])
    entries = catalog.entries(name)
    entry = entries.resolve(params.get("backup") or "latest")
    path = catalog.archive_path(entry)
    try:
        size = os.stat(path).st_size
    except OSError as exc:
        raise LifeboatError("cannot read the archive of backup %s (%s): %s" % (entry["id"], path, exc.strerror))
    if size != entry.get("size"):
        raise LifeboatError("the archive of backup %s is damaged: %s has %d bytes, the catalog says %s"
                            % (entry["id"], path, size, entry.get("size")))
    result = {"changed": False, "backup": entry_result(entry), "size": size, "sha256": entry["sha256"],
              "warnings": entries.warnings}
    if params.get("_export_dir") and not check_mode:
        result["export_path"] = export(path, params["_export_dir"])
    return result


def export(path, directory):
    """Make the archive at ``path`` readable for the owner of ``directory`` (the connection user's tmp dir).

    Returns ``path`` itself when that owner is us. Otherwise root copies it there and gives the copy to that
    user. A hard link would be cheaper, but changing its owner would change the catalog's own file.
    """
    try:
        dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        raise LifeboatError("cannot use the transfer directory %s: %s" % (directory, exc.strerror))
    try:
        owner = os.fstat(dir_fd)
        if owner.st_uid == os.geteuid():
            return path
        if os.geteuid() != 0:
            raise LifeboatError("cannot hand the archive %s to the connection user (uid %d): only root can; become "
                                "root, or connect as the catalog's owner" % (path, owner.st_uid))
        name = os.path.basename(path)
        try:
            out = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                          dir_fd=dir_fd)
        except FileExistsError:
            raise LifeboatError("%s already exists in the transfer directory %s; run the task again"
                                % (name, directory))
        try:
            with open(path, "rb") as source, os.fdopen(os.dup(out), "wb") as sink:
                shutil.copyfileobj(source, sink, CHUNK_SIZE)
            os.fchown(out, owner.st_uid, owner.st_gid)
        except BaseException:
            os.unlink(name, dir_fd=dir_fd)
            raise
        finally:
            os.close(out)
        return os.path.join(directory, name)
    finally:
        os.close(dir_fd)
