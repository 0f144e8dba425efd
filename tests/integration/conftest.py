# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fixtures for integration tests: real PostgreSQL clusters (see pgcluster.py)."""

from __future__ import annotations

import pytest

from ansible_collections.lifeboat.backup.tests.integration.pgcluster import PgCluster, interrupt_on_sigterm


@pytest.fixture(scope="module")
def pg_cluster_factory():
    """``start(count=1) -> [PgCluster, ...]``: more clusters (simulated nodes), stopped after the test module."""
    started = []
    interrupt_on_sigterm()

    def start(count=1):
        clusters = []
        try:
            for dummy in range(count):
                clusters.append(PgCluster().start())
        finally:
            started.extend(clusters)
        return clusters

    yield start
    for cluster in started:
        cluster.stop()


@pytest.fixture(scope="module")
def pg_cluster(pg_cluster_factory):
    """One cluster per test module: tests share it and use unique database and role names."""
    return pg_cluster_factory()[0]
