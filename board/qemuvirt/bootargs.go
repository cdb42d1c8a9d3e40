package qemuvirt

import "strings"

// BootArgs splits the hypervisor's command line (/chosen/bootargs, QEMU's
// -append) into key=value pairs; a bare word maps to "".
func BootArgs(s string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(s) {
		k, v, _ := strings.Cut(f, "=")
		out[k] = v
	}
	return out
}
