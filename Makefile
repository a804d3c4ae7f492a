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

.PHONY: all build run test bench fuzz cross check vet fmt clean screenshots web vendor-js deb test-deb

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

# interop/ is its own module (it pulls in independent implementations that
# must stay out of lifeline's go.mod), so it is tested from its directory.
# Its JavaScript oracle needs `npm ci` in interop/js, which .ci/run does.
# firmware-bridge/boards is its own module too (TinyGo's drivers stay out
# of the node's go.mod); its board loop and chip adapters run on the host.
test: vet
	$(GO) test -race -timeout $(TIMEOUT) ./...
	cd interop && $(GO) vet ./... && $(GO) test -timeout $(TIMEOUT) ./...
	cd firmware-bridge/boards && $(GO) vet ./... && $(GO) test -race -timeout $(TIMEOUT) ./...

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
