package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/bulkhead-hv/bulkhead/consolemux"
	cgroupstats "github.com/containerd/cgroups/v3/cgroup1/stats"
	eventstypes "github.com/containerd/containerd/api/events"
	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	tasktypes "github.com/containerd/containerd/api/types/task"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/emptypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// service is the task service of one shim: its task, or under CRI the
// pod's sandbox and its containers (start groups them), each container
// in a VM of its own. Exec'd processes are not supported.
type service struct {
	f        *shimFlags
	logf     func(string, ...any)
	events   *publisher
	shutdown chan struct{}
	stopOnce sync.Once

	mu    sync.Mutex
	tasks map[string]*task // from Create to Delete
}

// task is the container: created, running in its VM, stopped.
type task struct {
	id, bundle            string
	stdin, stdout, stderr string
	terminal              bool
	// sandbox is a CRI pod's sandbox (pause) container: it runs no
	// process and needs no VM, and stands until it is killed.
	sandbox bool
	cfg     *vmConfig
	initrd  []byte
	mounted bool

	state      tasktypes.Status
	starting   bool // Start is booting the VM
	exitStatus uint32
	exitedAt   time.Time
	exited     chan struct{} // closed when the task stops
	ready      chan struct{} // closed at the init's Ready frame
	readyOnce  sync.Once
	vm         *vm
	killedBy   syscall.Signal // SIGKILL stops the VM itself
	outs       [2]*fifoWriter // stdout, stderr
}

func newService(f *shimFlags, logf func(string, ...any)) *service {
	return &service{f: f, logf: logf, events: newPublisher(f.namespace, logf), shutdown: make(chan struct{}), tasks: map[string]*task{}}
}

func errf(c codes.Code, format string, args ...any) error { return status.Errorf(c, format, args...) }

// get returns the task if id names it.
func (s *service) get(id, execID string) (*task, error) {
	if execID != "" {
		return nil, errf(codes.NotFound, "exec %s: a Bulkhead VM runs no exec'd processes", execID)
	}
	t := s.tasks[id]
	if t == nil {
		return nil, errf(codes.NotFound, "task %s: not in this shim", id)
	}
	return t, nil
}

func (s *service) Create(ctx context.Context, r *taskapi.CreateTaskRequest) (*taskapi.CreateTaskResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.tasks[r.ID] != nil {
		return nil, errf(codes.AlreadyExists, "task %s exists", r.ID)
	}
	if r.Checkpoint != "" {
		return nil, errf(codes.Unimplemented, "checkpoints of a Bulkhead VM are not supported")
	}
	spec, err := readSpec(r.Bundle)
	if err != nil {
		return nil, errf(codes.InvalidArgument, "%v", err)
	}
	pid := uint32(os.Getpid())
	if spec.Annotations[annotationContainerType] == "sandbox" {
		s.tasks[r.ID] = &task{id: r.ID, bundle: r.Bundle, sandbox: true, state: tasktypes.Status_CREATED, exitStatus: noStatus, exited: make(chan struct{}), ready: make(chan struct{})}
		s.logf("created %s: a pod sandbox, which needs no VM", r.ID)
		s.events.publish("/tasks/create", &eventstypes.TaskCreate{ContainerID: r.ID, Bundle: r.Bundle, Rootfs: r.Rootfs,
			IO: &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}, Pid: pid})
		return &taskapi.CreateTaskResponse{Pid: pid}, nil
	}
	cfg, err := configure(spec, r.Stdin != "")
	if err != nil {
		return nil, errf(codes.InvalidArgument, "%v", err)
	}
	cfg.spec.Terminal = r.Terminal
	root, mounted, err := mountRootfs(r.Bundle, r.Rootfs)
	if err != nil {
		return nil, errf(codes.Internal, "%v", err)
	}
	t := &task{id: r.ID, bundle: r.Bundle, stdin: r.Stdin, stdout: r.Stdout, stderr: r.Stderr,
		terminal: r.Terminal, cfg: cfg, mounted: mounted, state: tasktypes.Status_CREATED, exitStatus: noStatus, exited: make(chan struct{}), ready: make(chan struct{})}
	fail := func(c codes.Code, err error) (*taskapi.CreateTaskResponse, error) {
		if mounted {
			unmountRootfs(r.Bundle, s.logf)
		}
		return nil, errf(c, "%v", err)
	}
	if err := checkExecutable(root, &cfg.spec); err != nil {
		return fail(codes.FailedPrecondition, err)
	}
	init, err := os.ReadFile(initPath())
	if err != nil {
		return fail(codes.FailedPrecondition, fmt.Errorf("the VM's init: %v (make builds it; set BULKHEAD_IMAGES)", err))
	}
	if t.initrd, err = initramfs(root, init, &cfg.spec); err != nil {
		return fail(codes.FailedPrecondition, err)
	}
	s.tasks[r.ID] = t
	s.logf("created %s: %q, %d MiB, %d vCPUs, initramfs %d KiB", r.ID, cfg.spec.Args, cfg.mem>>20, cfg.cpus, len(t.initrd)>>10)
	s.events.publish("/tasks/create", &eventstypes.TaskCreate{ContainerID: r.ID, Bundle: r.Bundle, Rootfs: r.Rootfs,
		IO: &eventstypes.TaskIO{Stdin: r.Stdin, Stdout: r.Stdout, Stderr: r.Stderr, Terminal: r.Terminal}, Pid: pid})
	return &taskapi.CreateTaskResponse{Pid: pid}, nil
}

func (s *service) Start(ctx context.Context, r *taskapi.StartRequest) (*taskapi.StartResponse, error) {
	s.mu.Lock()
	t, err := s.get(r.ID, r.ExecID)
	if err == nil && (t.state != tasktypes.Status_CREATED || t.starting) {
		err = errf(codes.FailedPrecondition, "task %s is %v, not created", r.ID, t.state)
	}
	if err != nil {
		s.mu.Unlock()
		return nil, err
	}
	if t.sandbox {
		t.state = tasktypes.Status_RUNNING
		s.mu.Unlock()
		s.events.publish("/tasks/start", &eventstypes.TaskStart{ContainerID: t.id, Pid: uint32(os.Getpid())})
		return &taskapi.StartResponse{Pid: uint32(os.Getpid())}, nil
	}
	t.starting = true
	s.mu.Unlock()

	// The VM boots outside the lock: State and Kill answer meanwhile.
	for i, p := range []string{t.stdout, t.stderr} {
		t.outs[i] = openFifoWriter(p, s.logf)
	}
	dec := &consolemux.Decoder{
		Frame: func(tag byte, p []byte) { s.frame(t, tag, p) },
		Noise: func(line []byte) { s.logf("%s console: %q", t.id, line) },
	}
	in, err := ensureInstance(s.logf)
	var v *vm
	if err == nil {
		mem := t.cfg.mem + roundUp(2*uint64(len(t.initrd)), 2<<20)
		v, err = boot(in, vmName(s.f.namespace, t.id), mem, t.cfg.cpus, t.initrd, func(b []byte) { dec.Write(b) })
	}
	if err != nil {
		// The task ends as a process that could not be started does,
		// so that containerd can delete it.
		for _, o := range t.outs {
			o.close()
		}
		s.mu.Lock()
		if t.state == tasktypes.Status_CREATED {
			s.end(t, statusNotStarted)
		}
		s.mu.Unlock()
		return nil, errf(codes.FailedPrecondition, "starting %s's VM: %v", t.id, err)
	}
	s.mu.Lock()
	t.vm, t.state, t.initrd = v, tasktypes.Status_RUNNING, nil
	killed := t.killedBy
	s.mu.Unlock()
	if killed != 0 {
		// Killed while it booted: the process never ran.
		v.stop()
	}
	if t.stdin != "" {
		go s.relayStdin(t)
	}
	go func() {
		st := v.wait(func(b []byte) { dec.Write(b) })
		dec.Flush()
		s.stopped(t, st)
	}()
	pid := uint32(os.Getpid())
	s.logf("started %s in VM %s of instance %s", t.id, v.name, in.Name)
	s.events.publish("/tasks/start", &eventstypes.TaskStart{ContainerID: t.id, Pid: pid})
	return &taskapi.StartResponse{Pid: pid}, nil
}

// noStatus is a task's exit status until the init's Exit frame (or a
// kill before start) gives it one.
const noStatus = ^uint32(0)

// frame handles what the init sends.
func (s *service) frame(t *task, tag byte, p []byte) {
	switch tag {
	case consolemux.Stdout:
		t.outs[0].write(p)
	case consolemux.Stderr:
		t.outs[1].write(p)
	case consolemux.Ready:
		t.readyOnce.Do(func() { close(t.ready) })
	case consolemux.Failure:
		s.logf("%s: the VM's init: %s", t.id, p)
		t.outs[1].write(append(append([]byte("bulkhead: "), p...), '\n'))
	case consolemux.Exit:
		n, err := consolemux.ParseStatus(p)
		if err != nil {
			s.logf("%s: %v", t.id, err)
			return
		}
		s.mu.Lock()
		t.exitStatus = uint32(n)
		s.mu.Unlock()
	}
}

// stopped records the end of the task's VM. The process's status is the
// init's Exit frame; a VM stopped by SIGKILL is 137; a VM that ended
// without one (its kernel failed) is 255.
func (s *service) stopped(t *task, vmStatus int) {
	for _, o := range t.outs {
		o.close()
	}
	s.mu.Lock()
	switch {
	case t.killedBy != 0 && t.exitStatus == noStatus:
		t.exitStatus = 128 + uint32(t.killedBy)
	case t.exitStatus == noStatus:
		s.logf("%s: VM %s ended (status %d) without the process's exit status", t.id, t.vm.name, vmStatus)
		t.exitStatus = 255
	}
	s.end(t, t.exitStatus)
	s.mu.Unlock()
	t.vm.cl.Close()
}

// statusNotStarted is the exit status of a task whose VM never started,
// as a shell's for a command it could not run.
const statusNotStarted = 126

// end stops the task with status and tells containerd; s.mu is held.
func (s *service) end(t *task, status uint32) {
	t.exitStatus, t.state, t.exitedAt = status, tasktypes.Status_STOPPED, time.Now()
	close(t.exited)
	s.logf("%s exited with status %d", t.id, status)
	s.events.publish("/tasks/exit", &eventstypes.TaskExit{ContainerID: t.id, ID: t.id, Pid: uint32(os.Getpid()),
		ExitStatus: status, ExitedAt: timestamppb.New(t.exitedAt)})
}

// relayStdin sends the stdin FIFO to the process, as Stdin frames, and
// its end as CloseStdin.
func (s *service) relayStdin(t *task) {
	f, err := os.OpenFile(t.stdin, os.O_RDONLY, 0)
	if err != nil {
		s.logf("%s: stdin %s: %v", t.id, t.stdin, err)
		return
	}
	defer f.Close()
	enc := consolemux.NewEncoder(inputWriter{t})
	io.Copy(enc.Stream(consolemux.Stdin), f)
	enc.Frame(consolemux.CloseStdin, nil)
}

// inputWriter writes to a task's VM's console input, once its init is
// ready for it.
type inputWriter struct{ t *task }

func (w inputWriter) Write(b []byte) (int, error) {
	select {
	case <-w.t.ready:
	case <-w.t.exited:
		return 0, errors.New("the VM has stopped")
	}
	if err := w.t.vm.input(b); err != nil {
		return 0, err
	}
	return len(b), nil
}

func (s *service) Kill(ctx context.Context, r *taskapi.KillRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	sig := syscall.Signal(r.Signal)
	if sig <= 0 || sig > 64 {
		return nil, errf(codes.InvalidArgument, "signal %d: want 1 to 64", r.Signal)
	}
	switch t.state {
	case tasktypes.Status_STOPPED:
		return nil, errf(codes.NotFound, "task %s: process already finished", r.ID)
	case tasktypes.Status_CREATED:
		// Nothing runs yet: the task ends as a process killed before it
		// ran would; a Start under way stops its VM as soon as it is up.
		t.killedBy = sig
		if !t.starting {
			s.end(t, 128+uint32(sig))
		}
		return &emptypb.Empty{}, nil
	}
	if t.sandbox {
		s.end(t, 128+uint32(sig))
		return &emptypb.Empty{}, nil
	}
	if sig == syscall.SIGKILL {
		// SIGKILL cannot be refused: the VM is stopped, whatever its
		// process does.
		t.killedBy = sig
		if err := t.vm.stop(); err != nil {
			return nil, errf(codes.Unavailable, "stopping %s's VM: %v", r.ID, err)
		}
		return &emptypb.Empty{}, nil
	}
	// Sent once the init is ready for it, which Kill does not wait for.
	go consolemux.NewEncoder(inputWriter{t}).Status(consolemux.Signal, int(sig))
	return &emptypb.Empty{}, nil
}

func (s *service) Wait(ctx context.Context, r *taskapi.WaitRequest) (*taskapi.WaitResponse, error) {
	s.mu.Lock()
	t, err := s.get(r.ID, r.ExecID)
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	select {
	case <-t.exited:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return &taskapi.WaitResponse{ExitStatus: t.exitStatus, ExitedAt: timestamppb.New(t.exitedAt)}, nil
}

func (s *service) State(ctx context.Context, r *taskapi.StateRequest) (*taskapi.StateResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	resp := &taskapi.StateResponse{ID: t.id, Bundle: t.bundle, Pid: uint32(os.Getpid()), Status: t.state,
		Stdin: t.stdin, Stdout: t.stdout, Stderr: t.stderr, Terminal: t.terminal}
	if t.state == tasktypes.Status_STOPPED {
		resp.ExitStatus, resp.ExitedAt = t.exitStatus, timestamppb.New(t.exitedAt)
	}
	return resp, nil
}

func (s *service) Delete(ctx context.Context, r *taskapi.DeleteRequest) (*taskapi.DeleteResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if t.state == tasktypes.Status_RUNNING {
		return nil, errf(codes.FailedPrecondition, "task %s is running: kill it first", r.ID)
	}
	if t.mounted {
		unmountRootfs(t.bundle, s.logf)
	}
	if t.state == tasktypes.Status_CREATED {
		t.exitedAt = time.Now()
		t.exitStatus = 0
	}
	delete(s.tasks, r.ID)
	resp := &taskapi.DeleteResponse{Pid: uint32(os.Getpid()), ExitStatus: t.exitStatus, ExitedAt: timestamppb.New(t.exitedAt)}
	s.events.publish("/tasks/delete", &eventstypes.TaskDelete{ContainerID: t.id, ID: t.id, Pid: resp.Pid, ExitStatus: resp.ExitStatus, ExitedAt: resp.ExitedAt})
	return resp, nil
}

func (s *service) Pids(ctx context.Context, r *taskapi.PidsRequest) (*taskapi.PidsResponse, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(r.ID, ""); err != nil {
		return nil, err
	}
	return &taskapi.PidsResponse{Processes: []*tasktypes.ProcessInfo{{Pid: uint32(os.Getpid())}}}, nil
}

func (s *service) Connect(ctx context.Context, r *taskapi.ConnectRequest) (*taskapi.ConnectResponse, error) {
	return &taskapi.ConnectResponse{ShimPid: uint32(os.Getpid()), TaskPid: uint32(os.Getpid()), Version: version}, nil
}

// Shutdown ends the shim once its task is deleted (or at once with Now).
func (s *service) Shutdown(ctx context.Context, r *taskapi.ShutdownRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	busy := len(s.tasks) > 0
	s.mu.Unlock()
	if busy && !r.Now {
		return &emptypb.Empty{}, nil
	}
	s.stopVM()
	s.stopOnce.Do(func() { close(s.shutdown) })
	return &emptypb.Empty{}, nil
}

// stopVM stops the VMs still running when the shim goes away.
func (s *service) stopVM() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, t := range s.tasks {
		if t.state == tasktypes.Status_RUNNING && t.vm != nil {
			t.killedBy = syscall.SIGKILL
			t.vm.stop()
		}
	}
}

func (s *service) CloseIO(ctx context.Context, r *taskapi.CloseIORequest) (*emptypb.Empty, error) {
	// The stdin relay sends CloseStdin when the FIFO ends, which is how
	// containerd's clients close it.
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.get(r.ID, r.ExecID); err != nil {
		return nil, err
	}
	return &emptypb.Empty{}, nil
}

// ResizePty passes the terminal's size to the init, which sets it on the
// process's terminal (the process gets SIGWINCH).
func (s *service) ResizePty(ctx context.Context, r *taskapi.ResizePtyRequest) (*emptypb.Empty, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, err := s.get(r.ID, r.ExecID)
	if err != nil {
		return nil, err
	}
	if !t.terminal {
		return nil, errf(codes.FailedPrecondition, "task %s has no terminal", r.ID)
	}
	if t.state != tasktypes.Status_RUNNING || t.vm == nil {
		return &emptypb.Empty{}, nil // sized when it starts: ctr resizes again
	}
	size := fmt.Appendf(nil, "%d %d", r.Width, r.Height)
	go consolemux.NewEncoder(inputWriter{t}).Frame(consolemux.Resize, size)
	return &emptypb.Empty{}, nil
}

func (s *service) Exec(ctx context.Context, r *taskapi.ExecProcessRequest) (*emptypb.Empty, error) {
	return nil, errf(codes.Unimplemented, "exec into a Bulkhead VM is not supported")
}

func (s *service) Pause(ctx context.Context, r *taskapi.PauseRequest) (*emptypb.Empty, error) {
	return nil, errf(codes.Unimplemented, "pausing a Bulkhead VM is not supported")
}

func (s *service) Resume(ctx context.Context, r *taskapi.ResumeRequest) (*emptypb.Empty, error) {
	return nil, errf(codes.Unimplemented, "pausing a Bulkhead VM is not supported")
}

func (s *service) Checkpoint(ctx context.Context, r *taskapi.CheckpointTaskRequest) (*emptypb.Empty, error) {
	return nil, errf(codes.Unimplemented, "checkpoints of a Bulkhead VM are not supported")
}

func (s *service) Update(ctx context.Context, r *taskapi.UpdateTaskRequest) (*emptypb.Empty, error) {
	return nil, errf(codes.Unimplemented, "a Bulkhead VM's resources are fixed when it starts")
}

// Stats reports the VM's figures in the cgroup v1 metrics that CRI and
// ctr read: memory usage is the pages the VM owns in the ledger (all of
// its RAM, which the guest kernel has from boot), the limit its size,
// CPU usage the time its vCPUs ran. A sandbox reports zeros.
func (s *service) Stats(ctx context.Context, r *taskapi.StatsRequest) (*taskapi.StatsResponse, error) {
	s.mu.Lock()
	t, err := s.get(r.ID, "")
	var name string
	var limit uint64
	if err == nil && t.vm != nil && t.state == tasktypes.Status_RUNNING {
		name, limit = t.vm.name, t.vm.mem
	}
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	m := &cgroupstats.Metrics{Memory: &cgroupstats.MemoryStat{Usage: &cgroupstats.MemoryEntry{}}, CPU: &cgroupstats.CPUStat{Usage: &cgroupstats.CPUUsage{}}}
	if name != "" {
		st, err := vmStats(name)
		if err != nil {
			return nil, errf(codes.Unavailable, "%s's figures: %v", r.ID, err)
		}
		m.Memory.Usage.Usage, m.Memory.Usage.Limit = uint64(st.Pages)*4096, limit
		m.CPU.Usage.Total = uint64(st.RunMS) * uint64(time.Millisecond)
		m.Pids = &cgroupstats.PidsStat{Current: 1}
	}
	b, err := proto.Marshal(m)
	if err != nil {
		return nil, errf(codes.Internal, "%v", err)
	}
	return &taskapi.StatsResponse{Stats: &anypb.Any{TypeUrl: string(m.ProtoReflect().Descriptor().FullName()), Value: b}}, nil
}

// fifoWriter writes one of the task's output FIFOs from a queue of its
// own, so a reader that is slow or gone never stalls the console.
type fifoWriter struct {
	q    chan []byte
	done chan struct{}
}

func openFifoWriter(path string, logf func(string, ...any)) *fifoWriter {
	w := &fifoWriter{q: make(chan []byte, 1024), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		var f *os.File
		if path != "" {
			var err error
			// Blocks until containerd's side has the FIFO open for
			// reading, as it does before Create.
			if f, err = os.OpenFile(path, os.O_WRONLY, 0); err != nil {
				logf("output %s: %v", path, err)
			}
		}
		for b := range w.q {
			if f != nil {
				if _, err := f.Write(b); err != nil {
					logf("output %s: %v; dropping the rest", path, err)
					f.Close()
					f = nil
				}
			}
		}
		if f != nil {
			f.Close()
		}
	}()
	return w
}

func (w *fifoWriter) write(b []byte) {
	if w == nil {
		return
	}
	select {
	case w.q <- append([]byte(nil), b...):
	default: // the reader is not keeping up: drop rather than stall
	}
}

// close flushes the queue and closes the FIFO, which its reader sees as
// the end of the output.
func (w *fifoWriter) close() {
	if w == nil {
		return
	}
	close(w.q)
	select {
	case <-w.done:
	case <-time.After(5 * time.Second):
	}
}
