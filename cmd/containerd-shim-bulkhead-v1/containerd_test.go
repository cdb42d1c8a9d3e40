package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
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
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	cri "k8s.io/cri-api/pkg/apis/runtime/v1"

	"github.com/bulkhead-hv/bulkhead/containerinit"
	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// daemon is a containerd of the test's own: its root, state and socket in
// a temporary directory, the shim on its PATH, and a Bulkhead instance
// for its VMs that the shim boots on first use.
type daemon struct {
	dir, sock, instance string
	env                 []string
	images              string
	log                 *qemutest.LockedBuffer
}

// startContainerd starts the daemon; with cri, its CRI plugin too, set up
// as the issue has it: the native snapshotter, a runc default runtime
// (CRI will not load without one), bulkhead as a runtime handler, no CNI
// (pods use the host's network), and the test's pause image.
func startContainerd(t *testing.T, cri bool) *daemon {
	t.Helper()
	for _, bin := range []string{"containerd", "ctr"} {
		_, err := exec.LookPath(bin)
		require.NoError(t, err, "the containerd tests need Debian's containerd package (make test installs it)")
	}
	images := qemutest.ImageDir(t)
	for _, f := range []string{"containerd-shim-bulkhead-v1", "bulkhead-containerinit", "bulkhead", "linux/vmlinuz"} {
		_, err := os.Stat(filepath.Join(images, f))
		require.NoError(t, err, "make builds it")
	}
	// Short paths: unix sockets live under both.
	dir, err := os.MkdirTemp("", "ctrd")
	require.NoError(t, err)
	d := &daemon{dir: dir, sock: filepath.Join(dir, "c.sock"), images: images,
		instance: fmt.Sprintf("ctrd%d", os.Getpid()%100000), log: &qemutest.LockedBuffer{}}
	disabled := `"io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.aufs", "io.containerd.internal.v1.opt"`
	if !cri {
		disabled += `, "io.containerd.grpc.v1.cri"`
	}
	config := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = [%s]
[grpc]
  address = %q
`, filepath.Join(dir, "root"), filepath.Join(dir, "state"), disabled, d.sock)
	if cri {
		config += fmt.Sprintf(`[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = %q
  enable_cdi = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "native"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.bulkhead]
      runtime_type = "io.containerd.bulkhead.v1"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = %q
    conf_dir = %q
`, pauseRef, filepath.Join(dir, "cni-bin"), filepath.Join(dir, "cni-conf"))
	}
	require.NoError(t, os.WriteFile(filepath.Join(dir, "config.toml"), []byte(config), 0o644))
	d.env = append(os.Environ(),
		"PATH="+images+":"+os.Getenv("PATH"),
		"BULKHEAD_IMAGES="+images,
		"BULKHEAD_INSTANCE="+d.instance,
		"XDG_RUNTIME_DIR="+filepath.Join(dir, "run"))
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "run"), 0o700))
	cmd := exec.Command("containerd", "--config", filepath.Join(dir, "config.toml"))
	cmd.Env = d.env
	cmd.Stdout, cmd.Stderr = d.log, d.log
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		// Whatever the test did: the instance down (QEMU killed), then
		// containerd and the shims it started.
		if t.Failed() {
			if in, err := os.ReadFile(filepath.Join(dir, "run", "bulkhead", d.instance, "console.log")); err == nil {
				t.Logf("the instance's console:\n%s", tailString(string(in), 40))
			}
		}
		d.bulkhead(t, "down", "--name", d.instance)
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		exec.Command("pkill", "-f", "containerd-shim-bulkhead-v1 -namespace .* -address "+d.sock).Run()
		if t.Failed() {
			t.Logf("containerd's log:\n%s", tailString(d.log.String(), 60))
			logs, _ := filepath.Glob(filepath.Join(dir, "state", "io.containerd.runtime.v2.task", "*", "*", "shim.log"))
			for _, l := range logs {
				b, _ := os.ReadFile(l)
				t.Logf("%s:\n%s", l, tailString(string(b), 40))
			}
		}
		syscall.Unmount(filepath.Join(dir, "root"), syscall.MNT_DETACH)
		os.RemoveAll(dir)
	})
	require.Eventually(t, func() bool {
		_, err := os.Stat(d.sock)
		return err == nil
	}, 20*time.Second, 50*time.Millisecond, "containerd listens")
	return d
}

func tailString(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// ctr runs ctr against the test's containerd, in namespace bulkhead-test
// (or in the one of a leading -n NS).
func (d *daemon) ctr(t *testing.T, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	ns := "bulkhead-test"
	if len(args) > 1 && args[0] == "-n" {
		ns, args = args[1], args[2:]
	}
	cmd := exec.CommandContext(ctx, "ctr", append([]string{"-a", d.sock, "-n", ns}, args...)...)
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func (d *daemon) bulkhead(t *testing.T, args ...string) (string, error) {
	cmd := exec.Command(filepath.Join(d.images, "bulkhead"), args...)
	cmd.Env = d.env
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// ociImage writes an OCI image archive (image layout in a tar, as ctr
// images import takes) for linux/arm64 or another architecture, holding
// Debian's static arm64 busybox with the applets the tests run, and
// /etc/marker. An image for another architecture holds the host's own
// true(1) as its busybox: a program of that architecture.
func ociImage(t *testing.T, path, ref, arch string, marker string) {
	t.Helper()
	bb := filepath.Join(qemutest.ImageDir(t), "linux", "busybox")
	if arch != "arm64" {
		var err error
		bb, err = exec.LookPath("true")
		require.NoError(t, err)
	}
	busybox, err := os.ReadFile(bb)
	require.NoError(t, err, "make linux fetches Debian's busybox-static:arm64")
	var layer bytes.Buffer
	tw := tar.NewWriter(&layer)
	add := func(h *tar.Header, data []byte) {
		h.Size = int64(len(data))
		h.ModTime = time.Unix(0, 0)
		require.NoError(t, tw.WriteHeader(h))
		tw.Write(data)
	}
	for _, d := range []string{"bin", "etc", "tmp"} {
		add(&tar.Header{Name: d + "/", Typeflag: tar.TypeDir, Mode: 0o755}, nil)
	}
	add(&tar.Header{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755}, busybox)
	for _, a := range []string{"sh", "echo", "cat", "uname", "sleep", "true"} {
		h := &tar.Header{Name: "bin/" + a, Typeflag: tar.TypeSymlink, Linkname: "/bin/busybox", Mode: 0o777}
		require.NoError(t, tw.WriteHeader(h))
	}
	add(&tar.Header{Name: "etc/marker", Typeflag: tar.TypeReg, Mode: 0o644}, []byte(marker+"\n"))
	require.NoError(t, tw.Close())

	blobs := map[string][]byte{}
	blob := func(b []byte) string {
		sum := sha256.Sum256(b)
		d := hex.EncodeToString(sum[:])
		blobs[d] = b
		return d
	}
	layerDigest := blob(layer.Bytes())
	cfg, _ := json.Marshal(map[string]any{
		"architecture": arch, "os": "linux",
		"config": map[string]any{"Env": []string{"PATH=/bin"}, "Cmd": []string{"/bin/sh"}},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + layerDigest}},
	})
	cfgDigest := blob(cfg)
	manifest, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": map[string]any{"mediaType": "application/vnd.oci.image.config.v1+json", "digest": "sha256:" + cfgDigest, "size": len(cfg)},
		"layers": []any{map[string]any{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": "sha256:" + layerDigest, "size": layer.Len()}},
	})
	manDigest := blob(manifest)
	index, _ := json.Marshal(map[string]any{
		"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []any{map[string]any{
			"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + manDigest, "size": len(manifest),
			"platform":    map[string]string{"architecture": arch, "os": "linux"},
			"annotations": map[string]string{"io.containerd.image.name": ref, "org.opencontainers.image.ref.name": "1"},
		}},
	})
	var out bytes.Buffer
	ow := tar.NewWriter(&out)
	file := func(name string, b []byte) {
		require.NoError(t, ow.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(b)), ModTime: time.Unix(0, 0)}))
		ow.Write(b)
	}
	file("oci-layout", []byte(`{"imageLayoutVersion":"1.0.0"}`))
	file("index.json", index)
	for d, b := range blobs {
		file("blobs/sha256/"+d, b)
	}
	require.NoError(t, ow.Close())
	require.NoError(t, os.WriteFile(path, out.Bytes(), 0o644))
}

func (d *daemon) importImage(t *testing.T, ns, ref, arch, marker string) {
	t.Helper()
	tarball := filepath.Join(d.dir, arch+".tar")
	ociImage(t, tarball, ref, arch, marker)
	out, err := d.ctr(t, "-n", ns, "images", "import", "--platform", "linux/"+arch, "--snapshotter", "native", tarball)
	require.NoError(t, err, out)
}

// ledger is the instance's page figures, from bulkhead stats --json.
func (d *daemon) ledger(t *testing.T) map[string]any {
	t.Helper()
	out, err := d.bulkhead(t, "stats", "--name", d.instance, "--json")
	require.NoError(t, err, out)
	var s struct {
		Machine map[string]any `json:"machine"`
	}
	require.NoError(t, json.Unmarshal([]byte(out), &s), out)
	delete(s.Machine, "invariant_checks") // counts the checks made, which go on
	require.Zero(t, s.Machine["invariant_violations"], "the ledger's invariants hold")
	return s.Machine
}

// running lists the instance's running VMs.
func (d *daemon) running(t *testing.T) []string {
	t.Helper()
	out, err := d.bulkhead(t, "ps", "--name", d.instance, "--json")
	require.NoError(t, err, out)
	var ps struct {
		VMs []struct{ Name, State string }
	}
	require.NoError(t, json.Unmarshal([]byte(out), &ps), out)
	var names []string
	for _, v := range ps.VMs {
		if v.State == "running" {
			names = append(names, v.Name)
		}
	}
	return names
}

// ctrRun is `ctr run` in the background.
type ctrRun struct {
	cmd            *exec.Cmd
	stdout, stderr qemutest.LockedBuffer
	done           chan struct{}
}

func (d *daemon) startRun(t *testing.T, args ...string) *ctrRun {
	t.Helper()
	return d.startRunWith(t, func(*exec.Cmd) {}, args...)
}

// startRunWith is startRun with ctr's command set up by setup first (its
// standard input, a terminal).
func (d *daemon) startRunWith(t *testing.T, setup func(*exec.Cmd), args ...string) *ctrRun {
	t.Helper()
	r := &ctrRun{done: make(chan struct{})}
	r.cmd = exec.Command("ctr", append([]string{"-a", d.sock, "-n", "bulkhead-test", "run", "--runtime", "io.containerd.bulkhead.v1",
		"--snapshotter", "native"}, args...)...)
	r.cmd.Env = d.env
	r.cmd.Stdout, r.cmd.Stderr = &r.stdout, &r.stderr
	setup(r.cmd)
	require.NoError(t, r.cmd.Start())
	go func() { r.cmd.Wait(); close(r.done) }()
	t.Cleanup(func() { r.cmd.Process.Kill(); <-r.done })
	return r
}

// wait waits for ctr to end, calling poll every half second meanwhile,
// and returns its exit status.
func (r *ctrRun) wait(t *testing.T, poll func()) int {
	t.Helper()
	deadline := time.After(4 * time.Minute)
	for {
		select {
		case <-r.done:
			return r.cmd.ProcessState.ExitCode()
		case <-deadline:
			t.Fatalf("ctr %s did not end within 4 minutes; stdout %q, stderr %q", strings.Join(r.cmd.Args[5:], " "), r.stdout.String(), r.stderr.String())
		case <-time.After(500 * time.Millisecond):
			if poll != nil {
				poll()
			}
		}
	}
}

// taskStatus is a task's STATUS in ctr task ls, "" if it is not listed.
func (d *daemon) taskStatus(t *testing.T, id string) string {
	out, err := d.ctr(t, "task", "ls")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == id {
			return f[2]
		}
	}
	return ""
}

// TestContainerd runs containers as Bulkhead VMs through a real containerd
// and ctr, as the issue lists: refusals first (a wrong architecture, a
// missing program, more memory than the instance has: the last one boots
// the instance on first use), then a run whose output and exit status
// come back through containerd, then two containers at once, one killed;
// after each, nothing is left running and the ledger is where it was.
func TestContainerd(t *testing.T) {
	d := startContainerd(t, false)
	const ref, x86ref = "bulkhead.test/busybox:1", "bulkhead.test/amd64:1"
	marker := fmt.Sprintf("marker %d", time.Now().UnixNano())
	d.importImage(t, "bulkhead-test", ref, "arm64", marker)
	d.importImage(t, "bulkhead-test", x86ref, "amd64", marker)

	refused := func(id, want string, args ...string) {
		t.Helper()
		r := d.startRun(t, args...)
		code := r.wait(t, nil)
		assert.NotEqual(t, 0, code, "ctr run %s fails", id)
		assert.Contains(t, r.stderr.String(), want, "ctr run %s: the shim's reason reaches ctr", id)
		assert.Equal(t, "", d.taskStatus(t, id), "no task %s is left", id)
		out, err := d.ctr(t, "container", "delete", id)
		assert.NoError(t, err, out)
	}
	t.Run("wrong architecture", func(t *testing.T) {
		refused("x1", "not arm64", "--platform", "linux/amd64", x86ref, "x1", "/bin/sh", "-c", "true")
	})
	t.Run("no such program", func(t *testing.T) {
		refused("x2", `"no-such-program": no executable file of that name in the image`, "--platform", "linux/arm64", ref, "x2", "no-such-program")
	})
	t.Run("more memory than the instance has", func(t *testing.T) {
		refused("x3", "refused the VM", "--platform", "linux/arm64", "--memory-limit", fmt.Sprint(int64(64)<<30), ref, "x3", "/bin/true")
		assert.Empty(t, d.running(t), "no VM runs")
	})
	if t.Failed() {
		return
	}
	before := d.ledger(t)

	t.Run("run", func(t *testing.T) {
		r := d.startRun(t, "--platform", "linux/arm64", ref, "c1",
			"/bin/sh", "-c", "echo hello from $(uname -m); cat /etc/marker; echo to stderr >&2; exit 7")
		sawRunning := false
		code := r.wait(t, func() { sawRunning = sawRunning || d.taskStatus(t, "c1") == "RUNNING" })
		assert.Equal(t, 7, code, "ctr run exits with the process's status; stderr %q", r.stderr.String())
		assert.Equal(t, "hello from aarch64\n"+marker+"\n", r.stdout.String(), "the process's stdout, through containerd")
		assert.Equal(t, "to stderr\n", r.stderr.String(), "its stderr")
		assert.True(t, sawRunning, "ctr task ls showed c1 RUNNING while it ran")
		d.ctr(t, "task", "delete", "c1") // ctr run deleted it already; either way it must be gone
		out, err := d.ctr(t, "container", "delete", "c1")
		require.NoError(t, err, out)
		assert.Equal(t, "", d.taskStatus(t, "c1"))
		assert.Empty(t, d.running(t), "no VM is left running in the instance")
		assert.Equal(t, before, d.ledger(t), "the ledger is back at its figures")
	})

	t.Run("stdin", func(t *testing.T) {
		r := d.startRunWith(t, func(c *exec.Cmd) { c.Stdin = strings.NewReader("line one\nline two\n") },
			"--platform", "linux/arm64", ref, "i1", "/bin/sh", "-c", `while read l; do echo "got $l"; done; exit 2`)
		assert.Equal(t, 2, r.wait(t, nil), "the loop ends at the end of stdin; stderr %q", r.stderr.String())
		assert.Equal(t, "got line one\ngot line two\n", r.stdout.String())
		out, err := d.ctr(t, "container", "delete", "i1")
		require.NoError(t, err, out)
	})

	t.Run("terminal", func(t *testing.T) {
		// ctr run -t wants a terminal of its own: a host pseudo-terminal,
		// typed into through its master.
		master, slave, err := containerinit.OpenPTY("/dev")
		require.NoError(t, err)
		defer master.Close()
		var screen qemutest.LockedBuffer
		go io.Copy(&screen, master)
		r := d.startRunWith(t, func(c *exec.Cmd) {
			c.Stdin, c.Stdout, c.Stderr = slave, slave, slave
			c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
		}, "-t", "--platform", "linux/arm64", ref, "t1", "/bin/sh", "-c", `read line; echo "got $line"; tty; exit 4`)
		slave.Close()
		require.Eventually(t, func() bool { return d.taskStatus(t, "t1") == "RUNNING" }, 5*time.Minute, 200*time.Millisecond)
		master.Write([]byte("hello\r"))
		assert.Equal(t, 4, r.wait(t, nil), "screen %q", screen.String())
		assert.Contains(t, screen.String(), "got hello", "the line typed reached the process")
		assert.Regexp(t, `/dev/pts/\d+`, screen.String(), "the process's stdin is a terminal in the VM")
		out, err := d.ctr(t, "container", "delete", "t1")
		require.NoError(t, err, out)
	})

	t.Run("two at once, signalled", func(t *testing.T) {
		// Two sleepers, detached; a third runs to its end beside them.
		for _, id := range []string{"s1", "s2"} {
			r := d.startRun(t, "-d", "--platform", "linux/arm64", ref, id, "/bin/sleep", "600")
			require.Equal(t, 0, r.wait(t, nil), "ctr run -d %s: %s", id, r.stderr.String())
			require.Equal(t, "RUNNING", d.taskStatus(t, id))
		}
		r := d.startRun(t, "--platform", "linux/arm64", ref, "c2", "/bin/sh", "-c", "echo done; exit 3")
		assert.Equal(t, 3, r.wait(t, nil), r.stderr.String())
		assert.Equal(t, "done\n", r.stdout.String())
		assert.ElementsMatch(t, []string{"s1", "s2"}, d.running(t), "the sleepers run on")

		// SIGTERM reaches sleep in its VM, which ends by it (128+15);
		// SIGKILL stops the VM (128+9).
		for _, k := range []struct {
			id, sig string
			status  int
		}{{"s1", "SIGTERM", 143}, {"s2", "SIGKILL", 137}} {
			out, err := d.ctr(t, "task", "kill", "-s", k.sig, k.id)
			require.NoError(t, err, out)
			require.Eventually(t, func() bool { return d.taskStatus(t, k.id) == "STOPPED" }, time.Minute, 200*time.Millisecond, "%s stops on %s", k.id, k.sig)
			// ctr task delete warns of a non-zero status, and exits 0.
			out, err = d.ctr(t, "task", "delete", k.id)
			require.NoError(t, err, out)
			assert.Contains(t, out, fmt.Sprintf("task %s exit with non-zero exit code %d", k.id, k.status), "%s's exit status after %s", k.id, k.sig)
			out, err = d.ctr(t, "container", "delete", k.id)
			require.NoError(t, err, out)
		}
		out, err := d.ctr(t, "container", "delete", "c2")
		require.NoError(t, err, out)
		assert.Empty(t, d.running(t), "no VM is left running in the instance")
		assert.Equal(t, before, d.ledger(t), "the ledger is back at its figures")
	})
}

// pauseRef is the CRI sandbox image: the test's busybox image under
// another name (a Bulkhead pod's sandbox runs no process, so no VM).
const pauseRef = "bulkhead.test/pause:1"

// TestCRI drives the same containerd the way kubelet does, through CRI:
// a pod sandbox with runtime handler bulkhead and a container in it. The
// sandbox needs no VM, the pod has one shim, the container's exit code
// and its console line reach CRI, and after the pod is stopped and
// removed no VM is left and the ledger is where it was.
func TestCRI(t *testing.T) {
	d := startContainerd(t, true)
	const ref = "bulkhead.test/busybox:1"
	d.importImage(t, "k8s.io", ref, "arm64", "cri")
	d.importImage(t, "k8s.io", pauseRef, "arm64", "pause")
	// The instance up first, so that the ledger has figures before.
	out, err := d.bulkhead(t, "up", "--name", d.instance, "--mem", "4G", "--smp", "2")
	require.NoError(t, err, out)
	before := d.ledger(t)

	conn, err := grpc.NewClient("unix://"+d.sock, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	rt := cri.NewRuntimeServiceClient(conn)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	require.Eventually(t, func() bool {
		st, err := rt.Status(ctx, &cri.StatusRequest{})
		return err == nil && st.Status != nil
	}, 30*time.Second, 200*time.Millisecond, "CRI answers")

	logs := filepath.Join(d.dir, "pod-logs")
	require.NoError(t, os.MkdirAll(logs, 0o755))
	podConfig := &cri.PodSandboxConfig{
		Metadata:     &cri.PodSandboxMetadata{Name: "p1", Uid: "uid-p1", Namespace: "default"},
		Hostname:     "p1",
		LogDirectory: logs,
		Linux: &cri.LinuxPodSandboxConfig{SecurityContext: &cri.LinuxSandboxSecurityContext{
			NamespaceOptions: &cri.NamespaceOption{Network: cri.NamespaceMode_NODE}}},
	}
	pod, err := rt.RunPodSandbox(ctx, &cri.RunPodSandboxRequest{Config: podConfig, RuntimeHandler: "bulkhead"})
	require.NoError(t, err)
	assert.Empty(t, d.running(t), "the pod's sandbox runs no VM")

	c, err := rt.CreateContainer(ctx, &cri.CreateContainerRequest{PodSandboxId: pod.PodSandboxId, SandboxConfig: podConfig,
		Config: &cri.ContainerConfig{
			Metadata: &cri.ContainerMetadata{Name: "c"},
			Image:    &cri.ImageSpec{Image: ref},
			Command:  []string{"/bin/sh", "-c", "echo hello from $(uname -m) in $(cat /etc/marker); sleep 2; exit 5"},
			LogPath:  "c.log",
		}})
	require.NoError(t, err)
	_, err = rt.StartContainer(ctx, &cri.StartContainerRequest{ContainerId: c.ContainerId})
	require.NoError(t, err)
	assert.Len(t, d.running(t), 1, "the container runs in a VM of its own")
	shims, _ := exec.Command("pgrep", "-f", "containerd-shim-bulkhead-v1 -namespace k8s.io -address "+d.sock).Output()
	assert.Len(t, strings.Fields(string(shims)), 1, "one shim for the pod")

	var st *cri.ContainerStatus
	require.Eventually(t, func() bool {
		r, err := rt.ContainerStatus(ctx, &cri.ContainerStatusRequest{ContainerId: c.ContainerId})
		if err == nil {
			st = r.Status
		}
		return err == nil && r.Status.State == cri.ContainerState_CONTAINER_EXITED
	}, 5*time.Minute, 500*time.Millisecond, "CRI sees the container exit (the /tasks/exit event)")
	assert.Equal(t, int32(5), st.ExitCode)
	log, err := os.ReadFile(filepath.Join(logs, "c.log"))
	require.NoError(t, err)
	assert.Regexp(t, `(?m)^\S+ stdout F hello from aarch64 in cri$`, string(log), "the console line in the CRI log")

	_, err = rt.StopPodSandbox(ctx, &cri.StopPodSandboxRequest{PodSandboxId: pod.PodSandboxId})
	require.NoError(t, err)
	_, err = rt.RemovePodSandbox(ctx, &cri.RemovePodSandboxRequest{PodSandboxId: pod.PodSandboxId})
	require.NoError(t, err)
	list, err := rt.ListContainers(ctx, &cri.ListContainersRequest{})
	require.NoError(t, err)
	assert.Empty(t, list.Containers, "CRI lists no container")
	assert.Empty(t, d.running(t), "no VM is left running in the instance")
	assert.Equal(t, before, d.ledger(t), "the ledger is back at its figures")
	require.Eventually(t, func() bool {
		out, _ := exec.Command("pgrep", "-f", "containerd-shim-bulkhead-v1 -namespace k8s.io -address "+d.sock).Output()
		return len(strings.Fields(string(out))) == 0
	}, 30*time.Second, 200*time.Millisecond, "the pod's shim is gone")
}
