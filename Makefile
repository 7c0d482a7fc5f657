# Licensed under the Apache License, Version 2.0 (see LICENSE).
#
# mod_mpm_event2: an event-driven MPM for Apache httpd 2.4, built with apxs.
#
#   make              build .libs/mod_mpm_event2.so (make WERROR=1: warnings fail)
#   make deps         install what building and testing need (Debian, as root)
#   make run          run it in the foreground on 127.0.0.1:8080 (conf/run.conf)
#   make test         unit tests (+ sanitizers) and integration tests
#   make test-stock   the integration tests against the stock event MPM
#   make sanitize     unit tests under sanitizers
#   make fuzz         libFuzzer targets of policy.c, FUZZ_S s each (default
#                     300; installs clang if missing; never part of make test)
#   make sanitize-server  the module built with ASan+UBSan (build/asan/),
#                     loaded into apache2 under a short mixed load; any
#                     report fails (make sanitize-server-tsan: TSan, build/tsan/)
#   make bench        benchmarks (bench/run; never part of make test)
#   ITESTS="server/graceful.t apache"  selects integration tests
#   make install      install the module and mods-available/mpm_event2.{load,conf}
#   make clean

APXS     ?= apxs
APACHE2  ?= /usr/sbin/apache2
DESTDIR  ?=

SRCS     = mod_mpm_event2.c policy.c fdqueue.c event_queues.c poller.c memtrim.c
HDRS     = policy.h fdqueue.h event_queues.h poller.h memtrim.h
MODULE   = .libs/mod_mpm_event2.so
LA       = mod_mpm_event2.la

WARNFLAGS = -Wall -Wextra
CFLAGS_EXTRA = $(WARNFLAGS) -O2 -fvisibility=hidden
ifeq ($(WERROR),1)
CFLAGS_EXTRA += -Werror
endif
APXS_CFLAGS = $(foreach f,$(CFLAGS_EXTRA),-Wc,$(f))

# Where make install puts things (asked from apxs only when needed).
LIBEXECDIR = $(shell $(APXS) -q LIBEXECDIR)
MODS_AVAILABLE = /etc/apache2/mods-available

# Debian packages the build and the tests need.
DEPS_PKGS = apache2 apache2-dev apache2-utils libapache2-mod-perl2 \
            libwww-perl perl curl gcc libc6-dev make passwd \
            strace openssl libio-socket-ssl-perl nghttp2-client

RUNDIR   = $(CURDIR)/build/run
PORT    ?= 8080
# make run RUN_MPM_SO=... RUN_MPM_SYM=... runs the bundled config with another MPM.
RUN_MPM_SO  ?= $(CURDIR)/$(MODULE)
RUN_MPM_SYM ?= mpm_event2_module
RUNCONF  = $(CURDIR)/conf/run.conf

# The stock event MPM, for comparison runs.
STOCK_SO  = /usr/lib/apache2/modules/mod_mpm_event.so
STOCK_SYM = mpm_event_module

.PHONY: all deps run test test-unit test-integration test-stock sanitize \
        fuzz sanitize-server sanitize-server-tsan bench install clean

all: $(MODULE)

$(MODULE): $(SRCS) $(HDRS) Makefile
	$(APXS) -c $(APXS_CFLAGS) -o $(LA) $(SRCS)
	@test -f $(MODULE) || { echo "build did not produce $(MODULE)" >&2; exit 1; }

deps:
	@missing=""; \
	for p in $(DEPS_PKGS); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q '^install ok installed$$' \
	        || missing="$$missing $$p"; \
	done; \
	if [ -z "$$missing" ]; then exit 0; fi; \
	if [ "$$(id -u)" != 0 ]; then \
	    echo "make deps: missing packages:$$missing (run 'make deps' as root)" >&2; \
	    exit 1; \
	fi; \
	echo "make deps: installing$$missing"; \
	export DEBIAN_FRONTEND=noninteractive; \
	timeout 600 apt-get update -q && \
	timeout 1200 apt-get install -y -q --no-install-recommends $$missing < /dev/null

# Foreground server on 127.0.0.1:8080 with the bundled config and docroot.
# Stop it with Ctrl-C.
run: deps all
	@mkdir -p $(RUNDIR)
	@if [ "$$(id -u)" = 0 ]; then chmod 755 $(RUNDIR); fi
	$(APACHE2) -DFOREGROUND -d $(CURDIR) -f $(RUNCONF) \
	    -C 'Define EV2_TOP $(CURDIR)' -C 'Define EV2_RUNDIR $(RUNDIR)' \
	    -C 'Define EV2_MODULE $(RUN_MPM_SO)' -C 'Define EV2_MODULE_SYM $(RUN_MPM_SYM)' \
	    -C 'Define EV2_PORT $(PORT)' \
	    $$( [ "$$(id -u)" = 0 ] && echo -DEV2_AS_ROOT )

test: deps all test-unit test-integration

test-unit:
	@if [ -f t/unit/Makefile ]; then \
	    $(MAKE) -C t/unit check && $(MAKE) -C t/unit sanitize; \
	else \
	    echo "make test: t/unit/Makefile not present, skipping unit tests"; \
	fi

test-integration: all
	t/integration.sh $(ITESTS)

# The same integration tests against the stock event MPM (event2-only
# assertions are TODO or expected to fail there).
test-stock: deps
	EV2_MPM_SO=$(STOCK_SO) EV2_MPM_SYM=$(STOCK_SYM) t/integration.sh $(ITESTS)

sanitize:
	@if [ -f t/unit/Makefile ]; then \
	    $(MAKE) -C t/unit sanitize; \
	else \
	    echo "make sanitize: t/unit/Makefile not present" >&2; exit 1; \
	fi

# Fuzzing (t/fuzz/Makefile): clang with libFuzzer, from Debian.
FUZZ_PKGS = clang libclang-rt-dev
FUZZ_S   ?= 300

fuzz:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(FUZZ_PKGS)"
	$(MAKE) -C t/fuzz run FUZZ_S=$(FUZZ_S)

# The whole module under sanitizers, built with plain gcc (apxs's compiler
# and flags, without _FORTIFY_SOURCE, which ASan does not want) and loaded
# into the stock apache2 by t/sanitize/run.sh with the runtime preloaded.
# SAN_ITESTS: integration tests to run (default sanitize/mixed_load.t).
SAN_CC    = $(shell $(APXS) -q CC)
SAN_BASE  = $(shell $(APXS) -q CFLAGS) $(shell $(APXS) -q EXTRA_CPPFLAGS) \
            -I$(shell $(APXS) -q INCLUDEDIR) $(shell apr-1-config --includes) \
            $(WARNFLAGS) -O1 -g -fno-omit-frame-pointer -fPIC -fvisibility=hidden
ASAN_SRV_FLAGS = -fsanitize=address,undefined
TSAN_SRV_FLAGS = -fsanitize=thread
SAN_ITESTS ?=

build/asan/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(@D)
	$(SAN_CC) $(SAN_BASE) $(ASAN_SRV_FLAGS) -c -o $@ $<

build/asan/mod_mpm_event2.so: $(patsubst %.c,build/asan/%.o,$(SRCS))
	$(SAN_CC) -shared $(ASAN_SRV_FLAGS) -o $@ $^

build/tsan/%.o: %.c $(HDRS) Makefile
	@mkdir -p $(@D)
	$(SAN_CC) $(SAN_BASE) $(TSAN_SRV_FLAGS) -c -o $@ $<

build/tsan/mod_mpm_event2.so: $(patsubst %.c,build/tsan/%.o,$(SRCS))
	$(SAN_CC) -shared $(TSAN_SRV_FLAGS) -o $@ $^

# The control module (t/sanitize/canary.t), built with the same sanitizer.
build/%/mod_ev2_canary.so: t/sanitize/mod_ev2_canary.c Makefile
	@mkdir -p $(@D)
	$(SAN_CC) $(SAN_BASE) $(if $(filter tsan,$*),$(TSAN_SRV_FLAGS),$(ASAN_SRV_FLAGS)) \
	    -shared -o $@ $< -lpthread

sanitize-server: deps build/asan/mod_mpm_event2.so build/asan/mod_ev2_canary.so
	EV2_SAN_CANARY_SO=$(CURDIR)/build/asan/mod_ev2_canary.so \
	    t/sanitize/run.sh asan build/asan/mod_mpm_event2.so $(SAN_ITESTS)

sanitize-server-tsan: deps build/tsan/mod_mpm_event2.so build/tsan/mod_ev2_canary.so
	EV2_SAN_CANARY_SO=$(CURDIR)/build/tsan/mod_ev2_canary.so \
	    t/sanitize/run.sh tsan build/tsan/mod_mpm_event2.so $(SAN_ITESTS)

# Benchmarks: correctness checks plus timings against stock; never run by
# make test or .ci/run.
bench: deps all
	bash bench/run

install: all
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MODS_AVAILABLE)
	install -m 644 $(MODULE) $(DESTDIR)$(LIBEXECDIR)/mod_mpm_event2.so
	install -m 644 mpm_event2.load mpm_event2.conf $(DESTDIR)$(MODS_AVAILABLE)/

clean:
	rm -rf .libs build
	rm -f *.o *.lo *.la *.slo
	@if [ -f t/unit/Makefile ]; then $(MAKE) -C t/unit clean || true; fi
