# Two entry points: `make verify` (the main job) and `make test` (the test suite).
# Each creates the virtual environment in .venv when it is missing.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TORCH_PINS ?= torch==2.14.1 torchvision==0.29.1

.PHONY: verify verify-full test test-slow test-deep lint bench clean-venv

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q $(TORCH_PINS)
	$(BIN)/python -m pip install -q -e '.[test,dev,corruptions]'
	touch $(STAMP)

# --overwrite: make verify refreshes results/ and the reference figures/ (a partial run, ARGS=--only
# or --no-proofs, writes under results/partial/ instead); plain `coremtl verify` refuses to replace them.
# JOBS worker processes (the results are those of one process; see coremtl verify --help).
JOBS ?= 2

verify: $(STAMP)
	$(BIN)/coremtl verify --overwrite --jobs $(JOBS) $(ARGS)

# The paper-grade setting, written under results/full/ (the reference figures/ stay the fast run's).
verify-full: $(STAMP)
	$(BIN)/coremtl verify --full --jobs $(JOBS) --results results/full/verify.json --figures results/full/figures $(ARGS)

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -n 2 -q $(ARGS); rc=$$?; if [ $$rc -eq 5 ]; then echo "no tests collected"; exit 0; fi; exit $$rc

test-slow: $(STAMP)
	$(BIN)/python -m pytest -q -m slow $(ARGS); rc=$$?; if [ $$rc -eq 5 ]; then exit 0; fi; exit $$rc

# The hypothesis property tests with the deep profile: 2,000 cases per statement (tests/hypothesis_profiles.py).
test-deep: $(STAMP)
	HYPOTHESIS_PROFILE=deep $(BIN)/python -m pytest -q -n 2 tests/test_proofs_properties.py tests/test_scm_closed_form.py $(ARGS)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

bench: $(STAMP)
	$(BIN)/coremtl bench $(ARGS)

clean-venv:
	rm -rf $(VENV)
