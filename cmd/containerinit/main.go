// Command containerinit is PID 1 in the VM of a container run by the
// containerd shim (package containerinit). Build it for the guest:
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build ./cmd/containerinit
package main

import "github.com/bulkhead-hv/bulkhead/containerinit"

func main() { containerinit.Main() }
