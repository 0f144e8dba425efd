# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A tiny application for tests: it holds one database connection and answers ``GET /health``.

    fleet_app.py start --pidfile P --port N --engine postgresql --database DB   (PGHOST, PGPORT, PGUSER,
                                                                                 PGPASSWORD or PGPASSFILE)
    fleet_app.py start --pidfile P --port N --engine sqlite --path FILE
    fleet_app.py stop --pidfile P          exit 0, also when it was not running
    fleet_app.py status --pidfile P        exit 0 while running, 3 otherwise

``FleetApp`` (below) is the harness the tests use: it starts and stops the app and gives the argv lists of
an inventory entry's ``app: {start, stop, status}``. Needs only the standard library (and psycopg for
PostgreSQL).
"""

from __future__ import annotations

import argparse
import atexit
import http.server
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.request

SCRIPT = os.path.abspath(__file__)
START_TIMEOUT = 20.0
STOP_TIMEOUT = 20.0
NOT_RUNNING = 3


# ------------------------------------------------------------------------------------------ the app


class Database:
    """The app's one connection; reconnects when the connection died or the file was replaced."""

    def __init__(self, engine, database=None, path=None):
        self.engine = engine
        self.database = database
        self.path = path
        self.conn = None
        self.inode = None

    def connect(self):
        self.close()
        if self.engine == "postgresql":
            import psycopg  # only the PostgreSQL app needs it

            self.conn = psycopg.connect(dbname=self.database, application_name="fleet_app", autocommit=True,
                                        connect_timeout=5)
        else:
            if not os.path.exists(self.path):
                raise OSError("SQLite database %s does not exist" % self.path)
            self.inode = os.stat(self.path).st_ino
            self.conn = sqlite3.connect(self.path, timeout=5, check_same_thread=False)

    def close(self):
        if self.conn is not None:
            try:
                self.conn.close()
            except Exception:  # noqa: BLE001 - a dead connection may fail to close
                pass
            self.conn = None

    def _query(self):
        if self.engine == "postgresql":
            self.conn.execute("SELECT 1").fetchone()
            self.conn.execute("SELECT count(*) FROM pg_class WHERE relnamespace = 'public'::regnamespace").fetchone()
        else:
            self.conn.execute("SELECT 1").fetchone()
            self.conn.execute("SELECT count(*) FROM sqlite_master").fetchone()

    def healthy(self):
        try:
            if self.conn is None or (self.engine == "sqlite" and os.stat(self.path).st_ino != self.inode):
                self.connect()
            self._query()
            return True
        except Exception as first:  # noqa: BLE001 - any failure means: reconnect once, then report it
            try:
                self.connect()
                self._query()
                return True
            except Exception as exc:  # noqa: BLE001
                print("health check failed: %s; after reconnecting: %s" % (first, exc), flush=True)
                self.close()
                return False


def _handler(database):
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - the name http.server calls
            if self.path != "/health":
                self._reply(404, "not found\n")
            elif database.healthy():
                self._reply(200, "ok\n")
            else:
                self._reply(500, "database unavailable\n")

        def _reply(self, status, text):
            body = text.encode("utf-8")
            self.send_response(status)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - the signature of http.server
            print("%s %s" % (self.address_string(), format % args), flush=True)

    return Handler


def _serve(args):
    """Runs in the daemon: pid file, connection, HTTP server until SIGTERM."""
    database = Database(args.engine, args.database, args.path)
    try:
        database.connect()
    except Exception as exc:  # noqa: BLE001 - the app runs and reports unhealthy until the database is back
        print("cannot connect yet: %s" % exc, flush=True)
    server = http.server.HTTPServer(("127.0.0.1", args.port), _handler(database))

    def terminate(signum, frame):
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, terminate)
    tmp = args.pidfile + ".tmp"
    with open(tmp, "w") as handle:
        handle.write("%d\n" % os.getpid())
    os.replace(tmp, args.pidfile)
    try:
        server.serve_forever(poll_interval=0.2)
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        database.close()
        if read_pid(args.pidfile) == os.getpid():
            os.unlink(args.pidfile)
        print("stopped", flush=True)


def _daemonize(args):
    """Double fork; returns in the parent only."""
    if os.fork() > 0:
        return
    os.setsid()
    if os.fork() > 0:
        os._exit(0)
    try:
        log = os.open(os.path.splitext(args.pidfile)[0] + ".log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.chdir("/")
        _serve(args)
    except BaseException as exc:  # noqa: BLE001 - the daemon must never return into the parent's code
        print("fleet_app failed: %r" % exc, flush=True)
        os._exit(1)
    os._exit(0)


def read_pid(pidfile):
    try:
        with open(pidfile) as handle:
            return int(handle.read().strip())
    except (OSError, ValueError):
        return None


def alive(pid):
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (our own unreaped child) is not running
        with open("/proc/%d/stat" % pid) as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def port_answers(port):
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def cmd_status(args):
    return 0 if alive(read_pid(args.pidfile)) else NOT_RUNNING


def cmd_start(args):
    if alive(read_pid(args.pidfile)):
        print("already running")
        return 0
    if args.engine == "postgresql" and not args.database or args.engine == "sqlite" and not args.path:
        print("--database (postgresql) or --path (sqlite) is required", file=sys.stderr)
        return 2
    if port_answers(args.port):
        print("port %d is taken by another program" % args.port, file=sys.stderr)
        return 1
    _daemonize(args)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if alive(read_pid(args.pidfile)) and port_answers(args.port):
            print("started")
            return 0
        time.sleep(0.1)
    print("the app did not come up within %ds; see its log next to %s" % (START_TIMEOUT, args.pidfile),
          file=sys.stderr)
    return 1


def cmd_stop(args):
    pid = read_pid(args.pidfile)
    if not alive(pid):
        if os.path.exists(args.pidfile):
            os.unlink(args.pidfile)
        print("not running")
        return 0
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + STOP_TIMEOUT
    while alive(pid):
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            time.sleep(0.5)
            break
        time.sleep(0.1)
    if os.path.exists(args.pidfile):
        os.unlink(args.pidfile)
    print("stopped")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(description="A tiny application for Lifeboat's tests.")
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("start", "stop", "status"):
        sub = commands.add_parser(name)
        sub.add_argument("--pidfile", required=True)
        if name == "start":
            sub.add_argument("--port", type=int, required=True)
            sub.add_argument("--engine", choices=["postgresql", "sqlite"], default="postgresql")
            sub.add_argument("--database")
            sub.add_argument("--path")
    args = parser.parse_args(argv)
    args.pidfile = os.path.abspath(args.pidfile)
    return {"start": cmd_start, "stop": cmd_stop, "status": cmd_status}[args.command](args)


# -------------------------------------------------------------------------------------- the harness


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class FleetApp:
    """The app of one test environment in ``workdir``; stopped at exit whatever happens.

    PostgreSQL: ``pg`` holds libpq variables (PGHOST, PGPORT, PGUSER, PGPASSWORD); the password goes into a
    passfile in ``workdir`` so that the commands carry no secret.
    """

    def __init__(self, workdir, engine="sqlite", database=None, path=None, port=None, pg=None, python=None):
        self.workdir = os.path.abspath(str(workdir))
        os.makedirs(self.workdir, exist_ok=True)
        self.engine = engine
        self.database = database
        self.path = str(path) if path else None
        self.port = port or free_port()
        self.pidfile = os.path.join(self.workdir, "fleet_app.pid")
        self.python = python or sys.executable
        self.env = {}
        pg = dict(pg or {})
        password = pg.pop("PGPASSWORD", None)
        if password is not None:
            passfile = os.path.join(self.workdir, "pgpass")
            with open(passfile, "w") as handle:
                handle.write("*:*:*:*:%s\n" % password.replace("\\", "\\\\").replace(":", "\\:"))
            os.chmod(passfile, 0o600)
            pg["PGPASSFILE"] = passfile
        self.env.update({key: str(value) for key, value in pg.items() if value is not None})
        atexit.register(self.stop)

    def _argv(self, command):
        env = ["env"] + ["%s=%s" % item for item in sorted(self.env.items())] if self.env else []
        argv = env + [self.python, SCRIPT, command, "--pidfile", self.pidfile]
        if command == "start":
            argv += ["--port", str(self.port), "--engine", self.engine]
            argv += ["--database", self.database] if self.engine == "postgresql" else ["--path", self.path]
        return argv

    def commands(self):
        """The ``app`` of an inventory entry: ``{start, stop, status}`` argv lists."""
        return {name: self._argv(name) for name in ("start", "stop", "status")}

    def health_url(self):
        return "http://127.0.0.1:%d/health" % self.port

    def _run(self, command):
        return subprocess.run(self._argv(command), capture_output=True, text=True, timeout=60, check=False)

    def start(self):
        done = self._run("start")
        if done.returncode != 0:
            raise RuntimeError("fleet_app start failed: %s%s%s" % (done.stdout, done.stderr, self.log()))
        return self

    def stop(self):
        self._run("stop")

    def running(self):
        return self._run("status").returncode == 0

    def healthy(self):
        try:
            with urllib.request.urlopen(self.health_url(), timeout=10) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def log(self):
        try:
            with open(os.path.splitext(self.pidfile)[0] + ".log") as handle:
                return handle.read()
        except OSError:
            return ""


if __name__ == "__main__":
    sys.exit(main())
