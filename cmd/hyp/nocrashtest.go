//go:build tamago && !crashtest

package main

import (
	"fmt"

	"github.com/bulkhead-hv/bulkhead/board/qemuvirt"
)

func smpTest(*qemuvirt.Machine, string) {
	fmt.Println("bulkhead: warning: smptest ignored: this image was built without the crashtest tag")
}

func crashTest(name string) {
	fmt.Printf("bulkhead: warning: crashtest=%s ignored: this image was built without the crashtest tag\n", name)
}
