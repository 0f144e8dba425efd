#!/usr/bin/env bash
# Makes sure the programs that make test runs are installed: the PostgreSQL server binaries
# (initdb, pg_ctl), the age CLI and sshd, which the tests start themselves, sudo (become over SSH),
# and shellcheck, without which ansible-test sanity skips its shellcheck test. Tests run their own
# throw-away servers, never the system's services, so services that a package starts on
# installation are stopped again.
# LIFEBOAT_PG_MAJORS="15 17" asks for those PostgreSQL majors too (postgresql-<major>, from Debian or from the
# PostgreSQL project's apt repository once it is configured): the integration tests run on each installed one.
set -euo pipefail

have_postgres() {
    local bin
    for bin in /usr/lib/postgresql/*/bin; do
        [[ -x $bin/initdb && -x $bin/pg_ctl ]] && return 0
    done
    return 1
}

online_clusters() {
    # "version cluster" of every running cluster of the system's postgresql-common.
    if command -v pg_lsclusters >/dev/null; then
        pg_lsclusters --no-header | awk '$4 == "online" {print $1, $2}'
    fi
}

missing=()
have_postgres || missing+=(postgresql)
for major in ${LIFEBOAT_PG_MAJORS:-}; do
    [[ -x /usr/lib/postgresql/$major/bin/initdb ]] || missing+=("postgresql-$major")
done
command -v age >/dev/null || missing+=(age)
# /usr/sbin is not on every user's PATH.
command -v sshd >/dev/null || [[ -x /usr/sbin/sshd ]] || missing+=(openssh-server)
command -v sudo >/dev/null || missing+=(sudo)
command -v shellcheck >/dev/null || missing+=(shellcheck)

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if [[ $EUID -ne 0 ]]; then
    echo "The tests need these Debian/Ubuntu packages: ${missing[*]}" >&2
    echo "Install them, then run make test again:" >&2
    echo "    sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi

echo "Installing ${missing[*]} (needed by the tests)"
before=$(online_clusters)
ssh_was_running=false
pgrep -x sshd >/dev/null && ssh_was_running=true

export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"

comm -13 <(sort <<<"$before") <(online_clusters | sort) | while read -r version cluster; do
    [[ -n $version ]] || continue
    echo "Stopping PostgreSQL cluster $version/$cluster started by the package installation"
    pg_ctlcluster "$version" "$cluster" stop
done
if ! $ssh_was_running && pgrep -x sshd >/dev/null; then
    echo "Stopping the sshd service started by the package installation"
    invoke-rc.d ssh stop
fi
