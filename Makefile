# Every step CI runs is here; `make check` is what .ci/run calls.
CARGO ?= cargo

.PHONY: build demo test lint check bench screenshot install clean

# Where `make install` puts the binaries: $(PREFIX)/bin.
PREFIX ?= /usr/local
BINARIES = flowlayer-server flowlayer-client-tui flowlayer

build:
	$(CARGO) build --release --workspace

# Build everything and run the bundled demo stack, with a second stack in the
# background beside it (Ctrl-C stops both).
demo: build
	fixtures/demo/run.sh

# All tests: unit tests of every crate and the integration tests in tests/.
test:
	$(CARGO) test --workspace

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --all-targets --workspace -- -D warnings
	RUSTDOCFLAGS="-D warnings" $(CARGO) doc --no-deps --workspace --document-private-items

check: lint test

bench: build
	$(CARGO) run --release -p flowlayer-bench -- $(BENCH_ARGS)

# Retakes spec/web.png and spec/web-incident.png: the web cockpit on the demo
# stack, in headless Chromium.
screenshot:
	$(CARGO) test --test main screenshot_of_the_demo_stack -- --ignored

# The server, the terminal client and the flowlayer command, into $(PREFIX)/bin.
install: build
	install -d $(DESTDIR)$(PREFIX)/bin
	install -m 0755 $(addprefix target/release/,$(BINARIES)) $(DESTDIR)$(PREFIX)/bin/

clean:
	$(CARGO) clean
