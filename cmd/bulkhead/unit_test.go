package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/client"
	"github.com/bulkhead-hv/bulkhead/hyp"
)

func TestParseSize(t *testing.T) {
	for in, want := range map[string]uint64{"16M": 16 << 20, "1g": 1 << 30, "4096": 4096, "0x200000": 2 << 20, "64K": 64 << 10} {
		got, err := parseSize(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, bad := range []string{"", "M", "-1M", "12Q", "0"} {
		_, err := parseSize(bad)
		assert.Error(t, err, bad)
	}
}

func TestParseRunErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "want IMAGE, got 0 argument(s)"},
		{[]string{"a.elf", "b.elf"}, "want IMAGE, got 2 argument(s)"},
		{[]string{"--mem", "3M", "a.elf"}, "multiple of 2M"},
		{[]string{"--cpus", "17", "a.elf"}, "want 1 to 16"},
		{[]string{"--name", "a name with spaces", "a.elf"}, "use 1 to 16 letters"},
		{[]string{"--bogus", "a.elf"}, "flag provided but not defined"},
		{[]string{"--pcpus", "1,x", "a.elf"}, `"x": want CPU numbers 0 to 63`},
		{[]string{"--pcpus", "3-1", "a.elf"}, `"3-1": want CPU numbers`},
		{[]string{"--pcpus", "64", "a.elf"}, `"64": want CPU numbers 0 to 63`},
	} {
		var stderr bytes.Buffer
		_, err := parseRun(tc.args, &stderr)
		if assert.Error(t, err, "%v", tc.args) {
			assert.Contains(t, err.Error()+stderr.String(), tc.want, "%v", tc.args)
		}
	}
	c, err := parseRun([]string{"dir/guest-hello.elf", "--arg", "7", "--mem", "32M", "--cpus", "2", "--smp", "2",
		"--qemu-opt=-icount", "--cmdline", "console=hvc0 quiet", "--initrd", "r.gz", "--pcpus", "1,3-4"}, &bytes.Buffer{})
	require.NoError(t, err, "flags after IMAGE")
	assert.Equal(t, "guest-hello", c.name)
	assert.Equal(t, uint64(7), c.arg)
	assert.Equal(t, uint64(32<<20), c.mem)
	assert.Equal(t, 2, c.cpus)
	assert.Equal(t, []int{1, 3, 4}, c.pcpus)
	assert.Equal(t, "console=hvc0 quiet", c.cmdline)
	assert.Equal(t, "r.gz", c.initrd)
	assert.Equal(t, 2, c.machine.smp)
	assert.Equal(t, []string{"--qemu-opt", "--smp"}, c.machineSet, "flags that only a private instance takes")

	var m machineConfig
	for _, tc := range []struct {
		set  func()
		want string
	}{
		{func() { m = machineConfig{mem: 256 << 20, smp: 1} }, "--machine-mem 256M: at least 512M"},
		{func() { m = machineConfig{mem: 1 << 30, smp: 0} }, "--smp 0: want 1 to 64"},
		{func() { m = machineConfig{mem: 1 << 30, smp: 1, hyp: "/nonexistent/hyp.elf"} }, "hypervisor image /nonexistent/hyp.elf"},
	} {
		tc.set()
		assert.ErrorContains(t, m.check("machine-mem"), tc.want)
	}
}

// elfImage builds a small ELF executable with one loadable segment of n
// bytes at paddr; cut drops that many bytes from its end.
func elfImage(machine elf.Machine, typ elf.Type, paddr uint64, n, cut int) []byte {
	var b bytes.Buffer
	hdr := elf.Header64{Type: uint16(typ), Machine: uint16(machine), Version: 1, Entry: paddr,
		Phoff: 64, Ehsize: 64, Phentsize: 56, Phnum: 1, Shentsize: 64}
	copy(hdr.Ident[:], elf.ELFMAG)
	hdr.Ident[elf.EI_CLASS], hdr.Ident[elf.EI_DATA], hdr.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	binary.Write(&b, binary.LittleEndian, hdr)
	binary.Write(&b, binary.LittleEndian, elf.Prog64{Type: uint32(elf.PT_LOAD), Flags: uint32(elf.PF_R | elf.PF_X),
		Off: 0x1000, Vaddr: paddr, Paddr: paddr, Filesz: uint64(n), Memsz: uint64(n), Align: 0x1000})
	b.Write(make([]byte, 0x1000-b.Len()))
	b.Write(bytes.Repeat([]byte{0x1f, 0x20, 0x03, 0xd5}, n/4)) // NOPs
	return b.Bytes()[:b.Len()-cut]
}

func TestUnitCheckImage(t *testing.T) {
	dir := t.TempDir()
	file := func(name string, b []byte) string {
		p := filepath.Join(dir, name)
		require.NoError(t, os.WriteFile(p, b, 0o644))
		return p
	}
	linux := make([]byte, 4096)
	binary.LittleEndian.PutUint64(linux[0x10:], 20<<20) // image_size
	binary.LittleEndian.PutUint32(linux[0x38:], 0x644d5241)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write(linux)
	w.Close()
	var junk bytes.Buffer
	w = gzip.NewWriter(&junk)
	w.Write([]byte("not a kernel, just text"))
	w.Close()

	for name, b := range map[string][]byte{
		"good.elf": elfImage(elf.EM_AARCH64, elf.ET_EXEC, hyp.GuestIPA+0x10000, 8192, 0),
		"Image":    linux,
		"Image.gz": gz.Bytes(),
	} {
		assert.NoError(t, checkImage(file(name, b), 32<<20, 0), name)
	}
	for _, tc := range []struct {
		name string
		b    []byte
		mem  uint64
		want string
	}{
		{"x86.elf", elfImage(elf.EM_X86_64, elf.ET_EXEC, hyp.GuestIPA, 4096, 0), 16 << 20, "not an AArch64 ELF, Linux arm64 Image or gzip-compressed Image (starts with 7f 45 4c 46 but is EM_X86_64)"},
		{"truncated.elf", elfImage(elf.EM_AARCH64, elf.ET_EXEC, hyp.GuestIPA, 8192, 100), 16 << 20, "file bytes [0x1000, +0x2000) run past the end of the 12188-byte image"},
		{"header-only.elf", elfImage(elf.EM_AARCH64, elf.ET_EXEC, hyp.GuestIPA, 8192, 0)[:40], 16 << 20, "truncated ELF header: 40 bytes, want 64"},
		{"dyn.elf", elfImage(elf.EM_AARCH64, elf.ET_DYN, hyp.GuestIPA, 4096, 0), 16 << 20, "ELF image is ET_DYN, want an executable (ET_EXEC)"},
		{"high.elf", elfImage(elf.EM_AARCH64, elf.ET_EXEC, hyp.GuestIPA+(2<<20), 4096, 0), 2 << 20, "ELF segment [0x40200000, +0x1000) lies outside the guest's RAM [0x40000000, 0x40200000)"},
		{"low.elf", elfImage(elf.EM_AARCH64, elf.ET_EXEC, 0x1000, 4096, 0), 16 << 20, "ELF segment [0x1000, +0x1000) lies outside the guest's RAM"},
		{"big-Image", linux, 16 << 20, "the kernel needs 20 MiB (text_offset + image_size) + 2 MiB device tree; the VM has only 16 MiB: give it more --mem"},
		{"junk.gz", junk.Bytes(), 16 << 20, "gzip-compressed data ends after 23 bytes, before a 64-byte Image header"},
		{"notes.txt", []byte("hello, world"), 16 << 20, "an image of 12 bytes is too short to be anything bootable"},
		{"empty", nil, 16 << 20, "an image of 0 bytes is too short"},
	} {
		err := checkImage(file(tc.name, tc.b), tc.mem, 0)
		assert.ErrorContains(t, err, tc.want, tc.name)
	}
	err := checkImage(filepath.Join(dir, "missing.elf"), 16<<20, 0)
	assert.ErrorContains(t, err, "no such file")
	err = checkImage(dir, 16<<20, 0)
	assert.ErrorContains(t, err, "not a regular file")
}

func TestUnitQEMUArgs(t *testing.T) {
	m := &machineConfig{mem: 2 << 30, smp: 4, hyp: "h.elf", control: "c.elf", opts: []string{"-icount", "shift=0"}}
	in := &client.Instance{Socket: "/run/x/ctl.sock", Log: "/run/x/console.log"}
	joined := strings.Join(qemuArgs(m, in, 3<<20), " ")
	assert.Contains(t, joined, "-m 2048M -smp 4")
	assert.Contains(t, joined, "-kernel h.elf")
	assert.Contains(t, joined, "loader,file=c.elf,addr=0x50000000,force-raw=on")
	assert.Contains(t, joined, "control=0x50000000:3145728")
	assert.Contains(t, joined, "-serial file:/run/x/console.log")
	assert.Contains(t, joined, "socket,id=ctl,path=/run/x/ctl.sock,server=on,wait=on")
	assert.True(t, strings.HasSuffix(joined, "-icount shift=0"))
	assert.NotContains(t, joined, "guest0=", "guests are uploaded, never boot modules")
}

func TestUnitConsoleOut(t *testing.T) {
	var b bytes.Buffer
	o := &consoleOut{w: &b, json: true, vm: "v"}
	o.write([]byte("one\r\ntw"))
	o.write([]byte("o\nthree"))
	o.flush()
	var lines []map[string]string
	for _, l := range strings.Split(strings.TrimSpace(b.String()), "\n") {
		var m map[string]string
		require.NoError(t, json.Unmarshal([]byte(l), &m))
		lines = append(lines, m)
	}
	require.Len(t, lines, 3)
	assert.Equal(t, map[string]string{"event": "console", "vm": "v", "text": "one"}, lines[0])
	assert.Equal(t, "two", lines[1]["text"])
	assert.Equal(t, "three", lines[2]["text"], "a last line without its newline")

	b.Reset()
	o = &consoleOut{w: &b, vm: "v"}
	o.write([]byte("raw\r\nbytes\x1b[0m"))
	o.flush()
	assert.Equal(t, "raw\r\nbytes\x1b[0m", b.String(), "without --json, bytes as they come")
}

func TestUnitProgress(t *testing.T) {
	var b bytes.Buffer
	p := &progress{w: &b, name: "k", image: 3 << 20, initrd: 2 << 20}
	for _, s := range []int64{1 << 20, 3 << 20, 4 << 20, 5 << 20} {
		p.show(s)
	}
	p.done(true)
	lines := strings.Split(b.String(), "\n")
	require.Len(t, lines, 3)
	assert.True(t, strings.HasSuffix(lines[0], "\rbulkhead: uploading k: 3072 of 3072 KiB"), "%q", lines[0])
	assert.Contains(t, lines[1], "\rbulkhead: uploading k's initrd: 2048 of 2048 KiB (")
	assert.Contains(t, lines[1], " MB/s)")
}

func TestUnitStatsTable(t *testing.T) {
	var b bytes.Buffer
	printStats(&b, []vmStats{
		{Name: "a", VM: 1, State: "running", RunMS: 1234, Pages: 4096, Faults: 2, VCPUs: 1, Exits: map[string]int64{"hvc": 10, "irq": 30, "wfi": 10}},
		{Name: "b", VM: 2, State: "stopped", Status: 143, Pages: 512, VCPUs: 2,
			Disks: []client.Disk{{Drive: "root", Dev: "vda", Reads: 5, ReadBytes: 2 << 20, Writes: 1, WrittenBytes: 4096, Flushes: 1}},
			Net:   &client.NIC{Dev: "eth0", MAC: "02:b1:4b:00:00:02", TxFrames: 3, TxBytes: 300, RxFrames: 4, RxBytes: 400, RxDropped: 1}},
	}, machineStats{Pages: 262144, Free: 100, Hypervisor: 16384, Control: 241564, Guests: 4096, VMs: 2, TablePages: 60, Checks: 7},
		[]cpuStats{{CPU: 0, Exits: 5000, VCPUs: 2, RunMS: 1500}, {CPU: 1, Exits: 12, VCPUs: 1, RunMS: 20}})
	out := b.String()
	assert.Contains(t, out, "invariants: hold; 7 checks, 0 violations")
	assert.Contains(t, out, "NAME  VM  STATE    STATUS  RUN TIME  PAGES  MIB  FAULTS  VCPUS  EXITS")
	assert.Contains(t, out, "a     1   running  -       1.23s     4096   16   2       1      irq 30, hvc 10, wfi 10")
	assert.Contains(t, out, "b     2   stopped  143     0s        512    2    0       2      -")
	assert.Contains(t, out, "b vda (drive root): 5 reads (2097152 bytes), 1 writes (4096 bytes), 1 flushes, 0 errors\n")
	assert.Contains(t, out, "b eth0 (02:b1:4b:00:00:02): 3 frames out (300 bytes), 4 in (400 bytes), 1 dropped, 0 errors\n")
	assert.Contains(t, out, "machine: 262144 pages (1024 MiB), 2 VM(s), 60 free stage 2 table pages")
	assert.Contains(t, out, "  hypervisor  16384 pages   64 MiB")
	assert.Contains(t, out, "  free        100 pages     0.39 MiB")
	assert.NotContains(t, out, "restarted", "no restart, no line")
	assert.Contains(t, out, "  CPU 0  5000 exits  2 vCPU(s)  guests ran 1.5s\n")
	assert.Contains(t, out, "  CPU 1  12 exits    1 vCPU(s)  guests ran 20ms\n")

	b.Reset()
	printStats(&b, nil, machineStats{Pages: 256, Checks: 9, Violations: 1, Restarts: 2}, nil)
	assert.Contains(t, b.String(), "invariants: BROKEN (the hypervisor's log says where); 9 checks, 1 violations")
	assert.Contains(t, b.String(), "control partition: restarted 2 time(s) after a crash")
	assert.True(t, strings.HasPrefix(b.String(), "no VMs\n"))
}

func TestUnitHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, cli([]string{"help"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "bulkhead run [flags] IMAGE")
	for _, cmd := range []string{"run", "up", "ps", "console", "stop", "stats", "down"} {
		stdout.Reset()
		assert.Equal(t, 0, cli([]string{"help", cmd}, &stdout, &stderr), cmd)
		assert.Contains(t, stdout.String(), "Usage: bulkhead "+cmd, cmd)
		assert.Contains(t, stdout.String(), "Examples:", cmd)
		assert.Contains(t, stdout.String(), "Flags:", cmd)
		stderr.Reset()
		assert.Equal(t, 0, cli([]string{cmd, "--help"}, &stdout, &stderr), cmd)
		assert.Contains(t, stderr.String(), "Usage: bulkhead "+cmd, cmd)
	}
	stdout.Reset()
	cli([]string{"help", "run"}, &stdout, &stderr)
	for _, f := range []string{"--qemu-opt", "--smp", "--machine-mem", "--initrd", "--cmdline", "--private"} {
		assert.Contains(t, stdout.String(), "  -"+strings.TrimPrefix(f, "--"), f)
	}
	assert.Equal(t, exitUsage, cli([]string{"help", "frobnicate"}, &stdout, &stderr))
	assert.Equal(t, exitUsage, cli([]string{"frobnicate"}, &stdout, &stderr))
	assert.Equal(t, exitUsage, cli(nil, &stdout, &stderr))
	stdout.Reset()
	assert.Equal(t, 0, cli([]string{"version"}, &stdout, &stderr))
	assert.Equal(t, "bulkhead dev\n", stdout.String())
}

// Commands that need an instance say clearly when there is none, and
// which VM argument they want.
func TestUnitNoInstance(t *testing.T) {
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	for _, args := range [][]string{{"ps"}, {"stats", "--name", "t"}, {"stop", "web"}, {"console", "--instance", "t", "web"}, {"down", "--name", "t"}} {
		var stdout, stderr bytes.Buffer
		assert.Equal(t, exitUsage, cli(args, &stdout, &stderr), "%v", args)
		assert.Regexp(t, `^bulkhead \w+: no instance named "(default|t)" is up: start one with: bulkhead up --name (default|t)\n$`, stderr.String(), "%v", args)
	}
	var stdout, stderr bytes.Buffer
	assert.Equal(t, exitUsage, cli([]string{"stop"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "bulkhead stop: want VM, got 0 argument(s)")
	stderr.Reset()
	assert.Equal(t, exitUsage, cli([]string{"ps", "extra"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), `bulkhead ps: unexpected argument "extra"`)
	assert.Equal(t, "no VM named web in instance default; bulkhead ps lists them", unknownVM("web", "default").Error())
	assert.Equal(t, "no VM named web in instance t; bulkhead ps --name t lists them", unknownVM("web", "t").Error())
}

// A zombie is not alive: the broker of a private instance whose owner was
// killed must see it gone before its parent reaps it.
func TestUnitAliveZombie(t *testing.T) {
	assert.True(t, client.Alive(os.Getpid()))
	assert.False(t, client.Alive(0))
	cmd := exec.Command("true")
	require.NoError(t, cmd.Start())
	pid := cmd.Process.Pid
	require.Eventually(t, func() bool { return !client.Alive(pid) }, 5*time.Second, 10*time.Millisecond, "a zombie until Wait")
	assert.NoError(t, syscall.Kill(pid, 0), "still a process: a zombie")
	require.NoError(t, cmd.Wait())
	assert.False(t, client.Alive(pid))
}

// --disk values are refused with a reason before QEMU starts.
func TestDriveFlags(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.img")
	require.NoError(t, os.WriteFile(good, make([]byte, 4096), 0o644))
	odd := filepath.Join(dir, "odd.img")
	require.NoError(t, os.WriteFile(odd, make([]byte, 1000), 0o644))
	d, err := parseDrive("root=" + good + ",ro")
	require.NoError(t, err)
	assert.Equal(t, drive{name: "root", file: good, ro: true}, d)
	assert.Equal(t, []string{"-drive", "file=" + good + ",if=none,format=raw,id=drive-root,readonly=on",
		"-device", "virtio-blk-device,drive=drive-root,serial=root"}, d.qemuArgs(&machineConfig{}))
	assert.Equal(t, "virtio-blk-pci,iommu_platform=on,disable-legacy=on,drive=drive-root,serial=root",
		d.qemuArgs(&machineConfig{iommu: true})[3], "behind the SMMU: a PCI function whose DMA goes through it")
	for v, want := range map[string]string{
		good:                              "want NAME=FILE",
		"a/b=" + good:                     "name it with 1 to 20 letters",
		"x=" + filepath.Join(dir, "none"): "no such file",
		"x=" + dir:                        "not a regular file",
		"x=" + odd:                        "1000 bytes: a raw disk image is a non-zero number of 512-byte sectors",
	} {
		_, err := parseDrive(v)
		assert.ErrorContains(t, err, want, v)
	}
	var drives []drive
	f := driveFlag{&drives}
	require.NoError(t, f.Set("a="+good))
	assert.ErrorContains(t, f.Set("a="+good+",ro"), "a drive of that name is given already")
	_, err = parseRun(append(strings.Split(strings.Repeat("--disk x ", 17), " ")[:34], "img"), io.Discard)
	assert.ErrorContains(t, err, "17 --disk flags: a guest has at most 15 disks")
}

// --net values: QEMU's user network with forwards bound to the loopback,
// or a tap; anything else is refused with what is accepted.
func TestUplinkFlags(t *testing.T) {
	u, err := parseUplink("user,hostfwd=tcp:8080-:80,hostfwd=udp:0.0.0.0:53-:53,hostfwd=tcp::22-:2222")
	require.NoError(t, err)
	assert.Equal(t, []string{"-netdev", "user,id=uplink,hostfwd=tcp:127.0.0.1:8080-:80,hostfwd=udp:0.0.0.0:53-:53,hostfwd=tcp:127.0.0.1:22-:2222",
		"-device", "virtio-net-device,netdev=uplink"}, u.qemuArgs(&machineConfig{}))
	assert.Equal(t, "virtio-net-pci,iommu_platform=on,disable-legacy=on,netdev=uplink", u.qemuArgs(&machineConfig{iommu: true})[3])
	u, err = parseUplink("tap,ifname=tap0")
	require.NoError(t, err)
	assert.Equal(t, "tap,id=uplink,ifname=tap0,script=no,downscript=no", u.qemuArgs(&machineConfig{})[1])
	for v, want := range map[string]string{
		"bridge":                 "want user[,hostfwd=tcp:HOSTPORT-:GUESTPORT] or tap,ifname=NAME",
		"user,hostfwd=tcp:80":    "hostfwd=tcp:80: want tcp:HOSTPORT-:GUESTPORT",
		"user,smb=/":             `unknown option "smb=/"`,
		"tap":                    "a tap uplink needs ifname=NAME",
		"tap,ifname=a;rm -rf /x": "is not an interface name",
	} {
		_, err := parseUplink(v)
		assert.ErrorContains(t, err, want, v)
	}
	var one *uplink
	f := uplinkFlag{&one}
	require.NoError(t, f.Set("user"))
	assert.ErrorContains(t, f.Set("user"), "an instance has one uplink")
}

func TestDiskRefs(t *testing.T) {
	d, err := parseDiskRef("data@64M+32M,ro")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"name": "data", "ro": true, "offset": uint64(64 << 20), "size": uint64(32 << 20)}, d)
	d, err = parseDiskRef("root@0+512")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"name": "root", "ro": false, "offset": uint64(0), "size": uint64(512)}, d)
	d, err = parseDiskRef("root")
	require.NoError(t, err)
	assert.Equal(t, map[string]any{"name": "root", "ro": false}, d)
	for _, v := range []string{"root@64M", "root@1+512", "root@0+0", "root@x+1M", "a/b", "root@0+100"} {
		_, err := parseDiskRef(v)
		assert.Error(t, err, v)
	}
}

func TestNetPeers(t *testing.T) {
	c, err := parseRun([]string{"--net", "user,peers=lab", "img"}, io.Discard)
	require.NoError(t, err)
	assert.Equal(t, "user", c.net)
	assert.Equal(t, "lab", c.peers)
	_, err = parseRun([]string{"--net", "user,peers=a b", "img"}, io.Discard)
	assert.ErrorContains(t, err, "name the group with 1 to 32 letters")
	_, err = parseRun([]string{"--net", "bridge,peers=x", "img"}, io.Discard)
	assert.ErrorContains(t, err, "want user")
}
