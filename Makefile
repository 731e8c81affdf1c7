# nicproof: `make run` builds everything and boots the default scenario;
# `make test` runs every test. Nothing here assumes hand-installed tools
# beyond rustup.
CARGO ?= cargo
GUEST_TARGET := x86_64-unknown-none
GUEST_ELF := images/nicproof-guest

.PHONY: all guest build run test bench target

all: build

target:
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)

guest: target
	$(CARGO) build -p guest-driver --target $(GUEST_TARGET) --target-dir target/guest --release
	@mkdir -p images
	cp target/guest/$(GUEST_TARGET)/release/nicproof-guest $(GUEST_ELF)

build: guest
	$(CARGO) build --release -p vmm

run: build
	./target/release/nicproof run --guest $(GUEST_ELF)

test: guest
	$(CARGO) test --workspace
