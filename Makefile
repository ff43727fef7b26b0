# Imali: the two commands are `make demo` and `make test`. Everything else is a helper.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test bench lint bootstrap clean

# A fresh machine gets the venv and the pinned, locked dependencies; later runs reuse them
# until requirements.lock or pyproject.toml change. Our code is not installed: a .pth file puts
# src/ on the venv's path, so manage.py, pytest and `python -m imali.peers...` all find it.
$(STAMP): requirements.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PY) -m pip install --quiet --require-virtualenv -r requirements.lock 2>&1 | { grep -v "^WARNING: Location" || true; }
	$(PY) -c "import pathlib, site; pathlib.Path(site.getsitepackages()[0], 'imali-src.pth').write_text(str(pathlib.Path('src').resolve()) + '\n')"
	touch $(STAMP)

bootstrap: $(STAMP)

demo: bootstrap
	$(PY) manage.py migrate --noinput
	$(PY) manage.py load_demo
	$(PY) manage.py run_stack

test: bootstrap
	bash scripts/run_tests.sh

bench: bootstrap
	bash scripts/run_benchmarks.sh

lint: bootstrap
	$(VENV)/bin/ruff check src tests benchmarks
	IMALI_ENV=production IMALI_EMAIL_HOST=smtp.example.invalid IMALI_SECRET_KEY="$$($(PY) -c 'import secrets; print(secrets.token_urlsafe(64))')" \
		$(PY) manage.py check --deploy --fail-level WARNING
	$(PY) manage.py makemigrations --check --dry-run
	$(PY) manage.py spectacular --validate --fail-on-warn --file /dev/null

clean:
	rm -rf $(VENV) var staticfiles
