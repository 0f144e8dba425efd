# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    # A module served by an action plugin of its own, which runs once per host and without async. The descriptions
    # come from ansible.builtin.action_common_attributes.flow (and .conn for TRANSFER).
    DOCUMENTATION = r"""
attributes:
  action:
    support: full
  async:
    support: none
  bypass_host_loop:
    support: none
"""

    # One whose plugin moves an archive over the task's connection (plugin_utils/transfer.py).
    TRANSFER = r"""
attributes:
  become:
    support: full
  connection:
    support: full
  delegation:
    support: full
"""
