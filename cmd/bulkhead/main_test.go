package main

import (
	"os"
	"testing"
)

// The test binary doubles as the CLI: the broker that `up` starts is
// os.Executable() run as `bulkhead __broker`, and tests that need a CLI
// in its own process (to kill it, to send it Ctrl-C) run it with
// BULKHEAD_TEST_CLI=1.
func TestMain(m *testing.M) {
	if (len(os.Args) > 1 && os.Args[1] == brokerCmd) || os.Getenv("BULKHEAD_TEST_CLI") == "1" {
		os.Exit(cli(os.Args[1:], os.Stdout, os.Stderr))
	}
	os.Exit(m.Run())
}
