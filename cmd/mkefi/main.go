// Command mkefi wraps the hypervisor's ELF into a PE32+ EFI application
// for arm64, so that UEFI firmware can start it: the same link, the same
// bytes at the same addresses, with the UEFI entry as its entry point.
//
//	mkefi -entry SYMBOL -o FILE ELF
package main

import (
	"debug/elf"
	"flag"
	"fmt"
	"os"
)

const usage = `mkefi writes a PE32+ EFI application (machine arm64, subsystem EFI
application) holding an ELF's loadable segments at the addresses they were
linked for.

Usage:

	mkefi -entry SYMBOL -o FILE ELF

The PE's headers sit in the page below the ELF's first segment (its
ImageBase), and one section holds the whole image, bss included. It has no
relocations: the firmware loads it at ImageBase or refuses it. The entry
point is SYMBOL's address: for the hypervisor, its UEFI entry.

Flags:
`

func main() {
	entry := flag.String("entry", "", "symbol whose address is the entry point")
	out := flag.String("o", "", "output file")
	flag.Usage = func() {
		fmt.Fprint(flag.CommandLine.Output(), usage)
		flag.PrintDefaults()
	}
	flag.Parse()
	if *entry == "" || *out == "" || flag.NArg() != 1 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(flag.Arg(0), *entry, *out); err != nil {
		fmt.Fprintf(os.Stderr, "mkefi: %v\n", err)
		os.Exit(1)
	}
}

func run(in, entry, out string) error {
	f, err := elf.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	img, err := loadELF(f, entry)
	if err != nil {
		return fmt.Errorf("%s: %w", in, err)
	}
	return os.WriteFile(out, writePE(img), 0o644)
}
