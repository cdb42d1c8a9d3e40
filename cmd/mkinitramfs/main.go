// Command mkinitramfs builds the initramfs that the guest tests boot
// Linux with: a gzip-compressed newc cpio archive holding a static
// busybox, the /init script beside this file, the directories and device
// nodes a shell needs, and links for the busybox applets.
//
//	mkinitramfs -busybox PATH -o FILE
//
// Device nodes and ownership are written into the archive directly, so
// it runs without root, and the archive depends only on its inputs.
package main

import (
	"bytes"
	"compress/gzip"
	"debug/elf"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/bulkhead-hv/bulkhead/cpio"
)

//go:embed init.sh
var initScript []byte

const usage = `mkinitramfs writes a gzip-compressed newc cpio archive, an initramfs for
an arm64 Linux kernel (QEMU's -initrd), that boots to a busybox shell.

Usage:

	mkinitramfs -busybox PATH -o FILE

The archive holds:

	/init            the script embedded from cmd/mkinitramfs/init.sh: it
	                 mounts /proc, /sys and /dev, prints
	                 "bulkhead-init: up SECONDS", runs a shell on the
	                 console and powers off when the shell exits
	/bin/busybox     PATH, which must be a static arm64 ELF executable
	                 (Debian's busybox-static:arm64)
	/bin/APPLET      links to /bin/busybox for the applets it needs
	/dev/console     character device 5,1
	/dev/null        character device 1,3
	/sbin /usr/bin /usr/sbin /proc /sys /tmp /root /etc   empty

Every entry is owned by 0:0 with mtime 0, so the same busybox gives the
same archive byte for byte. "make linux" runs it.

Flags:
`

// applets are linked to /bin/busybox: the shell and what the guest tests
// and a person at the console use. busybox picks the applet by the name
// it was run as.
var applets = []string{
	"sh", "ash", "cat", "cp", "cttyhack", "cut", "date", "dd", "df",
	"dmesg", "du", "echo", "env", "false", "find", "free", "grep", "head",
	"hexdump", "kill", "ln", "ls", "md5sum", "mkdir", "mknod", "mount",
	"mv", "nproc", "od", "poweroff", "printf", "ps", "reboot", "rm",
	"sed", "seq", "setsid", "sha256sum", "sleep", "sort", "stat", "sync",
	"tail", "taskset", "test", "time", "top", "tr", "true", "umount",
	"uname", "uptime", "wc", "xargs",
}

func main() {
	flags := flag.NewFlagSet("mkinitramfs", flag.ExitOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usage)
		flags.PrintDefaults()
	}
	busybox := flags.String("busybox", "", "the static arm64 busybox `PATH` (required)")
	out := flags.String("o", "", "write the archive to `FILE` (required)")
	flags.Parse(os.Args[1:])
	if *busybox == "" || *out == "" || flags.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "mkinitramfs: -busybox and -o are required, and nothing else (see -help)")
		os.Exit(2)
	}
	if err := run(*busybox, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}

func run(busyboxPath, out string) error {
	bb, err := readBusybox(busyboxPath)
	if err != nil {
		return err
	}
	var archive bytes.Buffer
	if err := writeInitramfs(&archive, bb, initScript); err != nil {
		return err
	}
	// Write beside the target and rename, so that an interrupted run never
	// leaves a truncated archive that make would take as up to date.
	tmp, err := os.CreateTemp(filepath.Dir(out), filepath.Base(out)+".*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(archive.Bytes()); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), out)
}

// readBusybox reads the busybox binary and checks that the kernel can run
// it as the initramfs's only program: an arm64 ELF executable with no
// dynamic loader, since the archive holds no libc.
func readBusybox(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("busybox %s does not exist: pass the static arm64 busybox (Debian's busybox-static:arm64, /bin/busybox in its .deb) with -busybox", path)
		}
		return nil, fmt.Errorf("busybox: %w", err)
	}
	if err := checkBusybox(data); err != nil {
		return nil, fmt.Errorf("busybox %s: %w", path, err)
	}
	return data, nil
}

func checkBusybox(data []byte) error {
	if !bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
		return errors.New("not an ELF file: pass the static arm64 busybox binary (Debian's busybox-static:arm64)")
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a readable ELF file: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_AARCH64 {
		return fmt.Errorf("built for %v %v, not arm64 (EM_AARCH64): pass busybox-static:arm64, not the host's", f.Class, f.Machine)
	}
	if f.Type != elf.ET_EXEC && f.Type != elf.ET_DYN {
		return fmt.Errorf("ELF type %v, not an executable", f.Type)
	}
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return errors.New("dynamically linked (it has a PT_INTERP loader), but the initramfs has no libc: pass busybox-static:arm64")
		}
	}
	return nil
}

// initramfs lists the archive's entries in an order the kernel can
// unpack: every directory before what it holds.
func initramfs(busybox, init []byte) []cpio.Entry {
	es := []cpio.Entry{
		cpio.Dir("bin"), cpio.Dir("sbin"), cpio.Dir("usr"),
		cpio.Dir("usr/bin"), cpio.Dir("usr/sbin"), cpio.Dir("proc"),
		cpio.Dir("sys"), cpio.Dir("dev"), cpio.Dir("root"), cpio.Dir("etc"),
		// Writable by everyone, with the sticky bit, as usual.
		{Name: "tmp", Mode: cpio.ModeDir | 0o1777},
		// The kernel opens /dev/console for init's standard streams
		// before /init runs, so the node must be in the archive: devtmpfs
		// is mounted only later, by /init.
		cpio.CharDev("dev/console", 0o600, 5, 1),
		cpio.CharDev("dev/null", 0o666, 1, 3),
		cpio.File("bin/busybox", 0o755, busybox),
		cpio.File("init", 0o755, init),
	}
	for _, a := range applets {
		es = append(es, cpio.Symlink("bin/"+a, "/bin/busybox"))
	}
	return es
}

// writeInitramfs writes the gzip-compressed archive. gzip's header gets
// no name and no mtime, so the output depends only on the inputs.
func writeInitramfs(w io.Writer, busybox, init []byte) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := cpio.Write(zw, initramfs(busybox, init)); err != nil {
		return err
	}
	return zw.Close()
}
