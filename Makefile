# Lifeline build and test entry points. `make run` and `make test` are the
# two everyone needs; CI runs .ci/run, which runs `make test`.

GO       ?= go
BIN      := bin
PKG      := ./cmd/node
# The whole suite must stay well under 10 minutes on 2 cores; the timeout
# turns a hang into a failure with stack traces.
TIMEOUT  ?= 8m
FUZZTIME ?= 20s
DATA     ?= ./data
API      ?= 127.0.0.1:7777

.PHONY: all build run test test-arm bench fuzz cross check vet fmt clean screenshots web vendor-js deb test-deb meshtastic-proto check-meshtastic-proto

all: build

# RELEASE names a release build (e.g. make build RELEASE=0.2.0); the binary
# also records the git revision it was built from (lifeline version) and
# that revision's commit time: the node never believes a clock earlier than
# that (a board without a real-time clock boots with a stale one).
RELEASE  ?=
REVISION := $(shell git rev-parse --short=12 HEAD 2>/dev/null)$(shell git diff --quiet HEAD 2>/dev/null || echo -modified)
BUILT    := $(shell git log -1 --format=%ct 2>/dev/null)
LDFLAGS  := $(if $(RELEASE),-X lifeline.release=$(RELEASE)) $(if $(REVISION),-X lifeline.revision=$(REVISION)) $(if $(BUILT),-X lifeline.built=$(BUILT))

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/lifeline $(PKG)

run: build
	$(BIN)/lifeline run --data $(DATA) --api $(API)

vet:
	$(GO) vet ./...

# The phone web app: bundles and minifies web/app into web/dist, which the
# node embeds (commit both). Needs no npm; the tests fail while dist is stale.
web:
	$(GO) run ./web/build

# The page's third-party code (the audited @noble crypto libraries, the uqr
# QR encoder) at the versions locked in web/vendor-src/package-lock.json,
# bundled into web/app/vendor/ (commit it, VENDOR.md included). Only for
# updating them: the build never needs npm.
vendor-js:
	cd web/vendor-src && npm ci --no-audit --no-fund && $(GO) run build.go

# The Go for Meshtastic's serial API (radio/meshtastic/meshpb, commit it),
# generated from the npm package @meshtastic/protobufs, whose dist/mod.js
# holds the .proto files as embedded descriptors (the descset program
# extracts them), by Debian's protoc and protoc-gen-go at the version of
# google.golang.org/protobuf in go.mod, installed into .cache. Only for
# updating them: the build never needs npm or protoc.
MESHTASTIC_PROTOBUFS ?= 2.7.18
MESHPB               := radio/meshtastic/meshpb
meshtastic-proto:
	@command -v protoc >/dev/null || { echo "protoc is missing: apt-get install protobuf-compiler"; exit 1; }
	@set -e; tmp=$$(mktemp -d); trap 'rm -rf "$$tmp"' EXIT; \
	pgg=$$($(GO) list -m -f '{{.Version}}' google.golang.org/protobuf); \
	bin=$(CURDIR)/.cache/protoc-gen-go/$$pgg; \
	GOBIN=$$bin $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$$pgg; \
	(cd "$$tmp" && npm pack --silent @meshtastic/protobufs@$(MESHTASTIC_PROTOBUFS) >/dev/null && tar xzf meshtastic-protobufs-$(MESHTASTIC_PROTOBUFS).tgz); \
	files=$$($(GO) run ./$(MESHPB)/internal/descset -js "$$tmp/package/dist/mod.js" -out "$$tmp/set.binpb" meshtastic/mesh.proto); \
	rm -f $(MESHPB)/*.pb.go; \
	protoc --plugin=protoc-gen-go=$$bin/protoc-gen-go --descriptor_set_in="$$tmp/set.binpb" \
	  --go_out=. --go_opt=module=lifeline $$(for f in $$files; do printf -- '--go_opt=M%s=lifeline/$(MESHPB);meshpb ' "$$f"; done) $$files; \
	echo "$(MESHPB): generated from @meshtastic/protobufs@$(MESHTASTIC_PROTOBUFS) by protoc-gen-go $$pgg: $$(echo $$files)"

# meshtastic-proto again, and a failure if what it made differs from what
# is committed (CI runs it: the target must keep working).
check-meshtastic-proto: meshtastic-proto
	@out=$$(git status --porcelain -- $(MESHPB)); if [ -n "$$out" ]; then \
	  echo "$(MESHPB) differs from what make meshtastic-proto makes (commit it):"; echo "$$out"; exit 1; fi

# interop/ is its own module (it pulls in independent implementations that
# must stay out of lifeline's go.mod), so it is tested from its directory.
# Its JavaScript oracle needs `npm ci` in interop/js, which .ci/run does.
# firmware-bridge/boards is its own module too (TinyGo's drivers stay out
# of the node's go.mod); its board loop and chip adapters run on the host.
test: vet
	$(GO) test -race -timeout $(TIMEOUT) ./...
	cd interop && $(GO) vet ./... && $(GO) test -timeout $(TIMEOUT) ./...
	cd firmware-bridge/boards && $(GO) vet ./... && $(GO) test -race -timeout $(TIMEOUT) ./...

# The kit's platforms, tested rather than only compiled: the suite
# cross-compiled for each and run under qemu-user, which binfmt_misc starts
# for any ARM program (.ci/arm-emulation sets it up; this fails, never
# skips, where it is not). So go test runs the ARM test binaries as its own,
# and what they start is ARM too: tests re-executing themselves, and the
# lifeline binary the end-to-end tests build (their go build inherits
# GOARCH). Each runs on its board's CPU (QEMU_CPU): an armv7 instruction in
# the armv6 build is an illegal instruction here as on a Pi Zero.
# LIFELINE_TEST_SLOWDOWN stretches the tests' waits (never what they
# assert) for emulation, several times slower than the host.
#
# armv6 and arm64 run every package: 32-bit is where a kit differs from
# the host (int is 32 bits; 64-bit atomics need 8-byte alignment, checked
# at run time by Go on arm, in our code and every dependency's), and arm64
# brings other assembly (crypto) and is quick to emulate. armv7 differs
# from armv6 only in the instructions chosen, so for time it runs the
# envelope's crypto and the real binary end to end (TestEndToEnd: the
# kit's binary, built for the board, serving, meshing, stopping).
# Measured with -count=1 on the 2-core machine, build cache warm: armv6
# 3m28s, armv7 20s, arm64 1m56s (5m44s in all) when it was quiet; while 4
# other builds ran (load 10-14) armv6 took 8-11 min, armv7 about 4 and
# arm64 2. A cold build cache adds about 3 min an arch (go test -c of the
# tree for armv6: 2m55s).
# Not run under emulation (every arch):
#  - web/browsertest and TestPhone*: they drive the host's Chromium; the
#    node's side of them is what the api and end-to-end tests run.
#  - web/build: the app's bundler runs where the app is built, not on kits.
#  - TestMDNSAcrossNamespaces: qemu-user 7.2 does not translate the
#    MCAST_JOIN_GROUP socket option (ENOPROTOOPT), so nothing under it can
#    join a multicast group; the mDNS code is the same Go on every arch.
ARM_TIMEOUT  ?= 25m
ARM_SLOWDOWN ?= 5
ARM_SKIP     := ^TestPhone|^TestMDNSAcrossNamespaces$$
ARM_ALL      = $(shell $(GO) list ./... | grep -v -e '^lifeline/web/browsertest$$' -e '^lifeline/web/build')
ARM_E2E      := ^TestEndToEnd$$
ARM_TEST      = CGO_ENABLED=0 GOOS=linux LIFELINE_TEST_SLOWDOWN=$(ARM_SLOWDOWN) $(GO) test -timeout $(ARM_TIMEOUT) -skip '$(ARM_SKIP)'
test-arm:
	@bash .ci/arm-emulation --check
	@echo "== armv6 (arm1176: Pi Zero, Pi 1)"
	GOARCH=arm GOARM=6 QEMU_CPU=arm1176 $(ARM_TEST) $(ARM_ALL)
	@echo "== armv7 (cortex-a7: Pi 2, and 32-bit systems on later Pis)"
	GOARCH=arm GOARM=7 QEMU_CPU=cortex-a7 $(ARM_TEST) ./message/...
	GOARCH=arm GOARM=7 QEMU_CPU=cortex-a7 $(ARM_TEST) -run '$(ARM_E2E)' ./cmd/node
	@echo "== arm64 (cortex-a53: Pi 3, Pi Zero 2)"
	GOARCH=arm64 QEMU_CPU=cortex-a53 $(ARM_TEST) $(ARM_ALL)

# The phone app's main screens at 412×915, English and Arabic, for the
# README and docs/screenshots: the browser tests take them when asked.
screenshots:
	mkdir -p docs/screenshots
	$(GO) test -count=1 -run 'TestPhone' . -args -screenshots $(CURDIR)/docs/screenshots

bench:
	$(GO) test -run '^$$' -bench . -benchmem ./...

# Every Fuzz target of both modules (the node's and the boards'), found by
# `go test -list`, so a new one is picked up without editing this file; `go
# test -fuzz` takes one target of one package at a time. New interesting
# inputs (up to FUZZKEEP per target and run) are copied from the build
# cache into the package's testdata/fuzz, where every `go test` replays
# them: commit them and the corpora grow. CI runs this briefly.
FUZZKEEP ?= 64
fuzz:
	@set -e; \
	for mod in . firmware-bridge/boards; do \
	  cd $(CURDIR)/$$mod; \
	  targets=$$($(GO) test -list '^Fuzz' ./... | awk '/^Fuzz/ { f[n++] = $$1; next } /^ok/ { for (i = 0; i < n; i++) print $$2 "," f[i] } { n = 0 }'); \
	  cache=$$($(GO) env GOCACHE)/fuzz; \
	  for t in $$targets; do \
		pkg=$${t%%,*}; name=$${t#*,}; \
		echo "== fuzz $$pkg $$name ($(FUZZTIME))"; \
		to=$$($(GO) list -f '{{.Dir}}' $$pkg)/testdata/fuzz/$$name; \
		before=$$(ls "$$to" 2>/dev/null | wc -l); \
		if ! $(GO) test -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME) $$pkg > $(CURDIR)/.fuzz.log 2>&1; then \
		  cat $(CURDIR)/.fuzz.log; \
		  if [ "$$(ls "$$to" 2>/dev/null | wc -l)" = "$$before" ] && grep -q '^    context deadline exceeded$$' $(CURDIR)/.fuzz.log; then \
		    echo "   (no failing input: Go's fuzz coordinator raced its own deadline, go.dev/issue/75804; not a finding)"; \
		  else rm -f $(CURDIR)/.fuzz.log; exit 1; fi; \
		else tail -2 $(CURDIR)/.fuzz.log; fi; \
		rm -f $(CURDIR)/.fuzz.log; \
		from=$$cache/$$pkg/$$name; kept=0; \
		if [ -d "$$from" ]; then \
		  mkdir -p "$$to"; \
		  for c in "$$from"/*; do \
			[ "$$kept" -lt $(FUZZKEEP) ] || break; \
			[ -e "$$to/$${c##*/}" ] && continue; \
			cp "$$c" "$$to/"; kept=$$((kept + 1)); \
		  done; \
		fi; \
		echo "   $$kept new inputs kept in $$to"; \
	  done; \
	done

# The kit's platforms: Raspberry Pi class boards, 64-bit and 32-bit.
cross:
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(BIN)/lifeline-linux-arm64 $(PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=7 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(BIN)/lifeline-linux-armv7 $(PKG)
	CGO_ENABLED=0 GOOS=linux GOARCH=arm GOARM=6 $(GO) build -trimpath -ldflags '-s -w $(LDFLAGS)' -o $(BIN)/lifeline-linux-armv6 $(PKG)

# Debian packages for the kit's architectures (amd64, arm64, armhf, armel)
# into dist/, made by packaging/build with nfpm: make deb RELEASE=0.3.0; a
# build without RELEASE is versioned 0.0.0~git<commit time>.<revision>.
deb:
	$(GO) run ./packaging/build --release '$(RELEASE)' --revision '$(REVISION)' --out dist

# The packages checked (contents, lintian, systemd-analyze) and installed,
# run, upgraded and purged in a Debian root made by debootstrap, cached in
# DEB_CACHE (the first run downloads it from deb.debian.org). Root only;
# .ci/run installs the tools. Slow, hence not part of make test.
DEB_CACHE ?= $(CURDIR)/.cache/deb
test-deb:
	$(GO) vet -tags deb ./packaging/...
	LIFELINE_DEB_CACHE=$(DEB_CACHE) $(GO) test -tags deb -count=1 -timeout 30m -v -run TestDebianPackages ./packaging/build

fmt:
	gofmt -w .

check: vet
	@out=$$(gofmt -l .); if [ -n "$$out" ]; then echo "gofmt -l: these files need gofmt -w:"; echo "$$out"; exit 1; fi
	$(MAKE) cross

clean:
	rm -rf $(BIN) dist
