# picorder: the two commands of the README, and the appliance targets.
VENV := .venv
PYTEST_ARGS ?=

.PHONY: demo test setup-demo setup-test setup-test-arm64 bench image image-amd64 image-test \
	image-test-arm64 clean

# `make demo DEMO_ARGS=-v` shows the full log.
demo: setup-demo
	@$(VENV)/bin/picorder demo $(DEMO_ARGS)

test: setup-test
	$(VENV)/bin/python -m pytest $(PYTEST_ARGS)

# Each installs what is missing (apt packages, the venv), then checks it by capability.
setup-demo:
	@scripts/setup.sh demo

setup-test:
	@scripts/setup.sh test

setup-test-arm64:
	@scripts/setup.sh test-arm64

bench: setup-test
	$(VENV)/bin/python -m benchmarks.recorder_cpu

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache

# The appliance (issue 6).  Builds need root; the cache is $PICORDER_BUILD_CACHE
# (default /var/cache/picorder-build), the arm64 image goes to image/out/.
image:
	nice image/build.sh arm64
	image/check-firmware.sh image/out/picorder-$$(sed -n 's/^__version__ = "\(.*\)"/\1/p' recorder/__init__.py)-arm64.img.xz

image-amd64:
	nice image/build.sh amd64

# Boot test of the amd64 variant (built or reused from the cache); `make test` runs it too.
image-test: setup-test
	$(VENV)/bin/python -m pytest tests/vm $(PYTEST_ARGS)

# Boot test of the arm64 image under TCG (slow: run before a release).
image-test-arm64: setup-test-arm64
	PICORDER_VM_ARCH=arm64 $(VENV)/bin/python -m pytest tests/vm $(PYTEST_ARGS)
