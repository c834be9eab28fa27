# Two commands do all the set-up on a fresh Debian/Ubuntu machine with Python 3.11:
#   make run    install, then run the default toy pipeline end to end
#   make test       install, then run the whole test suite (incl. the toy pipeline end to end: ~15-25 min on 2 cores)
#   make test-fast  install, then every test that runs no workflow job (unit, physics, config, few dry runs; < 3 min)
PY ?= python3.11
VENV ?= .venv
CORES ?= 2

.PHONY: install run test test-fast test-slow dry-run config clean

$(VENV)/.installed: pyproject.toml setup.sh envs/install_gpaw.sh
	PYTHON=$(PY) VENV=$(VENV) bash setup.sh
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/snakemake --cores $(CORES)

test: install
	$(VENV)/bin/python -m pytest

# no snakemake job, no toy run: tests marked slow or workflow (conftest marks every user of toy_run) are left out
test-fast: install
	OMP_NUM_THREADS=1 $(VENV)/bin/python -m pytest -q -m "not slow and not workflow" --durations=10

# only the workflow-level runs: toy pipeline end to end and its value checks, kill-and-resume, SLURM
test-slow: install
	$(VENV)/bin/python -m pytest -m "slow or workflow"

# the effective, validated config of CONFIGFILE (default: the toy), as a run would use it
config: install
	$(VENV)/bin/twistox config $(if $(CONFIGFILE),--configfile $(CONFIGFILE))

dry-run: install
	$(VENV)/bin/snakemake -n

clean:
	rm -rf results logs .snakemake
