# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Retention rules, checked against cases computed by hand (calendar at hand)."""

from __future__ import annotations

import datetime
import hashlib
import os
import random

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    new_backup_id,
    parse_isoformat,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.backup_prune import (
    RULES as RULE_KEYS,
    generation_paths,
    parse_within,
    prune,
    rules_from_params,
    select,
    split_previous,
    within_cutoff,
)

NOW = "2026-06-15T12:00:00Z"


def entry(created_at, label=None):
    """A catalog entry whose id matches its creation time, as backup_create makes them."""
    stamp = created_at.replace("-", "").replace(":", "")
    return {"id": "%s-%s" % (stamp, hashlib.sha256(created_at.encode()).hexdigest()[:6]), "created_at": created_at,
            "label": label}


def run(times, rules, now=NOW, labels=None, protect=None):
    """Select over entries made at ``times``; return the kept and removed creation times, newest first."""
    labels = labels or {}
    entries = [entry(moment, labels.get(moment)) for moment in times]
    random.Random(7).shuffle(entries)  # the input order must not matter
    by_id = {item["id"]: item["created_at"] for item in entries}
    protect = {next(i for i, t in by_id.items() if t == moment): why for moment, why in (protect or {}).items()}
    keep, remove, reasons = select(entries, parse_isoformat(now), rules, protect)
    assert set(reasons) == set(keep)
    assert set(keep) | set(remove) == set(by_id) and not set(keep) & set(remove)
    return [by_id[i] for i in keep], [by_id[i] for i in remove], {by_id[i]: why for i, why in reasons.items()}


CASES = [
    pytest.param(
        ["2021-01-01T10:00:00Z", "2021-01-01T08:00:00Z", "2020-12-31T23:59:59Z", "2020-12-31T01:00:00Z",
         "2020-12-30T12:00:00Z"],
        {"keep_daily": 2},
        ["2021-01-01T10:00:00Z", "2020-12-31T23:59:59Z"],
        id="daily-across-new-year",
    ),
    pytest.param(
        ["2026-03-01T14:59:59Z", "2026-03-01T14:00:00Z", "2026-03-01T13:30:00Z", "2026-02-28T23:10:00Z",
         "2026-02-28T23:05:00Z"],
        {"keep_hourly": 3},
        ["2026-03-01T14:59:59Z", "2026-03-01T13:30:00Z", "2026-02-28T23:10:00Z"],
        id="hourly-across-month-end",
    ),
    pytest.param(
        ["2021-01-01T00:10:00Z", "2020-12-31T23:50:00Z", "2020-12-31T23:40:00Z"],
        {"keep_hourly": 2},
        ["2021-01-01T00:10:00Z", "2020-12-31T23:50:00Z"],
        id="hourly-across-new-year",
    ),
    # ISO week 53 of 2020 runs from Monday 28 December 2020 to Sunday 3 January 2021.
    pytest.param(
        ["2021-01-04T00:00:00Z", "2021-01-03T23:00:00Z", "2021-01-01T12:00:00Z", "2020-12-28T00:00:00Z",
         "2020-12-27T23:59:00Z", "2020-12-21T10:00:00Z"],
        {"keep_weekly": 3},
        ["2021-01-04T00:00:00Z", "2021-01-03T23:00:00Z", "2020-12-27T23:59:00Z"],
        id="weekly-iso-week-53",
    ),
    # Monday 30 December 2024 already belongs to ISO week 1 of 2025.
    pytest.param(
        ["2025-01-05T10:00:00Z", "2024-12-30T10:00:00Z", "2024-12-29T10:00:00Z"],
        {"keep_weekly": 2},
        ["2025-01-05T10:00:00Z", "2024-12-29T10:00:00Z"],
        id="weekly-week-1-starts-in-december",
    ),
    pytest.param(
        ["2026-03-01T00:00:00Z", "2026-02-28T23:59:00Z", "2026-02-01T00:00:00Z", "2026-01-31T12:00:00Z",
         "2025-12-31T12:00:00Z"],
        {"keep_monthly": 3},
        ["2026-03-01T00:00:00Z", "2026-02-28T23:59:00Z", "2026-01-31T12:00:00Z"],
        id="monthly",
    ),
    pytest.param(
        ["2026-01-01T00:00:00Z", "2025-12-31T23:59:00Z", "2025-06-01T00:00:00Z", "2024-12-31T00:00:00Z",
         "2023-01-01T00:00:00Z"],
        {"keep_yearly": 3},
        ["2026-01-01T00:00:00Z", "2025-12-31T23:59:00Z", "2024-12-31T00:00:00Z"],
        id="yearly",
    ),
    # Periods without backups do not count: the 3 most recent days *that have backups*.
    pytest.param(
        ["2026-06-10T01:00:00Z", "2026-05-01T01:00:00Z", "2026-01-01T01:00:00Z", "2025-01-01T01:00:00Z"],
        {"keep_daily": 3},
        ["2026-06-10T01:00:00Z", "2026-05-01T01:00:00Z", "2026-01-01T01:00:00Z"],
        id="daily-skips-empty-days",
    ),
    pytest.param(
        ["2026-06-05T00:00:00Z", "2026-06-04T00:00:00Z", "2026-06-03T00:00:00Z", "2026-06-02T00:00:00Z",
         "2026-06-01T00:00:00Z"],
        {"keep_last": 3},
        ["2026-06-05T00:00:00Z", "2026-06-04T00:00:00Z", "2026-06-03T00:00:00Z"],
        id="last-3",
    ),
    pytest.param(
        ["2026-06-05T00:00:00Z", "2026-06-04T00:00:00Z", "2026-06-03T00:00:00Z"],
        {"keep_last": 0},
        ["2026-06-05T00:00:00Z"],
        id="last-0-still-keeps-the-newest",
    ),
    # Each rule counts on its own: the newest fills both the last-1 slot and today's daily slot.
    pytest.param(
        ["2026-06-05T10:00:00Z", "2026-06-05T09:00:00Z", "2026-06-04T00:00:00Z"],
        {"keep_last": 1, "keep_daily": 1},
        ["2026-06-05T10:00:00Z"],
        id="rules-overlap",
    ),
    pytest.param(
        ["2026-06-05T10:00:00Z", "2026-06-05T09:00:00Z", "2026-06-04T00:00:00Z"],
        {"keep_last": 1, "keep_daily": 2},
        ["2026-06-05T10:00:00Z", "2026-06-04T00:00:00Z"],
        id="rules-union",
    ),
    # Nothing lies within the hour before NOW: only the newest backup stays.
    pytest.param(
        ["2026-06-01T00:00:00Z", "2026-05-01T00:00:00Z"],
        {"keep_within": "1h"},
        ["2026-06-01T00:00:00Z"],
        id="newest-kept-when-no-rule-keeps-it",
    ),
    # 1m before 31 March 12:00 is 28 February 12:00, which is still kept.
    pytest.param(
        ["2026-03-30T00:00:00Z", "2026-02-28T12:00:00Z", "2026-02-28T11:59:59Z"],
        {"keep_within": "1m"},
        ["2026-03-30T00:00:00Z", "2026-02-28T12:00:00Z"],
        id="within-calendar-month",
    ),
    # Backups made after "now" (a clock ahead) are within any period.
    pytest.param(
        ["2026-06-16T00:00:00Z", "2026-06-14T13:00:00Z", "2026-06-14T11:00:00Z"],
        {"keep_within": "1d"},
        ["2026-06-16T00:00:00Z", "2026-06-14T13:00:00Z"],
        id="within-1d",
    ),
]


@pytest.mark.parametrize("times,rules,expected", CASES)
def test_select(times, rules, expected):
    now = "2026-03-31T12:00:00Z" if rules.get("keep_within") == "1m" else NOW
    keep, remove, _reasons = run(times, rules, now=now)
    assert keep == expected
    assert remove == [moment for moment in sorted(times, reverse=True) if moment not in expected]


def test_reasons_name_the_rule_and_period():
    times = ["2021-01-03T23:00:00Z", "2020-12-31T10:00:00Z"]
    keep, _remove, reasons = run(times, {"keep_last": 1, "keep_daily": 2, "keep_weekly": 1, "keep_monthly": 2,
                                         "keep_yearly": 2, "keep_hourly": 1})
    assert reasons["2021-01-03T23:00:00Z"] == ["newest", "last 1", "hourly 2021-01-03T23", "daily 2021-01-03",
                                               "weekly 2020-W53", "monthly 2021-01", "yearly 2021"]
    assert reasons["2020-12-31T10:00:00Z"] == ["daily 2020-12-31", "monthly 2020-12", "yearly 2020"]


@pytest.mark.parametrize("prune_labelled,expected", [
    (False, ["2026-06-05T00:00:00Z", "2026-01-01T00:00:00Z"]),
    (True, ["2026-06-05T00:00:00Z"]),
])
def test_labelled_backups(prune_labelled, expected):
    times = ["2026-06-05T00:00:00Z", "2026-06-04T00:00:00Z", "2026-01-01T00:00:00Z"]
    keep, _remove, reasons = run(times, {"keep_last": 1, "prune_labelled": prune_labelled},
                                 labels={"2026-01-01T00:00:00Z": "before-upgrade"})
    assert keep == expected
    if not prune_labelled:
        assert reasons["2026-01-01T00:00:00Z"] == ["labelled before-upgrade"]


def test_automatic_labels_follow_the_rules():
    times = ["2026-06-05T00:00:00Z", "2026-06-04T00:00:00Z", "2026-01-01T00:00:00Z"]
    labels = {"2026-06-05T00:00:00Z": "wiki-2026-06-05", "2026-06-04T00:00:00Z": "wiki-2026-06-04",
              "2026-01-01T00:00:00Z": "before-upgrade"}
    rules = rules_from_params({"keep_last": 1, "automatic_labels": ["wiki-[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]"]})
    keep, remove, reasons = run(times, rules, labels=labels)
    assert keep == ["2026-06-05T00:00:00Z", "2026-01-01T00:00:00Z"] and remove == ["2026-06-04T00:00:00Z"]
    assert reasons["2026-01-01T00:00:00Z"] == ["labelled before-upgrade"]


def test_without_rules_everything_is_kept():
    times = ["2026-06-05T00:00:00Z", "2020-01-01T00:00:00Z"]
    keep, remove, reasons = run(times, rules_from_params({"prune_labelled": True}))
    assert keep == times and remove == []
    assert reasons["2020-01-01T00:00:00Z"] == ["no retention rule"]


def test_protected_backups_survive_every_rule():
    times = ["2026-06-05T00:00:00Z", "2026-06-04T00:00:00Z", "2026-06-03T00:00:00Z", "2026-06-02T00:00:00Z"]
    keep, remove, reasons = run(times, {"keep_last": 0}, protect={"2026-06-04T00:00:00Z": "newest intact",
                                                                  "2026-06-02T00:00:00Z": "current"})
    assert keep == ["2026-06-05T00:00:00Z", "2026-06-04T00:00:00Z", "2026-06-02T00:00:00Z"]
    assert remove == ["2026-06-03T00:00:00Z"]
    assert reasons["2026-06-02T00:00:00Z"] == ["current"]


def test_empty_catalog():
    assert select([], parse_isoformat(NOW), {"keep_last": 1}) == ([], [], {})


def test_invalid_created_at_is_named():
    entries = [entry("2026-06-05T00:00:00Z"), {"id": "broken", "created_at": "yesterday", "label": None}]
    with pytest.raises(LifeboatError, match="broken.*created_at"):
        select(entries, parse_isoformat(NOW), {"keep_daily": 1})


@pytest.mark.parametrize("now,text,cutoff", [
    ("2026-03-31T12:00:00Z", "1m", "2026-02-28T12:00:00Z"),
    ("2024-03-31T12:00:00Z", "1m", "2024-02-29T12:00:00Z"),
    ("2024-02-29T12:00:00Z", "1y", "2023-02-28T12:00:00Z"),
    ("2026-01-15T00:00:00Z", "2m", "2025-11-15T00:00:00Z"),
    ("2026-03-31T12:00:00Z", "1y6m", "2024-09-30T12:00:00Z"),
    ("2026-03-31T12:00:00Z", "36h", "2026-03-30T00:00:00Z"),
    ("2026-03-31T12:00:00Z", "30d", "2026-03-01T12:00:00Z"),
    ("2026-01-05T06:00:00Z", "2w", "2025-12-22T06:00:00Z"),
    ("2026-01-05T06:00:00Z", "1w1d", "2025-12-28T06:00:00Z"),
    ("2026-01-05T06:00:00Z", "1d1d", "2026-01-03T06:00:00Z"),
    ("2026-01-05T06:00:00Z", "0d", "2026-01-05T06:00:00Z"),
])
def test_within_cutoff(now, text, cutoff):
    assert within_cutoff(parse_isoformat(now), text) == parse_isoformat(cutoff)


def test_within_far_past_does_not_overflow():
    assert within_cutoff(parse_isoformat(NOW), "99999y").year == datetime.MINYEAR


@pytest.mark.parametrize("text", ["", "30", "d", "30x", "1.5d", "-1d", "30 d", "30D", None, 30])
def test_invalid_within(text):
    with pytest.raises(LifeboatError, match="keep_within"):
        parse_within(text)


def test_parse_within():
    assert parse_within("1y6m2w3d4h") == {"y": 1, "m": 6, "w": 2, "d": 3, "h": 4}


@pytest.mark.parametrize("params,expected", [
    ({"preset": "mendix"}, {"keep_daily": 14, "keep_weekly": 13, "keep_monthly": 12}),
    ({"preset": "mendix", "keep_daily": 3, "keep_last": 2},
     {"keep_daily": 3, "keep_weekly": 13, "keep_monthly": 12, "keep_last": 2}),
    ({"preset": "mendix", "keep_weekly": 0}, {"keep_daily": 14, "keep_weekly": 0, "keep_monthly": 12}),
    ({"keep_within": "30d", "keep_yearly": None}, {"keep_within": "30d"}),
    ({}, {}),
])
def test_rules_from_params(params, expected):
    assert rules_from_params(params) == dict(expected, prune_labelled=False)


@pytest.mark.parametrize("params", [{"keep_last": -1}, {"keep_daily": True}, {"keep_within": "soon"}])
def test_invalid_rules(params):
    with pytest.raises(LifeboatError):
        rules_from_params(params)


def test_previous_generations():
    generations = [
        {"stamp": "20260603000000", "databases": [{"target": "app", "previous": "app__lb_prev_20260603000000"}],
         "files": "/srv/app/files.lb_prev_20260603000000"},
        {"stamp": "20260602000000", "databases": [{"target": "app", "previous": "app__lb_prev_20260602000000"}],
         "files": None},
        {"stamp": "20260601000000", "databases": [], "files": "/srv/app/files.lb_prev_20260601000000"},
    ]
    kept, dropped = split_previous(generations, 1)
    assert kept == generations[:1] and dropped == generations[1:]
    assert [name for generation in dropped for name in generation_paths(generation)] == [
        "app__lb_prev_20260602000000", "/srv/app/files.lb_prev_20260601000000"]
    assert split_previous(generations, 0) == ([], generations)
    assert split_previous(generations, 5) == (generations, [])


# --- prune() on a real catalog in a temporary directory ------------------------------------------------------

def prune_params(root, **rules):
    params = {key: None for key in RULE_KEYS}
    params.update(environment="wiki", catalog=str(root / "catalog"), engine="sqlite", path=str(root / "app.db"),
                  files_path=None, database=None, prune_labelled=False, preset=None, keep_previous_copies=None)
    params.update(rules)
    return params


def add_backups(root, times):
    catalog = Catalog(str(root / "catalog"))
    added = []
    for moment in times:
        backup_id = new_backup_id(parse_isoformat(moment))
        tmp = os.path.join(catalog.tmp_dir("wiki"), backup_id + ".part")
        with open(tmp, "wb") as handle:
            handle.write(backup_id.encode())  # every archive different, as real ones are
        added.append(catalog.add("wiki", {"id": backup_id, "created_at": moment, "label": None}, tmp, ".tar"))
    return catalog, added


def test_prune_keeps_the_backup_restored_from_a_file_by_its_sha256(tmp_path):
    catalog, (old, middle, new) = add_backups(tmp_path, ["2026-01-01T00:00:00Z", "2026-02-01T00:00:00Z",
                                                         "2026-03-01T00:00:00Z"])
    catalog.write_state("wiki", {"current": {"id": None, "src": "/tmp/x.tar", "sha256": middle["sha256"]}})
    result = prune(prune_params(tmp_path, keep_last=0))
    assert result["kept"] == [new["id"], middle["id"]] and result["removed"] == [old["id"]]
    assert result["reasons"][middle["id"]] == ["current"]
    assert [entry["id"] for entry in catalog.entries("wiki")] == [new["id"], middle["id"]]


def test_prune_refuses_previous_copies_during_an_interrupted_restore(tmp_path):
    catalog, _added = add_backups(tmp_path, ["2026-01-01T00:00:00Z"])
    with open(catalog.journal_path("wiki"), "w") as handle:
        handle.write("{}")
    with pytest.raises(LifeboatError, match="interrupted restore"):
        prune(prune_params(tmp_path, keep_previous_copies=0))


def test_prune_of_an_unknown_environment_changes_nothing(tmp_path):
    result = prune(prune_params(tmp_path, keep_last=0))
    assert result["changed"] is False and result["kept"] == result["removed"] == []
    assert not os.path.exists(tmp_path / "catalog")
