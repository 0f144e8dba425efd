# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Throwaway PostgreSQL clusters for tests and demos: initdb + pg_ctl from the installed server.

Each cluster lives in its own /tmp/lifeboat-pg-XXXX directory (data, unix socket, log) and listens on
its own free port on 127.0.0.1 with production-like authentication: ``trust`` on the unix socket,
``scram-sha-256`` over TCP. PostgreSQL refuses to run as root, so as root the server runs as the
``postgres`` system user.

    python tests/integration/pgcluster.py start --count 2

prints the connection details as JSON and stops the clusters on Ctrl-C or SIGTERM.
"""

from __future__ import annotations

import argparse
import atexit
import glob
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile

import psycopg

SERVER_USER = "postgres"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)")
# Fast and small: the data is thrown away, so durability does not matter.
_SETTINGS = """
listen_addresses = '127.0.0.1'
port = {port}
unix_socket_directories = '{socket_dir}'
password_encryption = 'scram-sha-256'
fsync = off
synchronous_commit = off
full_page_writes = off
shared_buffers = 16MB
max_connections = 40
max_wal_senders = 0
wal_level = minimal
logging_collector = off
"""
_HBA = """\
local all all trust
host all all 127.0.0.1/32 scram-sha-256
"""
# Ports handed out by this process but maybe not yet bound by their server.
_claimed_ports: set[int] = set()
_running: list[PgCluster] = []


def installed_bin_dirs():
    """``{major: bin directory}`` of every installed server (Debian's /usr/lib/postgresql/<major>/bin, the
    PostgreSQL project's RPMs' /usr/pgsql-<major>/bin)."""
    found = {}
    for path in glob.glob("/usr/lib/postgresql/*/bin") + glob.glob("/usr/pgsql-*/bin"):
        major = re.search(r"(\d+)/bin$", path)
        if major and os.path.exists(os.path.join(path, "initdb")):
            found[int(major.group(1))] = path
    return dict(sorted(found.items()))


def find_bin_dir():
    """The newest installed server's bin directory."""
    found = installed_bin_dirs()
    if found:
        return found[max(found)]
    try:
        bin_dir = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        bin_dir = ""
    if bin_dir and os.path.exists(os.path.join(bin_dir, "initdb")):
        return bin_dir
    raise RuntimeError("no PostgreSQL server found: install postgresql (initdb, pg_ctl) or pass bin_dir")


def _free_port():
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port not in _claimed_ports:
            _claimed_ports.add(port)
            return port


class PgCluster:
    host = "127.0.0.1"
    superuser = "postgres"

    def __init__(self, bin_dir=None, hba=_HBA, ident=""):
        """``hba`` and ``ident``: the pg_hba.conf and pg_ident.conf to run with (default: trust on the socket,
        scram over TCP)."""
        self.bin_dir = bin_dir or find_bin_dir()
        self.hba, self.ident = hba, ident
        version = subprocess.run([self._bin("pg_ctl"), "--version"], capture_output=True, text=True, check=True).stdout
        self.major = int(_VERSION.search(version).group(1))
        self.password = "pw-" + secrets.token_urlsafe(12)
        self.port = None
        self.base_dir = self.data_dir = self.socket_dir = self.log_file = None
        self._as_root = os.geteuid() == 0

    def __repr__(self):
        return "PgCluster(port=%s, base_dir=%s)" % (self.port, self.base_dir)

    def _bin(self, name):
        return os.path.join(self.bin_dir, name)

    def _run(self, argv):
        if self._as_root:
            argv = ["runuser", "-u", SERVER_USER, "--"] + argv
        done = subprocess.run(argv, capture_output=True, text=True, cwd=self.base_dir, check=False)
        if done.returncode != 0:
            raise RuntimeError("%s failed (exit %d): %s%s" % (argv, done.returncode, done.stdout, done.stderr))
        return done

    def _own(self, path):
        if self._as_root:
            entry = pwd.getpwnam(SERVER_USER)
            os.chown(path, entry.pw_uid, entry.pw_gid)

    def _write(self, path, text):
        with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as handle:
            handle.write(text)
        self._own(path)

    def start(self):
        if self.base_dir is not None:
            return self
        # mkdtemp makes a 0700 directory; the server user must be able to enter it.
        self.base_dir = tempfile.mkdtemp(prefix="lifeboat-pg-", dir="/tmp")
        os.chmod(self.base_dir, 0o755)
        self._own(self.base_dir)
        self.data_dir = os.path.join(self.base_dir, "data")
        self.socket_dir = os.path.join(self.base_dir, "socket")
        self.log_file = os.path.join(self.base_dir, "server.log")
        _running.append(self)
        try:
            os.mkdir(self.socket_dir, 0o755)
            self._own(self.socket_dir)
            pwfile = os.path.join(self.base_dir, "pwfile")
            self._write(pwfile, self.password + "\n")
            self._run([
                self._bin("initdb"), "-D", self.data_dir, "-U", self.superuser, "--pwfile", pwfile,
                "--auth-local=trust", "--auth-host=scram-sha-256", "-E", "UTF8", "--locale=C.UTF-8", "--no-sync",
            ])
            os.unlink(pwfile)
            self._write(os.path.join(self.data_dir, "pg_hba.conf"), self.hba)
            self._write(os.path.join(self.data_dir, "pg_ident.conf"), self.ident)
            self._start_server()
        except BaseException:
            self.stop()
            raise
        return self

    def _start_server(self):
        # Another process may take a probed port before the server binds it: try a few.
        for attempt in range(5):
            self.port = _free_port()
            self._write(os.path.join(self.data_dir, "postgresql.auto.conf"),
                        _SETTINGS.format(port=self.port, socket_dir=self.socket_dir))
            try:
                self._run([self._bin("pg_ctl"), "-D", self.data_dir, "-l", self.log_file, "-w", "-t", "60", "start"])
                return
            except RuntimeError as exc:
                log = ""
                if os.path.exists(self.log_file):
                    with open(self.log_file) as handle:
                        log = handle.read()
                if "Address already in use" not in log or attempt == 4:
                    raise RuntimeError("%s\nserver log:\n%s" % (exc, log[-3000:])) from None

    def stop(self):
        """Stop the server and remove its directory; safe to call more than once."""
        if self.base_dir is None:
            return
        if os.path.exists(os.path.join(self.data_dir, "postmaster.pid")):
            try:
                self._run([self._bin("pg_ctl"), "-D", self.data_dir, "-m", "immediate", "-w", "stop"])
            except RuntimeError as exc:
                print("lifeboat pgcluster: %s" % exc, file=sys.stderr)
        shutil.rmtree(self.base_dir, ignore_errors=True)
        self.base_dir = None
        if self in _running:
            _running.remove(self)

    def connect(self, dbname="postgres", tcp=False, user=None, password=None):
        """An autocommit psycopg connection, as the superuser unless ``user`` is given."""
        if tcp:
            return psycopg.connect(
                host=self.host, port=self.port, dbname=dbname, user=user or self.superuser,
                password=password or self.password, autocommit=True,
            )
        return psycopg.connect(host=self.socket_dir, port=self.port, dbname=dbname, user=user or self.superuser,
                               autocommit=True)

    def psql(self, sql, db="postgres", params=None):
        """Run SQL as the superuser over the socket; returns the rows of the last statement, or None."""
        with self.connect(db) as conn:
            cursor = conn.execute(sql, params)
            return cursor.fetchall() if cursor.description else None

    def conn_params(self, tcp=True):
        """Lifeboat connection options (module parameters) for this cluster."""
        return {
            "login_host": self.host if tcp else None,
            "login_port": self.port,
            "login_user": self.superuser,
            "login_password": self.password,
            "login_unix_socket": None if tcp else self.socket_dir,
            "pg_bin_dir": self.bin_dir,
        }

    def info(self):
        return dict(self.conn_params(), login_unix_socket=self.socket_dir, major=self.major, data_dir=self.data_dir)


@atexit.register
def stop_all():
    for cluster in list(_running):
        cluster.stop()


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def interrupt_on_sigterm():
    """Make SIGTERM end this process like Ctrl-C, so that finalizers and atexit still stop the clusters."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
        signal.signal(signal.SIGTERM, _interrupt)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    start = commands.add_parser("start", help="start clusters, print JSON, stop them on Ctrl-C or SIGTERM")
    start.add_argument("--count", type=int, default=1)
    start.add_argument("--bin-dir", help="server bin directory (default: the newest installed)")
    args = parser.parse_args(argv)
    interrupt_on_sigterm()
    try:
        clusters = [PgCluster(args.bin_dir).start() for dummy in range(args.count)]
        print(json.dumps([cluster.info() for cluster in clusters], indent=2), flush=True)
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all()
    return 0


if __name__ == "__main__":
    sys.exit(main())
