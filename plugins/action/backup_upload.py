# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Controller half of lifeboat.backup.backup_upload: checksum the archive, ask the node whether it has it
already, and only if not send it with the connection's file transfer. The node half is module_utils/backup_upload.py.
"""

from __future__ import annotations

import os

from ansible.errors import AnsibleActionFail, AnsibleError
from ansible.module_utils.common.text.converters import to_text
from ansible_collections.lifeboat.backup.plugins.module_utils.common import sha256_file
from ansible_collections.lifeboat.backup.plugins.plugin_utils.transfer import TransferAction

MODULE = "lifeboat.backup.backup_upload"
REMOTE_NAME = "lifeboat-upload"


class ActionModule(TransferAction):
    def _transfer(self, result, args, task_vars):
        local = self._source()
        # Hashed as a stream: the archive may be far larger than the controller's memory.
        args.update(_sha256=sha256_file(local), _size=os.stat(local).st_size)
        probe = self._execute_module(MODULE, module_args=dict(args), task_vars=task_vars)
        if probe.get("failed") or not probe.pop("upload_needed", False):
            result.update(probe)
            result["transferred"] = False
            return
        tmpdir = self._connection._shell.tmpdir or self._make_tmp_path()
        remote = self._connection._shell.join_path(tmpdir, REMOTE_NAME)
        self._transfer_file(local, remote)
        # Lets an unprivileged become user read it; the module copies what it may not move.
        self._fixup_perms2((tmpdir, remote), execute=False)
        result.update(self._execute_module(MODULE, module_args=dict(args, _uploaded=remote), task_vars=task_vars))
        result["transferred"] = True

    def _source(self):
        src = self._task.args.get("src")
        if not isinstance(src, str) or not src:
            raise AnsibleActionFail("src is required: the archive on the controller to upload")
        try:
            local = self._find_needle("files", os.path.expanduser(src))
        except AnsibleError as exc:
            raise AnsibleActionFail("cannot find the archive %s on the controller: %s" % (src, to_text(exc)))
        if not os.path.isfile(local):
            raise AnsibleActionFail("src %s is not a file; give the path of an archive" % local)
        return local
