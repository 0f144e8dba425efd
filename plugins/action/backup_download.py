# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of lifeboat.backup.backup_download: ask the node which archive, skip it when dest has it,
else fetch it with the connection's file transfer into a temporary name, check it and rename it into place.
The node half is module_utils/backup_download.py.
"""

from __future__ import annotations

import os
import re
import tempfile

from ansible.errors import AnsibleActionFail
from ansible_collections.lifeboat.backup.plugins.module_utils.common import fsync_dir, fsync_file, sha256_file
from ansible_collections.lifeboat.backup.plugins.plugin_utils.transfer import TransferAction

MODULE = "lifeboat.backup.backup_download"
# Catalog names: <backup id><suffix>. Anything else from the node is not used as a local file name.
_FILE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _file_name(node_path):
    name = os.path.basename(node_path)
    if not _FILE_NAME.match(name) or ".." in name:
        raise AnsibleActionFail("the node named the archive %r, which is no catalog file name; check the catalog"
                                % node_path)
    return name


class ActionModule(TransferAction):
    def _transfer(self, result, args, task_vars):
        dest = self._dest()
        found = self._execute_module(MODULE, module_args=dict(args), task_vars=task_vars)
        if found.get("failed"):
            result.update(found)
            return
        backup = found["backup"]
        final = os.path.join(dest, _file_name(backup["path"]))
        before = sha256_file(final) if os.path.isfile(final) else None
        result.update(found, dest=final, transferred=False, changed=before != found["sha256"])
        if self._task.diff:
            result["diff"] = {"before": {"path": final, "sha256": before},
                              "after": {"path": final, "sha256": found["sha256"]}}
        if not result["changed"] or self._task.check_mode:
            return
        os.makedirs(dest, mode=0o700, exist_ok=True)
        remote = backup["path"]
        if self._connection.become:
            # The connection user cannot read the root-only catalog: the module hands it a copy.
            tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
            exported = self._execute_module(
                MODULE, module_args=dict(args, backup=backup["id"], _export_dir=tmpdir), task_vars=task_vars)
            if exported.get("failed"):
                result.update(exported, changed=False)
                return
            remote = exported["export_path"]
        self._fetch(remote, final, found["sha256"])
        result["transferred"] = True

    def _dest(self):
        dest = self._task.args.get("dest")
        if not isinstance(dest, str) or not dest:
            raise AnsibleActionFail("dest is required: a directory on the controller to download into")
        dest = self._loader.path_dwim(os.path.expanduser(dest))
        if os.path.exists(dest) and not os.path.isdir(dest):
            raise AnsibleActionFail("dest %s is not a directory; give a directory to download into" % dest)
        return dest

    def _fetch(self, remote, final, sha256):
        """Fetch into a temporary name beside ``final``; rename only what has the catalog's SHA-256."""
        fd, part = tempfile.mkstemp(prefix=".%s." % os.path.basename(final), suffix=".part",
                                    dir=os.path.dirname(final))
        os.close(fd)
        try:
            self._connection.fetch_file(remote, part)
            got = sha256_file(part)
            if got != sha256:
                raise AnsibleActionFail(
                    "the downloaded archive has SHA-256 %s, the catalog says %s: the archive on the node is damaged "
                    "or the transfer failed; %s was left as it was" % (got, sha256, final))
            os.chmod(part, 0o600)
            fsync_file(part)
            os.replace(part, final)
            fsync_dir(os.path.dirname(final))
        finally:
            if os.path.lexists(part):
                os.unlink(part)
