# -*- coding: utf-8 -*-
# Copyright: Lifeboat maintainers
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the PostgreSQL migrator hands an application's updater: DATABASE_URL and PGOPTIONS values."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest

from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_migrator import pg_option_value
from ansible_collections.lifeboat.backup.plugins.module_utils.engines.postgresql_server import database_url


def test_database_url_has_no_password():
    url = database_url({"login_host": "db.example", "login_port": 6543, "login_user": "app@corp",
                       "login_password": "s3cret", "ssl_mode": "require", "ca_cert": "/etc/ca.pem"}, "shop db")
    assert "s3cret" not in url
    parts = urlsplit(url)
    assert (parts.scheme, parts.username) == ("postgresql", "app%40corp")
    assert (parts.hostname, parts.port) == ("db.example", 6543)
    assert parts.path == "/shop%20db"
    assert parse_qs(parts.query) == {"sslmode": ["require"], "sslrootcert": ["/etc/ca.pem"]}


def test_database_url_unix_socket_and_ipv6():
    socket_url = database_url({"login_unix_socket": "/run/postgresql", "login_port": 5432}, "shop")
    assert socket_url.startswith("postgresql://postgres@:5432/shop?")
    assert parse_qs(urlsplit(socket_url).query)["host"] == ["/run/postgresql"]
    # libpq takes a login_host that is a directory as the socket's too.
    assert database_url({"login_host": "/run/postgresql"}, "shop") == socket_url
    assert "@[::1]:5432/" in database_url({"login_host": "::1"}, "shop")


@pytest.mark.parametrize("value, escaped", [("shop", "shop"), ("my role", "my\\ role"), ("a\\b", "a\\\\b")])
def test_pg_option_value(value, escaped):
    assert pg_option_value(value) == escaped
