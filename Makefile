# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= $(shell for p in python3.12 python3.13 /root/.pyenv/versions/3.12.1/bin/python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && { command -v $$p; break; }; done)
VENV ?= .venv
BIN = $(VENV)/bin
PORT ?= 8000

.PHONY: venv venv-test run test lint bench clean

# Two stamps: serving needs only the package with its runtime extras and the test project's own
# requirements; `make test` adds the test tooling and the peer servers the bench/docs tests compare.
$(BIN)/.installed-run: pyproject.toml testproject/requirements.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q -e '.[all]' -r testproject/requirements.txt
	touch $@

$(BIN)/.installed-test: $(BIN)/.installed-run
	$(BIN)/python -m pip install -q -e '.[all,test,bench]' -r testproject/requirements.txt
	touch $@

venv: $(BIN)/.installed-run

venv-test: $(BIN)/.installed-test

# Serve the Django test project (static files, admin, WebSockets) on http://127.0.0.1:$(PORT)
run: venv
	cd testproject && ../$(BIN)/python manage.py migrate --noinput -v0 && \
		../$(BIN)/python manage.py collectstatic --noinput -v0 && \
		../$(BIN)/python manage.py granian --port $(PORT)

# Everything CI runs: system tools, lint, type check, the whole test suite
test: venv-test
	bash scripts/install-system-deps.sh
	$(BIN)/ruff check django_granian tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: venv-test
	$(BIN)/python -m bench --help

clean:
	rm -rf $(VENV) build dist *.egg-info
