# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations


class ModuleDocFragment:
    DOCUMENTATION = r"""
notes:
  - The SQL in an archive never runs with more privilege than the restored database's owner. C(pg_restore)
    does not log in as O(login_user) but as O(restore_user), or by default as a short-lived role that the
    module creates for this restore alone, named C(lifeboat_restore_<hash of the environment>_<random>), with
    C(LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS), a member of the owner and
    nothing else, with a random password that reaches C(pg_restore) only through a 0600 passfile in the
    catalog. It is dropped afterwards, also after a failure, and by the next run of the environment if the
    module was killed; what the archive's SQL made while logged in as it goes to the owner.
  - The server must let that role log in with a password from where Lifeboat connects. A server whose
    C(pg_hba.conf) allows only C(peer) there makes the module fail with what to add, for example
    C(local all +shop scram-sha-256) (C(+shop) matches the members of role C(shop), the owner), placed before
    the lines that would refuse it. Or give O(restore_user) and O(restore_password).
  - These options apply to PostgreSQL; SQLite ignores them.
options:
  owner:
    description:
      - The role that owns the restored PostgreSQL database and every object in it. By default the owner of
        the database it replaces; required for a database that does not exist yet.
      - It must be an ordinary role (the application's own). A superuser, a member of
        C(pg_execute_server_program), C(pg_read_server_files) or C(pg_write_server_files) (or, before
        PostgreSQL 16, a role with C(CREATEROLE)) is refused, since the archive's SQL runs with its
        privileges.
    type: str
  restore_user:
    description:
      - The role C(pg_restore) logs in as instead of the short-lived role, that is the owner's own login or a member
        of the owner. The same rules as for O(owner) apply to it.
    type: str
  restore_password:
    description:
      - The password of O(restore_user), which it requires. Like every password it reaches C(pg_restore) only through a
        passfile (or, for a password with a line break, which a passfile cannot hold, the child's
        environment), never its command line.
    type: str
  extensions:
    description:
      - Extensions that O(login_user) may create in the restored database before C(pg_restore) runs, for
        those of the archive's C(CREATE EXTENSION) entries that need a superuser (C(postgis),
        C(postgres_fdw), ...). Only extensions listed here and available on the server are created, in the
        schema the archive names (created owned by O(owner) if missing); C(pg_restore) then skips those
        entries. List only extensions you trust.
      - Other extensions are left to C(pg_restore), running as the owner. Trusted ones (C(hstore),
        C(pgcrypto), ...) are created, the others fail the restore with a message naming this option.
    type: list
    elements: str
    default: []
"""
