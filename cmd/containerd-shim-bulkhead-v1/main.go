// Command containerd-shim-bulkhead-v1 is a containerd runtime shim (v2
// protocol, runtime type io.containerd.bulkhead.v1): it runs each
// container as a Bulkhead VM, Debian's arm64 kernel with an initramfs
// built from the container's root filesystem, in a Bulkhead instance.
// docs/containerd.md tells how to configure containerd and Kubernetes.
//
// containerd runs it three ways, with its flags first (-namespace,
// -address, -publish-binary, -id, -bundle, -debug) and the bundle as the
// working directory:
//
//	containerd-shim-bulkhead-v1 [flags] start    start the shim server, print its address
//	containerd-shim-bulkhead-v1 [flags] delete   clean up after a shim that is gone
//	containerd-shim-bulkhead-v1 [flags]          the server itself (start runs it)
//
// Settings come from the environment containerd runs it with:
//
//	BULKHEAD_INSTANCE  the instance the VMs run in (default "containerd"); the
//	                   shim boots it on first use when it is not up
//	BULKHEAD_IMAGES    where the hypervisor, control partition, linux/vmlinuz and
//	                   bulkhead-containerinit are (default: the shim's directory)
//	BULKHEAD_CLI       the bulkhead command that boots the instance (default:
//	                   bulkhead beside the shim, else on $PATH)
//	BULKHEAD_INSTANCE_MEM, BULKHEAD_INSTANCE_SMP
//	                   the machine of an instance the shim boots (default 4G, 2)
package main

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	taskapi "github.com/containerd/containerd/api/runtime/task/v2"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/timestamppb"
)

var version = "dev"

type shimFlags struct {
	namespace, address, publishBinary, id, bundle string
	debug                                         bool
	action                                        string
}

func parseFlags(args []string) (*shimFlags, error) {
	f := &shimFlags{}
	fs := flag.NewFlagSet("containerd-shim-bulkhead-v1", flag.ContinueOnError)
	fs.StringVar(&f.namespace, "namespace", "", "containerd namespace")
	fs.StringVar(&f.address, "address", "", "containerd's grpc address")
	fs.StringVar(&f.publishBinary, "publish-binary", "", "containerd binary that publishes events (unused: events go over ttrpc)")
	fs.StringVar(&f.id, "id", "", "task id")
	fs.StringVar(&f.bundle, "bundle", "", "bundle path (default: the working directory)")
	fs.BoolVar(&f.debug, "debug", false, "log more")
	var showVersion bool
	fs.BoolVar(&showVersion, "v", false, "print the version")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if showVersion {
		f.action = "version"
		return f, nil
	}
	if fs.NArg() > 1 {
		return nil, fmt.Errorf("one action at most (start or delete), got %q", fs.Args())
	}
	if fs.NArg() == 1 {
		f.action = fs.Arg(0)
	}
	switch f.action {
	case "", "start", "delete":
	default:
		return nil, fmt.Errorf("unknown action %q: want start or delete", f.action)
	}
	if f.namespace == "" || f.id == "" {
		return nil, fmt.Errorf("-namespace and -id are required: containerd runs this shim")
	}
	if f.bundle == "" {
		wd, err := os.Getwd()
		if err != nil {
			return nil, err
		}
		f.bundle = wd
	}
	return f, nil
}

func main() {
	f, err := parseFlags(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd-shim-bulkhead-v1:", err)
		os.Exit(2)
	}
	switch f.action {
	case "version":
		fmt.Printf("containerd-shim-bulkhead-v1 %s (runtime io.containerd.bulkhead.v1)\n", version)
	case "start":
		err = start(f)
	case "delete":
		err = deleteAfter(f)
	default:
		err = serve(f)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "containerd-shim-bulkhead-v1:", err)
		os.Exit(1)
	}
}

// socketPath is the shim's ttrpc socket: short enough for a sockaddr
// whatever the bundle's path, and one per namespace and task.
func socketPath(f *shimFlags) string {
	sum := sha256.Sum256([]byte(f.address + "\x00" + f.namespace + "\x00" + f.id))
	dir := "/run/bulkhead-shim"
	if os.MkdirAll(dir, 0o711) != nil {
		dir = filepath.Join(os.TempDir(), "bulkhead-shim")
		os.MkdirAll(dir, 0o711)
	}
	return filepath.Join(dir, hex.EncodeToString(sum[:12])+".sock")
}

// start listens on the shim's socket, hands the listener to a server
// process of its own session (it outlives this one and containerd's
// restarts), writes the address to the bundle and prints it for
// containerd. containerd reads standard output and error together, so
// nothing else may be printed.
func start(f *shimFlags) error {
	// A CRI pod's containers join the shim of its sandbox: one shim per
	// pod, as kubelet's runtimes have it.
	if sandbox := podSandbox(f.bundle); sandbox != "" && sandbox != f.id {
		group := *f
		group.id = sandbox
		if sock := socketPath(&group); serving(sock) {
			address := "unix://" + sock
			if err := os.WriteFile(filepath.Join(f.bundle, "address"), []byte(address), 0o600); err != nil {
				return err
			}
			fmt.Print(address)
			return nil
		}
	}
	sock := socketPath(f)
	if serving(sock) {
		return fmt.Errorf("a shim for task %s already serves %s", f.id, sock)
	}
	os.Remove(sock)
	l, err := net.Listen("unix", sock)
	if err != nil {
		return fmt.Errorf("listening on %s: %v", sock, err)
	}
	lf, err := l.(*net.UnixListener).File()
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	logf, err := os.OpenFile(filepath.Join(f.bundle, "shim.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	args := []string{"-namespace", f.namespace, "-address", f.address, "-id", f.id, "-bundle", f.bundle}
	if f.debug {
		args = append(args, "-debug")
	}
	cmd := exec.Command(self, args...)
	cmd.Dir = f.bundle
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.ExtraFiles = []*os.File{lf}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("starting the shim server: %v", err)
	}
	cmd.Process.Release()
	address := "unix://" + sock
	if err := os.WriteFile(filepath.Join(f.bundle, "address"), []byte(address), 0o600); err != nil {
		return err
	}
	fmt.Print(address)
	return nil
}

// Annotations CRI puts in the OCI specs of a pod's containers.
const (
	annotationContainerType = "io.kubernetes.cri.container-type" // "sandbox" or "container"
	annotationSandboxID     = "io.kubernetes.cri.sandbox-id"
)

// podSandbox is the id of the CRI pod sandbox the bundle's container
// belongs to, "" for a container outside a pod.
func podSandbox(bundle string) string {
	spec, err := readSpec(bundle)
	if err != nil {
		return ""
	}
	return spec.Annotations[annotationSandboxID]
}

// serving tells whether a shim answers on sock.
func serving(sock string) bool {
	c, err := net.DialTimeout("unix", sock, time.Second)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// serve is the shim server: the task service on the listener start
// passed as fd 3, until Shutdown or containerd's SIGTERM.
func serve(f *shimFlags) error {
	l, err := net.FileListener(os.NewFile(3, "shim socket"))
	if err != nil {
		return fmt.Errorf("the listener from start (fd 3): %v", err)
	}
	logf := newLogger()
	logf("shim %s serving task %s in namespace %s from %s", version, f.id, f.namespace, f.bundle)
	srv, err := ttrpc.NewServer()
	if err != nil {
		return err
	}
	svc := newService(f, logf)
	taskapi.RegisterTTRPCTaskService(srv, svc)
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	signal.Ignore(syscall.SIGPIPE)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	select {
	case <-svc.shutdown:
		logf("shutdown requested")
	case s := <-sigs:
		logf("%v: shutting down", s)
		svc.stopVM()
	case err := <-done:
		logf("server ended: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	srv.Shutdown(ctx)
	svc.events.close()
	os.Remove(socketPath(f))
	return nil
}

// deleteAfter is "delete": containerd runs it when the shim server is
// gone (crashed, killed) to have the task's leftovers removed: its VM
// stopped, its root filesystem unmounted. It prints the DeleteResponse.
func deleteAfter(f *shimFlags) error {
	logf := newLogger()
	stopVMNamed(vmName(f.namespace, f.id), logf)
	unmountRootfs(f.bundle, logf)
	os.Remove(socketPath(f))
	// The process's own status went with the shim; it was killed with its
	// VM, which is what 128+SIGKILL says (runc's shim reports the same).
	b, err := proto.Marshal(&taskapi.DeleteResponse{ExitStatus: 128 + uint32(syscall.SIGKILL), ExitedAt: timestamppb.Now()})
	if err != nil {
		return err
	}
	_, err = os.Stdout.Write(b)
	return err
}

// newLogger logs to standard error, which containerd keeps as the shim's
// log. Everything the shim logs is a lifecycle step or a failure, so
// -debug adds nothing to it.
func newLogger() func(string, ...any) {
	return func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "%s shim: %s\n", time.Now().Format(time.RFC3339Nano), fmt.Sprintf(format, args...))
	}
}
