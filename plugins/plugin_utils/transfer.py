# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the action plugins of backup_upload and backup_download share: the task's own options without the internal
ones, a failure that leaves ``changed`` and ``transferred`` false, and the remote temporary directory removed."""

from __future__ import annotations

from ansible.errors import AnsibleAction
from ansible.plugins.action import ActionBase


class TransferAction(ActionBase):
    """Runs ``_transfer(result, args, task_vars)``, which moves one archive and fills ``result``."""

    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused since Ansible 2.5
        # Internal options are the plugin's to set.
        args = {key: value for key, value in self._task.args.items() if not key.startswith("_")}
        try:
            self._transfer(result, args, task_vars)
        except AnsibleAction as exc:
            result.update(exc.result, changed=False, transferred=False)
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        return result

    def _transfer(self, result, args, task_vars):
        raise NotImplementedError
