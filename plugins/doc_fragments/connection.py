# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
requirements:
  - psycopg >= 3.1 and libpq when O(engine=postgresql), the default; checked before anything runs
options:
  login_host:
    description:
      - Host of the PostgreSQL server. Leave unset to connect over the unix socket.
    type: str
  login_port:
    description:
      - Port of the PostgreSQL server.
    type: int
    default: 5432
  login_user:
    description:
      - The role Lifeboat connects as. It must be a superuser, or have C(CREATEDB) and be a member of the
        roles that own the environment's databases, and have C(CREATEROLE) to restore without C(restore_user)
        (a restore logs in as a short-lived role it creates; see the collection's docs/internals.md).
    type: str
    default: postgres
  login_password:
    description:
      - The password of O(login_user). It reaches C(pg_dump) and C(pg_restore) through a private
        passfile, never through their command line.
      - With O(engine=sqlite) it is the key that the application protects its file with, where it does.
    type: str
  login_unix_socket:
    description:
      - Directory of the server's unix socket, used when O(login_host) is not set.
    type: str
  login_db:
    description:
      - The maintenance database Lifeboat connects to for checks and DDL. A database cannot be renamed or
        dropped from inside itself, so this must not be the environment's database.
    type: str
    default: postgres
  ssl_mode:
    description:
      - How the connection uses SSL, as libpq's C(sslmode).
    type: str
    default: prefer
    choices: [allow, disable, prefer, require, verify-ca, verify-full]
  ca_cert:
    description:
      - File of certificate authorities that the server's certificate is checked against (libpq's
        C(sslrootcert)).
    type: path
  pg_bin_dir:
    description:
      - Directory holding C(pg_dump) and C(pg_restore). By default Lifeboat picks the ones that match the
        server's major version from the usual install paths.
    type: path
"""
