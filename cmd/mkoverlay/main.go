// Command mkoverlay writes the go build -overlay that the EL2 kernel is
// built with: TamaGo's runtime with hooks through which the kernel runs
// several Ms on one CPU (package cpumux, docs/architecture.md "CPUs").
//
// It changes no line of the toolchain's own files but the names of the
// functions the added file (mux_tamago.go.src) takes over: in proc.go
// goschedIfBusy, and in os_tamago.go semasleep,
// semawakeup, osyield, osyield_no_g, usleep and usleep_no_g, which spin
// there, and newosproc, which sets aside an 8 MiB stack per M that a
// multiplexed M never uses. A toolchain whose file no longer declares one of them exactly as
// expected is refused, rather than built into a runtime that silently
// keeps spinning.
//
//	mkoverlay -goroot $(tamago env GOROOT) -o build/_overlay
package main

import (
	_ "embed"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

//go:embed mux_tamago.go.src
var muxSource []byte

// renames are the declarations taken over, by the runtime file that
// declares them, as it spells them, and what they become there.
var renames = map[string][][2]string{
	"os_tamago.go": osRenames,
	// goschedIfBusy is where a loop that waits for another M's progress
	// yields (bgsweep waiting on another sweeper, go.dev/issue/73499):
	// on one CPU the other M runs only if this one gives the CPU away.
	"proc.go": {{"func goschedIfBusy() {", "func spinGoschedIfBusy() {"}},
}

var osRenames = [][2]string{
	{"func newosproc(mp *m) {", "func spinNewosproc(mp *m) {"},
	{"func semasleep(ns int64) int {", "func spinSemasleep(ns int64) int {"},
	{"func semawakeup(mp *m) {", "func spinSemawakeup(mp *m) {"},
	{"func osyield()                       {}", "func spinOsyield()                   {}"},
	{"func osyield_no_g()                  {}", "func spinOsyieldNoG()                {}"},
	{"func usleep(us uint32) {", "func spinUsleep(us uint32) {"},
	{"func usleep_no_g(usec uint32) {\n\tusleep(usec)", "func spinUsleepNoG(usec uint32) {\n\tspinUsleep(usec)"},
}

func main() {
	goroot := flag.String("goroot", "", "the TamaGo toolchain's GOROOT")
	out := flag.String("o", "", "directory to write the overlay into (a name go ./... skips, such as build/_overlay); its overlay.json is what go build -overlay takes")
	flag.Parse()
	if *goroot == "" || *out == "" {
		fmt.Fprintln(os.Stderr, "usage: mkoverlay -goroot DIR -o DIR")
		os.Exit(2)
	}
	if err := write(*goroot, *out); err != nil {
		fmt.Fprintln(os.Stderr, "mkoverlay:", err)
		os.Exit(1)
	}
}

func write(goroot, out string) error {
	rt := filepath.Join(goroot, "src", "runtime")
	files := map[string][]byte{"mux_tamago.go": muxSource}
	for name, rs := range renames {
		orig := filepath.Join(rt, name)
		src, err := os.ReadFile(orig)
		if err != nil {
			return err
		}
		patched, err := rename(string(src), rs)
		if err != nil {
			return fmt.Errorf("%s: %v", orig, err)
		}
		files[name] = []byte(patched)
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		return err
	}
	replace := map[string]string{}
	for name, b := range files {
		p := filepath.Join(abs, name)
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
		replace[filepath.Join(rt, name)] = p
	}
	j, err := json.MarshalIndent(map[string]any{"Replace": replace}, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(abs, "overlay.json"), append(j, '\n'), 0o644)
}

// rename applies rs to src, each exactly once.
func rename(src string, rs [][2]string) (string, error) {
	for _, r := range rs {
		if n := strings.Count(src, r[0]); n != 1 {
			return "", fmt.Errorf("%q found %d times, not once: a toolchain this overlay was not written for", r[0], n)
		}
		src = strings.Replace(src, r[0], r[1], 1)
	}
	return src, nil
}
