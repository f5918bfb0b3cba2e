# The two commands of the quick start: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: run test test-heavy bench lint typecheck tools clean screenshots

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

# Server binaries the tests and the sandbox start on their own ports (Debian packages).
tools:
	@command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || \
	  { echo "installing mosquitto"; apt-get update -qq && apt-get install -y -qq mosquitto >/dev/null; }
	@ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || command -v initdb >/dev/null 2>&1 || \
	  { echo "installing postgresql"; apt-get update -qq && apt-get install -y -qq postgresql >/dev/null; }
	@[ -x /usr/sbin/slapd ] && command -v ldapadd >/dev/null 2>&1 || { echo "installing slapd, ldap-utils"; apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq slapd ldap-utils >/dev/null; }
	@[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || \
	  { echo "installing chromium"; apt-get update -qq && apt-get install -y -qq chromium chromium-driver >/dev/null; }
	@# The desktop pop-up's tests: a virtual display, window listing, a key press, screenshots.
	@{ command -v Xvfb && command -v xwininfo && command -v xwd && command -v xdotool && \
	   [ -x /usr/bin/convert ]; } >/dev/null 2>&1 || \
	  { echo "installing xvfb, x11-utils, x11-apps, xdotool, imagemagick"; apt-get update -qq && \
	    apt-get install -y -qq xvfb x11-utils x11-apps xdotool imagemagick >/dev/null; }

run: $(VENV)/.installed tools
	$(VENV)/bin/clarion run

# One worker per core (pytest-xdist); each test file runs whole on one worker, so a module's
# shared fixtures are made once. TEST_ARGS adds options, e.g. TEST_ARGS="-n 0" for one process.
TEST_WORKERS ?= auto
TEST_ARGS ?=
test: $(VENV)/.installed tools
	$(PY) -m pytest -q -m "not heavy" -n $(TEST_WORKERS) --dist loadfile $(TEST_ARGS)

test-heavy: $(VENV)/.installed tools
	$(PY) -m pytest -q -m heavy

# One all-campus emergency to 50,000 people and 500 devices, with its ceiling and Apprise peer;
# e.g. `make bench BENCH_ARGS="--recipients 10000 --profile"` or BENCH_ARGS=--scaling.
BENCH_ARGS ?=
bench: $(VENV)/.installed tools
	$(PY) -m bench.fanout $(BENCH_ARGS)

# The console's browser tests, saving their screenshots for the README.
screenshots: $(VENV)/.installed tools
	CLARION_SCREENSHOTS=docs/screenshots $(PY) -m pytest -q tests/console

lint: $(VENV)/.installed
	$(VENV)/bin/ruff check dispatcher channels segments tests bench
	$(VENV)/bin/mypy

clean:
	rm -rf $(VENV) var .pytest_cache
