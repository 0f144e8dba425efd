# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one place where an AnsibleModule meets Lifeboat's operations."""

from __future__ import annotations

import errno

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import (
    RESTORE_REQUIRED_BY,
    restore_argument_spec,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.registry import DEFAULT_ENGINE, engine_class
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import environment_argument_spec


def environment_module(options, restore_privilege=False, non_negative=(), **constraints):
    """The AnsibleModule of a module that works on an environment, with check mode.

    Its options are those of the doc fragments it extends (environment and connection always, restore_privilege
    when asked) and then its own ``options``, which win; a module that reads or writes archives adds
    ``encryption=encryption.encryption_argument_spec()`` there itself, so that the others do not ship age.
    ``non_negative`` names the int options that must be 0 or more, which an argument spec cannot say;
    ``constraints`` are AnsibleModule's.
    """
    argument_spec = environment_argument_spec()
    if restore_privilege:
        argument_spec.update(restore_argument_spec())
        constraints["required_by"] = RESTORE_REQUIRED_BY
    argument_spec.update(options)
    module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True, **constraints)
    for name in non_negative:
        if module.params[name] < 0:
            module.fail_json(msg="%s must be 0 or more" % name)
    return module


def require_libraries(module):
    """Before anything connects: a missing library is the operator's first message."""
    missing = engine_class(module.params.get("engine", DEFAULT_ENGINE)).missing_library()
    if missing:
        library, import_error = missing
        module.fail_json(msg=missing_required_lib(library), exception=import_error)


def run_module(module, operation):
    """Run ``operation(params, check_mode=...)`` and turn its result or error into the module's result."""
    require_libraries(module)
    try:
        result = operation(module.params, check_mode=module.check_mode)
    except LifeboatError as exc:
        module.fail_json(msg=str(exc))
    except OSError as exc:
        if exc.errno == errno.ENOSPC:
            module.fail_json(msg="no space left on device (%s); nothing was changed, free some space and run "
                                 "again" % (exc.filename or "disk"))
        module.fail_json(msg="%s%s" % (exc.strerror or exc, " (%s)" % exc.filename if exc.filename else ""))
    for warning in result.pop("warnings", []):
        module.warn(warning)
    diff = result.pop("diff", None)
    if module._diff and diff is not None:
        result["diff"] = diff
    module.exit_json(**result)
