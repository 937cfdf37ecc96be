# Two commands on a fresh machine with Python 3.11:
#   make demo   - venv, a local Redis with search, the demo index, the demo playbook
#   make test   - venv, then every suite: ruff, unit, integration (real Redis), sanity, lint
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(CURDIR)/$(VENV)/bin
STAMP := $(VENV)/.installed
COLLECTIONS := $(CURDIR)/.build/collections
LINK := $(COLLECTIONS)/ansible_collections/indexops/redis_search

export ANSIBLE_COLLECTIONS_PATH := $(COLLECTIONS)
export PATH := $(BIN):$(PATH)

# Ansible state stays in the checkout, never in ~/.ansible: a copy of the collection in
# ~/.ansible/collections would shadow later installs and edits, and temporary files, ansible-test's
# venvs and caches have no business there either. ANSIBLE_HOME moves Ansible's state (local temp,
# collections, galaxy cache), ANSIBLE_REMOTE_TEMP the module files of `connection: local` tasks
# (~/.ansible/tmp by default, whatever ANSIBLE_HOME says); the sanity run gives ansible-test a HOME
# under .build/. `make test` (after all its steps) and test-lint fail when anything under ~/.ansible
# changed since this make started, naming it - all but ~/.ansible/tmp, where any other Ansible run on the machine
# writes its module files at the same time (tests/integration/test_user_home.py runs make demo with an empty
# HOME and shows that nothing of ours lands there).
ANSIBLE_STATE := $(CURDIR)/.build/ansible
export ANSIBLE_HOME := $(ANSIBLE_STATE)
export ANSIBLE_REMOTE_TEMP := $(ANSIBLE_STATE)/tmp
USER_STATE := $(HOME)/.ansible
STARTED := .build/make.started
USER_STATE_CHANGED = find "$(USER_STATE)" -path "$(USER_STATE)/tmp" -prune -o -newer $(STARTED) -print
CHECK_USER_STATE = @if [ -e "$(USER_STATE)" ] && [ -n "$$($(USER_STATE_CHANGED) -quit)" ]; then \
	  echo "error: a step of this make run wrote under $(USER_STATE); keep ansible state under .build/" \
	       "(ANSIBLE_HOME, ANSIBLE_REMOTE_TEMP, ANSIBLE_COLLECTIONS_PATH). Changed:" >&2; \
	  $(USER_STATE_CHANGED) | head -n 10 >&2; exit 1; fi

.PHONY: demo dist test test-ruff test-units test-integration test-faults test-faults-fast test-sanity test-lint test-molecule test-matrix test-publish test-awx venv clean bench bench-migrate bench-throughput bench-batch bench-module bench-build-pauses redis replica-set

venv: $(STAMP) $(LINK)
	@mkdir -p .build && touch $(STARTED)

$(STAMP): requirements.txt tests/requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.txt -r tests/requirements.txt
	touch $@

# ansible and ansible-doc find the collection through ANSIBLE_COLLECTIONS_PATH and this link.
$(LINK):
	mkdir -p $(dir $(LINK))
	ln -sfn $(CURDIR) $(LINK)

# The collection's tarball, as Automation Hub, Galaxy and `collections/requirements.yml` take it
# (docs/awx.md): .build/dist/indexops-redis_search-<version>.tar.gz
dist: venv
	rm -rf .build/dist
	$(BIN)/ansible-galaxy collection build --output-path .build/dist

demo: venv
	rm -rf .build/demo
	DEMO_BACKUP_DIR=$(CURDIR)/.build/demo/backups $(BIN)/python tools/redis_search_server.py run -- sh -c '\
	  $(BIN)/python tools/load_demo_data.py && \
	  $(BIN)/ansible-playbook -i localhost, -c local -e ansible_python_interpreter=$(BIN)/python playbooks/demo.yml'

test: test-ruff test-units test-integration test-faults-fast test-sanity test-lint test-molecule test-publish test-awx
	$(CHECK_USER_STATE)

# Lint (pyflakes, pycodestyle, import order, bugbear) everywhere, and the formatting of the library
# (ruff.toml; `ruff format plugins/module_utils` formats it).
test-ruff: venv
	$(BIN)/ruff check plugins tests tools benchmarks
	$(BIN)/ruff format --check plugins tests tools benchmarks

test-units: venv
	$(BIN)/pytest tests/unit

# The kill and failover matrices' other cases (marker `exhaustive`) run in `make test-faults`.
# Two processes, a file to each at a time (each process has its own Redis server; a file's replica set stays
# in one process); then the tests that measure read gaps or Sentinel's timing (marker `timing`), alone.
test-integration: venv
	$(BIN)/pytest tests/integration -m "not exhaustive and not timing" -n 2 --dist loadfile
	$(BIN)/pytest tests/integration -m "timing and not exhaustive"

# The fault suites (docs/reliability.md): kill anywhere, Redis faults, concurrent application writes, and with
# them every bad-input and safety suite, so that the counts printed at the end (kill points survived, faults
# injected, bad inputs tried; also in .build/faults/counts.json) cover them all. INDEXOPS_FAULT_SEED=<n> reseeds.
FAULT_SUITES := tests/faults tests/integration/test_bad_input.py tests/integration/test_migrate_safety.py \
	tests/integration/test_rollback_safety.py tests/integration/test_redis_index_migrate.py tests/integration/test_secrets.py \
	tests/integration/test_online_rewrite.py tests/integration/test_online_catch_up.py tests/integration/test_failover_online.py
test-faults: venv
	$(BIN)/pytest $(FAULT_SUITES)

# The representative subset of tests/faults that `make test` runs.
test-faults-fast: venv
	$(BIN)/pytest tests/faults -m faults_fast

# What a private Automation Hub or Galaxy runs on an upload (galaxy-importer, on the tarball of
# `make dist`) and the documentation linter of the Ansible docsite (antsibull-docs, every plugin's
# and role's docs and their O()/M()/RV() references). tests/publish/galaxy-importer.cfg says why
# the importer's own ansible-lint and ansible-test runs are off; tests/publish/antsibull.cfg keeps antsibull's
# log out of ~/antsibull.log.
test-publish: venv dist
	mkdir -p .build/importer $(ANSIBLE_STATE)/tmp
	GALAXY_IMPORTER_CONFIG=$(CURDIR)/tests/publish/galaxy-importer.cfg \
	GALAXY_IMPORTER_TMP_ROOT_DIR=$(CURDIR)/.build/importer GALAXY_IMPORTER_ANSIBLE_LOCAL_TMP=$(ANSIBLE_STATE)/tmp \
	  $(BIN)/python tests/publish/import_check.py .build/dist/indexops-redis_search-*.tar.gz
	cd $(LINK) && $(BIN)/antsibull-docs --config-file $(CURDIR)/tests/publish/antsibull.cfg lint-collection-docs --plugin-docs .

# The jobs of docs/awx.md, run through ansible-runner the way AWX runs them (tests/awx/).
test-awx: venv
	$(BIN)/pytest tests/awx -n 2

test-sanity: venv
	VENV_BIN=$(BIN) tests/sanity/run_sanity.sh

# A private Redis with search to try the modules on: prints `export REDIS_URL=...`; Ctrl-C stops it.
redis: venv
	$(BIN)/python tools/redis_search_server.py serve

# A primary, a replica and a Sentinel with search and JSON (tools/redis_replica_set.py) to try failover on:
# prints `export REDIS_URL=... REDIS_SENTINELS=...`; Ctrl-C stops it. REPLICA_SET_ARGS="--replicas 2 --sentinels 3"
replica-set: venv
	$(BIN)/python tools/redis_replica_set.py serve $(REPLICA_SET_ARGS)

# Unit, integration and sanity at both ends of what the collection claims (tests/matrix/run.sh): the lowest
# redis-py, pydantic, numpy and ansible-core, and the newest of each on the newest Python found; about 15 minutes.
# One end: make test-matrix MATRIX_ENDS=newest
test-matrix: $(LINK)
	tests/matrix/run.sh

# ANSIBLE_COLLECTIONS_PATH makes ansible-lint install the collection into ANSIBLE_HOME/collections;
# --offline lints the checkout through $(LINK) instead (ANSIBLE_HOME, exported above, keeps the rest under .build/).
test-lint: venv
	$(BIN)/ansible-lint --profile production --offline
	$(CHECK_USER_STATE)

# The roles' molecule scenarios (extensions/molecule/), all against one private Redis server.
# ANSIBLE_HOME keeps molecule's state and ansible's temporary files under .build/, not ~/.ansible;
# the collection comes from ANSIBLE_COLLECTIONS_PATH (prerun: false, nothing is installed).
# One scenario: make test-molecule MOLECULE_ARGS="-s write_quiesce"
MOLECULE_ARGS ?= --all
test-molecule: venv
	ANSIBLE_HOME=$(CURDIR)/.build/molecule $(BIN)/python tools/redis_search_server.py run -- \
	  $(BIN)/molecule test $(MOLECULE_ARGS)

# Planning latency next to the redisvl migrator (docs/benchmarks.md), in a venv of its own:
# redisvl is a benchmark peer, never a dependency of the collection. BENCH_ARGS="--sizes 10000,100000"
BENCH_VENV := .venv-bench
BENCH_BIN := $(CURDIR)/$(BENCH_VENV)/bin
BENCH_STAMP := $(BENCH_VENV)/.installed

$(BENCH_STAMP): requirements.txt tests/requirements.txt benchmarks/requirements.txt
	$(PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_BIN)/python -m pip install --quiet --upgrade pip
	$(BENCH_BIN)/python -m pip install --quiet -r requirements.txt -r tests/requirements.txt -r benchmarks/requirements.txt
	touch $@

bench: $(BENCH_STAMP) $(LINK)
	$(BENCH_BIN)/python benchmarks/plan_latency.py $(BENCH_ARGS)

# Read downtime (a poller process), apply, re-index, validation and peak RSS per scenario: redisvl,
# ours (workers 1 and 2, online and drop_recreate) and the raw floor, in one run (docs/benchmarks.md).
# Same venv. Quick: make bench-migrate BENCH_ARGS="--scale 0.1"; one: BENCH_ARGS="--scenarios flat-200k"
bench-migrate: $(BENCH_STAMP) $(LINK)
	$(BENCH_BIN)/python benchmarks/migrate_scenarios.py $(BENCH_ARGS)

# Apply speed and peak RSS over a sweep of sizes, ours next to redisvl's.
# BENCH_ARGS="--sizes 20000,100000,200000 --algorithm hnsw --workers 1,2 --runs 3"
bench-throughput: $(BENCH_STAMP) $(LINK)
	$(BENCH_BIN)/python benchmarks/migrate_throughput.py $(BENCH_ARGS)

# Planning latency of a batch of small indexes (target: 20 in under 2 s). Same venv.
# BENCH_ARGS="--indexes 50 --docs 1000 --runs 10"
bench-batch: $(BENCH_STAMP) $(LINK)
	$(BENCH_BIN)/python benchmarks/batch_plan_latency.py $(BENCH_ARGS)

# How long the server pauses its clients while an index builds, per BG_INDEX_SLEEP_GAP (a module load argument).
# BENCH_ARGS="--gaps 100,20,10 --runs 2 --docs 20000 --dims 128"
bench-build-pauses: $(BENCH_STAMP)
	$(BENCH_BIN)/python benchmarks/build_pauses.py $(BENCH_ARGS)

# What a migration costs as an Ansible task on top of the library call, and where it goes.
# BENCH_ARGS="--docs 100000 --dims 384 --runs 5"
bench-module: venv
	$(BIN)/python benchmarks/module_overhead.py $(BENCH_ARGS)

clean:
	rm -rf .build .ansible tests/output
