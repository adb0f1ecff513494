# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= $(shell for p in python3.12 python3.13 /root/.pyenv/versions/3.12.1/bin/python3.12 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 10))' 2>/dev/null && { command -v $$p; break; }; done)
VENV ?= .venv
BIN = $(VENV)/bin
PORT ?= 8000

.PHONY: venv run test lint bench clean

$(BIN)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -e '.[all,test,bench]'
	touch $@

venv: $(BIN)/.installed

# Serve the Django test project (static files, admin, WebSockets) on http://127.0.0.1:$(PORT)
run: venv
	cd testproject && ../$(BIN)/python manage.py migrate --noinput -v0 && \
		../$(BIN)/python manage.py collectstatic --noinput -v0 && \
		../$(BIN)/python manage.py granian --port $(PORT)

# Everything CI runs: system tools, lint, type check, the whole test suite
test: venv
	bash scripts/install-system-deps.sh
	$(BIN)/ruff check django_granian tests bench
	$(BIN)/mypy
	$(BIN)/python -m pytest -q

bench: venv
	$(BIN)/python -m pip install -q -e '.[bench]'
	$(BIN)/python -m bench --help

clean:
	rm -rf $(VENV) build dist *.egg-info
