# Warren developer tasks. Run `make` (or `make help`) for the list.

CARGO ?= cargo
PSQL ?= psql
WARREN_PG_PORT ?= 5432
# Databases removed by `make clean-test-dbs` (name prefix).
TEST_DB_PREFIX ?= warren_test_

# Backtraces for panics in tests and in the binaries the tests spawn.
export RUST_BACKTRACE ?= 1

PSQL_ADMIN = $(PSQL) -X -w -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p $(WARREN_PG_PORT) -U postgres -d postgres

.DEFAULT_GOAL := help
.PHONY: help services build lint fmt test test-faults demo bench clean-test-dbs

help: ## List the targets
	@awk 'BEGIN { FS = ":.*## " } /^[a-zA-Z0-9_-]+:.*## / { printf "  %-16s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

services: ## Install/start local PostgreSQL and RabbitMQ and wait until they answer
	bash deploy/local/services.sh

build: ## Build all binaries (debug)
	$(CARGO) build --workspace --bins

lint: ## Check formatting, run clippy and build the API docs, warnings denied
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --workspace --no-deps

fmt: ## Format all code
	$(CARGO) fmt --all

test: services ## Unit/property tests, then integration tests (incl. the dashboard in Chromium), then the fault suite (serial)
	bash deploy/local/browser.sh
	$(CARGO) build --workspace --bins --examples
	$(CARGO) test --workspace --exclude warren-tests
	$(CARGO) test -p warren-tests --test integration
	$(MAKE) test-faults

test-faults: services ## Fault-injection suite, one test at a time, printing each test's figures
	$(CARGO) build --workspace --bins --examples
	$(CARGO) test -p warren-tests --test faults -- --test-threads=1 --show-output

demo: services build ## Run the local demo (deploy/local/demo.sh)
	bash deploy/local/demo.sh

bench: services ## Build release binaries and run deploy/local/bench.sh
	$(CARGO) build --workspace --bins --release
	bash deploy/local/bench.sh

clean-test-dbs: ## Drop every PostgreSQL database named warren_test_* (left by interrupted tests)
	@dbs=$$($(PSQL_ADMIN) -Atc "select datname from pg_database where datname like '$(subst _,\_,$(TEST_DB_PREFIX))%' order by 1") || exit 1; \
	if [ -z "$$dbs" ]; then echo "no $(TEST_DB_PREFIX)* databases"; exit 0; fi; \
	printf '%s\n' "$$dbs" | while IFS= read -r db; do \
		echo "dropping database $$db"; \
		$(PSQL_ADMIN) -c "drop database if exists \"$$db\" with (force)" || exit 1; \
	done
