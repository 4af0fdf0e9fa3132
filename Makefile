# Thin wrapper over CMake. See README.md.
BUILD      ?= build
BUILD_ASAN ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build build-asan run stop test test-release test-asan test-valgrind clean install

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFULCRUM_WERROR=ON
	cmake --build $(BUILD) -j$(JOBS)

build-asan:
	cmake -S . -B $(BUILD_ASAN) -DCMAKE_BUILD_TYPE=Debug -DFULCRUM_SANITIZE=ON -DFULCRUM_WERROR=ON
	cmake --build $(BUILD_ASAN) -j$(JOBS)

# Builds, then starts the dev issuer and `fulcrum serve` in the background (see scripts/run-dev).
run: build
	scripts/run-dev start

stop:
	scripts/run-dev stop

# The whole suite: once on the release build, once under ASan+UBSan; then a short run of every
# libFuzzer target (clang) and the integration tests under valgrind memcheck.
test: test-release test-asan test-fuzz test-valgrind

test-release: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

test-asan: build-asan
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	  ctest --test-dir $(BUILD_ASAN) --output-on-failure -j$(JOBS)

# The integration tests with `fulcrum serve` and `fulcrum ctlog serve` under valgrind memcheck
# (any memcheck error or definite leak fails the test); heavy tests run at FULCRUM_TEST_SCALE.
VALGRIND_SCALE ?= 0.02
test-valgrind: build
	FULCRUM_TEST_SCALE=$(VALGRIND_SCALE) \
	  ctest --test-dir $(BUILD) -C Valgrind -L valgrind --output-on-failure -j$(JOBS)

clean:
	rm -rf $(BUILD) $(BUILD_ASAN)

# Installs the binary, the systemd units (ExecStart= pointing at $(PREFIX)/bin/fulcrum) and the
# operator's guide; docs/operators-guide.md says how to deploy from there.
PREFIX  ?= /usr/local
UNITDIR ?= $(PREFIX)/lib/systemd/system
install: build
	install -D -m 0755 $(BUILD)/fulcrum $(DESTDIR)$(PREFIX)/bin/fulcrum
	install -d $(DESTDIR)$(UNITDIR)
	for u in fulcrum.service fulcrum.socket fulcrum-ctlog.service fulcrum-ctlog.socket; do \
	  sed 's#/usr/local/bin/fulcrum#$(PREFIX)/bin/fulcrum#g; s#/usr/local/share/doc/fulcrum#$(PREFIX)/share/doc/fulcrum#g' \
	    systemd/$$u > $(DESTDIR)$(UNITDIR)/$$u && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u || exit 1; \
	done
	install -D -m 0644 docs/operators-guide.md $(DESTDIR)$(PREFIX)/share/doc/fulcrum/operators-guide.md
	install -d $(DESTDIR)$(PREFIX)/share/doc/fulcrum/examples/fulcrum.service.d
	install -m 0644 systemd/examples/*.conf $(DESTDIR)$(PREFIX)/share/doc/fulcrum/examples/
	install -m 0644 systemd/examples/fulcrum.service.d/*.conf $(DESTDIR)$(PREFIX)/share/doc/fulcrum/examples/fulcrum.service.d/

# libFuzzer targets (tests/fuzz, clang): build them, run each for 20 s on a copy of its seeds.
BUILD_FUZZ ?= build-fuzz
.PHONY: test-fuzz
test-fuzz:
	CC=clang cmake -S . -B $(BUILD_FUZZ) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DFULCRUM_FUZZ=ON -DFULCRUM_WERROR=ON
	cmake --build $(BUILD_FUZZ) -j$(JOBS) --target fuzz
	FUZZ_BUILD=$(BUILD_FUZZ) FUZZ_PARALLEL=$(JOBS) tests/fuzz/run.sh 20
