# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""backup_prune: retention rules over an environment's catalog backups, and pruning of kept previous copies.

``select()`` is the whole decision and pure; ``prune()`` wraps it with the catalog, the environment lock
and the checks that protect the newest intact backup and the backup the environment runs on.
"""

from __future__ import annotations

import calendar
import datetime
import fnmatch
import os
import re

from ansible_collections.lifeboat.backup.plugins.module_utils.catalog import Catalog
from ansible_collections.lifeboat.backup.plugins.module_utils.common import (
    LifeboatError,
    check_name,
    parse_isoformat,
    utcnow,
)
from ansible_collections.lifeboat.backup.plugins.module_utils.environment import Environment
from ansible_collections.lifeboat.backup.plugins.module_utils.swap import checked_state, drop_generation

# Bucket rules: for each of the N most recent periods that have backups, the newest backup in it (UTC).
PERIODS = {
    "keep_hourly": ("hourly", lambda moment: moment.strftime("%Y-%m-%dT%H")),
    "keep_daily": ("daily", lambda moment: moment.strftime("%Y-%m-%d")),
    "keep_weekly": ("weekly", lambda moment: "%04d-W%02d" % moment.isocalendar()[:2]),
    "keep_monthly": ("monthly", lambda moment: moment.strftime("%Y-%m")),
    "keep_yearly": ("yearly", lambda moment: moment.strftime("%Y")),
}
COUNT_RULES = ("keep_last",) + tuple(PERIODS)
RULES = COUNT_RULES + ("keep_within",)
# The schedule Mendix Cloud applies to its nightly backups.
PRESETS = {"mendix": {"keep_daily": 14, "keep_weekly": 13, "keep_monthly": 12}}
_WITHIN = re.compile(r"(?:[0-9]+[hdwmy])+")
_WITHIN_PART = re.compile(r"([0-9]+)([hdwmy])")


def parse_within(text):
    """``"1y6m"`` -> ``{"y": 1, "m": 6}``; units h(ours), d(ays), w(eeks), m(onths), y(ears)."""
    if not isinstance(text, str) or not _WITHIN.fullmatch(text):
        raise LifeboatError("invalid keep_within %r: use a number and a unit h, d, w, m (months) or y, e.g. 36h, "
                            "30d, 6m or 1y6m" % (text,))
    parts = {}
    for number, unit in _WITHIN_PART.findall(text):
        parts[unit] = parts.get(unit, 0) + int(number)
    return parts


def _minus_months(moment, months):
    """The same day and time ``months`` calendar months earlier; the 31st becomes the month's last day."""
    index = moment.year * 12 + moment.month - 1 - months
    year, month = divmod(index, 12)
    if year < datetime.MINYEAR:
        return datetime.datetime.min.replace(tzinfo=moment.tzinfo)
    day = min(moment.day, calendar.monthrange(year, month + 1)[1])
    return moment.replace(year=year, month=month + 1, day=day)


def within_cutoff(now, text):
    """The oldest creation time that ``keep_within: text`` keeps: calendar months and years, fixed h/d/w."""
    parts = parse_within(text)
    moment = _minus_months(now, parts.get("y", 0) * 12 + parts.get("m", 0))
    try:
        return moment - datetime.timedelta(weeks=parts.get("w", 0), days=parts.get("d", 0), hours=parts.get("h", 0))
    except OverflowError:
        return datetime.datetime.min.replace(tzinfo=now.tzinfo)


def rules_from_params(params):
    """The effective rules: the preset's values, overridden by every rule given explicitly."""
    rules = dict(PRESETS[params["preset"]]) if params.get("preset") else {}
    for key in RULES:
        if params.get(key) is not None:
            rules[key] = params[key]
    for key in COUNT_RULES:
        if key in rules and (isinstance(rules[key], bool) or not isinstance(rules[key], int) or rules[key] < 0):
            raise LifeboatError("%s must be 0 or more, not %r" % (key, rules[key]))
    if "keep_within" in rules:
        parse_within(rules["keep_within"])
    rules["prune_labelled"] = bool(params.get("prune_labelled"))
    if params.get("automatic_labels"):
        rules["automatic_labels"] = list(params["automatic_labels"])
    return rules


def has_rules(rules):
    return any(rules.get(key) is not None for key in RULES)


def _created(entry):
    try:
        return parse_isoformat(entry["created_at"])
    except (KeyError, TypeError, ValueError):
        raise LifeboatError("catalog entry %s has an invalid created_at %r; repair or remove it"
                            % (entry.get("id"), entry.get("created_at")))


def select(entries, now, rules, protect=None):
    """Which backups the rules keep: ``(keep_ids, remove_ids, reasons)``.

    ``entries`` are catalog entries (``id``, ``created_at``, ``label``); ``protect`` maps ids that must
    stay whatever the rules say to the reason. Both lists are newest first; ``reasons`` maps every kept
    id to why. The newest backup is always kept, and without any rule everything is. With rules, a labelled
    backup is kept too (an operator named it on purpose), unless ``prune_labelled`` or its label matches a
    pattern of ``automatic_labels`` (a tool's label, such as the backup role's ``<environment>-<date>``).
    """
    ordered = sorted(entries, key=lambda entry: (entry["created_at"], entry["id"]), reverse=True)
    reasons = {entry["id"]: [] for entry in ordered}

    def keep(entry, reason):
        reasons[entry["id"]].append(reason)

    if ordered:
        keep(ordered[0], "newest")
    for backup_id, why in (protect or {}).items():
        if backup_id in reasons:
            reasons[backup_id].append(why)
    if not has_rules(rules):
        for entry in ordered:
            keep(entry, "no retention rule")
    else:
        for index, entry in enumerate(ordered[:rules.get("keep_last") or 0]):
            keep(entry, "last %d" % (index + 1))
        moments = {entry["id"]: _created(entry) for entry in ordered}
        for key, (name, period_of) in PERIODS.items():
            wanted = rules.get(key) or 0
            seen = set()
            for entry in ordered:
                if len(seen) >= wanted:
                    break
                period = period_of(moments[entry["id"]])
                if period not in seen:
                    seen.add(period)
                    keep(entry, "%s %s" % (name, period))
        if rules.get("keep_within"):
            cutoff = within_cutoff(now, rules["keep_within"])
            for entry in ordered:
                if moments[entry["id"]] >= cutoff:
                    keep(entry, "within %s" % rules["keep_within"])
        if not rules.get("prune_labelled"):
            for entry in ordered:
                if _named_on_purpose(entry.get("label"), rules.get("automatic_labels") or ()):
                    keep(entry, "labelled %s" % entry["label"])
    keep_ids = [entry["id"] for entry in ordered if reasons[entry["id"]]]
    remove_ids = [entry["id"] for entry in ordered if not reasons[entry["id"]]]
    return keep_ids, remove_ids, {backup_id: why for backup_id, why in reasons.items() if why}


def _named_on_purpose(label, automatic_labels):
    """A label an operator gave (kept by default), not one a tool gives every backup (``automatic_labels``)."""
    return bool(label) and not any(fnmatch.fnmatchcase(label, pattern) for pattern in automatic_labels)


def split_previous(previous, keep):
    """Previous-copy generations (newest first) to keep and to drop."""
    return list(previous[:keep]), list(previous[keep:])


def generation_paths(generation):
    """Names (PostgreSQL) or paths (SQLite, file store) that a previous-copy generation consists of."""
    names = [database["previous"] for database in generation.get("databases") or []]
    if generation.get("files"):
        names.append(generation["files"])
    return names


# --- against a real catalog -------------------------------------------------------------------------------

def _newest_intact(catalog, entries):
    """The newest entry whose archive still has its recorded SHA-256, and the damaged ones newer than it."""
    damaged = []
    for entry in entries:
        reason = catalog.check_archive(entry)
        if reason is None:
            return entry, damaged
        damaged.append({"id": entry["id"], "reason": reason})
    return None, damaged


def _protected(catalog, entries, state):
    """Ids that no rule may remove: the newest intact backup and the one the environment runs on."""
    intact, damaged = _newest_intact(catalog, entries)
    protect = {}
    if intact is not None and intact is not entries[0]:
        protect[intact["id"]] = "newest intact"
    current = state.get("current") or {}
    for entry in entries:
        # A restore from a file outside the catalog has no id: then its SHA-256 identifies the backup.
        if (current.get("id") and entry["id"] == current["id"]) or (
                not current.get("id") and current.get("sha256") and entry.get("sha256") == current["sha256"]):
            protect[entry["id"]] = "current"
    return protect, damaged


def prune(params, check_mode=False):
    rules = rules_from_params(params)
    keep_previous = params.get("keep_previous_copies")
    if keep_previous is not None and keep_previous < 0:
        raise LifeboatError("keep_previous_copies must be 0 or more")
    name = check_name(params["environment"], "environment")
    catalog = Catalog(params["catalog"])
    environment = None
    if keep_previous is not None:
        # Only previous copies need the engine; pruning backups needs no database options.
        environment = Environment(params)
        catalog = environment.catalog
    try:
        if not os.path.isdir(catalog.env_dir(name)):
            return _result([], [], {}, [], [], [])
        if check_mode:
            return _prune(catalog, name, rules, environment, keep_previous, check_mode)
        with catalog.lock(name, "prune"):
            return _prune(catalog, name, rules, environment, keep_previous, check_mode)
    finally:
        if environment is not None:
            environment.close()


def _prune(catalog, name, rules, environment, keep_previous, check_mode):
    if keep_previous is not None and os.path.exists(catalog.journal_path(name)):
        # A rollback being finished may be renaming one of the previous copies back into place.
        raise LifeboatError("environment %s has an interrupted restore (%s); run lifeboat.backup.backup_restore to "
                            "finish it before pruning previous copies" % (name, catalog.journal_path(name)))
    entries = catalog.entries(name)
    # Previous copies are dropped below: only the environment's own (see swap.checked_state).
    state = checked_state(environment) if environment is not None else catalog.read_state(name)
    protect, damaged = _protected(catalog, entries, state) if entries else ({}, [])
    keep_ids, remove_ids, reasons = select(entries, utcnow(), rules, protect)
    warnings = entries.warnings
    for item in damaged:
        warnings.append("backup %s of environment %s is damaged (%s); the newest intact backup is kept too. "
                        "Check them all with lifeboat.backup.backup_info verify: checksum"
                        % (item["id"], name, item["reason"]))
    if not check_mode:
        for backup_id in remove_ids:
            catalog.remove(name, backup_id)
    removed_previous, before_previous, after_previous = [], [], []
    if keep_previous is not None:
        previous = list(state.get("previous") or [])
        kept, dropped = split_previous(previous, keep_previous)
        before_previous = [name for generation in previous for name in generation_paths(generation)]
        after_previous = [name for generation in kept for name in generation_paths(generation)]
        removed_previous = [name for generation in dropped for name in generation_paths(generation)]
        if dropped and not check_mode:
            _drop_previous(environment, state, kept, dropped)
    return _result(keep_ids, remove_ids, reasons, damaged, removed_previous, warnings,
                   diff={"before": {"backups": [entry["id"] for entry in entries], "previous": before_previous},
                         "after": {"backups": keep_ids, "previous": after_previous}})


def _drop_previous(environment, state, kept, dropped):
    # State first: a crash in between leaves a copy nothing refers to, never a reference to a dropped copy.
    environment.catalog.write_state(environment.name, dict(state, previous=kept))
    for generation in dropped:
        drop_generation(environment, generation)


def _result(keep_ids, remove_ids, reasons, damaged, removed_previous, warnings, diff=None):
    return {
        "changed": bool(remove_ids or removed_previous),
        "kept": keep_ids,
        "removed": remove_ids,
        "reasons": reasons,
        "removed_previous": removed_previous,
        "damaged": damaged,
        "warnings": warnings,
        "diff": diff or {"before": {"backups": [], "previous": []}, "after": {"backups": [], "previous": []}},
    }
