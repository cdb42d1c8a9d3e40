//go:build linux

// Command diskbench measures a block device from inside a Linux guest,
// for make bench: a sequential write (flushed), a sequential read, and
// 4 KiB reads at random sectors, all with O_DIRECT so that the guest's
// page cache answers nothing. It finds the device by its virtio-blk
// serial (/sys/block/*/serial), so the bench finds its disk however the
// machine numbered the transports.
//
//	diskbench -serial NAME [-mb 32] [-ops 2000]
//
// Each measurement prints a line before it starts and one when it ends,
// which the host times: "diskbench: begin seqwrite" ... "diskbench: end
// seqwrite 33554432 bytes". The guest's own clock is printed too, but a
// guest's clock is not the host's.
package main

import (
	"flag"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

func main() {
	serial := flag.String("serial", "", "the virtio-blk serial of the disk to measure")
	mb := flag.Int("mb", 32, "MiB read and written sequentially")
	ops := flag.Int("ops", 2000, "4 KiB random reads a round")
	rounds := flag.Int("rounds", 3, "rounds of random reads, each measured: the host takes the median")
	flag.Parse()
	dev, err := find(*serial)
	if err != nil {
		fail(err)
	}
	f, err := os.OpenFile(dev, os.O_RDWR|syscall.O_DIRECT, 0)
	if err != nil {
		fail(err)
	}
	const bs = 1 << 20
	buf, err := syscall.Mmap(-1, 0, bs, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		fail(err)
	}
	for i := range buf {
		buf[i] = byte(i * 7)
	}
	total := int64(*mb) << 20
	measure("seqwrite", total, func() error {
		for off := int64(0); off < total; off += bs {
			if _, err := f.WriteAt(buf, off); err != nil {
				return err
			}
		}
		return f.Sync()
	})
	measure("seqread", total, func() error {
		for off := int64(0); off < total; off += bs {
			if _, err := f.ReadAt(buf, off); err != nil {
				return err
			}
		}
		return nil
	})
	r := rand.New(rand.NewSource(1))
	for round := 0; round < *rounds; round++ {
		measure("randread", int64(*ops)*4096, func() error {
			for i := 0; i < *ops; i++ {
				if _, err := f.ReadAt(buf[:4096], r.Int63n(total/4096)*4096); err != nil {
					return err
				}
			}
			return nil
		})
	}
	fmt.Printf("diskbench: done\n")
}

func measure(what string, n int64, fn func() error) {
	fmt.Printf("diskbench: begin %s\n", what)
	start := time.Now()
	if err := fn(); err != nil {
		fail(fmt.Errorf("%s: %v", what, err))
	}
	fmt.Printf("diskbench: end %s %d bytes (guest clock %.3f s)\n", what, n, time.Since(start).Seconds())
}

// find returns the /dev node of the disk whose serial is serial.
func find(serial string) (string, error) {
	paths, _ := filepath.Glob("/sys/block/*/serial")
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err == nil && strings.TrimSpace(string(b)) == serial {
			return "/dev/" + filepath.Base(filepath.Dir(p)), nil
		}
	}
	return "", fmt.Errorf("no disk with serial %q among %d", serial, len(paths))
}

func fail(err error) {
	fmt.Printf("diskbench: %v\n", err)
	os.Exit(1)
}
