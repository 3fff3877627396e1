# Two commands do all the set-up on a fresh machine:
#   make run    install into .venv, migrate, load catalogue + demo data, start web + worker + beat
#   make test   install into .venv and run the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
PORT ?= 8000
DEMO_PASSWORD ?= demo-pass-2026

.PHONY: run test install lint check-services clean browser messages

$(STAMP): pyproject.toml
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

run: install
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(BIN)/python manage.py seed_demo --password '$(DEMO_PASSWORD)'
	@echo
	@echo "  Web:      http://127.0.0.1:$(PORT)/        (API docs: http://127.0.0.1:$(PORT)/api/docs/)"
	@echo "  Admin:    http://127.0.0.1:$(PORT)/admin/  (user admin)"
	@echo "  Starting web server, Celery worker and beat; Ctrl-C stops all three."
	@echo
	PORT=$(PORT) $(BIN)/honcho start -f Procfile

# The end-to-end tests drive Debian's headless Chromium; a Chinese font makes the screenshots legible.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-zenhei
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); \
	elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); \
	else echo "Install $(BROWSER_PACKAGES) for the browser tests (they are skipped without them outside CI)"; fi

# Translators: refresh the catalogue after changing strings, translate, then compile. The compiled .mo
# is committed so that a machine without gettext serves Chinese; a test fails when it is stale.
messages: install
	$(BIN)/python manage.py makemessages -l zh_Hans --no-obsolete --ignore=.venv --ignore=var --ignore=tests --ignore=bench --ignore=control
	$(BIN)/python manage.py compilemessages -l zh_Hans --ignore=.venv --ignore=var

test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var
