package main

import (
	"bytes"
	"compress/gzip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// The command line: Debian's kernel, gzip-compressed here, with
// its initramfs and 2 vCPUs, run from the CLI into an instance; a script
// typed into `bulkhead console` runs in its shell and powers it off, and
// run exits with its status.
// console is `bulkhead console` attached to a VM, with typed input.
type console struct {
	cmd       *exec.Cmd
	out, errb qemutest.LockedBuffer
}

// typeInto types script into `bulkhead console --name instance vm`.
func typeInto(t *testing.T, instance, vm, script string) *console {
	t.Helper()
	exe, err := os.Executable()
	require.NoError(t, err)
	c := &console{cmd: exec.Command(exe, "console", "--name", instance, vm)}
	c.cmd.Env = append(os.Environ(), "BULKHEAD_TEST_CLI=1")
	c.cmd.Stdin = strings.NewReader(script)
	c.cmd.Stdout, c.cmd.Stderr = &c.out, &c.errb
	require.NoError(t, c.cmd.Start())
	t.Cleanup(func() { c.cmd.Process.Kill(); c.cmd.Wait() })
	return c
}

// wait waits for the console to end (its VM stopped) and returns what it
// printed.
func (c *console) wait(t *testing.T) string {
	t.Helper()
	require.NoError(t, c.cmd.Wait(), c.errb.String())
	return c.out.String()
}

func TestLinuxThroughTheCLI(t *testing.T) {
	dir := imagesDir(t)
	kernel, err := os.ReadFile(filepath.Join(dir, "linux", "vmlinuz"))
	require.NoError(t, err, "make linux builds it")
	initrd := filepath.Join(dir, "linux", "rootfs.cpio.gz")
	var z bytes.Buffer
	w, _ := gzip.NewWriterLevel(&z, gzip.BestSpeed)
	w.Write(kernel)
	w.Close()
	gz := filepath.Join(t.TempDir(), "vmlinuz.gz")
	require.NoError(t, os.WriteFile(gz, z.Bytes(), 0o644))

	upInstance(t, "lx")
	run := startCLI(t, "run", "--instance", "lx", "--name", "k", "--cpus", "2", "--mem", "256M",
		"--initrd", initrd, "--cmdline", "console=ttyAMA0", gz)
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "bulkhead-init: up") },
		3*time.Minute, 100*time.Millisecond, "Linux reaches init")
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "# ") },
		time.Minute, 100*time.Millisecond, "the shell prompts")

	con := typeInto(t, "lx", "k", "echo hello from $(uname -m); nproc\npoweroff -f\n")
	assert.Equal(t, 0, run.wait(t, 2*time.Minute), "run exits with the guest's status: it powered off")
	assert.Contains(t, con.wait(t), "hello from aarch64")
	assert.Contains(t, run.stdout.String(), "hello from aarch64", "run streams the same console")
	assert.Contains(t, run.stdout.String(), "\n2\r\n", "nproc: 2 vCPUs")
	code, _, errs := bh("down", "--name", "lx")
	assert.Equal(t, 0, code, errs)
}
