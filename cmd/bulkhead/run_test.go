package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
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

// imagesDir points the CLI at the built images, and at a private state
// directory so that no instance the user has up is involved.
func imagesDir(t *testing.T) string {
	dir := qemutest.ImageDir(t)
	t.Setenv("BULKHEAD_IMAGES", dir)
	t.Setenv("XDG_RUNTIME_DIR", t.TempDir())
	return dir
}

func TestParseRunErrors(t *testing.T) {
	dir := imagesDir(t)
	img := filepath.Join(dir, "guest-hello.elf")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "want exactly one IMAGE, got 0"},
		{[]string{img, img}, "want exactly one IMAGE, got 2"},
		{[]string{"--mem", "3M", img}, "multiple of 2M"},
		{[]string{"--cpus", "17", img}, "want 1 to 16"},
		{[]string{"--name", "a name with spaces", img}, "use 1 to 16 letters"},
		{[]string{"--machine-mem", "256M", img}, "at least 512M"},
		{[]string{"--hypervisor", "/nonexistent/hyp.elf", img}, "hypervisor image /nonexistent/hyp.elf"},
		{[]string{"--bogus", img}, "flag provided but not defined"},
	} {
		var stderr bytes.Buffer
		_, err := parseRun(tc.args, &stderr)
		if assert.Error(t, err, "%v", tc.args) {
			assert.Contains(t, err.Error()+stderr.String(), tc.want, "%v", tc.args)
		}
	}
	c, err := parseRun([]string{img, "--arg", "7", "--mem", "32M", "--cpus", "2"}, &bytes.Buffer{})
	require.NoError(t, err, "flags after IMAGE")
	assert.Equal(t, "guest-hello", c.name)
	assert.Equal(t, uint64(7), c.arg)
	assert.Equal(t, uint64(32<<20), c.mem)
	assert.Equal(t, 2, c.cpus)
}

func TestCheckImage(t *testing.T) {
	dir := imagesDir(t)
	_, err := checkImage(filepath.Join(dir, "guest-hello.elf"), 16<<20)
	assert.NoError(t, err)
	// The hypervisor's image is linked at 0x40200000: past a 2M guest.
	_, err = checkImage(filepath.Join(dir, "bulkhead-hyp.elf"), 2<<20)
	assert.ErrorContains(t, err, "does not fit the guest's RAM")
	exe, _ := os.Executable()
	_, err = checkImage(exe, 16<<20)
	assert.ErrorContains(t, err, "want a 64-bit little-endian AArch64 ELF")
	text := filepath.Join(t.TempDir(), "notes.txt")
	require.NoError(t, os.WriteFile(text, []byte("hello"), 0o644))
	_, err = checkImage(text, 16<<20)
	assert.ErrorContains(t, err, "not an ELF file")
	_, err = checkImage(filepath.Join(dir, "missing.elf"), 16<<20)
	assert.ErrorContains(t, err, "no such file")
}

func TestQEMUArgs(t *testing.T) {
	c := &runConfig{name: "g", mem: 32 << 20, cpus: 2, arg: 5, machineMem: 1 << 30, hyp: "h.elf", control: "c.elf", image: "g.elf", qemuOpts: []string{"-icount", "shift=0"}}
	args, err := qemuArgs(c, 3<<20, 1<<20)
	require.NoError(t, err)
	joined := strings.Join(args, " ")
	assert.Contains(t, joined, "loader,file=c.elf,addr=0x50000000,force-raw=on")
	assert.Contains(t, joined, "loader,file=g.elf,addr=0x50400000,force-raw=on", "2 MiB aligned after the control image")
	assert.Contains(t, joined, "control=0x50000000:3145728 guest0=g:0x50400000:1048576:5:0x2000000:2")
	assert.Contains(t, joined, "-m 1024M")
	assert.True(t, strings.HasSuffix(joined, "-icount shift=0"))
	c.machineMem = 512 << 20
	_, err = qemuArgs(c, 3<<20, 1<<30)
	assert.ErrorContains(t, err, "raise --machine-mem")
}

// The first-time user's command: a private instance runs the guest, its
// console comes out, and bulkhead exits with its status.
func TestRunGuest(t *testing.T) {
	dir := imagesDir(t)
	var stdout, stderr bytes.Buffer
	code := cli([]string{"run", "--arg", "3", filepath.Join(dir, "guest-hello.elf")}, &stdout, &stderr)
	assert.Equal(t, 3, code, "the guest's exit status; stderr: %s", stderr.String())
	assert.Contains(t, stdout.String(), "hello from a TamaGo guest at EL1\n")
	assert.Contains(t, stdout.String(), "exiting with status 3\n")
	assert.NotContains(t, stdout.String(), "bulkhead:", "only the guest's console on stdout")
	assert.Contains(t, stderr.String(), "booting guest-hello")
}

func TestRunJSON(t *testing.T) {
	dir := imagesDir(t)
	var stdout, stderr bytes.Buffer
	code := cli([]string{"run", "--json", "--name", "t1", "--qemu-opt=-icount", "--qemu-opt=shift=0,sleep=off", filepath.Join(dir, "guest-timer.elf")}, &stdout, &stderr)
	require.Equal(t, 0, code, stderr.String())
	lines := strings.Split(strings.TrimSpace(stdout.String()), "\n")
	var last map[string]any
	require.NoError(t, json.Unmarshal([]byte(lines[len(lines)-1]), &last))
	assert.Equal(t, "exit", last["event"])
	assert.Equal(t, float64(0), last["status"])
	assert.Equal(t, "t1", last["vm"])
	var first map[string]string
	require.NoError(t, json.Unmarshal([]byte(lines[0]), &first))
	assert.Equal(t, "console", first["event"])
}

// When the instance itself fails, bulkhead says so and shows its log.
func TestRunInstanceFailure(t *testing.T) {
	dir := imagesDir(t)
	var stdout, stderr bytes.Buffer
	// A guest image given as the control partition: it runs, but starts
	// nothing, so the guest never reports.
	code := cli([]string{"run", "--control", filepath.Join(dir, "guest-spin.elf"), filepath.Join(dir, "guest-hello.elf")}, &stdout, &stderr)
	assert.Equal(t, exitInternal, code)
	assert.Contains(t, stderr.String(), "the instance failed")
	assert.Contains(t, stderr.String(), "its last lines:")
}

func TestHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	assert.Equal(t, 0, cli([]string{"help"}, &stdout, &stderr))
	assert.Contains(t, stdout.String(), "bulkhead run [flags] IMAGE")
	stdout.Reset()
	assert.Equal(t, 0, cli([]string{"help", "run"}, &stdout, &stderr))
	assert.Contains(t, stderr.String(), "--qemu-opt")
	assert.Equal(t, 2, cli([]string{"frobnicate"}, &stdout, &stderr))
	assert.Equal(t, 2, cli(nil, &stdout, &stderr))
}

// An instance boots in the background, answers through its host channel,
// and goes down when asked; its QEMU does not outlive it.
func TestUpPsDown(t *testing.T) {
	imagesDir(t)
	var out, errb bytes.Buffer
	require.Equal(t, exitUsage, cli([]string{"ps", "--name", "t"}, &out, &errb))
	assert.Contains(t, errb.String(), `no instance named "t" is up`)

	out.Reset()
	errb.Reset()
	require.Equal(t, 0, cli([]string{"up", "--name", "t"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), `instance "t" is up`)
	in, err := loadInstance("t")
	require.NoError(t, err)
	t.Cleanup(func() { killPID(in.PID) })

	assert.Equal(t, exitUsage, cli([]string{"up", "--name", "t"}, &out, &errb), "already up")
	assert.Contains(t, errb.String(), "already up")

	out.Reset()
	require.Equal(t, 0, cli([]string{"ps", "--name", "t", "--json"}, &out, &errb), errb.String())
	var ps map[string]any
	require.NoError(t, json.Unmarshal(out.Bytes(), &ps))
	assert.Equal(t, "t", ps["instance"])
	assert.Empty(t, ps["vms"])

	out.Reset()
	require.Equal(t, 0, cli([]string{"down", "--name", "t"}, &out, &errb), errb.String())
	assert.Contains(t, out.String(), `instance "t" is down`)
	assert.False(t, alive(in.PID), "QEMU is gone")
	_, err = loadInstance("t")
	assert.Error(t, err)
}

// With an instance up, run uploads the image over the host channel and
// the guest runs there; the instance stays up for the next one.
func TestRunInInstance(t *testing.T) {
	dir := imagesDir(t)
	var out, errb bytes.Buffer
	require.Equal(t, 0, cli([]string{"up", "--name", "u"}, &out, &errb), errb.String())
	in, err := loadInstance("u")
	require.NoError(t, err)
	t.Cleanup(func() { killPID(in.PID) })

	for _, arg := range []string{"4", "6"} {
		out.Reset()
		errb.Reset()
		code := cli([]string{"run", "--instance", "u", "--name", "h" + arg, "--arg", arg, filepath.Join(dir, "guest-hello.elf")}, &out, &errb)
		assert.Equal(t, int(arg[0]-'0'), code, errb.String())
		assert.Contains(t, out.String(), "hello from a TamaGo guest at EL1\n")
		assert.Contains(t, out.String(), "exiting with status "+arg+"\n")
		assert.Contains(t, errb.String(), "uploading h"+arg)
		assert.Contains(t, errb.String(), "MB/s")
		assert.NotContains(t, errb.String(), "booting", "no private instance")
	}
	out.Reset()
	require.Equal(t, 0, cli([]string{"ps", "--name", "u", "--json"}, &out, &errb))
	var ps struct {
		VMs []map[string]any `json:"vms"`
	}
	require.NoError(t, json.Unmarshal(out.Bytes(), &ps))
	require.Len(t, ps.VMs, 2)
	assert.Equal(t, "h4", ps.VMs[0]["name"])
	assert.Equal(t, "stopped", ps.VMs[1]["state"])
	require.Equal(t, 0, cli([]string{"down", "--name", "u"}, &out, &errb), errb.String())
}
