# The two commands of the README: `make run` and `make test`. Both bootstrap their own .venv.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint vendor bench-queries clean

$(STAMP): requirements.txt requirements-dev.txt requirements-native.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	@# Best effort: without a C compiler the service runs the same, on gunicorn's Python parser.
	$(BIN)/python -m pip install --quiet -r requirements-native.txt \
		|| echo "note: requirements-native.txt not built (no C compiler?); gunicorn parses HTTP in Python"
	$(BIN)/python -m pip install --quiet --no-deps -e . -e clients/python
	@touch $(STAMP)

# The whole service (API + Socket.IO + a worker) on the embedded default, or on PostgreSQL and
# RabbitMQ when DATABASE_URL and CELERY_BROKER_URL are set.
run: $(STAMP)
	$(BIN)/python -m app.launcher

test: $(STAMP)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench clients

# Refresh the vendored browser assets (Swagger UI, Socket.IO client, Chart.js) from npm.
vendor:
	contrib/vendor-static.sh

clean:
	rm -rf $(VENV) var
