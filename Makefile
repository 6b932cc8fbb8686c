# picorder: the two commands of the README, and the appliance targets.
VENV := .venv
PYTEST_ARGS ?=

.PHONY: demo test setup-demo setup-test bench image image-test image-test-arm64 clean

demo: setup-demo
	$(VENV)/bin/picorder demo $(DEMO_ARGS)

test: setup-test
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

setup-demo:
	scripts/setup.sh demo

setup-test:
	scripts/setup.sh test

bench: setup-test
	$(VENV)/bin/python -m benchmarks.recorder_cpu

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
