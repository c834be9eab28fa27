# Two commands do all the set-up on a fresh Debian/Ubuntu machine with Python 3.11:
#   make run    install, then run the default toy pipeline end to end
#   make test   install, then run the test suite
PY ?= python3.11
VENV ?= .venv
CORES ?= 2

.PHONY: install run test dry-run clean

$(VENV)/.installed: pyproject.toml setup.sh envs/install_gpaw.sh
	PYTHON=$(PY) VENV=$(VENV) bash setup.sh
	touch $@

install: $(VENV)/.installed

run: install
	$(VENV)/bin/snakemake --cores $(CORES)

test: install
	$(VENV)/bin/python -m pytest

dry-run: install
	$(VENV)/bin/snakemake -n

clean:
	rm -rf results logs .snakemake
