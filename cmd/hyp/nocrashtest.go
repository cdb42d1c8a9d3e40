//go:build tamago && !crashtest

package main

import "fmt"

func crashTest(name string) {
	fmt.Printf("bulkhead: warning: crashtest=%s ignored: this image was built without the crashtest tag\n", name)
}
