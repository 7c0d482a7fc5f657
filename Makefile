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
#   make bench        benchmarks (bench/run; never part of make test)
#   make soak         soak harness, SOAK_S seconds (default 600), SOAK_MPM=stock
#                     for the stock event MPM (soak/; never part of make test)
#   ITESTS="server/graceful.t apache"  selects integration tests
#   make install      install the module and mods-available/mpm_event2.{load,conf}
#   make clean

APXS     ?= apxs
APACHE2  ?= /usr/sbin/apache2
DESTDIR  ?=

SRCS     = mod_mpm_event2.c fdqueue.c event_queues.c poller.c memtrim.c
HDRS     = fdqueue.h event_queues.h poller.h memtrim.h
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
            strace openssl libio-socket-ssl-perl nghttp2-client wrk

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
        bench soak install clean

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

# Benchmarks: correctness checks plus timings against stock; never run by
# make test or .ci/run.
bench: deps all
	bash bench/run

# Soak: mixed checked traffic, admin events and resource samples against one
# server; writes build/soak/$(SOAK_MPM)/{summary.json,report.md}.  Exits
# non-zero on an unexplained failure or a failed criterion.
SOAK_S   ?= 600
SOAK_MPM ?= ours
soak: deps all
	SOAK_S=$(SOAK_S) SOAK_MPM=$(SOAK_MPM) timeout -k 10 $$(( $(SOAK_S) + 300 )) perl soak/soak.pl

install: all
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MODS_AVAILABLE)
	install -m 644 $(MODULE) $(DESTDIR)$(LIBEXECDIR)/mod_mpm_event2.so
	install -m 644 mpm_event2.load mpm_event2.conf $(DESTDIR)$(MODS_AVAILABLE)/

clean:
	rm -rf .libs build
	rm -f *.o *.lo *.la *.slo
	@if [ -f t/unit/Makefile ]; then $(MAKE) -C t/unit clean || true; fi
