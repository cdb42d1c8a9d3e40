package main

import (
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/bulkhead-hv/bulkhead/client"
	"github.com/bulkhead-hv/bulkhead/ctlstate"
	"github.com/bulkhead-hv/bulkhead/mtls"
)

// The network control plane, from the CLI's side (docs/architecture.md,
// "The network control plane"). `up --listen PORT` keeps an operator's
// CA, a client certificate and the instance's state drive in the
// instance's configuration directory, and a context (remote.json) that
// names the address, the credentials and the instance's pin. `--remote
// ADDR` then runs a command over TLS instead of through the broker.

// remoteFlags are the global flags that come before a command.
type remoteFlags struct {
	addr, creds, cert, key, pin string
}

var remote remoteFlags

// notices is where a command's remarks go: its stderr.
var notices io.Writer = os.Stderr

const remoteHelp = `Global flags, before the command, for an instance reached over its network
control plane (bulkhead up --listen) rather than on this host:

	--remote HOST:PORT   the instance's address
	--credentials DIR    a directory with client.pem and client.key, and
	                     remote.json with the instance's pin (up --listen
	                     writes one: ~/.config/bulkhead/instances/NAME)
	--cert FILE, --key FILE  a client certificate and its key instead
	--pin sha256:HEX     the instance's key; without one, the first
	                     contact pins it in ~/.config/bulkhead/known_instances.json

Without --credentials or --cert, the context whose address is HOST:PORT is
used, if up --listen wrote one.

	bulkhead --remote 127.0.0.1:7443 ps
	bulkhead --remote 10.1.2.3:4433 --cert me.pem --key me.key run build/guest-hello.elf
`

// parseGlobal takes the global flags off the front of args.
func parseGlobal(args []string) ([]string, error) {
	for len(args) > 0 {
		name, val, eq := args[0], "", false
		if i := strings.IndexByte(name, '='); i >= 0 {
			name, val, eq = name[:i], name[i+1:], true
		}
		var dst *string
		switch name {
		case "--remote":
			dst = &remote.addr
		case "--credentials":
			dst = &remote.creds
		case "--cert":
			dst = &remote.cert
		case "--key":
			dst = &remote.key
		case "--pin":
			dst = &remote.pin
		default:
			return args, remote.check()
		}
		if !eq {
			if len(args) < 2 {
				return nil, fmt.Errorf("%s needs a value", name)
			}
			val, args = args[1], args[1:]
		}
		*dst = val
		args = args[1:]
	}
	return args, remote.check()
}

func (r remoteFlags) check() error {
	if r.addr == "" {
		if r.creds != "" || r.cert != "" || r.key != "" || r.pin != "" {
			return errors.New("--credentials, --cert, --key and --pin go with --remote HOST:PORT")
		}
		return nil
	}
	host, port, err := net.SplitHostPort(r.addr)
	if n, perr := strconv.Atoi(port); err != nil || host == "" || perr != nil || n < 1 || n > 65535 {
		return fmt.Errorf("--remote %s: want HOST:PORT", r.addr)
	}
	if (r.cert == "") != (r.key == "") {
		return errors.New("--cert and --key go together")
	}
	if r.cert != "" && r.creds != "" {
		return errors.New("--credentials or --cert and --key, not both")
	}
	return nil
}

// remoteContext is what up --listen writes for the CLI: remote.json.
type remoteContext struct {
	Addr string `json:"addr"`
	Pin  string `json:"pin"`
	Cert string `json:"cert"`
	Key  string `json:"key"`
}

// configBase is the CLI's configuration directory,
// $XDG_CONFIG_HOME/bulkhead or ~/.config/bulkhead.
func configBase() (string, error) {
	base := os.Getenv("XDG_CONFIG_HOME")
	if base == "" {
		h, err := os.UserHomeDir()
		if err != nil {
			return "", err
		}
		base = filepath.Join(h, ".config")
	}
	return filepath.Join(base, "bulkhead"), nil
}

// configDir is where an instance's network credentials live: they
// outlive the instance (its identity is on the state drive here), unlike
// its state directory.
func configDir(name string) (string, error) {
	base, err := configBase()
	return filepath.Join(base, "instances", name), err
}

// knownFile holds the pins first contact recorded, by address.
func knownFile() (string, error) {
	base, err := configBase()
	return filepath.Join(base, "known_instances.json"), err
}

func readContext(dir string) (*remoteContext, error) {
	b, err := os.ReadFile(filepath.Join(dir, "remote.json"))
	if err != nil {
		return nil, err
	}
	var c remoteContext
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("%s: %v", filepath.Join(dir, "remote.json"), err)
	}
	return &c, nil
}

// findContext is the context for addr among the instances' directories.
func findContext(addr string) *remoteContext {
	base, err := configBase()
	if err != nil {
		return nil
	}
	dirs, _ := filepath.Glob(filepath.Join(base, "instances", "*"))
	for _, dir := range dirs {
		if c, err := readContext(dir); err == nil && c.Addr == addr {
			return c
		}
	}
	return nil
}

// remoteInstance is the instance --remote names, with its credentials.
func remoteInstance() (*client.Instance, error) {
	r := remote
	certFile, keyFile, pin := r.cert, r.key, r.pin
	if certFile == "" {
		var c *remoteContext
		var err error
		if r.creds != "" {
			if c, err = readContext(r.creds); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, err
			}
			if c == nil {
				c = &remoteContext{Cert: filepath.Join(r.creds, "client.pem"), Key: filepath.Join(r.creds, "client.key")}
			}
		} else if c = findContext(r.addr); c == nil {
			return nil, fmt.Errorf("--remote %s: no credentials: give --credentials DIR or --cert and --key (bulkhead up --listen writes a context for the instances it boots)", r.addr)
		}
		certFile, keyFile = c.Cert, c.Key
		if pin == "" {
			pin = c.Pin
		}
	}
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return nil, fmt.Errorf("the client certificate %s and key %s: %v", certFile, keyFile, err)
	}
	if pin == "" {
		pin = lookupKnown(r.addr)
	}
	rem := &client.Remote{Addr: r.addr, Cert: cert, Pin: pin}
	if pin == "" {
		// First contact: learn the key, and pin it for the next.
		cl, seen, err := client.DialRemote(*rem)
		if err != nil {
			return nil, err
		}
		cl.Close()
		if err := addKnown(r.addr, seen); err != nil {
			return nil, err
		}
		fmt.Fprintf(notices, "bulkhead: first contact with %s: pinned its key %s (compare it with the \"identity\" line of the instance's console)\n", r.addr, seen)
		rem.Pin = seen
	}
	return &client.Instance{Name: r.addr, Remote: rem}, nil
}

// lookupKnown is the pin first contact recorded for addr, or "".
func lookupKnown(addr string) string {
	f, err := knownFile()
	if err != nil {
		return ""
	}
	m := map[string]string{}
	b, err := os.ReadFile(f)
	if err != nil {
		return ""
	}
	json.Unmarshal(b, &m)
	return m[addr]
}

func addKnown(addr, pin string) error {
	f, err := knownFile()
	if err != nil {
		return err
	}
	m := map[string]string{}
	if b, err := os.ReadFile(f); err == nil {
		json.Unmarshal(b, &m)
	}
	m[addr] = pin
	b, _ := json.MarshalIndent(m, "", "  ")
	if err := os.MkdirAll(filepath.Dir(f), 0o700); err != nil {
		return err
	}
	return os.WriteFile(f, b, 0o600)
}

// targetInstance is the instance a command works on: the remote one, or
// the one up on this host named name.
func targetInstance(name string) (*client.Instance, int, error) {
	if remote.addr != "" {
		in, err := remoteInstance()
		if err != nil {
			return nil, exitUsage, err
		}
		return in, 0, nil
	}
	in, err := client.LoadInstance(name)
	if err != nil {
		return nil, exitUsage, err
	}
	return in, 0, nil
}

// The control plane's address inside the instance: QEMU's user network
// hands out 10.0.2.15 and up with DHCP, so the control partition takes
// an address below them.
const (
	listenAddr    = "10.0.2.10/24"
	listenIP      = "10.0.2.10"
	listenGateway = "10.0.2.2"
	listenPort    = 4433
)

// prepareListen readies an instance's network control plane for up
// --listen: the operator's CA and a client certificate, made on the first
// up of the name and kept after, and the state drive, written anew but
// for the identity the instance made on its first boot and the revoked
// serials.
func prepareListen(m *machineConfig, name string, port int) (dir string, err error) {
	if port < 1 || port > 65535 {
		return "", fmt.Errorf("--listen %d: want a port from 1 to 65535", port)
	}
	if dir, err = configDir(name); err != nil {
		return "", err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return "", err
	}
	now := time.Now()
	caPEM, err := os.ReadFile(filepath.Join(dir, "ca.pem"))
	if errors.Is(err, os.ErrNotExist) {
		cp, kp, err := mtls.NewCA("bulkhead operator of "+name, now)
		if err != nil {
			return "", err
		}
		if err := writeFiles(dir, map[string][]byte{"ca.pem": cp, "ca.key": kp}); err != nil {
			return "", err
		}
		caPEM = cp
	} else if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "client.pem")); errors.Is(err, os.ErrNotExist) {
		if _, err := issueClient(dir, dir, "client", os.Getenv("USER"), mtls.ClientValidity, now); err != nil {
			return "", err
		}
	}
	st := &ctlstate.State{}
	img := filepath.Join(dir, "state.img")
	if b, err := os.ReadFile(img); err == nil {
		if old, err := ctlstate.Decode(b); err == nil {
			st = old
		}
	}
	st.Version, st.CA, st.Time = ctlstate.Version, string(caPEM), now.Unix()
	st.Addr, st.Gateway, st.Port = listenAddr, listenGateway, listenPort
	b, err := st.Encode()
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(img, b, 0o600); err != nil {
		return "", err
	}
	m.drives = append(m.drives, drive{name: ctlstate.DriveName, file: img, state: true})
	if m.uplink == nil {
		m.uplink = &uplink{kind: "user", original: "user"}
	}
	if m.uplink.kind != "user" {
		return "", fmt.Errorf("--listen: the control plane is forwarded from the host on QEMU's user network: drop --net %s", m.uplink.original)
	}
	m.uplink.hostfwd = append(m.uplink.hostfwd, fmt.Sprintf("tcp:127.0.0.1:%d-%s:%d", port, listenIP, listenPort))
	return dir, nil
}

func writeFiles(dir string, files map[string][]byte) error {
	for n, b := range files {
		if err := os.WriteFile(filepath.Join(dir, n), b, 0o600); err != nil {
			return err
		}
	}
	return nil
}

// issueClient signs a client certificate with the CA in caDir, writing
// BASE.pem and BASE.key into out; it returns the serial, in hex.
func issueClient(caDir, out, base, cn string, validity time.Duration, notBefore time.Time) (string, error) {
	cp, err1 := os.ReadFile(filepath.Join(caDir, "ca.pem"))
	kp, err2 := os.ReadFile(filepath.Join(caDir, "ca.key"))
	if err := errors.Join(err1, err2); err != nil {
		return "", fmt.Errorf("the operator's CA: %v (bulkhead up --listen makes one)", err)
	}
	if cn == "" {
		cn = "client"
	}
	cert, key, sn, err := mtls.Issue(cp, kp, cn, notBefore, validity)
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(out, 0o700); err != nil {
		return "", err
	}
	return hex.EncodeToString(sn.Bytes()), writeFiles(out, map[string][]byte{base + ".pem": cert, base + ".key": key})
}

// writeContext records, after up --listen, how to reach the instance.
func writeContext(dir string, port int, pin string) error {
	c := remoteContext{Addr: fmt.Sprintf("127.0.0.1:%d", port), Pin: pin,
		Cert: filepath.Join(dir, "client.pem"), Key: filepath.Join(dir, "client.key")}
	b, _ := json.MarshalIndent(c, "", "  ")
	return os.WriteFile(filepath.Join(dir, "remote.json"), b, 0o600)
}

const credentialsUsage = `Usage: bulkhead credentials [flags]

Issues a client certificate for an instance's network control plane,
signed by the operator's CA that bulkhead up --listen made for the
instance (in ~/.config/bulkhead/instances/NAME), or revokes one. A client
with the certificate and its key runs every command with bulkhead --remote
HOST:PORT --cert FILE --key FILE. A revoked certificate is refused from
then on, and its open sessions are cut; the instance keeps the list on its
state drive, across reboots.

Examples:
	bulkhead credentials --out ~/alice --cn alice
	bulkhead credentials --out ./ci --cn ci --valid 24h
	bulkhead credentials --revoke 5f3a9c...     # the serial credentials printed
	bulkhead --remote 127.0.0.1:7443 credentials --revoke 5f3a9c...
`

func cmdCredentials(args []string, stdout, stderr io.Writer) int {
	fs, name := commandFlags("credentials", credentialsUsage, stderr)
	out := fs.String("out", "", "the `DIR` to write client.pem and client.key into")
	cn := fs.String("cn", "", "the client's name, in its certificate (default: client)")
	valid := fs.Duration("valid", mtls.ClientValidity, "how long the certificate is valid")
	revoke := fs.String("revoke", "", "revoke the certificate of this `SERIAL` (hex) instead")
	if _, err := parseArgs(fs, args); err != nil {
		return failed("credentials", err, exitUsage, stderr)
	}
	if *revoke != "" {
		in, code, err := targetInstance(*name)
		if err != nil {
			return failed("credentials", err, code, stderr)
		}
		cl, err := client.Connect(in)
		if err != nil {
			return failed("credentials", err, exitInternal, stderr)
		}
		defer cl.Close()
		if _, err := cl.Call(map[string]any{"op": "revoke", "serial": *revoke}, 30*time.Second); err != nil {
			return failed("credentials", err, exitUsage, stderr)
		}
		fmt.Fprintf(stdout, "revoked %s\n", *revoke)
		return 0
	}
	if *out == "" {
		return failed("credentials", errors.New("--out DIR: where to write the certificate and its key"), exitUsage, stderr)
	}
	if *valid <= 0 {
		return failed("credentials", fmt.Errorf("--valid %v: want a duration above 0", *valid), exitUsage, stderr)
	}
	dir, err := configDir(*name)
	if err != nil {
		return failed("credentials", err, exitInternal, stderr)
	}
	sn, err := issueClient(dir, *out, "client", *cn, *valid, time.Now())
	if err != nil {
		return failed("credentials", err, exitUsage, stderr)
	}
	// A context beside them, so that --credentials DIR is enough.
	if c, err := readContext(dir); err == nil {
		c.Cert, c.Key = filepath.Join(*out, "client.pem"), filepath.Join(*out, "client.key")
		b, _ := json.MarshalIndent(c, "", "  ")
		os.WriteFile(filepath.Join(*out, "remote.json"), b, 0o600)
	}
	fmt.Fprintf(stdout, "issued %s/client.pem (serial %s), valid until %s\n", *out, sn, time.Now().Add(*valid).Format(time.RFC3339))
	return 0
}

// listenReady learns the instance's pin through its broker, the host's
// own channel to it, and writes the context with it: no first contact
// over the network is needed to trust the instance.
func listenReady(in *client.Instance, dir string, port int) error {
	cl, err := client.Connect(in)
	if err != nil {
		return err
	}
	defer cl.Close()
	m, err := cl.Call(map[string]any{"op": "ping"}, 30*time.Second)
	if err != nil {
		return err
	}
	var p struct {
		Identity string `json:"identity"`
	}
	json.Unmarshal(m.Raw(), &p)
	if p.Identity == "" {
		return fmt.Errorf("the control partition serves no network control plane (its console says why: %s)", in.Log)
	}
	return writeContext(dir, port, p.Identity)
}
