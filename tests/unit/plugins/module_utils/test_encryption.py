# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The ``encryption`` option: its spec matches its documentation, and max_work_factor bounds what decrypting costs."""

from __future__ import annotations

import pytest
import yaml

from ansible_collections.lifeboat.backup.plugins.doc_fragments.encryption import ModuleDocFragment
from ansible_collections.lifeboat.backup.plugins.module_utils import age, encryption
from ansible_collections.lifeboat.backup.plugins.module_utils.common import LifeboatError

PASSPHRASE = "correct horse battery staple"


def test_spec_and_doc_fragment_list_the_same_suboptions_and_defaults():
    documented = yaml.safe_load(ModuleDocFragment.DOCUMENTATION)["options"]["encryption"]["suboptions"]
    spec = encryption.encryption_argument_spec()["options"]
    assert set(documented) == set(spec)
    for name, option in spec.items():
        assert documented[name].get("default") == option.get("default"), name
        assert documented[name]["type"] == option["type"], name
    assert spec["max_work_factor"]["default"] == 22 == age.MAX_WORK_FACTOR, "age's reference limit"


@pytest.mark.parametrize("settings,expected", [
    ({"passphrase": PASSPHRASE}, {"passphrase": PASSPHRASE, "max_work_factor": 22}),
    ({"passphrase": PASSPHRASE, "max_work_factor": None}, {"passphrase": PASSPHRASE, "max_work_factor": 22}),
    ({"passphrase": PASSPHRASE, "max_work_factor": 15}, {"passphrase": PASSPHRASE, "max_work_factor": 15}),
    ({"mode": "database_password", "max_work_factor": 24}, {"passphrase": "db-pw", "max_work_factor": 24}),
    ({"identity": "AGE-SECRET-KEY-1X", "max_work_factor": 15}, {"identities": ["AGE-SECRET-KEY-1X"]}),
])
def test_reader_options_carry_the_limit_with_a_passphrase(settings, expected):
    assert encryption.reader_options({"encryption": settings, "login_password": "db-pw"}) == expected


def test_reader_options_without_a_key_stay_none():
    assert encryption.reader_options({"encryption": {"mode": "none", "max_work_factor": 15}}) is None


@pytest.mark.parametrize("value", [9, 25, 64, "22"])
def test_max_work_factor_out_of_range_is_refused(value):
    with pytest.raises(LifeboatError, match=r"invalid encryption\.max_work_factor .*: use an integer from 10 to 24"):
        encryption.reader_options({"encryption": {"passphrase": PASSPHRASE, "max_work_factor": value}})


def test_decrypting_refuses_a_work_factor_above_max_work_factor(tmp_path, monkeypatch):
    plain = tmp_path / "plain"
    plain.write_bytes(b"archive bytes")
    sealed = str(tmp_path / "sealed.age")
    age.encrypt_file(str(plain), sealed, passphrase=PASSPHRASE, work_factor=12)
    with encryption.open_source(sealed, {"encryption": {"passphrase": PASSPHRASE}}) as stream:
        assert stream.read() == b"archive bytes", "the default limit (22) reads it"

    def no_scrypt(**kwargs):
        raise AssertionError("scrypt ran although the work factor is above the limit")

    monkeypatch.setattr(age, "Scrypt", no_scrypt)
    limited = {"encryption": {"passphrase": PASSPHRASE, "max_work_factor": 11}}
    with pytest.raises(LifeboatError, match=r"2\^12, above the accepted limit 2\^11; .*raise encryption\.max_work_fac"):
        with encryption.open_source(sealed, limited):
            pass
