# Duplex — build and test.
#   make serve   run `duplex serve` on the embedded defaults (listens on :8080)
#   make test    install what the tests need when missing, then run every check
#   make bench   run the package benchmarks

GO        ?= go
FUZZTIME  ?= 100000x

.PHONY: all build serve test bench

all: build

build:
	$(GO) build -o bin/duplex ./cmd/duplex

serve:
	$(GO) run ./cmd/duplex serve

# The same as the README's test command.
test:
	FUZZTIME=$(FUZZTIME) bash scripts/test.sh

bench:
	$(GO) test -run '^$$' -bench . -benchmem -count 6 ./websocket/
