# nicproof: `make run` builds everything and boots the default scenario;
# `make test` runs every test; `make bench` runs the benchmarks. Nothing here
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
# Repetitions of the loopback bench (five VMs each, side by side).
NET_RUNS ?= 5
# Alternating rounds of the whole matrix per clock in `make bench`.
MATRIX_ROUNDS ?= 2
# VMs at a time for the matrix (default: every CPU), and where it writes.
MATRIX_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
MATRIX_OUT ?= $(CARGO_TARGET_DIR)/matrix
MATRIX_ARGS ?=

.PHONY: all guest build run test bench matrix target tools lint-tools mutants mutants-vm

all: build

target:
	@rustup target list --installed | grep -qx $(GUEST_TARGET) || rustup target add $(GUEST_TARGET)

# make test's lints need clippy and rustfmt (in rustup's default profile; a
# minimal profile lacks them).
lint-tools:
	@for c in clippy rustfmt; do rustup component list --installed | grep -q "^$$c" || rustup component add $$c; done

guest: target
	$(CARGO) build -p guest-driver --target $(GUEST_TARGET) --target-dir $(CARGO_TARGET_DIR)/guest --release
	@mkdir -p images
	cp $(CARGO_TARGET_DIR)/guest/$(GUEST_TARGET)/release/nicproof-guest $(GUEST_ELF)

build: guest
	$(CARGO) build --release -p vmm

run: build
	$(NICPROOF) run --guest $(GUEST_ELF) $(ARGS)

# Tools the tests drive: tcpdump reads the captures (tests/frames.rs), gdb
# attaches to `run --gdb` (tests/gdb.rs). Installed with apt where missing.
tools:
	@for t in tcpdump gdb; do command -v $$t >/dev/null 2>&1 || { \
		echo "installing $$t (apt-get)"; \
		{ apt-get install -y -q $$t >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1 && apt-get install -y -q $$t >/dev/null; }; } \
		|| { echo "cannot install $$t: install it by hand (apt-get install $$t)"; exit 1; }; }; done

# The end-to-end tests boot real VMs with the release binary and the image.
test: build tools lint-tools
	# Lints that hold the line (workspace lints in Cargo.toml: every unsafe
	# block documented, unsafe ops inside unsafe fns spelled out; missing_docs
	# in nic-model and guest-driver), no clippy warning anywhere, and the
	# whole workspace rustfmt-clean.
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(CARGO) fmt --all --check
	NICPROOF_BIN=$(abspath $(NICPROOF)) NICPROOF_GUEST=$(abspath $(GUEST_ELF)) $(CARGO) test --workspace
	# The loom model of the lockless stop/wake protocol on the real queue code
	# (bounded preemptions: finds every stop/wake mutant in seconds).
	RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=3 $(CARGO) test -p guest-driver --release --test loom_stop_wake --target-dir $(CARGO_TARGET_DIR)/loom

# The boot bench, the loopback bench, then the whole matrix's wall time and per-job times
# (min / median / max), MATRIX_JOBS VMs at a time. The loopback bench and the matrix run
# under both clocks, interleaved (--clock wall and the default virtual clock: run by run for
# the loopback bench, MATRIX_ROUNDS alternating rounds for the matrix), and print the two
# side by side with their ratio.
bench: build
	$(NICPROOF) bench --guest $(GUEST_ELF) --scenario empty --runs $(RUNS)
	# Loopback in a VM: packets/s and VM exits per packet with xmit_more
	# batches of 16 vs none, and the cost of one open/stop cycle: each
	# repetition runs every run at CPL0 and CPL3 (--compare-cpl) under the
	# wall and the virtual clock (--compare-clocks), interleaved; the
	# CPL3/CPL0 and virtual/wall ratios follow the tables.
	$(NICPROOF) bench --net --compare-cpl --compare-clocks --guest $(GUEST_ELF) --runs $(NET_RUNS) \
		--json $(CARGO_TARGET_DIR)/bench-net.json
	@mkdir -p $(MATRIX_OUT)
	# The whole matrix under both clocks, at CPL0 and at CPL3 (the exit
	# status is the virtual clock's).
	@for cpl in 0 3; do echo "whole matrix, --cpl $$cpl, $(MATRIX_JOBS) VMs at a time:"; \
		$(NICPROOF) matrix --compare-clocks $(MATRIX_ROUNDS) --cpl $$cpl --guest $(GUEST_ELF) --jobs $(MATRIX_JOBS) \
		--skip-unimplemented --json $(MATRIX_OUT)/bench-clocks-cpl$$cpl.json 2>/dev/null \
		|| echo "matrix: the virtual clock had failed or missed jobs (listed above)"; done
	# The NIC model alone (no KVM): TX work per packet with the DMA monitor
	# on and off, interleaved in one run (nic-model/README.md, Benchmark).
	# `cargo bench -p nic-model --bench tx` adds criterion's groups.
	NICPROOF_BENCH_PAIRED_ONLY=1 $(CARGO) bench -p nic-model --bench tx
	# The same cases in instructions per packet (valgrind; exact, unlike time
	# on a shared machine). Without valgrind it says how to get it.
	$(CARGO) run --release -q -p nic-model --example tx_instructions
	# The guest's own work per looped-back packet (driver, softnet core,
	# scenario) in instructions and memory operands, with clock reads and VM
	# exits: what a CPL0 guest pays for (valgrind on the host build).
	$(CARGO) run --release -q -p guest-driver --example driver_instructions
	# The DMA monitor's cost per access and per map/unmap with 16, 256 and
	# 4096 live maps (valgrind; target 4096/16 <= 1.5).
	$(CARGO) run --release -q -p nic-model --example monitor_scaling

# The scenario matrix alone: table, JSON and JUnit under $(MATRIX_OUT).
# MATRIX_ARGS adds options, e.g. MATRIX_ARGS="--partition 2/3" or
# MATRIX_ARGS="--filter default".
matrix: build
	@mkdir -p $(MATRIX_OUT)
	$(NICPROOF) matrix --guest $(GUEST_ELF) --jobs $(MATRIX_JOBS) \
		--json $(MATRIX_OUT)/matrix.json --junit $(MATRIX_OUT)/junit.xml $(MATRIX_ARGS)

# Boot the same image under QEMU through its PVH note: a second witness that
# the kernel is a normal PVH guest. There is no control port there (records
# are dropped, markers and the verdict go to serial); CPUs come up by
# INIT-SIPI (QEMU_SMP, passed to the guest as ncpus=). QEMU_APPEND picks
# what runs, e.g.
#   make qemu QEMU_APPEND="scenario=boot echo=7"
#   make qemu QEMU_APPEND="bad-guest=page-fault"
# The guest powers off through isa-debug-exit: QEMU exits (code << 1) | 1,
# so 1 = pass, 3 = fail, 5 = panic, 7 = CPU exception; 0 = triple fault.
# QEMU_ACCEL=tcg also boots (no x2APIC there: waits poll the TSC, and
# there is no CPU 1).
QEMU ?= qemu-system-x86_64
QEMU_ACCEL ?= kvm
QEMU_SMP ?= 2
QEMU_APPEND ?= scenario=empty

.PHONY: qemu
qemu: guest
	@command -v $(QEMU) >/dev/null 2>&1 || { echo "qemu: $(QEMU) not found; install it with: sudo apt-get install qemu-system-x86"; exit 2; }
	@status=0; $(QEMU) -accel $(QEMU_ACCEL) -smp $(QEMU_SMP) -m 128M -kernel $(GUEST_ELF) -append "ncpus=$(QEMU_SMP) $(QEMU_APPEND)" \
		-device isa-debug-exit,iobase=0xf4,iosize=0x04 -serial stdio -display none -no-reboot || status=$$?; \
	case $$status in \
		1) echo "qemu: guest verdict pass";; \
		3) echo "qemu: guest verdict fail"; exit 1;; \
		5) echo "qemu: guest panic"; exit 1;; \
		7) echo "qemu: guest CPU exception"; exit 1;; \
		0) echo "qemu: guest shut down without a verdict (triple fault?)"; exit 1;; \
		*) echo "qemu: exit status $$status"; exit 1;; \
	esac

.PHONY: all guest build run test bench matrix target tools lint-tools mutants

# Mutation score of the driver and the softnet core against the host tests
# (which run the driver against the real device model): cargo-mutants
# (`cargo install cargo-mutants`). About 1,150 mutants at roughly half a minute
# each on a loaded 2-core host, so hours: not part of `make test`.
# MUTANTS_ARGS="--shard 0/32" runs a sample, MUTANTS_ARGS="-f guest-driver/src/softnet/napi.rs"
# one file; results land in mutants.out/ (README, Mutation score).
MUTANTS_ARGS ?=
MUTANT_TESTS := --lib --test driver_lifecycle --test scenarios_lifecycle --test scenarios_queueing \
	--test interrupt_driven --test queueing_host_oracles --test softnet_netdev --test softnet_queue \
	--test softnet_bql --test softnet_skb --test softnet_queue_edges --test softnet_bql_edges \
	--test softnet_skb_netdev_edges --test driver_mutation_gaps --test driver_core_gaps \
	--test driver_pci --test driver_xmit_irq --test differential
# The tests come from guest-driver and linux-ref (whose differential test compares bql.rs and
# queue.rs with Linux's C field by field: it alone kills 27 bql.rs mutants, mostly in the stall
# detector). cargo-mutants 27.1 runs its baseline on the mutated package only, ignoring
# --test-package (`no test target named differential`), so the baseline runs here first and
# cargo-mutants skips its own.
MUTANT_PACKAGES := -p guest-driver -p linux-ref
mutants:
	cargo test $(MUTANT_PACKAGES) $(MUTANT_TESTS)
	cargo mutants -p guest-driver --test-package guest-driver,linux-ref --baseline skip \
		-f 'guest-driver/src/driver/**' -f 'guest-driver/src/softnet/**' \
		--timeout 180 --jobs 1 $(MUTANTS_ARGS) -- $(MUTANT_TESTS)

# The survivors of `make mutants` (its mutants.out) through the whole VM
# matrix: cargo-mutants --iterate skips what the host tests caught, and for
# each other mutant guest-driver/tests/vm_matrix.rs builds the guest from the
# mutated tree and runs `nicproof matrix` on it (a pass case that fails or a
# mutant switch no longer caught kills the mutant). About 30 s per mutant
# here; results land in mutants.out/ again.
MUTANTS_VM_TIMEOUT ?= 600
mutants-vm: build
	NICPROOF_BIN=$(abspath $(NICPROOF)) NICPROOF_MUTANT_GUEST_TARGET=$(abspath $(CARGO_TARGET_DIR))/mutant-guest \
	cargo mutants -p guest-driver -f 'guest-driver/src/driver/**' -f 'guest-driver/src/softnet/**' \
		--iterate --features vm-matrix --timeout $(MUTANTS_VM_TIMEOUT) --jobs 1 $(MUTANTS_ARGS) -- --test vm_matrix
