# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A throw-away sshd for tests: a real SSH connection to this machine, never the system's service.

It listens on a loopback address of its own (127.0.0.2) and a free port, with its own host key, config and
client key in a temporary directory, and accepts keys only. ``sshd_server`` is a pytest fixture (import it
into a test module); ``unprivileged_user`` adds a user (lifeboat-ssh-<hex>) that may become root with sudo,
as on a real node.

    python tests/integration/sshd.py

starts one and prints how to connect, until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import pytest

SSHD = "/usr/sbin/sshd"
MEASURED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "measured.py")
ADDRESS = "127.0.0.2"
USER = "lifeboat-ssh"
SUDOERS_PREFIX = "/etc/sudoers.d/lifeboat-test"
PRIVSEP_DIR = "/run/sshd"  # sshd refuses to start without it
_CONFIG = """\
ListenAddress {address}:{port}
HostKey {work}/host_ed25519_key
PidFile {work}/sshd.pid
AuthorizedKeysFile {work}/authorized_keys/%u
AuthenticationMethods publickey
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
UsePAM no
# The key files live below /tmp, which is world-writable.
StrictModes no
Subsystem sftp internal-sftp
AllowTcpForwarding no
X11Forwarding no
PrintMotd no
MaxStartups 100
MaxSessions 50
LogLevel VERBOSE
"""


def missing():
    """Why SSH tests cannot run here, or None."""
    if not os.access(SSHD, os.X_OK):
        return "%s is missing: install openssh-server (make test does)" % SSHD
    if shutil.which("ssh") is None or shutil.which("ssh-keygen") is None:
        return "the ssh client is missing: install openssh-client"
    if os.geteuid() != 0:
        return "starting sshd and adding a test user needs root"
    return None


def _free_port():
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((ADDRESS, 0))
        return probe.getsockname()[1]


class Sshd:
    def __init__(self, address=ADDRESS):
        self.address = address
        self.port = None
        self.work = None
        self.process = None
        self.client_key = None
        self.peak_rss = None

    def start(self):
        self.work = tempfile.mkdtemp(prefix="lifeboat-sshd-", dir="/tmp")
        # Users read their authorized_keys themselves; the private keys stay 0600.
        os.chmod(self.work, 0o755)
        os.mkdir(os.path.join(self.work, "authorized_keys"), 0o755)
        self.client_key = os.path.join(self.work, "client_ed25519_key")
        for path, comment in ((os.path.join(self.work, "host_ed25519_key"), "host"), (self.client_key, "client")):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "lifeboat-test-" + comment,
                            "-f", path], check=True)
        # Left in place afterwards: it is where the system's sshd expects it too.
        os.makedirs(PRIVSEP_DIR, 0o755, exist_ok=True)
        try:
            for attempt in range(5):  # another process may take the probed port first
                if self._launch():
                    return self
            raise RuntimeError("sshd did not start:\n%s" % self.log())
        except BaseException:
            self.stop()
            raise

    def _launch(self):
        self.port = _free_port()
        config = os.path.join(self.work, "sshd_config")
        with open(config, "w") as handle:
            handle.write(_CONFIG.format(address=self.address, port=self.port, work=self.work))
        subprocess.run([SSHD, "-t", "-f", config], check=True, capture_output=True)
        with open(os.path.join(self.work, "sshd.log"), "ab") as log:
            # Through measured.py: sshd started from this (big) process would count its size as sshd's peak.
            self.process = subprocess.Popen([sys.executable, MEASURED, os.path.join(self.work, "peak"), SSHD, "-D",
                                             "-e", "-f", config], stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                if probe.connect_ex((self.address, self.port)) == 0:
                    return True
            time.sleep(0.05)
        for pid in _children(self.process.pid):
            os.kill(pid, signal.SIGKILL)
        self.process.kill()
        self.process.wait()
        return False

    def _sessions(self):
        """Pids of the processes sshd (the child of measured.py) runs for open connections."""
        return [pid for sshd in _children(self.process.pid) for pid in _children(sshd)]

    def log(self):
        try:
            with open(os.path.join(self.work, "sshd.log"), errors="replace") as handle:
                return handle.read()[-4000:]
        except (OSError, TypeError):
            return ""

    def authorize(self, user):
        with open(self.client_key + ".pub") as handle:
            key = handle.read()
        path = os.path.join(self.work, "authorized_keys", user)
        with open(path, "w") as handle:
            handle.write(key)
        os.chmod(path, 0o644)

    def host_vars(self, user="root"):
        """Inventory variables of a host reached through this sshd as ``user``."""
        self.authorize(user)
        return {
            "ansible_connection": "ssh",
            "ansible_host": self.address,
            "ansible_port": self.port,
            "ansible_user": user,
            "ansible_ssh_private_key_file": self.client_key,
            "ansible_ssh_common_args": "-o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null "
                                       "-o GSSAPIAuthentication=no",
            # One connection per play, gone soon after it: stop() waits for its session to end.
            "ansible_ssh_args": "-o ControlMaster=auto -o ControlPersist=2s",
            "ansible_pipelining": True,
            "ansible_python_interpreter": sys.executable,
        }

    def stop(self):
        """Stop sshd; ``peak_rss`` is then the peak resident memory in bytes of the largest process it ever ran
        (sessions, shells, sudo, modules): wait4() reports the maximum over every descendant that was reaped."""
        if self.process is not None and self.process.returncode is None:
            # Sessions still open (a persistent master connection) end by themselves first, so that sshd reaps
            # them and counts them in peak_rss.
            deadline = time.monotonic() + 15
            while self._sessions() and time.monotonic() < deadline:
                time.sleep(0.1)
            self.process.terminate()  # measured.py passes it on to sshd
            try:
                self.process.wait(10)
                with open(os.path.join(self.work, "peak")) as handle:
                    self.peak_rss = int(handle.read())
            except subprocess.TimeoutExpired:
                for pid in _children(self.process.pid):
                    os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait()
        self.process = None
        if self.work:
            shutil.rmtree(self.work, ignore_errors=True)
            self.work = None


def _children(parent):
    found = []
    for pid in os.listdir("/proc"):
        try:
            with open("/proc/%s/stat" % pid) as handle:
                ppid = int(handle.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent:
            found.append(int(pid))
    return found


@pytest.fixture(scope="module")
def sshd_server():
    reason = missing()
    if reason:
        pytest.skip(reason)
    server = Sshd().start()
    yield server
    server.stop()


@contextlib.contextmanager
def sudo_user():
    """A new user without a password who may run anything as root with sudo; removed again afterwards.

    Its name is unique, so that test sessions running side by side never share (or delete) each other's.
    """
    if shutil.which("sudo") is None:
        pytest.skip("sudo is missing: install it to test become over SSH (apt-get install sudo)")
    name = "%s-%s" % (USER, secrets.token_hex(3))
    # '*' rather than a locked '!': sshd without PAM refuses locked accounts even with a key.
    subprocess.run(["useradd", "--create-home", "--shell", "/bin/sh", "--password", "*", name], check=True)
    sudoers = "%s-%s" % (SUDOERS_PREFIX, name)
    try:
        with open(os.open(sudoers, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o440), "w") as handle:
            handle.write("%s ALL=(ALL:ALL) NOPASSWD: ALL\n" % name)
        yield pwd.getpwnam(name)
    finally:
        if os.path.exists(sudoers):
            os.unlink(sudoers)
        # userdel refuses while a session of the user lingers (a persistent SSH connection ends within seconds).
        deadline = time.monotonic() + 20
        userdel = ["userdel", "--remove", name]
        while subprocess.run(userdel, capture_output=True, check=False).returncode not in (0, 6, 12):
            if time.monotonic() > deadline:
                print("lifeboat sshd: could not remove test user %s" % name, file=sys.stderr)
                break
            time.sleep(0.2)


@pytest.fixture(scope="module")
def unprivileged_user(sshd_server):
    with sudo_user() as entry:
        yield entry


def main():
    reason = missing()
    if reason:
        print(reason, file=sys.stderr)
        return 1
    server = Sshd().start()
    try:
        server.authorize("root")
        print("ssh -i %s -p %d -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null root@%s"
              % (server.client_key, server.port, server.address), flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        while True:
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
