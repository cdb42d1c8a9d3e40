package main

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// copyFile copies src to a new file in the test's directory.
func copyFile(t *testing.T, src string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	require.NoError(t, err, "make rootfs builds it")
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	require.NoError(t, os.WriteFile(dst, b, 0o644))
	return dst
}

// Debian's kernel boots with its root on a virtio-blk disk the control
// partition backs with a drive of the instance, through mediated
// virtqueues; what the guest writes and syncs is in the image file
// after it powers off. A read-only disk refuses writes with an I/O error
// in the guest. A write the guest flushed survives QEMU's SIGKILL.
func TestLinuxRootOnDisk(t *testing.T) {
	dir := imagesDir(t)
	kernel := filepath.Join(dir, "linux", "vmlinuz")
	initrd := filepath.Join(dir, "linux", "rootfs.cpio.gz")
	root := copyFile(t, filepath.Join(dir, "linux", "rootfs.ext4"))
	// A read-only drive with a known first block, and a scratch drive.
	pattern := bytes.Repeat([]byte("read-only disk! "), 256) // 4 KiB
	ro := filepath.Join(t.TempDir(), "ro.img")
	require.NoError(t, os.WriteFile(ro, append(pattern, make([]byte, 1<<20-len(pattern))...), 0o444))
	scratch := filepath.Join(t.TempDir(), "scratch.img")
	require.NoError(t, os.WriteFile(scratch, make([]byte, 1<<20), 0o644))

	in := upInstance(t, "dk", "--disk", "root="+root, "--disk", "ro0="+ro+",ro", "--disk", "scratch="+scratch)
	run := startCLI(t, "run", "--instance", "dk", "--name", "k", "--mem", "256M", "--initrd", initrd,
		"--cmdline", "console=ttyAMA0 root=/dev/vda", "--disk", "root", "--disk", "ro0,ro", "--disk", "scratch", kernel)
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "bulkhead-rootfs: up") },
		3*time.Minute, 100*time.Millisecond, "Linux mounts its root from /dev/vda and starts its init")
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "# ") },
		time.Minute, 100*time.Millisecond, "the shell prompts")

	// A second guest cannot have the root writable while k runs.
	code, _, errs := bh("run", "--instance", "dk", "--name", "k2", "--disk", "root", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, exitUsage, code)
	assert.Contains(t, errs, "disk root is attached writable to k")
	code, out, errs := bh("ps", "--name", "dk", "--json")
	require.Equal(t, 0, code, errs)
	assert.Contains(t, out, `"drive":"root"`, "ps names each VM's disks")

	content := "written by the guest through a mediated virtqueue\n"
	con := typeInto(t, "dk", "k", strings.Join([]string{
		"echo '" + strings.TrimSuffix(content, "\n") + "' > /hello",
		"sync",
		"dd if=/dev/vdb bs=4096 count=1 2>/dev/null | sha256sum",
		"echo x | dd of=/dev/vdb bs=512 count=1 conv=fsync; echo ro-write=$?",
		// The root's init then syncs, remounts the root read-only (the
		// journal checkpointed, for debugfs) and powers off.
		"exit", ""}, "\n"))
	assert.Equal(t, 0, run.wait(t, 2*time.Minute), "the guest powered off")
	out = con.wait(t)
	assert.Contains(t, out, fmt.Sprintf("%x", sha256.Sum256(pattern)), "the read-only disk reads back")
	assert.Contains(t, out, "ro-write=1", "a write to the read-only disk fails")
	// The device says it is read-only (VIRTIO_BLK_F_RO), so Linux refuses
	// the open; a write that reached the device would fail with IOERR
	// (vdev/virtioblk's tests).
	assert.Regexp(t, `dd: .*(Operation not permitted|Read-only file system|I/O error)`, out, "dd says why")
	b, err := os.ReadFile(ro)
	require.NoError(t, err)
	assert.Equal(t, pattern, b[:len(pattern)], "the read-only image is unchanged")
	dump, err := exec.Command("debugfs", "-R", "cat /hello", root).Output()
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("%x", sha256.Sum256([]byte(content))), fmt.Sprintf("%x", sha256.Sum256(dump)),
		"the file the guest wrote is in the image, its checksum right (debugfs read %q)", dump)

	// A flushed write survives the instance's QEMU dying at once.
	run = startCLI(t, "run", "--instance", "dk", "--name", "k", "--mem", "256M", "--initrd", initrd,
		"--cmdline", "console=ttyAMA0", "--disk", "scratch", kernel)
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "# ") },
		3*time.Minute, 100*time.Millisecond, "the shell prompts")
	typeInto(t, "dk", "k", "yes flushed-before-sigkill | head -c 65536 | dd of=/dev/vda bs=64k conv=fsync 2>/dev/null; echo flushed=$?\n")
	require.Eventually(t, func() bool { return strings.Contains(run.stdout.String(), "flushed=0") },
		time.Minute, 100*time.Millisecond, "dd wrote and flushed")
	require.NoError(t, syscall.Kill(in.PID, syscall.SIGKILL))
	run.wait(t, time.Minute)
	b, err = os.ReadFile(scratch)
	require.NoError(t, err)
	want := bytes.Repeat([]byte("flushed-before-sigkill\n"), 65536/23+1)[:65536]
	assert.Equal(t, want, b[:65536], "the flushed write is in the file")
}

// A guest that drives its disk's transport by hand with malformed queues
// (cmd/guests/badvirtio) gets DEVICE_NEEDS_RESET for each and none of its
// bad chains served; after a reset its disk works, and the instance runs
// the next guest as before. Its disk is the second MiB of a drive: its
// sector 0 is the drive's sector 2048.
func TestHostileVirtioDriver(t *testing.T) {
	dir := imagesDir(t)
	img := filepath.Join(t.TempDir(), "d.img")
	b := bytes.Repeat([]byte("not the guest's!"), 1<<20/16)
	b = append(b, bytes.Repeat([]byte("bulkhead-sector0"), 32)...)
	require.NoError(t, os.WriteFile(img, append(b, make([]byte, 1<<20-512)...), 0o644))
	upInstance(t, "hv", "--disk", "d="+img)
	before, err := os.ReadFile(img)
	require.NoError(t, err)
	code, out, errs := bh("run", "--instance", "hv", "--disk", "d@1M+1M", filepath.Join(dir, "guest-badvirtio.elf"))
	assert.Equal(t, 0, code, "failures: the exit status\n%s%s", out, errs)
	for _, c := range []string{"loop", "buffer-outside-ram", "head-past-queue", "next-past-queue", "indirect",
		"readable-after-writable", "length-overflow", "index-far-ahead", "queue-size-not-power-of-two",
		"read-after-reset", "read-data"} {
		assert.Contains(t, out, "badvirtio: ok "+c+"\n")
	}
	assert.NotContains(t, out, "FAIL")
	after, err := os.ReadFile(img)
	require.NoError(t, err)
	assert.Equal(t, before, after, "the disk is unchanged")
	code, out, errs = bh("run", "--instance", "hv", "--arg", "3", filepath.Join(dir, "guest-hello.elf"))
	assert.Equal(t, 3, code, errs)
	assert.Contains(t, out, "exiting with status 3", "the next guest runs")
	code, _, errs = bh("down", "--name", "hv")
	assert.Equal(t, 0, code, errs)
}
