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
	enc.Frame(consolemux.Ready, nil)
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

	st, err := newStreams(&spec)
	if err != nil {
		return fail(enc, statusCannotRun, "the process's streams: %v", err)
	}
	attr := &os.ProcAttr{
		Dir:   spec.Cwd,
		Env:   spec.Env,
		Files: st.child,
		Sys:   &syscall.SysProcAttr{Setsid: true, Setctty: spec.Terminal},
	}
	if spec.UID != 0 || spec.GID != 0 || len(spec.Groups) > 0 {
		attr.Sys.Credential = &syscall.Credential{Uid: spec.UID, Gid: spec.GID, Groups: spec.Groups}
	}
	proc, err := os.StartProcess(argv0, spec.Args, attr)
	for _, f := range st.child {
		f.Close()
	}
	if err != nil {
		return fail(enc, statusCannotRun, "starting %s: %v", spec.Args[0], err)
	}

	var relays sync.WaitGroup
	for tag, r := range st.out {
		relays.Add(1)
		go func() {
			defer relays.Done()
			io.Copy(enc.Stream(tag), r)
		}()
	}
	go fromHost(proc.Pid, st)

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
	for _, m := range []struct{ fs, dir, data string }{
		{"proc", "/proc", ""}, {"sysfs", "/sys", ""}, {"devtmpfs", "/dev", ""},
		{"devpts", "/dev/pts", "gid=5,mode=620,ptmxmode=666"},
	} {
		if err := os.MkdirAll(m.dir, 0o755); err != nil {
			return err
		}
		if err := syscall.Mount(m.fs, m.dir, m.fs, syscall.MS_NOSUID|syscall.MS_NOEXEC, m.data); err != nil {
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

// streams are the process's standard streams: what it gets (child), what
// the init relays to the host by frame tag (out), and where Stdin frames
// go (in, nil if it reads /dev/null). With a terminal, all three of the
// child's are the terminal, and its master is both out and in.
type streams struct {
	child    []*os.File
	out      map[byte]*os.File
	in       *os.File
	terminal bool
}

func newStreams(spec *Spec) (*streams, error) {
	if spec.Terminal {
		master, slave, err := OpenPTY("/dev")
		if err != nil {
			return nil, err
		}
		return &streams{child: []*os.File{slave, slave, slave}, out: map[byte]*os.File{consolemux.Stdout: master}, in: master, terminal: true}, nil
	}
	st := &streams{out: map[byte]*os.File{}}
	var stdin *os.File
	var err error
	if spec.Stdin {
		stdin, st.in, err = os.Pipe()
	} else {
		stdin, err = os.Open("/dev/null")
	}
	if err != nil {
		return nil, err
	}
	st.child = append(st.child, stdin)
	for _, tag := range []byte{consolemux.Stdout, consolemux.Stderr} {
		r, w, err := os.Pipe()
		if err != nil {
			return nil, err
		}
		st.out[tag] = r
		st.child = append(st.child, w)
	}
	return st, nil
}

// OpenPTY opens a new pseudo-terminal of the devpts under dev (ptmx(4)):
// its master and its slave, unlocked.
func OpenPTY(dev string) (master, slave *os.File, err error) {
	master, err = os.OpenFile(dev+"/ptmx", os.O_RDWR|syscall.O_NOCTTY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	var unlock int32
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("unlocking the pseudo-terminal: %v", e)
	}
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, master.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		master.Close()
		return nil, nil, fmt.Errorf("numbering the pseudo-terminal: %v", e)
	}
	slave, err = os.OpenFile(fmt.Sprintf("%s/pts/%d", dev, n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		master.Close()
		return nil, nil, err
	}
	return master, slave, nil
}

// winsize is struct winsize of TIOCSWINSZ (tty_ioctl(4)).
type winsize struct{ Row, Col, Xpixel, Ypixel uint16 }

// resize sets a terminal's size from a Resize frame's "COLUMNS ROWS".
func resize(tty *os.File, p []byte) {
	var ws winsize
	if _, err := fmt.Sscanf(string(p), "%d %d", &ws.Col, &ws.Row); err != nil {
		return
	}
	syscall.Syscall(syscall.SYS_IOCTL, tty.Fd(), syscall.TIOCSWINSZ, uintptr(unsafe.Pointer(&ws)))
}

// fromHost reads the console for frames from the host: standard input,
// the terminal's size and signals for the process.
func fromHost(pid int, st *streams) {
	stdin := st.in
	d := &consolemux.Decoder{Frame: func(tag byte, p []byte) {
		switch tag {
		case consolemux.Stdin:
			if stdin != nil {
				stdin.Write(p)
			}
		case consolemux.CloseStdin:
			switch {
			case st.terminal && stdin != nil:
				// A terminal's input ends with its EOF character; its
				// master stays open for the output.
				stdin.Write([]byte{4})
			case stdin != nil:
				stdin.Close()
				stdin = nil
			}
		case consolemux.Resize:
			if st.terminal {
				resize(st.in, p)
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
