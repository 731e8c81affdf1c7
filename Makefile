# nicproof: `make run` builds everything and boots the default scenario;
# `make test` runs every test; `make bench` times boots. Nothing here
# assumes hand-installed tools beyond rustup.
CARGO ?= cargo
CARGO_TARGET_DIR ?= target
export CARGO_TARGET_DIR
GUEST_TARGET := x86_64-unknown-none
GUEST_ELF := images/nicproof-guest
NICPROOF := $(CARGO_TARGET_DIR)/release/nicproof
# Extra arguments for `make run`, e.g. make run ARGS="--scenario boot".
ARGS ?=
# Runs for `make bench`.
RUNS ?= 10

.PHONY: all guest build run test bench target

all: build

target:
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)

guest: target
	$(CARGO) build -p guest-driver --target $(GUEST_TARGET) --target-dir $(CARGO_TARGET_DIR)/guest --release
	@mkdir -p images
	cp $(CARGO_TARGET_DIR)/guest/$(GUEST_TARGET)/release/nicproof-guest $(GUEST_ELF)

build: guest
	$(CARGO) build --release -p vmm

run: build
	$(NICPROOF) run --guest $(GUEST_ELF) $(ARGS)

# The end-to-end tests boot real VMs with the release binary and the image.
test: build
	NICPROOF_BIN=$(abspath $(NICPROOF)) NICPROOF_GUEST=$(abspath $(GUEST_ELF)) $(CARGO) test --workspace

bench: build
	$(NICPROOF) bench --guest $(GUEST_ELF) --scenario empty --runs $(RUNS)
