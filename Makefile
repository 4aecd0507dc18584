# moat — build, test, install, bench. `make help` lists the targets.

PKGS     := libseccomp libcap yajl yaml-0.1 libmnl libnftnl
# Headers only: these are loaded on demand (lib/dl.h), never linked into moat.
DL_PKGS  := libarchive openssl
PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
PYTHON   ?= /usr/bin/python3

ifeq ($(SAN),1)
BUILD    ?= build/san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD    ?= build
SANFLAGS :=
endif

PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) $(DL_PKGS) 2>/dev/null)
PKG_LIBS   := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

CFLAGS   ?= -O2 -g
CFLAGS   += -std=gnu17 -Wall -Wextra -Werror -Wshadow -Wformat=2 -Wno-missing-field-initializers -Wno-format-truncation \
            -D_GNU_SOURCE -fstack-protector-strong -fPIE -I. $(PKG_CFLAGS) $(SANFLAGS)
LDFLAGS  += -pie -Wl,-z,relro,-z,now $(SANFLAGS)
LDLIBS   += $(PKG_LIBS)

# Every subsystem but cli/ goes into one static library the binaries and tests link.
LIB_SRCS := $(wildcard lib/*.c runtime/*.c image/*.c netns/*.c proxy/*.c)
LIB_ASMS := runtime/seccomp_default.S proxy/providers_builtin.S
CLI_SRCS := $(wildcard cli/*.c)
# moat-runtime, the OCI front end: its own main, so not in libmoat.a.
OCI_SRCS := $(wildcard runtime/oci/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/obj/%.o) $(LIB_ASMS:%.S=$(BUILD)/obj/%.o)
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/obj/%.o)
# cli/ but its main(), for the unit tests of cli/ pieces such as moat.yaml.
CLI_LIB_OBJS := $(filter-out $(BUILD)/obj/cli/main.o,$(CLI_OBJS))
OCI_OBJS := $(OCI_SRCS:%.c=$(BUILD)/obj/%.o)
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

.PHONY: all test unit integration install bench bench-layer bench-oci bench-proxy clean deps help format demo

all: $(BUILD)/moat $(BUILD)/moat-runtime

help:
	@echo "make              build $(BUILD)/moat and $(BUILD)/moat-runtime"
	@echo "make test         C unit tests (cmocka), then pytest integration tests"
	@echo "make test SAN=1   the same under ASan+UBSan (objects in build/san)"
	@echo "make install      install into PREFIX=$(PREFIX) (DESTDIR honoured)"
	@echo "make bench        run the side-by-side benchmarks in bench/"
	@echo "make bench-layer  layer_apply() next to bsdtar -xpf (bench/layer)"

	@echo "make bench-oci    moat-runtime run next to runc and crun (bench/oci)"
	@echo "make bench-proxy  moat's proxy next to mitmproxy and tinyproxy (bench/proxy)"
	@echo "make demo         build, then run a real sandbox on the host image"
	@echo "make deps         install missing Debian packages (scripts/deps)"

deps:
	scripts/deps

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c $< -o $@

$(BUILD)/obj/runtime/seccomp_default.o: runtime/seccomp_default.S configs/seccomp.json
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -c $< -o $@

$(BUILD)/obj/proxy/providers_builtin.o: proxy/providers_builtin.S $(wildcard configs/providers/*.yaml)
	@mkdir -p $(dir $@)
	$(CC) $(SANFLAGS) -c $< -o $@

$(BUILD)/libmoat.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/moat: $(CLI_OBJS) $(BUILD)/libmoat.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libmoatcli.a: $(CLI_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/moat-runtime: $(OCI_OBJS) $(BUILD)/libmoat.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: tests/unit/%.c tests/unit/unit.h $(BUILD)/libmoatcli.a $(BUILD)/libmoat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(filter-out %.h,$^) $(LDLIBS) $(shell pkg-config --libs cmocka)

# The registry client's test driver (tests/fixtures/regpull.c), used by the integration tests.
$(BUILD)/tests/regpull: tests/fixtures/regpull.c $(BUILD)/libmoat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

unit: $(UNIT_BINS)
	@set -e; for t in $(UNIT_BINS); do echo "== $$t"; MOAT_BIN=$(CURDIR)/$(BUILD)/moat $$t; done

integration: $(BUILD)/moat $(BUILD)/moat-runtime $(BUILD)/tests/regpull
	MOAT_BIN=$(CURDIR)/$(BUILD)/moat MOAT_RUNTIME_BIN=$(CURDIR)/$(BUILD)/moat-runtime \
	  MOAT_REGPULL=$(CURDIR)/$(BUILD)/tests/regpull \
	  $(PYTHON) -m pytest -p no:cacheprovider -q tests/integration $(PYTEST_ARGS)

test: all unit integration

install: $(BUILD)/moat $(BUILD)/moat-runtime
	install -D -m 0755 $(BUILD)/moat $(DESTDIR)$(PREFIX)/bin/moat
	install -D -m 0755 $(BUILD)/moat-runtime $(DESTDIR)$(PREFIX)/bin/moat-runtime
	install -D -m 0644 docs/moat.1 $(DESTDIR)$(PREFIX)/share/man/man1/moat.1
	install -D -m 0644 docs/moat.yaml.5 $(DESTDIR)$(PREFIX)/share/man/man5/moat.yaml.5
	install -D -m 0644 docs/moat-runtime.1 $(DESTDIR)$(PREFIX)/share/man/man1/moat-runtime.1
	install -D -m 0644 configs/seccomp.json $(DESTDIR)$(PREFIX)/share/moat/seccomp.json
	install -d $(DESTDIR)$(PREFIX)/share/moat/apparmor
	sed 's|@MOAT_BIN@|$(PREFIX)/bin/moat|' configs/apparmor/moat > $(DESTDIR)$(PREFIX)/share/moat/apparmor/moat

# A scratch workspace owned by the caller (as root: by nobody, since moat never
# maps the sandbox user to host root), one real sandbox, and a look around it.
demo: $(BUILD)/moat
	@ws=$$(mktemp -d); [ "$$(id -u)" != 0 ] || chown nobody:nogroup "$$ws"; \
	$(BUILD)/moat run -w "$$ws" -- sh -c 'id; echo "hostname: $$(hostname)"; \
	  echo hello > /workspace/hello && ls -l /workspace; \
	  grep -E "^(CapEff|CapBnd|NoNewPrivs|Seccomp):" /proc/self/status; \
	  echo "processes: $$(ls /proc | grep -c "^[0-9]")"'; \
	rc=$$?; rm -rf "$$ws"; exit $$rc

bench: $(BUILD)/moat
	MOAT_BIN=$(CURDIR)/$(BUILD)/moat bench/startup

# layer_apply() on a tar of /usr next to bsdtar -xpf (bench/layer; several GiB of tmpfs)
$(BUILD)/bench/layer_apply: bench/layer_apply.c $(BUILD)/libmoat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-layer: $(BUILD)/bench/layer_apply
	bench/layer $(BENCH_ARGS)

bench-oci: $(BUILD)/moat-runtime
	MOAT_RUNTIME_BIN=$(CURDIR)/$(BUILD)/moat-runtime bench/oci

# moat's proxy outside a sandbox, on 127.0.0.1 (bench/proxy runs it beside mitmproxy and tinyproxy)
$(BUILD)/bench/proxy_serve: bench/proxy_serve.c $(BUILD)/libmoat.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

bench-proxy: $(BUILD)/bench/proxy_serve
	MOAT_PROXY_SERVE=$(CURDIR)/$(BUILD)/bench/proxy_serve bench/proxy $(BENCH_ARGS)

format:
	clang-format -i $(LIB_SRCS) $(CLI_SRCS) $(OCI_SRCS) $(wildcard */*.h */*/*.h) $(UNIT_SRCS)

clean:
	rm -rf build

-include $(LIB_OBJS:.o=.d) $(CLI_OBJS:.o=.d) $(OCI_OBJS:.o=.d)

# ---- fuzzing ------------------------------------------------------------------------------
# test_dns checks interoperability with glibc's resolver (ns_initparse): libresolv.
$(BUILD)/tests/test_dns: LDLIBS += -lresolv
# test_layer builds its layers with libarchive's write side (moat itself loads it on demand).
$(BUILD)/tests/test_layer: LDLIBS += -larchive

# `make fuzz` builds every target under build/fuzz with clang's libFuzzer, ASan and UBSan;
# `make fuzz-smoke` runs each for FUZZ_TIME seconds from its seeds (FUZZ_ARGS adds flags).
# Needs clang and libclang-rt-14-dev (the libFuzzer runtime).
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 20
FUZZ_ARGS    ?=
FUZZ_CFLAGS  := -std=gnu17 -g -O1 -Wall -Wextra -Werror -D_GNU_SOURCE -I. \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_LDLIBS  := -lresolv
FUZZ_TARGETS := build/fuzz/fuzz_dns build/fuzz/fuzz_config build/fuzz/fuzz_tar \
                build/fuzz/fuzz_spec build/fuzz/fuzz_provider build/fuzz/fuzz_image \
                build/fuzz/fuzz_http build/fuzz/fuzz_http_request build/fuzz/fuzz_http_response build/fuzz/fuzz_chunked \
                build/fuzz/fuzz_clienthello build/fuzz/fuzz_agent_filter \
                build/fuzz/fuzz_http_path
HTTP_FUZZ_SRCS := proxy/http.c proxy/http_write.c proxy/http_chunked.c proxy/http_host.c \
                  netns/dns.c lib/err.c lib/siphash.c
HTTP_FUZZ_HDRS := proxy/http.h proxy/http_chars.h netns/dns.h lib/err.h lib/siphash.h \
                  tests/fuzz/fuzz_http_common.h

build/fuzz/fuzz_dns: tests/fuzz/fuzz_dns.c netns/dns.c lib/err.c lib/siphash.c netns/dns.h lib/err.h \
                    lib/cleanup.h lib/siphash.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LDLIBS)

build/fuzz/fuzz_config: tests/fuzz/fuzz_config.c cli/config.c lib/err.c lib/fd.c lib/parse.c lib/yaml.c \
                        cli/config.h lib/yaml.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lyaml

# libarchive is loaded at run time (image/archive.c), as in moat.
build/fuzz/fuzz_tar: tests/fuzz/fuzz_tar.c image/layer.c image/layer_write.c image/layer_paths.c \
                     image/layer_hash.c image/layer_pipe.c image/layer_gzip.c \
                     image/archive.c lib/dl.c lib/err.c lib/sha256.c lib/siphash.c \
                     image/layer.h image/layer_int.h image/archive.h lib/sha256.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

build/fuzz/fuzz_spec: tests/fuzz/fuzz_spec.c runtime/spec.c lib/json.c lib/err.c runtime/spec.h lib/json.h lib/err.h \
                      lib/cleanup.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(shell pkg-config --cflags yajl) -o $@ $(filter %.c,$^) \
	  $(shell pkg-config --libs yajl libcap)

# The built-in providers come along (provider_set_load), as do lib/secrets.c's
# name check and the OpenSSL table it brings (never loaded here).
build/fuzz/fuzz_provider: tests/fuzz/fuzz_provider.c proxy/provider.c proxy/providers_builtin.S \
                          lib/secrets.c lib/openssl.c lib/dl.c lib/sha256.c lib/log.c lib/err.c \
                          lib/fd.c lib/parse.c lib/yaml.c proxy/provider.h lib/yaml.h \
                          $(wildcard configs/providers/*.yaml)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c %.S,$^) -lyaml

build/fuzz/fuzz_image: tests/fuzz/fuzz_image.c image/manifest.c image/ref.c lib/json.c lib/sha256.c \
                       lib/err.c image/internal.h image/image.h lib/json.h lib/err.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lyajl

build/fuzz/fuzz_http: tests/fuzz/fuzz_http.c image/http_parse.c image/auth.c lib/err.c lib/fd.c \
                      image/http.h image/auth.h lib/err.h lib/fd.h lib/cleanup.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lyajl

build/fuzz/fuzz_http_request build/fuzz/fuzz_http_response build/fuzz/fuzz_chunked: \
build/fuzz/%: tests/fuzz/%.c $(HTTP_FUZZ_SRCS) $(HTTP_FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LDLIBS)

build/fuzz/fuzz_clienthello: tests/fuzz/fuzz_clienthello.c proxy/clienthello.c proxy/clienthello.h \
                             $(HTTP_FUZZ_SRCS) $(HTTP_FUZZ_HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) $(FUZZ_LDLIBS)

build/fuzz/fuzz_agent_filter: tests/fuzz/fuzz_agent_filter.c cli/agent_home.c lib/json.c lib/fd.c \
                              lib/log.c lib/err.c cli/agent.h lib/json.h lib/cleanup.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^) -lyajl

build/fuzz/fuzz_http_path: tests/fuzz/fuzz_http_path.c proxy/http_path.c proxy/http_path.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(filter %.c,$^)

fuzz: $(FUZZ_TARGETS)

fuzz-smoke: $(FUZZ_TARGETS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	  name=$$(basename $$t); corpus=build/fuzz/corpus/$$name; mkdir -p $$corpus; \
	  echo "== $$t ($(FUZZ_TIME)s)"; \
	  log=build/fuzz/$$name.log; \
	  $$t -max_total_time=$(FUZZ_TIME) -max_len=4200 -print_final_stats=1 \
	    $$( [ -f tests/fuzz/$$name.dict ] && echo -dict=tests/fuzz/$$name.dict ) \
	    $(FUZZ_ARGS) $$corpus tests/fuzz/seeds/$$name > $$log 2>&1 \
	    || { tail -n 60 $$log; echo "fuzz-smoke: $$name failed (full log: $$log)"; exit 1; }; \
	  grep -E "^Done|stat::number_of_executed_units" $$log; \
	done

.PHONY: fuzz fuzz-smoke
