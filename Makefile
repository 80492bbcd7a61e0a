# Thin wrappers: each target creates the virtual environment in .venv/ (reused
# when present and up to date with pyproject.toml), installs the pinned
# dependencies, then runs.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
CORES ?= all

# `make report CONFIGFILE=config/paper.yaml`: the report of another config (default: the demo).
CONFIGFILE ?=
CONFIG_ARG := $(if $(CONFIGFILE),--configfile $(CONFIGFILE),)
REPORT ?= results/report.html

# The demo's key figures shown in the README (docs/<name>.png, made by `make docs`).
DOCS_FIGURES := published_models explained_share_demo cluster_prototypes master_keys_8 \
	cluster_membership_demo replacement_accuracy share_vs_accuracy niff_kmr_niff_convnext_atto \
	shiftinv_dtcwpt_J2
DOCS_SOURCES := $(DOCS_FIGURES:%=results/figures/%.png)

.PHONY: venv demo test paper dry-run-paper report docs lint clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $@

demo: $(STAMP)  ## the embedded offline demo (config.yaml)
	$(BIN)/snakemake --cores $(CORES)

test: $(STAMP)  ## the whole test suite (offline)
	$(BIN)/python -m pytest

paper: $(STAMP)  ## full reproduction (config/paper.yaml; needs network or a filled hub cache)
	$(BIN)/snakemake --cores $(CORES) --configfile config/paper.yaml

report: $(STAMP)  ## run the workflow where needed, then the HTML report $(REPORT) (CONFIGFILE=... for another config)
	$(BIN)/snakemake --cores $(CORES) $(CONFIG_ARG)
	$(BIN)/snakemake $(CONFIG_ARG) --report $(REPORT)

docs: $(STAMP)  ## small copies of the demo's key figures for the README (docs/*.png)
	$(BIN)/snakemake --cores $(CORES) $(DOCS_SOURCES)
	$(BIN)/python -m masterkey.plotting.docs --out docs $(DOCS_SOURCES)

dry-run-paper: $(STAMP)
	$(BIN)/snakemake -n --configfile config/paper.yaml

lint: $(STAMP)  ## snakemake --lint, snakefmt and ruff (all must be clean)
	$(BIN)/snakemake --lint
	$(BIN)/snakefmt --check Snakefile workflow/
	$(BIN)/ruff check src tests scripts benchmarks

clean:  ## remove results and logs (keeps downloaded weights in resources/)
	rm -rf results logs .snakemake
