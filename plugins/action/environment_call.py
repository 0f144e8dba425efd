# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""lifeboat.backup.environment_call: run one of the collection's modules on an entry of lifeboat_environments.

Tasks pass the entry and their own options as plain arguments; the expansion into module options happens here,
so no task needs a templated dict as its arguments (which ansible-core 2.19 warns about). Documented in
plugins/modules/environment_call.py.
"""

from __future__ import annotations

import time

from ansible.errors import AnsibleActionFail
# The helper ansible-core's own package, service and gather_facts actions use for the modules they pick.
from ansible.executor.module_common import _apply_action_arg_defaults
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible_collections.lifeboat.backup.plugins.filter.environment_args import environment_args

# The modules that work on one environment; those that take no key get no encryption option.
MODULES = ("backup_create", "backup_download", "backup_info", "backup_prune", "backup_restore", "backup_upload",
           "environment_info", "structure_update")
_NO_KEY = ("backup_prune", "environment_info", "structure_update")
_SPEC = {
    "entry": {"type": "dict", "required": True},
    "module": {"type": "str", "required": True, "choices": list(MODULES)},
    "options": {"type": "dict", "default": {}},
}


class ActionModule(ActionBase):
    _supports_check_mode = True
    _supports_async = False

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        del tmp  # unused since Ansible 2.5
        validated = ArgumentSpecValidator(_SPEC).validate(self._task.args)
        if validated.error_messages:
            raise AnsibleActionFail("environment_call: %s" % "; ".join(validated.error_messages))
        params = validated.validated_parameters
        module = params["module"]
        args = environment_args(params["entry"], catalog=self._default_catalog(task_vars or {}))
        if module in _NO_KEY:
            args.pop("encryption", None)
        args.update(params["options"])
        started = time.monotonic()
        try:
            result.update(self._run_module("lifeboat.backup." + module, args, task_vars))
        finally:
            self._remove_tmp_path(self._connection._shell.tmpdir)
        # Wall seconds of the call as the controller saw it (transfer included): the roles' report uses it.
        result["elapsed"] = round(time.monotonic() - started, 3)
        return result

    def _default_catalog(self, task_vars):
        """The inventory's lifeboat_catalog, for entries that name no catalog of their own."""
        catalog = task_vars.get("lifeboat_catalog")
        return self._templar.template(catalog) if catalog else None

    def _run_module(self, name, args, task_vars):
        """The module's own action plugin when it has one (upload, download, create), else the module on the
        node."""
        task = self._task.copy()
        # An action plugin that runs "its" module (the normal action does) takes the name from the task.
        task.action = name
        # module_defaults (group/lifeboat.backup.all or the module's own) fill what the entry and options leave.
        task.args = args = _apply_action_arg_defaults(name, self._task, args, self._templar)
        action = self._shared_loader_obj.action_loader.get(name, task=task, connection=self._connection,
                                                           play_context=self._play_context, loader=self._loader,
                                                           templar=self._templar,
                                                           shared_loader_obj=self._shared_loader_obj)
        if action is not None:
            return action.run(task_vars=task_vars)
        return self._execute_module(module_name=name, module_args=args, task_vars=task_vars)
