package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"
	"time"
)

// runRemote runs the image in an instance that is up: it uploads the
// image over the host channel (showing progress), streams the guest's
// console from the instance's console log, and returns the guest's exit
// status when the control partition reports it.
func runRemote(c *runConfig, in *instance, stdout, stderr io.Writer) int {
	img, err := os.ReadFile(c.image)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %v\n", err)
		return exitUsage
	}
	ch, err := dial(in.Socket, 5*time.Second)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %v\n", err)
		return exitInternal
	}
	defer ch.conn.Close()
	logf, err := os.Open(in.Log)
	if err != nil {
		fmt.Fprintf(stderr, "bulkhead run: the instance's console log: %v\n", err)
		return exitInternal
	}
	defer logf.Close()
	logf.Seek(0, io.SeekEnd) // only what this guest prints from now on

	id := ch.next
	ch.next++
	hdr, _ := json.Marshal(map[string]any{"id": id, "op": "run", "name": c.name, "size": len(img),
		"mem": c.mem, "cpus": c.cpus, "arg": c.arg})
	start := time.Now()
	if _, err := ch.conn.Write(append(hdr, '\n')); err != nil {
		fmt.Fprintf(stderr, "bulkhead run: %v\n", err)
		return exitInternal
	}
	const chunk = 256 << 10
	for off := 0; off < len(img); off += chunk {
		end := min(off+chunk, len(img))
		if _, err := ch.conn.Write(img[off:end]); err != nil {
			fmt.Fprintf(stderr, "bulkhead run: uploading: %v\n", err)
			return exitInternal
		}
		if !c.json {
			fmt.Fprintf(stderr, "\rbulkhead: uploading %s: %d of %d KiB", c.name, end>>10, len(img)>>10)
		}
	}
	var reply map[string]any
	for {
		v, err := ch.read(60 * time.Second)
		if err != nil {
			fmt.Fprintf(stderr, "\nbulkhead run: %v\n", err)
			return exitInternal
		}
		if v["id"] == float64(id) {
			reply = v
			break
		}
	}
	secs := time.Since(start).Seconds()
	if !c.json {
		fmt.Fprintf(stderr, " (%.1f MB/s)\n", float64(len(img))/1e6/secs)
	}
	if reply["ok"] != true {
		fmt.Fprintf(stderr, "bulkhead run: the instance refused %s: %v\n", c.name, reply["error"])
		return exitUsage
	}

	// Exit events arrive on the channel; the console in the log.
	exits := make(chan int, 1)
	go func() {
		for {
			v, err := ch.read(24 * time.Hour)
			if err != nil {
				close(exits)
				return
			}
			if v["event"] == "exit" && v["vm"] == c.name {
				exits <- int(v["status"].(float64))
				return
			}
		}
	}()
	enc := json.NewEncoder(stdout)
	rd := bufio.NewReader(logf)
	prefix := c.name + "| "
	emit := func() {
		for {
			line, err := rd.ReadString('\n')
			if err != nil {
				// A partial line waits for the rest.
				if len(line) > 0 {
					logf.Seek(-int64(len(line)), io.SeekCurrent)
					rd.Reset(logf)
				}
				return
			}
			line = strings.TrimRight(line, "\r\n")
			if !strings.HasPrefix(line, prefix) {
				continue
			}
			text := strings.TrimPrefix(line, prefix)
			if c.json {
				enc.Encode(map[string]string{"event": "console", "vm": c.name, "text": text})
			} else {
				fmt.Fprintln(stdout, text)
			}
		}
	}
	for {
		select {
		case st, ok := <-exits:
			emit()
			if !ok {
				fmt.Fprintf(stderr, "bulkhead run: lost the instance's channel before %s stopped\n", c.name)
				return exitInternal
			}
			if c.json {
				enc.Encode(map[string]any{"event": "exit", "vm": c.name, "status": st})
			}
			return st & 0xff
		case <-time.After(50 * time.Millisecond):
			emit()
		}
	}
}
