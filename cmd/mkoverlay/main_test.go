package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The toolchain the project pins, where the build finds it.
func tamagoRuntime(t *testing.T) string {
	home, _ := os.UserHomeDir()
	p := filepath.Join(home, ".cache/tamago-go/tamago-go1.26.0/src/runtime")
	if _, err := os.Stat(p); err != nil {
		t.Skipf("no TamaGo toolchain: %v", err)
	}
	return p
}

func TestRenamesTheToolchainsFiles(t *testing.T) {
	rt := tamagoRuntime(t)
	for name, rs := range renames {
		b, err := os.ReadFile(filepath.Join(rt, name))
		if err != nil {
			t.Fatal(err)
		}
		got, err := rename(string(b), rs)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		for _, r := range rs {
			f := strings.TrimPrefix(r[0][:strings.Index(r[0], "(")+1], "func ")
			if strings.Contains(got, "\nfunc "+f) {
				t.Errorf("%s still declares %s", name, f)
			}
			if !strings.Contains(string(muxSource), "\nfunc "+f) {
				t.Errorf("mux_tamago.go.src does not declare %s", f)
			}
		}
	}
}

func TestRefusesAnotherToolchain(t *testing.T) {
	if _, err := rename("package runtime\nfunc semasleep(ns int64) int32 {\n}\n", osRenames); err == nil {
		t.Fatal("a file without the expected declarations was accepted")
	}
}
