# Bulkhead: `make` builds the EL2 kernel, `make run` boots it in QEMU,
# `make test` runs every test. `make help` lists the rest.

GO            ?= go
QEMU          ?= qemu-system-aarch64
UEFI_FW       := /usr/share/qemu-efi-aarch64/QEMU_EFI.fd
BUILD         := build
HYP           := $(BUILD)/bulkhead-hyp.elf
HYP_CRASHTEST := $(BUILD)/bulkhead-hyp-crashtest.elf
# The same link as an EFI application (cmd/mkefi), entered at efiEntry
# (board/qemuvirt/efi_arm64.s).
HYP_EFI       := $(BUILD)/bulkhead-hyp.efi
TAMAGO_GO     := $(HOME)/.cache/tamago-go/tamago-go1.26.0/bin/go
VERSION       := $(shell git describe --always --dirty --tags 2>/dev/null || echo unknown)

# The image is linked above the 2 MiB window where QEMU places the device
# tree (board/qemuvirt: TextBase); -R 0x1000 page-aligns each segment so
# text, read-only data and data get their own permissions.
TEXT_BASE := 0x40200000
LDFLAGS   := -T $(TEXT_BASE) -R 0x1000 -X main.version=$(VERSION)
TAGS      := linkcpuinit
TAMAGO_ENV := GOOS=tamago GOARCH=arm64 GOOSPKG=github.com/usbarmory/tamago

# QEMU virt with EL2 (virtualization=on) and a GICv3, as in the tests.
# exit=semihosting lets QEMU exit with the kernel's status.
MEM        ?= 1G
SMP        ?= 1
CPU        ?= max
QEMU_FLAGS := -machine virt,virtualization=on,gic-version=3 -cpu $(CPU) -m $(MEM) -smp $(SMP) \
              -nographic -monitor none -semihosting-config enable=on,target=native
APPEND     ?= exit=semihosting

.PHONY: all build images run run-uefi run-guests run-control bench debug test soak fuzz proofs toolchain qemu containerd clean help linux

all: build

help:
	@echo "make            build the EL2 kernel, the control partition, the guests, the CLI and the"
	@echo "                containerd shim"
	@echo "                ($(CLI) run $(BUILD)/guest-hello.elf runs a guest)"
	@echo "make run        boot it in QEMU on this terminal; it powers off by itself"
	@echo "                (MEM=2G SMP=4 CPU=neoverse-n1 APPEND='...' change the machine;"
	@echo "                 Ctrl-a x quits QEMU at any time)"
	@echo "make run-uefi   boot the EFI image under UEFI firmware (AAVMF) with ACPI, on 8 Neoverse N1"
	@echo "                CPUs and 4 GiB; it powers off by itself"
	@echo "make run-guests boot it with two TamaGo guests: hello, and an adversary that probes"
	@echo "                memory that is not its own"
	@echo "make run-control the same, started by the control partition"
	@echo "make bench      measure instructions per null hypercall (QEMU -icount shift=0)"
	@echo "make debug      start QEMU halted with its gdb stub and print the gdb command"
	@echo "make test       build everything and run every test: host unit tests, QEMU boots, proofs"
	@echo "make soak       the adversarial tests at their long lengths (a million fuzzed hypercalls, 1,000 VM cycles)"
	@echo "make fuzz       fuzz every parser of outside input, each for FUZZTIME (default $(FUZZTIME));"
	@echo "                make test runs their seed corpora"
	@echo "make proofs     check the Coq proofs, the oracle comparison and the SPIN model"
	@echo "make clean      remove $(BUILD)/"
	@echo "make linux      fetch Debian's arm64 kernel and its modules and build a busybox initramfs"
	@echo "                in $(BUILD)/linux/"
	@echo "make rootfs     build a busybox ext4 root filesystem, $(BUILD)/linux/rootfs.ext4 (root=/dev/vda)"

GUESTS        := hello adversary bench timer ipi spin storm ticker conform fuzz badvirtio
GUEST_IMAGES  := $(GUESTS:%=$(BUILD)/guest-%.elf)
# Guests are linked in their RAM at 0x40000000 (board/bulkheadvm: TextBase).
GUEST_LDFLAGS := -T 0x40010000 -R 0x1000

CONTROL       := $(BUILD)/bulkhead-control.elf
# The control partition runs at IPA = PA in the RAM above the hypervisor's
# (board/bulkheadvm/layout_control.go).
CONTROL_LDFLAGS := -T 0x48010000 -R 0x1000

CLI           := $(BUILD)/bulkhead
# The containerd shim (docs/containerd.md), and the init it puts in each
# container's VM: a Linux arm64 program, static.
SHIM          := $(BUILD)/containerd-shim-bulkhead-v1
CONTAINERINIT := $(BUILD)/bulkhead-containerinit
DISKBENCH     := $(BUILD)/diskbench
# A control partition that fuzzes the management calls (cmd/control/fuzz.go),
# one that crashes on request (cmd/control/crash.go), and one that points
# its devices' DMA where the SMMU must stop it (cmd/control/dmaattack.go).
CONTROL_FUZZ  := $(BUILD)/bulkhead-control-fuzz.elf
CONTROL_CRASH := $(BUILD)/bulkhead-control-crashtest.elf
CONTROL_DMA   := $(BUILD)/bulkhead-control-dma.elf

build: $(HYP) $(HYP_EFI) $(CONTROL) $(GUEST_IMAGES) $(CLI) $(SHIM) $(CONTAINERINIT)
images: $(HYP) $(HYP_EFI) $(HYP_CRASHTEST) $(CONTROL) $(CONTROL_FUZZ) $(CONTROL_CRASH) $(CONTROL_DMA) $(GUEST_IMAGES) \
        $(CLI) $(SHIM) $(CONTAINERINIT)

# The EL2 kernel's runtime takes its waits to the CPU multiplexer (cpumux):
# cmd/mkoverlay writes TamaGo's runtime with those hooks as a build overlay.
OVERLAY := $(BUILD)/_overlay/overlay.json

$(OVERLAY): toolchain FORCE
	@$(GO) run ./cmd/mkoverlay -goroot "$$($(TAMAGO_ENV) $(TAMAGO) env GOROOT)" -o $(BUILD)/_overlay

# Go decides what to rebuild; make always asks it.
$(HYP): $(OVERLAY) toolchain FORCE
	@mkdir -p $(BUILD)
	$(TAMAGO_ENV) $(TAMAGO) build -overlay $(OVERLAY) -tags $(TAGS) -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/hyp

$(HYP_EFI): $(HYP)
	$(GO) run ./cmd/mkefi -entry efiEntry -o $@ $(HYP)

# A second image with faults on purpose, for the crash report tests.
$(HYP_CRASHTEST): $(OVERLAY) toolchain FORCE
	@mkdir -p $(BUILD)
	$(TAMAGO_ENV) $(TAMAGO) build -overlay $(OVERLAY) -tags $(TAGS),crashtest -trimpath -ldflags '$(LDFLAGS)' -o $@ ./cmd/hyp

# The host CLI.
$(CLI): FORCE
	@mkdir -p $(BUILD)
	$(GO) build -ldflags '-X main.version=$(VERSION)' -o $@ ./cmd/bulkhead

$(SHIM): FORCE
	@mkdir -p $(BUILD)
	$(GO) build -ldflags '-X main.version=$(VERSION)' -o $@ ./cmd/containerd-shim-bulkhead-v1

$(CONTAINERINIT): FORCE
	@mkdir -p $(BUILD)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-s -o $@ ./cmd/containerinit

# A Linux arm64 program the disk bench runs in its guest.
$(DISKBENCH): FORCE
	@mkdir -p $(BUILD)
	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 $(GO) build -trimpath -ldflags=-s -o $@ ./cmd/diskbench

$(CONTROL): toolchain FORCE
	@mkdir -p $(BUILD)
	$(TAMAGO_ENV) $(TAMAGO) build -tags $(TAGS),control -trimpath -ldflags '$(CONTROL_LDFLAGS)' -o $@ ./cmd/control

$(CONTROL_FUZZ): toolchain FORCE
	@mkdir -p $(BUILD)
	$(TAMAGO_ENV) $(TAMAGO) build -tags $(TAGS),control,fuzzcontrol -trimpath -ldflags '$(CONTROL_LDFLAGS)' -o $@ ./cmd/control

$(CONTROL_CRASH): toolchain FORCE
	@mkdir -p $(BUILD)
	$(TAMAGO_ENV) $(TAMAGO) build -tags $(TAGS),control,crashcontrol -trimpath -ldflags '$(CONTROL_LDFLAGS)' -o $@ ./cmd/control

$(CONTROL_DMA): toolchain FORCE
	@mkdir -p $(BUILD)
	$(TAMAGO_ENV) $(TAMAGO) build -tags $(TAGS),control,dmacontrol -trimpath -ldflags '$(CONTROL_LDFLAGS)' -o $@ ./cmd/control

# TamaGo guests for the hypervisor, at EL1 (board/bulkheadvm).
$(BUILD)/guest-%.elf: toolchain FORCE
	@mkdir -p $(BUILD)
	$(TAMAGO_ENV) $(TAMAGO) build -tags $(TAGS) -trimpath -ldflags '$(GUEST_LDFLAGS)' -o $@ ./cmd/guests/$*

FORCE:

run: $(HYP) qemu
	$(QEMU) $(QEMU_FLAGS) -append '$(APPEND)' -kernel $(HYP)

# Two guests side by side: hello (exit status 3) and the adversary, which
# probes the other's RAM at the physical address the hypervisor places it
# (the first guest's RAM starts right above the hypervisor's 64 MiB).
HELLO_AT := 0x50000000
ADV_AT   := 0x52000000
run-guests: build qemu
	$(QEMU) $(QEMU_FLAGS) -kernel $(HYP) \
		-device loader,file=$(BUILD)/guest-hello.elf,addr=$(HELLO_AT),force-raw=on \
		-device loader,file=$(BUILD)/guest-adversary.elf,addr=$(ADV_AT),force-raw=on \
		-append "$(APPEND) guest0=hello:$(HELLO_AT):$$(stat -c %s $(BUILD)/guest-hello.elf):3 guest1=adversary:$(ADV_AT):$$(stat -c %s $(BUILD)/guest-adversary.elf):0x44000000"

# Benchmarks, deterministic: -icount shift=0 runs one instruction per
# virtual nanosecond, so the guest's counter measures instructions.
BENCH_AT := 0x50000000
# The guest's two vCPUs run on CPU 0, then pinned to CPU 1 of two (the
# spec's last field), whose exits the boot CPU handles today.
BENCH_GUEST = -kernel $(HYP) -device loader,file=$(BUILD)/guest-bench.elf,addr=$(BENCH_AT),force-raw=on \
	-append "$(APPEND) guest0=bench:$(BENCH_AT):$$(stat -c %s $(BUILD)/guest-bench.elf):0:0x1000000:2$(1)"
bench: build qemu linux $(CLI) $(DISKBENCH)
	@$(QEMU) $(QEMU_FLAGS) -icount shift=0 $(call BENCH_GUEST) \
		| tr -d '\r' | sed -n 's/^bench| bench: \(.*instructions\)$$/bench: vCPU on CPU 0: \1/p; s/^bench| //p'
	@$(QEMU) $(subst -smp $(SMP),-smp 2,$(QEMU_FLAGS)) -icount shift=0 $(call BENCH_GUEST,:1) \
		| tr -d '\r' | sed -n 's/^bench| bench: \(.*instructions\)$$/bench: vCPU on CPU 1 (-smp 2): \1/p'
	@# Scale: one VM of 8 vCPUs on -smp 8, one per CPU, N of them making
	@# hypercalls at once; the machine's instructions per round trip.
	@for n in 1 2 4 8; do \
		out=$$(timeout 90 $(QEMU) $(subst -smp $(SMP),-smp 8,$(QEMU_FLAGS)) -icount shift=0 -kernel $(HYP) \
			-device loader,file=$(BUILD)/guest-bench.elf,addr=$(BENCH_AT),force-raw=on \
			-append "$(APPEND) guest0=bench:$(BENCH_AT):$$(stat -c %s $(BUILD)/guest-bench.elf):$$n:0x1000000:8" | \
			tr -d '\r' | sed -n 's/^bench| bench: scale: /bench: scale (-smp 8): /p'); \
		echo "$${out:-bench: scale (-smp 8): $$n vCPU(s) busy: did not finish within 90 s under -icount}"; \
	done
	@# Upload over the host channel: an instance that is up runs a guest.
	@export XDG_RUNTIME_DIR=$$(mktemp -d) BULKHEAD_IMAGES=$(abspath $(BUILD)); \
		$(CLI) up --name bench >/dev/null 2>&1 || { echo "bench: bulkhead up failed"; exit 1; }; \
		$(CLI) run --instance bench $(BUILD)/guest-hello.elf 2>&1 >/dev/null | tr '\r' '\n' | \
			sed -n 's/^.*uploading \(.*\): \([0-9]*\) of \([0-9]*\) KiB (\(.*\))$$/bench: image upload over the host channel: \3 KiB at \4 (VM start included)/p'; \
		$(CLI) run --instance bench --name k --mem 256M --cmdline "console=ttyAMA0 rdinit=/bin/poweroff -- -f" \
			--initrd $(BUILD)/linux/rootfs.cpio.gz $(BUILD)/linux/vmlinuz 2>&1 >/dev/null | tr '\r' '\n' | \
			sed -n "s/^.*uploading k's initrd: \([0-9]*\) of \([0-9]*\) KiB (\(.*\))$$/bench: Linux kernel ($$(($$(stat -c %s $(BUILD)\/linux\/vmlinuz) >> 10)) KiB) and initrd (\2 KiB) upload: \3 (VM start included)/p"; \
		$(CLI) down --name bench >/dev/null; rm -rf "$$XDG_RUNTIME_DIR"
	@# The same upload over the network control plane: TCP through the
	@# control partition's netstack, TLS 1.3 with a client certificate;
	@# after a first VM, as above (the first VM after boot starts slower).
	@export XDG_RUNTIME_DIR=$$(mktemp -d) XDG_CONFIG_HOME=$$(mktemp -d) BULKHEAD_IMAGES=$(abspath $(BUILD)); \
		port=$$((20000 + $$$$ % 20000)); \
		$(CLI) up --name bench --listen $$port >/dev/null 2>&1 || { echo "bench: bulkhead up --listen failed"; exit 1; }; \
		$(CLI) --remote 127.0.0.1:$$port run $(BUILD)/guest-hello.elf >/dev/null 2>&1; \
		$(CLI) --remote 127.0.0.1:$$port run --name k --mem 256M --cmdline "console=ttyAMA0 rdinit=/bin/poweroff -- -f" \
			--initrd $(BUILD)/linux/rootfs.cpio.gz $(BUILD)/linux/vmlinuz 2>&1 >/dev/null | tr '\r' '\n' | \
			sed -n "s/^.*uploading k's initrd: \([0-9]*\) of \([0-9]*\) KiB (\(.*\))$$/bench: Linux kernel and initrd upload over the network control plane (--remote, TLS 1.3): \3 (VM start included; target >= 30 MB\/s)/p"; \
		$(CLI) down --name bench >/dev/null; rm -rf "$$XDG_RUNTIME_DIR" "$$XDG_CONFIG_HOME"
	@# Linux from its first console line to init, under Bulkhead and directly.
	@BULKHEAD_IMAGES=$(abspath $(BUILD)) $(GO) test ./cmd/hyp -run '^$$' -bench LinuxBoot -benchtime 3x | \
		sed -n 's/^BenchmarkLinuxBoot[^ ]*[ \t]*[0-9]*[ \t]*[0-9]* ns\/op[ \t]*\([0-9]*\) bulkhead-ms[ \t]*\([0-9]*\) direct-ms[ \t]*\([0-9.]*\) ratio/bench: Linux boot, first console line to init (mean of 3, 2 vCPUs): \1 ms under Bulkhead, \2 ms directly in QEMU at EL1: ratio \3 (target <= 1.3)/p'
	@# Four CPU-bound jobs in a 4-vCPU Linux guest: its vCPUs on four physical CPUs, then on one.
	@BULKHEAD_IMAGES=$(abspath $(BUILD)) $(GO) test ./cmd/hyp -run '^$$' -bench LinuxParallel -benchtime 1x | \
		sed -n 's/^BenchmarkLinuxParallel[^ ]*[ \t]*[0-9]*[ \t]*[0-9]* ns\/op[ \t]*\([0-9]*\) one-cpu-ms[ \t]*\([0-9.]*\) ratio[ \t]*\([0-9]*\) spread-ms/bench: 4-vCPU Linux, four CPU-bound jobs (-smp 4, thread=multi, host cores: '"$$(nproc)"'): \3 ms on four physical CPUs, \1 ms pinned to one: ratio \2/p'

	@# A guest's disk through mediated virtqueues, against the same drive
	@# as the kernel's own virtio-blk device directly in QEMU.
	@BULKHEAD_IMAGES=$(abspath $(BUILD)) $(GO) test ./cmd/bulkhead -run '^$$' -bench LinuxDisk -benchtime 1x | tr '\t' '\n' | \
		awk '/^ *[0-9.]+ [a-z-]+(-MB\/s|-IOPS|-ratio)$$/ { v[$$2] = $$1 } END { \
		if (!("seqread-ratio" in v)) { print "bench: disk: the benchmark failed"; exit 1 } \
		printf "bench: disk, sequential write (flushed): %.1f MB/s under Bulkhead, %.1f directly: ratio %.2f (target >= 0.8)\n", v["seqwrite-bulkhead-MB/s"], v["seqwrite-direct-MB/s"], v["seqwrite-ratio"]; \
		printf "bench: disk, sequential read: %.1f MB/s under Bulkhead, %.1f directly: ratio %.2f (target >= 0.8)\n", v["seqread-bulkhead-MB/s"], v["seqread-direct-MB/s"], v["seqread-ratio"]; \
		printf "bench: disk, 4 KiB random reads: %.0f IOPS under Bulkhead, %.0f directly: ratio %.2f (target >= 0.8)\n", v["randread-bulkhead-IOPS"], v["randread-direct-IOPS"], v["randread-ratio"] }'

	@# Guest-to-host TCP through the control partition's switch and uplink,
	@# against the same kernel's own virtio-net device directly in QEMU.
	@BULKHEAD_IMAGES=$(abspath $(BUILD)) $(GO) test ./cmd/bulkhead -run '^$$' -bench LinuxNet -benchtime 1x | tr '\t' '\n' | \
		awk '/^ *[0-9.]+ tcp-[a-z-]*(MB\/s|ratio)$$/ { v[$$2] = $$1 } END { \
		if (!("tcp-ratio" in v)) { print "bench: network: the benchmark failed"; exit 1 } \
		printf "bench: network, guest to host TCP (user network, 32 MiB): %.1f MB/s under Bulkhead, %.1f directly: ratio %.2f (target >= 0.6)\n", v["tcp-bulkhead-MB/s"], v["tcp-direct-MB/s"], v["tcp-ratio"] }'

	@# Boot to the banner: the -kernel boot, and under UEFI (ACPI), where
	@# "since reset" includes the firmware and "since image entry" starts at
	@# the hand-over (ExitBootServices done).
	@k=$$($(QEMU) $(QEMU_FLAGS) -kernel $(HYP) -append '$(APPEND)' | tr -d '\r' | sed -n 's/^boot time: \(.*\) since reset, \(.*\) since image entry.*/\2/p'); \
	u=$$($(QEMU) $(UEFI_FLAGS) | tr -d '\r' | sed -n 's/^boot time: \(.*\) since reset, \(.*\) since image entry.*/\1 from reset, \2 from the hand-over/p'); \
		echo "bench: boot to the banner (1 CPU): -kernel $$k from entry; UEFI (AAVMF, ACPI, 8 CPUs) $$u"

# UEFI firmware (AAVMF) on a Graviton-class machine, booting the EFI image;
# -bios keeps no variables store, so nothing outside the run changes.
UEFI_FLAGS := -machine virt,virtualization=on,gic-version=3 -cpu neoverse-n1 -smp 8 -m 4G \
              -nographic -monitor none -semihosting-config enable=on,target=native \
              -bios $(UEFI_FW) -kernel $(HYP_EFI) -append '$(APPEND)'
run-uefi: $(HYP_EFI) qemu
	$(QEMU) $(UEFI_FLAGS)

# The same two guests, started by the control partition.
CONTROL_AT := 0x60000000
run-control: build qemu
	$(QEMU) $(QEMU_FLAGS) -kernel $(HYP) \
		-device loader,file=$(CONTROL),addr=$(CONTROL_AT),force-raw=on \
		-device loader,file=$(BUILD)/guest-hello.elf,addr=$(HELLO_AT),force-raw=on \
		-device loader,file=$(BUILD)/guest-adversary.elf,addr=$(ADV_AT),force-raw=on \
		-append "$(APPEND) control=$(CONTROL_AT):$$(stat -c %s $(CONTROL)) guest0=hello:$(HELLO_AT):$$(stat -c %s $(BUILD)/guest-hello.elf):3 guest1=adversary:$(ADV_AT):$$(stat -c %s $(BUILD)/guest-adversary.elf):0x44200000"

debug: $(HYP) qemu
	@echo "QEMU is halted at the first instruction. In another terminal:"
	@echo "  gdb-multiarch $(abspath $(HYP)) -ex 'target remote :1234'"
	@command -v gdb-multiarch >/dev/null || echo "  (gdb-multiarch is missing: apt-get install gdb-multiarch)"
	@echo "Ctrl-a x quits QEMU."
	$(QEMU) $(QEMU_FLAGS) -append '$(APPEND)' -kernel $(HYP) -S -gdb tcp::1234

# Unit tests of the pure logic run on the host; the QEMU tests (in the same
# `go test` run) boot the images built here; then the proofs.
test: images qemu containerd linux rootfs
	BULKHEAD_IMAGES=$(abspath $(BUILD)) $(GO) test -count=1 ./...
	@# The race detector does not run on bare metal: the scheduler, ledger,
	@# tables and the CLI's broker under it on the host.
	$(GO) test -race -count=1 ./hyp/... ./mmu/... ./virtio/...
	$(GO) test -race -count=1 -run 'Unit|Broker' ./cmd/bulkhead/
	$(MAKE) --no-print-directory -C proofs

# The adversarial tests at their long lengths; make test runs them short.
soak: images qemu
	BULKHEAD_IMAGES=$(abspath $(BUILD)) BULKHEAD_FUZZ_CALLS=1000000 BULKHEAD_CHURN_CYCLES=1000 \
		$(GO) test -count=1 -timeout 60m -v -run 'HypercallFuzzer|Churn' ./cmd/bulkhead/

# The parsers of what comes from outside, under go test -fuzz one after
# the other: ACPI tables, guest images, device trees, guest device trees, the host
# channel's virtqueues, the broker's two sides, the vGIC's registers, the
# ELF loader, cpio archives, the console's frames and the guests' virtqueues
# as the hypervisor mediates them. Their committed seeds (testdata/fuzz) run in every
# go test. On a loaded machine Go 1.26's fuzzer can end a run with a
# bare "context deadline exceeded" and no failing input: its coordinator
# racing its own -fuzztime deadline, not a finding.
FUZZTIME ?= 10s
FUZZ_TARGETS := acpi:FuzzParse bootimage:FuzzParse board/fdt:FuzzParse guestdt:FuzzBuild virtio:FuzzQueues \
                cmd/bulkhead:FuzzBrokerRequests cmd/bulkhead:FuzzBrokerControl hyp/vgic:FuzzMMIO hyp:FuzzLoadELF \
                cpio:FuzzParse consolemux:FuzzDecode hyp/virtq:FuzzQueue vdev/virtioblk:FuzzRequests
fuzz:
	@for t in $(FUZZ_TARGETS); do \
		pkg=$${t%%:*}; fn=$${t#*:}; \
		echo "fuzz: $$fn in ./$$pkg for $(FUZZTIME)"; \
		$(GO) test -run '^$$' -fuzz "^$$fn\$$" -fuzztime $(FUZZTIME) ./$$pkg || exit 1; \
	done

# The Coq proofs, the Go ledger and stage 2 (hyp, mmu) checked against the
# extracted oracle, and the SPIN model of break-before-make (proofs/README.md).
proofs:
	$(MAKE) --no-print-directory -C proofs

clean:
	rm -rf $(BUILD)

# --- set-up: the TamaGo toolchain and QEMU --------------------------------

# `go tool tamago` is TamaGo's launcher: it runs tamago-go, which adds
# GOOS=tamago, and installs it on first use. The host go rejects
# GOOS=tamago before delegating, so the launcher binary runs directly.
TAMAGO = $(shell $(GO) tool -n tamago 2>/dev/null)

define TOOLCHAIN_HELP
Cannot run the TamaGo compiler. Bulkhead is built with tamago-go 1.26.0, the
Go toolchain with GOOS=tamago for bare metal; the `go tool tamago` launcher
pinned in go.mod installs it into $(dir $(patsubst %/,%,$(dir $(TAMAGO_GO)))) on first use,
which needs git and access to github.com/usbarmory/tamago-go. Install it by
hand if this machine is offline: check out tag tamago-go1.26.0 of that
repository into that folder and run ./make.bash in its src/ folder with
GOROOT_BOOTSTRAP set to a Go 1.24 or newer. The launcher's output is in
$(BUILD)/toolchain.log.
endef
export TOOLCHAIN_HELP

toolchain:
	@mkdir -p $(BUILD)
	@if [ -z "$(TAMAGO)" ]; then \
		echo "Cannot build the tamago launcher with '$(GO) tool -n tamago': is Go 1.26 installed and the module proxy reachable?"; \
		exit 1; \
	fi
	@if [ ! -x "$(TAMAGO_GO)" ]; then echo "Installing tamago-go 1.26.0 (first build only)..."; fi
	@$(TAMAGO_ENV) $(TAMAGO) version > $(BUILD)/toolchain.log 2>&1 || { echo "$$TOOLCHAIN_HELP"; exit 1; }

# QEMU, and the UEFI firmware (AAVMF) the UEFI boots run under (UEFI_FW).
qemu:
	@missing=; command -v $(QEMU) >/dev/null || missing=qemu-system-arm; \
	[ -f $(UEFI_FW) ] || missing="$$missing qemu-efi-aarch64"; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
		else echo "Missing: $$missing. Install with: sudo apt-get install $$missing"; exit 1; fi; \
		echo "Installing Debian's $$missing..."; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq $$missing >/dev/null || \
		{ echo "Installing $$missing failed. Install with: sudo apt-get install $$missing"; exit 1; }; \
	fi

# containerd and ctr, which the shim's tests run a daemon of their own of
# (cmd/containerd-shim-bulkhead-v1): Debian's containerd package.
containerd:
	@if ! command -v containerd >/dev/null || ! command -v ctr >/dev/null; then \
		if [ "$$(id -u)" = 0 ]; then SUDO=; \
		elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then SUDO=sudo; \
		else echo "Missing: containerd. Install with: sudo apt-get install containerd"; exit 1; fi; \
		echo "Installing Debian's containerd..."; \
		$$SUDO apt-get update -qq && $$SUDO apt-get install -y -qq containerd >/dev/null || \
		{ echo "Installing containerd failed. Install with: sudo apt-get install containerd"; exit 1; }; \
	fi

# --- Linux for the guest tests: Debian's arm64 kernel and an initramfs ----

# Nothing prebuilt is committed: the kernel, its modules and a static
# busybox come from Debian's arm64 packages (scripts/linux-artifacts.sh
# fetches them, and keeps the .deb files in DEB_CACHE for later clones),
# and the initramfs is built here. Each output is made only when it is
# missing or older than what it is made from: the kernel and its modules
# (virtio-mmio, virtio block and net, ext4, and what they need) are taken
# from the same cached kernel .deb, and are made again together when a
# newer one is there; the initramfs is made again when its busybox, its
# modules or the sources of cmd/mkinitramfs and the cpio package change.
LINUX     := $(BUILD)/linux
DEB_CACHE ?= $(HOME)/.cache/bulkhead/debs
KERNEL_DEBS = $(filter-out %-dbg_%,$(wildcard $(DEB_CACHE)/linux-image-[0-9]*-arm64*_arm64.deb))
MKINITRAMFS_SRC := $(filter-out %_test.go,$(wildcard cmd/mkinitramfs/*.go cpio/*.go)) cmd/mkinitramfs/init.sh cmd/mkinitramfs/udhcpc.sh

linux: $(LINUX)/vmlinuz $(LINUX)/modules/order $(LINUX)/rootfs.cpio.gz

$(LINUX)/vmlinuz: $(KERNEL_DEBS)
	@DEB_CACHE='$(DEB_CACHE)' scripts/linux-artifacts.sh kernel $@

# The folder is written whole, its order file last.
$(LINUX)/modules/order: $(LINUX)/vmlinuz scripts/linux-artifacts.sh $(KERNEL_DEBS)
	@DEB_CACHE='$(DEB_CACHE)' scripts/linux-artifacts.sh modules $(@D)

$(LINUX)/busybox:
	@DEB_CACHE='$(DEB_CACHE)' scripts/linux-artifacts.sh busybox $@

$(LINUX)/rootfs.cpio.gz: $(LINUX)/busybox $(LINUX)/modules/order $(MKINITRAMFS_SRC)
	@mkdir -p $(@D)
	@echo "linux: building $@ (cmd/mkinitramfs)"
	@$(GO) run ./cmd/mkinitramfs -busybox $(LINUX)/busybox -modules $(LINUX)/modules -o $@
	@echo "linux: wrote $@ ($$(stat -c %s $@) bytes)"

# A 64 MiB ext4 root filesystem for root=/dev/vda, made without root
# privileges from the same busybox (scripts/mkrootfs.sh): its /sbin/init
# prints "bulkhead-rootfs: up SECONDS", runs a shell on the console and
# powers off when it exits.
.PHONY: rootfs
rootfs: $(LINUX)/rootfs.ext4

$(LINUX)/rootfs.ext4: $(LINUX)/busybox scripts/mkrootfs.sh
	@scripts/mkrootfs.sh $(LINUX)/busybox $@
