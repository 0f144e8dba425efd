# Development entry points: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
# The checks of `make test` run one after the other; each runs even when an earlier one failed.
.NOTPARALLEL:

PYTHON ?= python3.11
VENV ?= .venv
BUILD_DIR ?= /tmp/lifeboat-build

VENV_DIR := $(abspath $(VENV))
VENV_STAMP := $(VENV_DIR)/.installed-requirements-dev
COLLECTION_DIR := $(BUILD_DIR)/ansible_collections/lifeboat/backup
RESULTS_DIR := $(BUILD_DIR)/results
STAGES := lint sanity units integration molecule ansible-oldest ansible-newest
# The ansible-core range the collection supports: the oldest release series still maintained upstream and
# the newest release, each tested in its own venv (ansible-core-venv.sh) with a controller Python it supports.
ANSIBLE_OLDEST := 2.20.10
PYTHON_OLDEST := python3.12
ANSIBLE_NEWEST := 2.21.5
PYTHON_NEWEST := python3.13
# What those venvs run besides the unit tests: one round trip per engine and one role run.
SMOKE_TESTS := tests/integration/plugins/modules/test_postgresql_environment.py::test_round_trip_with_owner_settings_and_privileges \
	tests/integration/plugins/modules/test_sqlite_environment.py::test_round_trip_check_mode_diff_and_idempotence \
	tests/integration/plugins/roles/test_restore_role.py::test_restore_stops_and_starts_the_app

# Tools run from the venv; molecule and ansible-compat look for ansible-* on PATH and keep their
# cache in $VIRTUAL_ENV/.ansible rather than in the work tree.
export PATH := $(VENV_DIR)/bin:$(PATH)
export VIRTUAL_ENV := $(VENV_DIR)
# ansible-playbook runs (demo, integration tests, molecule) use the copy made by `collection`.
export ANSIBLE_COLLECTIONS_PATH := $(BUILD_DIR)

.PHONY: demo test lint sanity units integration molecule ansible-oldest ansible-newest collection system-packages \
	ansible-test-cache clean

demo: $(VENV_STAMP) collection
	ansible-playbook playbooks/demo.yml -e ansible_python_interpreter=$(VENV_DIR)/bin/python

# Every stage runs; each one's outcome and seconds go to $(RESULTS_DIR)/stages for the summary, which ends
# with the "N passed, N failed" line and fails when anything did.
test: system-packages
	rm -rf $(RESULTS_DIR)
	mkdir -p $(RESULTS_DIR)
	for stage in $(STAGES); do \
		start=$$SECONDS; \
		if $(MAKE) --no-print-directory $$stage; then status=0; else status=$$?; fi; \
		echo "$$stage $$status $$((SECONDS - start))" >> $(RESULTS_DIR)/stages; \
	done
	python tests/tools/summary.py $(RESULTS_DIR)

$(VENV_STAMP): requirements-dev.txt
	test -x $(VENV_DIR)/bin/python || $(PYTHON) -m venv $(VENV_DIR)
	$(VENV_DIR)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	touch $@

# A fresh copy at a real ansible_collections/ path outside the work tree (ansible-test refuses
# symlinks), with uncommitted and new files so that local work is tested too. The shared test data
# that lies beside the work tree (../shared) is linked beside ansible_collections/ for tests run
# from the copy.
collection:
	rm -rf $(COLLECTION_DIR) $(BUILD_DIR)/shared
	mkdir -p $(COLLECTION_DIR) $(RESULTS_DIR)
	git ls-files -z --cached --others --exclude-standard \
		| tar --null --files-from=- --ignore-failed-read --warning=no-failed-read -cf - \
		| tar -xf - -C $(COLLECTION_DIR)
	if [[ -d ../shared ]]; then ln -s $(abspath ../shared) $(BUILD_DIR)/shared; fi

system-packages:
	tests/tools/ensure-system-packages.sh

# ansible-test bootstraps pip in its venvs with a script it downloads from a host that cannot be
# reached here; it uses a cached copy named after the pip version it wants instead. That version is
# ansible-test's own choice, 24.2 for the ansible-core that requirements-dev.txt pins: should an upgrade
# change it, ansible-test stops and names the file it looked for (get_pip_<version>.py); set it here.
ANSIBLE_TEST_PIP := 24.2
ansible-test-cache:
	install -D -m 0644 tests/tools/get_pip.py $(HOME)/.ansible/test/cache/get_pip_$(subst .,_,$(ANSIBLE_TEST_PIP)).py

# ansible-lint resolves the lifeboat.backup.* modules that playbooks call in the copy.
lint: $(VENV_STAMP) collection
	ruff check .
	yamllint --strict .
	ansible-lint

# Every sanity test gets its own venv from ansible-test (cached in ~/.ansible/test/venv).
sanity: $(VENV_STAMP) collection ansible-test-cache
	cd $(COLLECTION_DIR) && ansible-test sanity --python 3.11 --local

# --venv: ansible-test installs pytest and tests/unit/requirements.txt in a venv of its own.
units: $(VENV_STAMP) collection ansible-test-cache
	status=0; (cd $(COLLECTION_DIR) && ansible-test units --python 3.11 --venv) || status=$$?; \
	for file in $(COLLECTION_DIR)/tests/output/junit/*.xml; do cp "$$file" $(RESULTS_DIR)/units-$${file##*/}; done; \
	exit $$status

# The tests import ansible_collections.lifeboat.backup from the copy and run ansible-playbook on it.
# Two workers, each test file whole on one of them (a file shares its clusters and servers): the time goes
# to ansible-playbook runs, so this nearly halves the wait on two cores.
integration: $(VENV_STAMP) collection system-packages
	PYTHONPATH=$(BUILD_DIR) pytest tests/integration -n 2 --dist loadfile --junitxml=$(RESULTS_DIR)/integration.xml

molecule: $(VENV_STAMP) collection
	molecule test --all

# The unit tests and SMOKE_TESTS with the oldest and the newest ansible-core; results as for units and
# integration. PATH and VIRTUAL_ENV point at the stage's venv, so that the tests' ansible-playbook is its own.
ansible-oldest: CORE := $(ANSIBLE_OLDEST) $(PYTHON_OLDEST)
ansible-newest: CORE := $(ANSIBLE_NEWEST) $(PYTHON_NEWEST)
ansible-oldest ansible-newest: collection system-packages
	set -- $(CORE); venv=$(BUILD_DIR)/venv-ansible-core-$$1; \
	tests/tools/ansible-core-venv.sh $$venv $$2 $$1; \
	export PATH=$$venv/bin:$$PATH VIRTUAL_ENV=$$venv PYTHONPATH=$(BUILD_DIR); status=0; \
	(cd $(COLLECTION_DIR) && python -m pytest tests/unit -q -n 2 -p no:cacheprovider -c /dev/null --rootdir . \
		--junitxml=$(RESULTS_DIR)/$@-units.xml) || status=$$?; \
	pytest $(SMOKE_TESTS) -q -n 2 --junitxml=$(RESULTS_DIR)/$@-integration.xml || status=$$?; \
	exit $$status

clean:
	rm -rf $(BUILD_DIR) tests/output
