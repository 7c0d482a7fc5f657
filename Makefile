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
#   make fuzz         libFuzzer targets of policy.c and reqscan.c, FUZZ_S s
#                     each (default 300; installs clang if missing; never
#                     part of make test)
#   make sanitize-server  the module built with ASan+UBSan (build/asan/),
#                     loaded into apache2 under a short mixed load; any
#                     report fails (make sanitize-server-tsan: TSan, build/tsan/)
#   make fault-shim   t/fault/faultinj.so (LD_PRELOAD fault injection; make test builds it)
#   make bench        benchmarks (bench/run; never part of make test)
#   make soak         soak harness, SOAK_S seconds (default 600), SOAK_MPM=stock
#                     for the stock event MPM (soak/; never part of make test)
#   ITESTS="server/graceful.t apache"  selects integration tests
#   make install      install the stripped module and mods-available/mpm_event2.{load,conf}
#                     (does not enable it; DESTDIR=... for a staging tree)
#   make uninstall    switch an enabled event2 back to mpm_event, remove those files
#   make deb          Debian package libapache2-mod-mpm-event2 (+ -dbgsym) in build/deb/
#   make test-deb     as root, on the system's apache2: install, check, remove and purge
#                     the package, then make install/uninstall; restores the MPM and
#                     whether apache2 ran (t/install.sh)
#   make lint-deb     lintian on build/deb/*.changes (installs lintian)
#   make clean

APXS     ?= apxs
APACHE2  ?= /usr/sbin/apache2
DESTDIR  ?=

SRCS     = mod_mpm_event2.c config.c parent.c maint.c child.c listener.c accept.c \
           worker.c conn.c states.c linger.c header.c hold.c status.c policy.c \
           reqscan.c fdqueue.c event_queues.c \
           poller.c memtrim.c
HDRS     = ev2.h policy.h reqscan.h fdqueue.h event_queues.h poller.h memtrim.h
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
MODS_ENABLED   = /etc/apache2/mods-enabled

# Debian packages the build and the tests need.
DEPS_PKGS = apache2 apache2-dev apache2-utils libapache2-mod-perl2 \
            libwww-perl perl curl gcc libc6-dev make passwd \
            strace openssl libio-socket-ssl-perl nghttp2-client haproxy wrk

# What make deb and make test-deb need (dh_apache2 comes with apache2-dev;
# readelf, for the stripped check, with binutils).
DEB_PKGS = apache2 apache2-dev debhelper dpkg-dev build-essential binutils curl
DEB_DIR  = build/deb
DEB_NAME = libapache2-mod-mpm-event2

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
        fuzz sanitize-server sanitize-server-tsan bench soak install \
        uninstall deb deb-deps test-deb lint-deb fault-shim clean

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

# The fault-injection shim the t/server/fault_*.t tests preload into apache2.
FAULT_SHIM = t/fault/faultinj.so

fault-shim: $(FAULT_SHIM)

$(FAULT_SHIM): t/fault/faultinj.c
	$(CC) -shared -fPIC -O2 $(WARNFLAGS) $(if $(filter 1,$(WERROR)),-Werror) -o $@ $< -ldl

test-integration: all $(FAULT_SHIM)
	t/integration.sh $(ITESTS)

# The same integration tests against the stock event MPM (event2-only
# assertions are TODO or expected to fail there).
test-stock: deps $(FAULT_SHIM)
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

# Soak: mixed checked traffic, admin events and resource samples against one
# server; writes build/soak/$(SOAK_MPM)/{summary.json,report.md}.  Exits
# non-zero on an unexplained failure or a failed criterion.
SOAK_S   ?= 600
SOAK_MPM ?= ours
soak: deps all
	SOAK_S=$(SOAK_S) SOAK_MPM=$(SOAK_MPM) timeout -k 10 $$(( $(SOAK_S) + 300 )) perl soak/soak.pl

# Refuses to overwrite files of the Debian package (use dpkg -r for those).
install: all
	@if [ -z "$(DESTDIR)" ] && dpkg-query -S $(LIBEXECDIR)/mod_mpm_event2.so >/dev/null 2>&1; then \
	    echo "make install: $(LIBEXECDIR)/mod_mpm_event2.so belongs to a Debian package (dpkg -S); remove it with dpkg -r first" >&2; \
	    exit 1; \
	fi
	install -d $(DESTDIR)$(LIBEXECDIR) $(DESTDIR)$(MODS_AVAILABLE)
	install -m 644 -s $(MODULE) $(DESTDIR)$(LIBEXECDIR)/mod_mpm_event2.so
	install -m 644 mpm_event2.load mpm_event2.conf $(DESTDIR)$(MODS_AVAILABLE)/

# With event2 enabled, disable it and enable mpm_event first (the stock
# mpm_event.load does not name event2 in its Conflicts line, so both would
# end up enabled), purge a2enmod's state for mpm_event2, then remove the
# files.  A running apache2 keeps event2 until it is restarted.
uninstall:
	@if [ -z "$(DESTDIR)" ] && dpkg-query -S $(LIBEXECDIR)/mod_mpm_event2.so >/dev/null 2>&1; then \
	    echo "make uninstall: $(LIBEXECDIR)/mod_mpm_event2.so belongs to a Debian package: use dpkg -r $(DEB_NAME)" >&2; \
	    exit 1; \
	fi
	@set -e; \
	if [ -z "$(DESTDIR)" ] && [ -x /usr/sbin/a2dismod ]; then \
	    if [ -e $(MODS_ENABLED)/mpm_event2.load ]; then \
	        a2dismod -q mpm_event2; \
	        a2enmod -q mpm_event; \
	        echo "make uninstall: switched the MPM from event2 to event; restart apache2 to use it (systemctl restart apache2, or apache2ctl stop then apache2ctl start)"; \
	    fi; \
	    a2dismod -q -p -f mpm_event2 >/dev/null 2>&1 || true; \
	fi
	rm -f $(DESTDIR)$(LIBEXECDIR)/mod_mpm_event2.so \
	      $(DESTDIR)$(MODS_AVAILABLE)/mpm_event2.load $(DESTDIR)$(MODS_AVAILABLE)/mpm_event2.conf

deb-deps:
	@$(MAKE) --no-print-directory deps DEPS_PKGS="$(DEB_PKGS)"

# Built from a copy of the sources in build/deb/src (dpkg-buildpackage puts
# the .deb, the -dbgsym .deb, .buildinfo and .changes in build/deb/); the
# log is build/deb/build.log.
deb: deb-deps
	rm -rf $(DEB_DIR)
	mkdir -p $(DEB_DIR)/src
	tar -c -f - --exclude=./.git --exclude=./build --exclude=.libs \
	    --exclude='*.o' --exclude='*.lo' --exclude='*.la' --exclude='*.slo' \
	    --exclude=./bench/out --exclude='./t/unit/build*' . | tar -x -f - -C $(DEB_DIR)/src
	@echo "dpkg-buildpackage -us -uc -b in $(DEB_DIR)/src (log: $(DEB_DIR)/build.log)"
	@cd $(DEB_DIR)/src && timeout 900 dpkg-buildpackage -us -uc -b > ../build.log 2>&1 < /dev/null \
	    || { tail -n 40 ../build.log >&2; echo "make deb: dpkg-buildpackage failed, see $(DEB_DIR)/build.log" >&2; exit 1; }
	@ls -1 $(DEB_DIR)/*.deb

test-deb: deb
	t/install.sh $(DEB_DIR)

lint-deb: deb
	@$(MAKE) --no-print-directory deps DEPS_PKGS="lintian"
	timeout 600 lintian --info --display-info --pedantic $(DEB_DIR)/*.changes

clean:
	rm -rf .libs build
	rm -f *.o *.lo *.la *.slo $(FAULT_SHIM)
	@if [ -f t/unit/Makefile ]; then $(MAKE) -C t/unit clean || true; fi
