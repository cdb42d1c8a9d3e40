// Command mkinitramfs builds the initramfs that the guest tests boot
// Linux with: a gzip-compressed newc cpio archive holding a static
// busybox, the /init script beside this file, the directories and device
// nodes a shell needs, links for the busybox applets and, with -modules,
// the kernel modules /init loads.
//
//	mkinitramfs -busybox PATH [-modules DIR] -o FILE
//
// Device nodes and ownership are written into the archive directly, so
// it runs without root, and the archive depends only on its inputs.
// init.sh says what /init does with the modules and with root=.
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
	"regexp"
	"strings"

	"github.com/bulkhead-hv/bulkhead/cpio"
)

//go:embed init.sh
var initScript []byte

// udhcpcScript configures an interface from a DHCP lease (busybox
// udhcpc's default script).
//
//go:embed udhcpc.sh
var udhcpcScript []byte

const usage = `mkinitramfs writes a gzip-compressed newc cpio archive, an initramfs for
an arm64 Linux kernel (QEMU's -initrd), that boots to a busybox shell.

Usage:

	mkinitramfs -busybox PATH [-modules DIR] -o FILE

The archive holds:

	/init            the script embedded from cmd/mkinitramfs/init.sh: it
	                 mounts /proc, /sys and /dev, loads the modules in
	                 /lib/modules, prints "bulkhead-init: up SECONDS", then
	                 either switch_roots to the disk that root=/dev/vdX
	                 names or runs a shell on the console and powers off
	                 when the shell exits
	/bin/busybox     PATH, which must be a static arm64 ELF executable
	                 (Debian's busybox-static:arm64)
	/bin/APPLET      links to /bin/busybox for the applets it needs
	/dev/console     character device 5,1
	/dev/null        character device 1,3
	/etc/udhcpc/default.script   configures an interface from a DHCP
	                 lease (cmd/mkinitramfs/udhcpc.sh), for busybox udhcpc
	/sbin /usr/bin /usr/sbin /proc /sys /tmp /root /etc   empty
	/lib/modules/    with -modules DIR: the modules DIR/order lists, one
	                 file name a line, each after those it needs, and that
	                 order file (scripts/linux-artifacts.sh modules DIR
	                 writes such a folder). Each must be an uncompressed
	                 arm64 module (ELF relocatable) built for the kernel
	                 the archive boots with

Every entry is owned by 0:0 with mtime 0, so the same busybox and modules
give the same archive byte for byte. "make linux" runs it.

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
	// The modules, the switch to a root on disk, and its network device.
	"insmod", "lsmod", "rmmod", "switch_root", "chroot", "ip", "ifconfig",
	"ping",
	// DHCP, and the clients and servers the network tests use.
	"udhcpc", "wget", "nc", "httpd",
}

func main() {
	flags := flag.NewFlagSet("mkinitramfs", flag.ExitOnError)
	flags.Usage = func() {
		fmt.Fprint(flags.Output(), usage)
		flags.PrintDefaults()
	}
	busybox := flags.String("busybox", "", "the static arm64 busybox `PATH` (required)")
	modules := flags.String("modules", "", "put the kernel modules that `DIR`/order lists into /lib/modules")
	out := flags.String("o", "", "write the archive to `FILE` (required)")
	flags.Parse(os.Args[1:])
	if *busybox == "" || *out == "" || flags.NArg() != 0 {
		fmt.Fprintln(os.Stderr, "mkinitramfs: -busybox and -o are required, and nothing else (see -help)")
		os.Exit(2)
	}
	if err := run(*busybox, *modules, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkinitramfs:", err)
		os.Exit(1)
	}
}

// run writes the archive to out; modulesDir may be empty (no modules).
func run(busyboxPath, modulesDir, out string) error {
	bb, err := readBusybox(busyboxPath)
	if err != nil {
		return err
	}
	var mods []module
	if modulesDir != "" {
		if mods, err = readModules(modulesDir); err != nil {
			return err
		}
	}
	var archive bytes.Buffer
	if err := writeInitramfs(&archive, bb, initScript, mods); err != nil {
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

// A module is a kernel module's file name (NAME.ko) and contents.
type module struct {
	name string
	data []byte
}

// moduleName is what an order file may name: a file in its folder.
var moduleName = regexp.MustCompile(`^[A-Za-z0-9_-]+\.ko$`)

// readModules reads dir/order and the modules it lists, in its order.
func readModules(dir string) ([]module, error) {
	order, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("modules: %s has no order file: make it with scripts/linux-artifacts.sh modules %s", dir, dir)
		}
		return nil, fmt.Errorf("modules: %w", err)
	}
	var mods []module
	seen := map[string]bool{}
	for i, line := range strings.Split(string(order), "\n") {
		name := strings.TrimSpace(line)
		if name == "" {
			continue
		}
		where := fmt.Sprintf("%s line %d", filepath.Join(dir, "order"), i+1)
		if !moduleName.MatchString(name) {
			return nil, fmt.Errorf("modules: %s: %q is not a module file name (NAME.ko, in the same folder)", where, name)
		}
		if seen[name] {
			return nil, fmt.Errorf("modules: %s: %s is listed twice", where, name)
		}
		seen[name] = true
		data, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return nil, fmt.Errorf("modules: %s: %w", where, err)
		}
		if err := checkModule(data); err != nil {
			return nil, fmt.Errorf("modules: %s: %w", filepath.Join(dir, name), err)
		}
		mods = append(mods, module{name, data})
	}
	if len(mods) == 0 {
		return nil, fmt.Errorf("modules: %s lists no modules", filepath.Join(dir, "order"))
	}
	return mods, nil
}

// checkModule checks that busybox insmod can load data into an arm64
// kernel: an uncompressed ELF relocatable object for AArch64.
func checkModule(data []byte) error {
	if !bytes.HasPrefix(data, []byte(elf.ELFMAG)) {
		return errors.New("not an ELF file: pass uncompressed modules (.ko, not .ko.xz or .ko.zst)")
	}
	f, err := elf.NewFile(bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("not a readable ELF file: %w", err)
	}
	defer f.Close()
	if f.Class != elf.ELFCLASS64 || f.Machine != elf.EM_AARCH64 {
		return fmt.Errorf("built for %v %v, not arm64 (EM_AARCH64)", f.Class, f.Machine)
	}
	if f.Type != elf.ET_REL {
		return fmt.Errorf("ELF type %v, not a kernel module (ET_REL)", f.Type)
	}
	return nil
}

// initramfs lists the archive's entries in an order the kernel can
// unpack: every directory before what it holds.
func initramfs(busybox, init []byte, mods []module) []cpio.Entry {
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
		cpio.Dir("etc/udhcpc"),
		cpio.File("etc/udhcpc/default.script", 0o755, udhcpcScript),
	}
	for _, a := range applets {
		es = append(es, cpio.Symlink("bin/"+a, "/bin/busybox"))
	}
	if len(mods) > 0 {
		es = append(es, cpio.Dir("lib"), cpio.Dir("lib/modules"))
		var order strings.Builder
		for _, m := range mods {
			es = append(es, cpio.File("lib/modules/"+m.name, 0o644, m.data))
			order.WriteString(m.name + "\n")
		}
		es = append(es, cpio.File("lib/modules/order", 0o644, []byte(order.String())))
	}
	return es
}

// writeInitramfs writes the gzip-compressed archive. gzip's header gets
// no name and no mtime, so the output depends only on the inputs.
func writeInitramfs(w io.Writer, busybox, init []byte, mods []module) error {
	zw, err := gzip.NewWriterLevel(w, gzip.BestCompression)
	if err != nil {
		return err
	}
	if err := cpio.Write(zw, initramfs(busybox, init, mods)); err != nil {
		return err
	}
	return zw.Close()
}
