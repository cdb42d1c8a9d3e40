package containerinit

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"github.com/bulkhead-hv/bulkhead/consolemux"
)

// Exit statuses for a process that never ran, as a shell gives them.
const (
	statusNotFound  = 127
	statusCannotRun = 126
)

// drainWait bounds the wait for a process's output after it exited: a
// process it left behind may hold the pipes open for ever.
const drainWait = 2 * time.Second

// Main is the init: it never returns, and powers the VM off.
func Main() {
	// The kernel gave PID 1 /dev/console as its streams: the VM's serial
	// console. Raw, so that frames pass unchanged both ways and nothing
	// the host sends is echoed back.
	setRaw(0)
	enc := consolemux.NewEncoder(os.Stdout)
	status := run(enc)
	enc.Status(consolemux.Exit, status)
	syscall.Sync()
	syscall.Reboot(syscall.LINUX_REBOOT_CMD_POWER_OFF)
	select {} // PID 1 must not exit: the kernel would panic
}

func fail(enc *consolemux.Encoder, status int, format string, args ...any) int {
	enc.Frame(consolemux.Failure, fmt.Appendf(nil, format, args...))
	return status
}

func run(enc *consolemux.Encoder) int {
	var spec Spec
	b, err := os.ReadFile("/" + SpecPath)
	if err == nil {
		err = json.Unmarshal(b, &spec)
	}
	if err == nil {
		err = spec.Check()
	}
	if err != nil {
		return fail(enc, statusCannotRun, "the VM's process spec: %v", err)
	}
	if err := enterRoot(spec.Hostname); err != nil {
		return fail(enc, statusCannotRun, "entering the container's root: %v", err)
	}
	argv0, err := lookPath(spec.Args[0], spec.Cwd, spec.SearchPath())
	if err != nil {
		status := statusCannotRun
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, exec.ErrNotFound) {
			status = statusNotFound
		}
		return fail(enc, status, "%v", err)
	}

	stdin, toChild, err := childStdin(spec.Stdin)
	if err != nil {
		return fail(enc, statusCannotRun, "standard input: %v", err)
	}
	outR, outW, err := os.Pipe()
	if err != nil {
		return fail(enc, statusCannotRun, "%v", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		return fail(enc, statusCannotRun, "%v", err)
	}
	attr := &os.ProcAttr{
		Dir:   spec.Cwd,
		Env:   spec.Env,
		Files: []*os.File{stdin, outW, errW},
		Sys:   &syscall.SysProcAttr{Setsid: true},
	}
	if spec.UID != 0 || spec.GID != 0 || len(spec.Groups) > 0 {
		attr.Sys.Credential = &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: spec.Groups}
	}
	proc, err := os.StartProcess(argv0, spec.Args, attr)
	stdin.Close()
	outW.Close()
	errW.Close()
	if err != nil {
		return fail(enc, statusCannotRun, "starting %s: %v", spec.Args[0], err)
	}

	var relays sync.WaitGroup
	for _, p := range []struct {
		r   *os.File
		tag byte
	}{{outR, consolemux.Stdout}, {errR, consolemux.Stderr}} {
		relays.Add(1)
		go func() {
			defer relays.Done()
			io.Copy(enc.Stream(p.tag), p.r)
		}()
	}
	go fromHost(proc.Pid, toChild)

	status := reap(proc.Pid)
	drained := make(chan struct{})
	go func() { relays.Wait(); close(drained) }()
	select {
	case <-drained:
	case <-time.After(drainWait):
	}
	return status
}

// enterRoot makes the container's root filesystem the root, with the
// kernel's filesystems where a process expects them.
func enterRoot(hostname string) error {
	if err := syscall.Chroot("/" + RootDir); err != nil {
		return err
	}
	if err := os.Chdir("/"); err != nil {
		return err
	}
	for _, m := range []struct{ fs, dir string }{{"proc", "/proc"}, {"sysfs", "/sys"}, {"devtmpfs", "/dev"}} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.fs, m.dir, m.fs, syscall.MS_NOSUID|syscall.MS_NOEXEC, ""); err != nil {
			return fmt.Errorf("mounting %s on %s: %v", m.fs, m.dir, err)
		}
	}
	if hostname != "" {
		return syscall.Sethostname([]byte(hostname))
	}
	return nil
}

// lookPath finds the executable as execvp(3) in the process would, inside
// the container's root: a name with a slash from the process's working
// directory, any other in its PATH.
func lookPath(name, cwd, searchPath string) (string, error) {
	if strings.Contains(name, "/") {
		p := name
		if !strings.HasPrefix(p, "/") {
			p = cwd + "/" + p
		}
		if err := executable(p); err != nil {
			return "", fmt.Errorf("%s: %w", name, err)
		}
		return p, nil
	}
	for _, dir := range strings.Split(searchPath, ":") {
		if dir == "" {
			dir = "."
		}
		p := dir + "/" + name
		if executable(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%q: %w in the image's $PATH (%s)", name, exec.ErrNotFound, searchPath)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// childStdin is the process's standard input: a pipe the host's Stdin
// frames fill, or /dev/null.
func childStdin(fromHost bool) (child, host *os.File, err error) {
	if !fromHost {
		child, err = os.Open("/dev/null")
		return child, nil, err
	}
	return os.Pipe()
}

// fromHost reads the console for frames from the host: standard input
// and signals for the process.
func fromHost(pid int, stdin *os.File) {
	d := &consolemux.Decoder{Frame: func(tag byte, p []byte) {
		switch tag {
		case consolemux.Stdin:
			if stdin != nil {
				stdin.Write(p)
			}
		case consolemux.CloseStdin:
			if stdin != nil {
				stdin.Close()
				stdin = nil
			}
		case consolemux.Signal:
			if n, err := consolemux.ParseStatus(p); err == nil && n > 0 && n < 65 {
				syscall.Kill(pid, syscall.Signal(n))
			}
		}
	}}
	io.Copy(d, os.Stdin)
}

// reap waits for every child PID 1 inherits until pid exits, and returns
// its status: the exit code, or 128+N for a process killed by signal N.
func reap(pid int) int {
	for {
		var ws syscall.WaitStatus
		p, err := syscall.Wait4(-1, &ws, 0, nil)
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			return statusCannotRun
		}
		if p != pid {
			continue
		}
		switch {
		case ws.Exited():
			return ws.ExitStatus()
		case ws.Signaled():
			return 128 + int(ws.Signal())
		}
	}
}

// setRaw turns the terminal on fd to raw mode (cfmakeraw(3)).
func setRaw(fd uintptr) {
	var t syscall.Termios
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCGETS, uintptr(unsafe.Pointer(&t))); e != 0 {
		return
	}
	t.Iflag &^= syscall.IGNBRK | syscall.BRKINT | syscall.PARMRK | syscall.ISTRIP | syscall.INLCR | syscall.IGNCR | syscall.ICRNL | syscall.IXON
	t.Oflag &^= syscall.OPOST
	t.Lflag &^= syscall.ECHO | syscall.ECHONL | syscall.ICANON | syscall.ISIG | syscall.IEXTEN
	t.Cflag &^= syscall.CSIZE | syscall.PARENB
	t.Cflag |= syscall.CS8
	t.Cc[syscall.VMIN], t.Cc[syscall.VTIME] = 1, 0
	syscall.Syscall(syscall.SYS_IOCTL, fd, syscall.TCSETS, uintptr(unsafe.Pointer(&t)))
}
