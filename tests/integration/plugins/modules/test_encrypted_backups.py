# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Encrypted backups (age) through real ansible-playbook runs: every mode on both engines, wrong and
missing keys, damaged files, and interoperability with the stock age CLI.

Starting ansible-playbook costs seconds, so each engine runs three plays only, shared by its tests
(module-scoped fixtures): create every kind of backup; then everything that must fail or change
nothing (wrong keys, check mode, damaged files), after which the data is compared with a snapshot;
then the real restores. Passphrases use work factor 10 (a few ms); only age's own files pay 18.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils import age
from archives import flip_byte, mendix_snapshot, truncate
from datasets import damage_pg, files_snapshot, pg_snapshot, sqlite_snapshot
from playbook import run_play
from test_age_cli import PASSPHRASE as CLI_PASSPHRASE
from test_age_cli import run, run_in_terminal
from test_postgresql_environment import databases, new_env
from test_sqlite_environment import damage, make_sqlite_app

# Random-looking on purpose: Ansible masks a no_log value wherever it appears in the output, so a
# secret that is also a word of a message would hide that word from the assertions.
PASSPHRASE = "tq4-Vhm8-pLz2-wR9c"
WRONG_PASSPHRASE = "xY7-Kq2m-dF5s-oP0b"
SQLITE_PASSWORD = "sq-N3k7-Qd81-zT6v"
CHANGED_PASSWORD = "sq-Bv4e-Wm20-hL9a"
WORK_FACTOR = 10
MODES = ["passphrase", "database_password", "identity", "identity_file"]
AGE_INTRO = b"age-encryption.org/v1\n"
DAMAGES = ["header-mac", "header-garbage", "payload-last-chunk", "truncated"]
# Every module run costs about a second: the paths shared by all modes are tried in a few of them only.
CHECKED_WRONG = ("passphrase", "identity_file")  # a wrong key is also tried in check mode
CHECKED_RIGHT = ("database_password", "identity")  # the right key is tried in check mode first
REPEATED = ("passphrase", "identity")  # restored twice: the second run changes nothing


# --- keys, options, plays --------------------------------------------------------------------------

def write_identity_file(path, identity):
    """An identity file as age-keygen writes it."""
    path.write_text("# created: 2026-01-01T00:00:00Z\n# public key: %s\n%s\n"
                    % (age.identity_to_recipient(identity), identity))
    os.chmod(path, 0o600)
    return str(path)


class Keys:
    """Two recipients (operations and break-glass, as docs/encryption.md advises) and a key that opens nothing."""

    def __init__(self, directory):
        self.ops, self.ops_public = age.generate_x25519_identity()
        self.glass, self.glass_public = age.generate_x25519_identity()
        self.stranger = age.generate_x25519_identity()[0]
        self.glass_file = write_identity_file(directory / "glass.txt", self.glass)
        self.stranger_file = write_identity_file(directory / "stranger.txt", self.stranger)
        self.recipients = [self.ops_public, self.glass_public]
        self.secrets = [self.ops, self.glass, self.stranger]


def create_args(mode, keys):
    """backup_create options of each mode; half of them gzip-compressed."""
    if mode == "passphrase":
        return {"compression": "gzip",
                "encryption": {"mode": "passphrase", "passphrase": PASSPHRASE, "work_factor": WORK_FACTOR}}
    if mode == "database_password":
        return {"encryption": {"mode": "database_password", "work_factor": WORK_FACTOR}}
    return {"compression": "gzip" if mode == "identity_file" else "none",
            "encryption": {"mode": "recipients", "recipients": keys.recipients}}


def restore_key(mode, keys, right=True):
    """backup_restore options that open (or, right=False, do not open) a backup of ``mode``."""
    if mode == "passphrase":
        return {"encryption": {"passphrase": PASSPHRASE if right else WRONG_PASSPHRASE}}
    if mode == "database_password":
        return {"encryption": {"mode": "database_password"}}
    if mode == "identity":
        # Each recipient opens the backup alone: the first key here, the second one's file below.
        return {"encryption": {"identity": keys.ops if right else keys.stranger}}
    return {"encryption": {"identity_file": keys.glass_file if right else keys.stranger_file}}


def expected_suffix(mode):
    return ".tar.gz.age" if mode in ("passphrase", "identity_file") else ".tar.age"


class Play:
    """Tasks for one ansible-playbook run, each result known by the task's name."""

    def __init__(self):
        self.tasks = []

    def add(self, name, module, args, check=False):
        task = {"name": name, "lifeboat.backup." + module: args}
        if check:
            task["check_mode"] = True
        self.tasks.append(task)

    def run(self, **options):
        results, process = run_play(self.tasks, **options)
        return dict(zip([t["name"] for t in self.tasks], results)), process


def check_encrypted_entry(result, mode, keys, secrets):
    """The archive is an age file; its catalog entry names the mode and public keys, never a secret."""
    assert result["changed"] is True and not result.get("failed"), (mode, result)
    path = result["backup"]["path"]
    assert path.endswith(result["backup"]["id"] + expected_suffix(mode)), (mode, path)
    assert oct(os.stat(path).st_mode & 0o777) == "0o600"
    with open(path, "rb") as handle:
        raw = handle.read()
        handle.seek(0)
        header = age.read_header(handle)
    assert raw.startswith(AGE_INTRO), (mode, path)
    assert b"lifeboat.json" not in raw and b"SQLite format 3" not in raw and b"PGDMP" not in raw
    recipients = keys.recipients if mode in ("identity", "identity_file") else []
    if recipients:
        assert header["stanzas"] == ["X25519", "X25519"] and not header["passphrase"], header
    else:
        assert header["stanzas"] == ["scrypt"] and header["work_factor"] == WORK_FACTOR, header
    entry_path = os.path.join(os.path.dirname(path), result["backup"]["id"] + ".json")
    with open(entry_path) as handle:
        text = handle.read()
    entry = json.loads(text)
    assert entry["encryption"] == {"mode": "recipients" if recipients else mode, "recipients": recipients}, entry
    assert entry["file"] == os.path.basename(path) and entry["sha256"] == hashlib.sha256(raw).hexdigest()
    for secret in secrets:
        assert secret not in text, "a secret is in the catalog entry %s" % entry_path


def assert_no_secret(secrets, *texts):
    for secret in secrets:
        for text in texts:
            assert secret not in text, "a secret leaked into the output"


def decrypt_failure(result):
    assert result.get("failed") is True, result
    assert "wrong passphrase or key" in result["msg"] and "Traceback" not in result["msg"], result
    return result["msg"]


# --- damaged files ---------------------------------------------------------------------------------

def damaged_copies(path, directory):
    """Copies of an age file each damaged one way: header, payload, truncation."""
    size = os.path.getsize(path)
    with open(path, "rb") as handle:
        head = handle.read(4096)
    # The header ends with '--- <MAC>'; its first character, for a valid base64 one that does not match.
    mac_offset = head.index(b"\n--- ") + 5
    mac_char = head[mac_offset:mac_offset + 1]
    copies = {}
    for kind in DAMAGES:
        copy = copies[kind] = os.path.join(directory, kind + ".tar.gz.age")
        shutil.copy(path, copy)
        if kind == "header-mac":
            # Another valid base64 character: the header still parses, its HMAC no longer matches.
            with open(copy, "r+b") as handle:
                handle.seek(mac_offset)
                handle.write(b"B" if mac_char == b"A" else b"A")
        elif kind == "header-garbage":
            flip_byte(copy, len(AGE_INTRO) + 4)
        elif kind == "payload-last-chunk":
            flip_byte(copy, size - 100)
        else:
            truncate(copy, keep=0.9)
    return copies


# --- SQLite ----------------------------------------------------------------------------------------

def sqlite_state(env):
    return sqlite_snapshot(env["path"]), files_snapshot(env["files_path"])


def sqlite_leftovers(env):
    """Staging copies next to the data and temporary files in the catalog."""
    found = [p for p in os.listdir(os.path.dirname(env["path"])) if ".lb_stage" in p]
    tmp = os.path.join(env["catalog"], env["environment"], ".tmp")
    if os.path.isdir(tmp):
        found += [os.path.join(tmp, p) for p in os.listdir(tmp)]
    return found


@pytest.fixture(scope="module")
def sqlite_run(tmp_path_factory):
    """Four SQLite environments, one per mode, through the three plays; what each test checks."""
    root = tmp_path_factory.mktemp("sqlite")
    keys = Keys(root)
    envs = {}
    for mode in MODES:
        env = envs[mode] = make_sqlite_app(root / mode)
        env["environment"] = "wiki-" + mode.replace("_", "-")
        if mode == "database_password":
            env["login_password"] = SQLITE_PASSWORD
    # Several 64 KiB chunks: damage near the end lets the first ones through, so a restore of a damaged
    # copy has half built its staging copies when it fails.
    with open(os.path.join(envs["passphrase"]["files_path"], "big.bin"), "wb") as handle:
        handle.write(os.urandom(5 * age.CHUNK_SIZE))
    run = {"keys": keys, "envs": envs, "original": {m: sqlite_state(e) for m, e in envs.items()}}

    play = Play()
    play.add("plan", "backup_create", dict(envs["passphrase"], **create_args("passphrase", keys)), check=True)
    for mode in MODES:
        play.add("create " + mode, "backup_create", dict(envs[mode], **create_args(mode, keys)))
    no_password = dict(envs["identity"], encryption={"mode": "database_password"})
    play.add("create without password", "backup_create", no_password)
    play.add("plan without password", "backup_create", no_password, check=True)
    bad_recipient = dict(envs["identity"], encryption={"mode": "recipients", "recipients": ["age1nope"]})
    play.add("create bad recipient", "backup_create", bad_recipient)
    play.add("create bad work factor", "backup_create", dict(envs["identity"], encryption={
        "mode": "passphrase", "passphrase": PASSPHRASE, "work_factor": 40}))
    # Verbose enough to print every module's arguments: the secrets must still not show.
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ANSIBLE_VERBOSITY", "3")
        run["created"], run["create_process"] = play.run()
    run["after_create_leftovers"] = sqlite_leftovers(envs["identity"])

    for env in envs.values():
        damage(env)
    run["damaged"] = {m: sqlite_state(e) for m, e in envs.items()}
    copies = damaged_copies(run["created"]["create passphrase"]["backup"]["path"], str(root))

    # Everything here must fail or, in check mode, change nothing.
    play = Play()
    for mode in MODES:
        wrong = dict(envs[mode], **restore_key(mode, keys, right=False))
        if mode == "database_password":
            wrong["login_password"] = CHANGED_PASSWORD  # the password changed after the backup
        backup = run["created"]["create " + mode]["backup"]["id"]
        if mode in CHECKED_WRONG:
            play.add("wrong check " + mode, "backup_restore", dict(wrong, backup=backup), check=True)
        play.add("wrong " + mode, "backup_restore", dict(wrong, backup=backup))
        if mode in CHECKED_RIGHT:
            play.add("right check " + mode, "backup_restore", dict(envs[mode], backup=backup,
                                                                   **restore_key(mode, keys)), check=True)
    identity_backup = run["created"]["create identity"]["backup"]["id"]
    play.add("restore without password", "backup_restore", dict(
        envs["database_password"], login_password=None, encryption={"mode": "database_password"}))
    play.add("restore without key", "backup_restore", dict(envs["identity"], backup=identity_backup))
    play.add("passphrase for keys", "backup_restore", dict(envs["identity"], backup=identity_backup,
                                                           encryption={"passphrase": WRONG_PASSPHRASE}))
    key = restore_key("passphrase", keys)
    for kind, src in copies.items():
        play.add("damaged " + kind, "backup_restore", dict(envs["passphrase"], src=src, **key))
    play.add("damaged check header-mac", "backup_restore", dict(envs["passphrase"], src=copies["header-mac"], **key),
             check=True)
    run["failed"], run["fail_process"] = play.run(diff=True)
    run["after_failures"] = {m: sqlite_state(e) for m, e in envs.items()}
    run["after_failures_leftovers"] = {m: sqlite_leftovers(e) for m, e in envs.items()}

    play = Play()
    for mode in MODES:
        task = dict(envs[mode], backup=run["created"]["create " + mode]["backup"]["id"], **restore_key(mode, keys))
        play.add("restore " + mode, "backup_restore", task)
        if mode in REPEATED:
            play.add("again " + mode, "backup_restore", task)
    run["restored"] = play.run()[0]
    run["after_restore"] = {m: sqlite_state(e) for m, e in envs.items()}
    return run


def test_sqlite_backups_are_age_files_and_their_entries_hold_no_secret(sqlite_run):
    keys, created = sqlite_run["keys"], sqlite_run["created"]
    secrets = [PASSPHRASE, SQLITE_PASSWORD] + keys.secrets
    for mode in MODES:
        check_encrypted_entry(created["create " + mode], mode, keys, secrets)
    process = sqlite_run["create_process"]
    assert "VALUE_SPECIFIED_IN_NO_LOG_PARAMETER" in process.stdout, "the verbose run must show the arguments"
    assert_no_secret(secrets, process.stdout, process.stderr, json.dumps(created))
    assert created["plan"]["changed"] is True and not created["plan"].get("failed"), created["plan"]
    env = sqlite_run["envs"]["passphrase"]
    archives = [p for p in os.listdir(os.path.join(env["catalog"], env["environment"])) if p.endswith(".age")]
    assert len(archives) == 1, "only the real run wrote an archive, not check mode"


def test_sqlite_round_trip_in_every_mode(sqlite_run):
    restored = sqlite_run["restored"]
    for mode in MODES:
        assert sqlite_run["damaged"][mode] != sqlite_run["original"][mode], "the damage must show"
        result = restored["restore " + mode]
        assert result["changed"] is True and not result.get("failed"), (mode, result)
        assert result["restored"]["id"] == sqlite_run["created"]["create " + mode]["backup"]["id"]
        if mode in REPEATED:
            assert restored["again " + mode]["changed"] is False, (mode, restored["again " + mode])
        assert sqlite_run["after_restore"][mode] == sqlite_run["original"][mode], mode
        # What the restore replaced is the damaged data: the failed runs before it had changed nothing.
        assert sqlite_snapshot(result["previous"]["databases"][0]) == sqlite_run["damaged"][mode][0], mode
        assert files_snapshot(result["previous"]["files"]) == sqlite_run["damaged"][mode][1], mode
        assert sqlite_leftovers(sqlite_run["envs"][mode]) == [], mode


def test_sqlite_wrong_key_fails_before_anything_is_touched(sqlite_run):
    failed = sqlite_run["failed"]
    for mode in MODES:
        message = decrypt_failure(failed["wrong " + mode])
        expected = "protected by a passphrase" if mode in ("passphrase", "database_password") else "2 X25519 keys"
        assert expected in message, (mode, message)
    for mode in CHECKED_WRONG:
        assert decrypt_failure(failed["wrong check " + mode]) == failed["wrong " + mode]["msg"], "check mode alike"
    for mode in CHECKED_RIGHT:
        planned = failed["right check " + mode]
        assert planned["changed"] is True and not planned.get("failed"), (mode, planned)
        assert planned["diff"]["after"]["backup"] == sqlite_run["created"]["create " + mode]["backup"]["id"]
    secrets = [PASSPHRASE, SQLITE_PASSWORD, CHANGED_PASSWORD, WRONG_PASSPHRASE] + sqlite_run["keys"].secrets
    assert_no_secret(secrets, sqlite_run["fail_process"].stdout, json.dumps(failed))
    assert sqlite_run["after_failures"] == sqlite_run["damaged"]
    assert sqlite_run["after_failures_leftovers"] == {mode: [] for mode in MODES}


def test_sqlite_missing_or_unusable_keys_are_clear_errors(sqlite_run):
    created, failed = sqlite_run["created"], sqlite_run["failed"]
    cases = [
        (created["create without password"], "database_password needs login_password"),
        (failed["restore without password"], "database_password needs login_password"),
        (failed["restore without key"], "is encrypted (age); give encryption.passphrase, encryption.identity"),
        (failed["passphrase for keys"], "give the matching secret key (AGE-SECRET-KEY-1...)"),
        (created["create bad recipient"], "invalid age recipient 'age1nope'"),
        (created["create bad work factor"], "invalid work factor 40"),
    ]
    for result, message in cases:
        assert result.get("failed") is True and message in result["msg"], (message, result)
        assert "Traceback" not in result["msg"]
    assert "wrong passphrase or key" in failed["passphrase for keys"]["msg"]
    env = sqlite_run["envs"]["identity"]
    entries = [p for p in os.listdir(os.path.join(env["catalog"], env["environment"])) if p[0].isdigit()]
    assert len(entries) == 2, "the failed runs added no backup (one archive and its entry)"
    assert sqlite_run["after_failures"]["identity"] == sqlite_run["damaged"]["identity"]


def test_sqlite_check_mode_create_refuses_what_the_real_run_refuses(sqlite_run):
    planned, real = sqlite_run["created"]["plan without password"], sqlite_run["created"]["create without password"]
    assert planned.get("failed") is True and planned.get("msg") == real["msg"], planned


def test_sqlite_failed_backup_leaves_no_temporary_file(sqlite_run):
    assert sqlite_run["created"]["create bad work factor"].get("failed") is True
    assert sqlite_run["after_create_leftovers"] == []


def test_sqlite_damaged_encrypted_archives_fail_and_change_nothing(sqlite_run):
    failed = sqlite_run["failed"]
    names = ["damaged " + kind for kind in DAMAGES] + ["damaged check header-mac"]
    for name in names:
        result = failed[name]
        assert result.get("failed") is True, (name, result)
        assert result["msg"] and "Traceback" not in result["msg"], (name, result)
        assert "wrong passphrase" not in result["msg"], (name, result["msg"])
    assert "integrity check (HMAC)" in failed["damaged header-mac"]["msg"], failed["damaged header-mac"]
    assert failed["damaged check header-mac"]["msg"] == failed["damaged header-mac"]["msg"], "check mode alike"
    assert "malformed" in failed["damaged header-garbage"]["msg"], failed["damaged header-garbage"]
    assert "fails authentication" in failed["damaged payload-last-chunk"]["msg"], failed["damaged payload-last-chunk"]
    assert "truncated" in failed["damaged truncated"]["msg"], failed["damaged truncated"]
    assert sqlite_run["after_failures"]["passphrase"] == sqlite_run["damaged"]["passphrase"]
    assert sqlite_run["after_failures_leftovers"]["passphrase"] == []


# --- PostgreSQL ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pg_run(pg_cluster, tmp_path_factory):
    """Four PostgreSQL environments, one per mode, over TCP with the cluster's password (database_password
    encrypts with it), through the three plays."""
    root = tmp_path_factory.mktemp("postgresql")
    keys = Keys(root)
    envs = {mode: new_env(pg_cluster, root, tcp=True)[0] for mode in MODES}

    def state(env):
        return pg_snapshot(pg_cluster, env["database"]), files_snapshot(env["files_path"])

    def staged():
        return {mode: databases(pg_cluster, env["database"] + "\\_\\_lb\\_stage%")
                + [p for p in [env["files_path"] + ".lb_stage"] if os.path.lexists(p)] for mode, env in envs.items()}

    run = {"keys": keys, "envs": envs, "original": {m: state(e) for m, e in envs.items()}}
    play = Play()
    for mode in MODES:
        play.add("create " + mode, "backup_create", dict(envs[mode], **create_args(mode, keys)))
    run["created"], run["create_process"] = play.run()

    for env in envs.values():
        damage_pg(pg_cluster, env["database"])
        os.unlink(os.path.join(env["files_path"], "top.txt"))
    run["damaged"] = {m: state(e) for m, e in envs.items()}
    # Found only once the payload is read, after the first chunks went into the staging copies.
    tampered = str(root / "tampered.tar.gz.age")
    shutil.copy(run["created"]["create passphrase"]["backup"]["path"], tampered)
    flip_byte(tampered, os.path.getsize(tampered) - 20)

    play = Play()
    for mode in MODES:
        wrong = dict(envs[mode], **restore_key(mode, keys, right=False))
        if mode == "database_password":
            wrong["encryption"] = {"passphrase": WRONG_PASSPHRASE}
        if mode == "identity":
            play.add("wrong check " + mode, "backup_restore", wrong, check=True)
        play.add("wrong " + mode, "backup_restore", wrong)
        if mode == "database_password":
            play.add("right check " + mode, "backup_restore", dict(envs[mode], **restore_key(mode, keys)), check=True)
    play.add("tampered", "backup_restore", dict(envs["passphrase"], src=tampered, **restore_key("passphrase", keys)))
    run["failed"], run["fail_process"] = play.run()
    run["after_failures"] = {m: state(e) for m, e in envs.items()}
    run["after_failures_staged"] = staged()

    play = Play()
    for mode in MODES:
        task = dict(envs[mode], **restore_key(mode, keys))
        play.add("restore " + mode, "backup_restore", task)
        if mode == "database_password":
            play.add("again " + mode, "backup_restore", task)
    run["restored"] = play.run()[0]
    run["after_restore"] = {m: state(e) for m, e in envs.items()}
    run["after_restore_staged"] = staged()
    return run


@pytest.mark.postgres
def test_postgresql_round_trip_in_every_mode(pg_run, pg_cluster):
    keys = pg_run["keys"]
    secrets = [PASSPHRASE, pg_cluster.password] + keys.secrets
    for mode in MODES:
        check_encrypted_entry(pg_run["created"]["create " + mode], mode, keys, secrets)
    assert_no_secret(secrets, pg_run["create_process"].stdout, json.dumps(pg_run["created"]))
    restored = pg_run["restored"]
    for mode in MODES:
        assert pg_run["damaged"][mode] != pg_run["original"][mode], "the damage must show"
        result = restored["restore " + mode]
        assert result["changed"] is True and not result.get("failed"), (mode, result)
        assert pg_run["after_restore"][mode] == pg_run["original"][mode], mode
        previous = result["previous"]["databases"]
        assert len(previous) == 1 and previous[0].startswith(pg_run["envs"][mode]["database"] + "__lb_prev_")
    assert restored["again database_password"]["changed"] is False, restored["again database_password"]
    assert pg_run["after_restore_staged"] == {mode: [] for mode in MODES}


@pytest.mark.postgres
def test_postgresql_wrong_key_or_damage_touches_nothing(pg_run, pg_cluster):
    failed = pg_run["failed"]
    for mode in MODES:
        decrypt_failure(failed["wrong " + mode])
    assert decrypt_failure(failed["wrong check identity"]) == failed["wrong identity"]["msg"], "check mode alike"
    planned = failed["right check database_password"]
    assert planned["changed"] is True and not planned.get("failed"), planned
    assert failed["tampered"].get("failed") and "fails authentication" in failed["tampered"]["msg"], failed["tampered"]
    secrets = [PASSPHRASE, WRONG_PASSPHRASE, pg_cluster.password] + pg_run["keys"].secrets
    assert_no_secret(secrets, pg_run["fail_process"].stdout, json.dumps(failed))
    assert pg_run["after_failures"] == pg_run["damaged"]
    assert pg_run["after_failures_staged"] == {mode: [] for mode in MODES}


# --- the stock age CLI -----------------------------------------------------------------------------

@pytest.mark.age
@pytest.mark.skipif(shutil.which("age") is None or shutil.which("age-keygen") is None,
                    reason="the age CLI is not installed (apt-get install age): interoperability is not tested")
def test_age_cli_reads_lifeboat_backups_and_lifeboat_restores_age_files(tmp_path):
    key_file = tmp_path / "key.txt"
    run("age-keygen", "-o", str(key_file))
    recipient = run("age-keygen", "-y", str(key_file)).decode().strip()
    other = age.generate_x25519_identity()[1]
    env = make_sqlite_app(tmp_path / "source")
    original = sqlite_state(env)
    play = Play()
    play.add("to key", "backup_create", dict(env, encryption={"mode": "recipients", "recipients": [other, recipient]}))
    play.add("to passphrase", "backup_create", dict(env, compression="gzip", encryption={
        "mode": "passphrase", "passphrase": CLI_PASSPHRASE, "work_factor": WORK_FACTOR}))
    play.add("plain", "backup_create", dict(env, compression="gzip"))
    created = play.run()[0]
    assert all(r["changed"] and not r.get("failed") for r in created.values()), created
    to_key, to_passphrase, plain = (created[name]["backup"] for name in ("to key", "to passphrase", "plain"))

    # age -d -i: a plain tar with the manifest and the database the catalog describes.
    tar_bytes = run("age", "-d", "-i", str(key_file), to_key["path"])
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("lifeboat.json"))
        dump = tar.extractfile("db/db.backup").read()
    assert "lifeboat.json" in names and "db/db.backup" in names, names
    assert manifest["backup_id"] == to_key["id"]
    assert hashlib.sha256(dump).hexdigest() == to_key["databases"][0]["sha256"]
    dump_path = tmp_path / "db.backup"
    dump_path.write_bytes(dump)
    assert sqlite_snapshot(str(dump_path)) == original[0]

    # age -d with the passphrase typed on a terminal.
    run_in_terminal(["age", "-d", "-o", str(tmp_path / "out.tar.gz"), to_passphrase["path"]], prompts=1)
    with tarfile.open(tmp_path / "out.tar.gz", "r:gz") as tar:
        assert json.load(tar.extractfile("lifeboat.json"))["backup_id"] == to_passphrase["id"]
        assert "db/db.backup" in tar.getnames()

    # The other way: a plain Lifeboat archive encrypted by age -r, and a Mendix snapshot by age -p (age's
    # own work factor), each restored by backup_restore with the matching key.
    plain_age = str(tmp_path / "plain.tar.gz.age")
    run("age", "-r", recipient, "-o", plain_age, plain["path"])
    snapshot = str(tmp_path / "snapshot.tar.gz")
    mendix_snapshot(snapshot, str(dump_path), {"a/b.txt": b"from the snapshot"})
    snapshot_age = str(tmp_path / "snapshot.tar.gz.age")
    run_in_terminal(["age", "-p", "-o", snapshot_age, snapshot], prompts=2)
    mendix_env = dict(make_sqlite_app(tmp_path / "mendix"), environment="mendix")
    damage(env)
    damage(mendix_env)
    assert sqlite_state(env) != original and sqlite_snapshot(mendix_env["path"]) != original[0]
    play = Play()
    play.add("age -r file", "backup_restore", dict(env, src=plain_age, encryption={"identity_file": str(key_file)}))
    play.add("age -p file", "backup_restore", dict(mendix_env, src=snapshot_age,
                                                   encryption={"passphrase": CLI_PASSPHRASE}))
    restored = play.run()[0]
    assert all(r["changed"] and not r.get("failed") for r in restored.values()), restored
    assert restored["age -r file"]["restored"]["src"] == plain_age
    assert sqlite_state(env) == original
    assert sqlite_snapshot(mendix_env["path"]) == original[0]
    assert files_snapshot(mendix_env["files_path"]) == {
        "a/": None, "a/b.txt": hashlib.sha256(b"from the snapshot").hexdigest()}
