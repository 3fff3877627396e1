# Two commands do all the set-up on a fresh machine:
#   make run    install into .venv, migrate, load catalogue + demo data, start web + worker + beat
#   make test   install into .venv and run the whole test suite
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# Every install resolves the exact versions in the lock (CONSTRAINTS); `make lock` refreshes it.
CONSTRAINTS := requirements/constraints.txt
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml $(CONSTRAINTS) | sha1sum | cut -c1-12)
PORT ?= 8000
DEMO_PASSWORD ?= demo-pass-2026
# The demo's national-platform link points at the simulator the Procfile starts (docs/platform.md). Set PLATFORM_URL
# (and the sender settings) to use a province's test node instead, or `make run PLATFORM_URL=` to switch it off.
PLATFORM_SIMULATOR_PORT ?= 8090
PLATFORM_URL ?= http://127.0.0.1:$(PLATFORM_SIMULATOR_PORT)/
PLATFORM_FIXMEDINS_CODE ?= P53012400001
PLATFORM_FIXMEDINS_NAME ?= 富民县医疗保障局
PLATFORM_INSU_ADMDVS ?= 530124
PLATFORM_ENV = PLATFORM_URL='$(PLATFORM_URL)' PLATFORM_SIMULATOR_PORT='$(PLATFORM_SIMULATOR_PORT)' \
	PLATFORM_FIXMEDINS_CODE='$(PLATFORM_FIXMEDINS_CODE)' PLATFORM_FIXMEDINS_NAME='$(PLATFORM_FIXMEDINS_NAME)' \
	PLATFORM_INSU_ADMDVS='$(PLATFORM_INSU_ADMDVS)'

.PHONY: run test install lock lint check-services clean browser messages bench-tools

$(STAMP): pyproject.toml $(CONSTRAINTS)
	@command -v $(PYTHON) >/dev/null || { echo "Python 3.11 is required ($(PYTHON) not found)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[dev]'
	rm -f $(VENV)/.installed-* && touch $(STAMP)

install: $(STAMP)

# Re-resolve every dependency (pyproject.toml and its dev extra) to the newest versions its pins allow and
# write them to the lock; review the diff, run `make test`, commit both. Extras are stripped because pip
# refuses them in a constraints file.
lock: install
	CUSTOM_COMPILE_COMMAND="make lock" $(BIN)/pip-compile --quiet --upgrade --extra dev --strip-extras \
		--no-emit-index-url --no-emit-find-links --output-file $(CONSTRAINTS) pyproject.toml

run: install
	mkdir -p var
	$(BIN)/python manage.py migrate --noinput
	$(PLATFORM_ENV) $(BIN)/python manage.py seed_demo --password '$(DEMO_PASSWORD)'
	@echo
	@echo "  Web:      http://127.0.0.1:$(PORT)/        (API docs: http://127.0.0.1:$(PORT)/api/docs/)"
	@echo "  Admin:    http://127.0.0.1:$(PORT)/admin/  (user admin)"
	@echo "  Platform: $(if $(PLATFORM_URL),$(PLATFORM_URL),off)  (national platform simulator on port $(PLATFORM_SIMULATOR_PORT); docs/platform.md)"
	@echo "  Starting web server, Celery worker, beat and the platform simulator; Ctrl-C stops all four."
	@echo
	PORT=$(PORT) $(PLATFORM_ENV) $(BIN)/honcho start -f Procfile

# The end-to-end tests drive Debian's headless Chromium; a Chinese font makes the screenshots legible.
BROWSER_PACKAGES := chromium chromium-driver fonts-wqy-zenhei
browser:
	@if command -v chromium >/dev/null && command -v chromedriver >/dev/null && fc-list :lang=zh 2>/dev/null | grep -q .; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); \
	elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BROWSER_PACKAGES); \
	else echo "Install $(BROWSER_PACKAGES) for the browser tests (they are skipped without them outside CI)"; fi

# The HTTP benchmarks (bench/http_paths.py) drive gunicorn with Debian's wrk, a load generator that costs
# little CPU next to the server it measures; taskset (util-linux) pins each to its own core.
BENCH_PACKAGES := wrk
bench-tools:
	@if command -v wrk >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PACKAGES); \
	elif command -v sudo >/dev/null; then sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(BENCH_PACKAGES); \
	else echo "Install $(BENCH_PACKAGES) for the HTTP benchmarks (bench/http_paths.py)"; fi

# Translators: refresh the catalogue after changing strings, translate, then compile. The compiled .mo
# is committed so that a machine without gettext serves Chinese; a test fails when it is stale.
messages: install
	$(BIN)/python manage.py makemessages -l zh_Hans --no-obsolete --ignore=.venv --ignore=var --ignore=tests --ignore=bench --ignore=control
	$(BIN)/python manage.py compilemessages -l zh_Hans --ignore=.venv --ignore=var

test: install browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy
	$(BIN)/python manage.py makemigrations --check --dry-run
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) var
