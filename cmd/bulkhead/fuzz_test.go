package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"log"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/bulkhead-hv/bulkhead/internal/qemutest"
)

// drain returns what is queued for c, each line checked to be a JSON
// object.
func drain(t *testing.T, c *bclient) [][]byte {
	var out [][]byte
	for {
		select {
		case line, ok := <-c.out:
			if !ok {
				return out
			}
			var m map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(line, &m), "the broker sent %q", line)
			out = append(out, line)
		default:
			return out
		}
	}
}

// FuzzBrokerRequests: whatever a CLI writes to api.sock, the broker
// answers in JSON or forwards the request to the control partition with
// only its id changed (to the next of the broker's own) and a run's
// payload byte for byte, never more than maxUpload; it hangs up when it
// cannot stay in step with the stream, and never panics.
func FuzzBrokerRequests(f *testing.F) {
	f.Add([]byte(`{"id":1,"op":"ping"}` + "\n" + `{"id":2,"op":"ps"}` + "\n"))
	f.Add([]byte(`{"id":1,"op":"run","name":"k","size":5,"initrd_size":3}` + "\nimageINI" + `{"id":2,"op":"attach","name":"k"}` + "\n"))
	f.Add([]byte(`{"id":"a","op":"attach"}` + "\nnot json\n" + `{"op":"detach","name":"x"}` + "\n"))
	f.Add([]byte(`{"id":3,"op":"run","name":"big","size":536870913}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctl := &qemutest.LockedBuffer{} // QEMU's end of the host channel; the broker writes it from more than one goroutine
		b := newBroker(ctl, log.New(io.Discard, "", 0))
		c := &bclient{out: make(chan []byte, clientQueue), vms: map[string]bool{}}
		b.clients[c] = struct{}{}
		src := bytes.NewReader(data)
		rd := bufio.NewReader(src)
		pos := func() int { return len(data) - src.Len() - rd.Buffered() }
		next := int64(1)
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				break
			}
			start, before := pos(), len(ctl.String())
			err = b.request(c, line, rd)
			drain(t, c)
			sent := []byte(ctl.String()[before:])
			if err != nil {
				require.Empty(t, sent, "a request the broker hung up on went down the channel")
				break
			}
			if len(sent) == 0 {
				continue // answered by the broker itself
			}
			hdr, payload, ok := bytes.Cut(sent, []byte("\n"))
			require.True(t, ok)
			var got, asked map[string]json.RawMessage
			require.NoError(t, json.Unmarshal(hdr, &got))
			require.NoError(t, json.Unmarshal(line, &asked))
			require.Equal(t, string(must(json.Marshal(next))), string(got["id"]), "the broker's ids count up")
			next++
			delete(got, "id")
			delete(asked, "id")
			require.Equal(t, len(asked), len(got), "forwarded %s as %s", line, hdr)
			for k, v := range asked {
				require.JSONEq(t, string(v), string(got[k]), "field %q of %s", k, line)
			}
			require.Equal(t, data[start:pos()], payload, "the payload is what followed the request")
			require.LessOrEqual(t, len(payload), maxUpload)
		}
		require.Len(t, b.pending, int(next-1), "one pending entry per forwarded request")
	})
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// FuzzBrokerControl: whatever the control partition sends, the broker
// routes an answer only to the client whose request it answers, with that
// client's id back in place, once; a console event only to the clients
// attached to its VM, any other event to every client (a ready event, of
// a restarted control partition, after failing what waits for an
// answer); it keeps no more of a console than tailSize, and never panics.
func FuzzBrokerControl(f *testing.F) {
	f.Add([]byte(`{"id":1,"ok":true,"vm":3}` + "\n" + `{"event":"console","vm":"a","data":"aGVsbG8K"}` + "\n" +
		`{"id":2,"ok":false,"error":"no"}` + "\n" + `{"event":"exit","vm":"b","status":3}` + "\n"))
	f.Add([]byte(`{"id":3,"ok":true}` + "\n" + `{"id":4,"ok":true}` + "\n" + `{"id":1,"ok":true}` + "\n" + `{"id":1,"ok":true}` + "\n"))
	f.Add([]byte(`{"event":"console","vm":"b","data":"` + string(bytes.Repeat([]byte("QUFB"), 3000)) + `"}` + "\nnot json\n" + `{"id":"2"}` + "\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		ctl := &qemutest.LockedBuffer{} // QEMU's end of the host channel; the broker writes it from more than one goroutine
		b := newBroker(ctl, log.New(io.Discard, "", 0))
		c1 := &bclient{out: make(chan []byte, clientQueue), vms: map[string]bool{"a": true}}
		c2 := &bclient{out: make(chan []byte, clientQueue), vms: map[string]bool{"b": true}}
		gone := &bclient{out: make(chan []byte, 1), vms: map[string]bool{}, gone: true}
		b.clients[c1], b.clients[c2] = struct{}{}, struct{}{}
		b.pending[1] = &pending{c: c1, id: json.RawMessage(`7`), op: "run", name: "a"}
		b.pending[2] = &pending{c: c2, id: json.RawMessage(`"x"`), op: "run", name: "c", attached: true}
		c2.vms["c"] = true
		b.pending[3] = &pending{op: "stop", name: "b"} // the broker's own
		b.pending[4] = &pending{c: gone, op: "run", name: "orphan"}
		b.pending[5] = &pending{c: c2, op: "ps"}
		b.next = 5
		clients := []*bclient{c1, c2}

		rd := bufio.NewReader(bytes.NewReader(data))
		for {
			line, err := rd.ReadBytes('\n')
			if err != nil {
				break
			}
			var m map[string]json.RawMessage
			isJSON := json.Unmarshal(line, &m) == nil
			var ev, vm string
			json.Unmarshal(m["event"], &ev)
			json.Unmarshal(m["vm"], &vm)
			var id int64
			json.Unmarshal(m["id"], &id)
			b.mu.Lock() // a stop of the orphan is forwarded by a goroutine
			p := b.pending[id]
			waiting := map[*bclient]int{} // what a ready event fails
			for _, q := range b.pending {
				if q.c != nil {
					waiting[q.c]++
				}
			}
			b.mu.Unlock()

			b.fromControl(line)
			b.mu.Lock()
			for vm, tail := range b.tails {
				require.LessOrEqual(t, len(tail), tailSize, "console kept for %q", vm)
			}
			b.mu.Unlock()
			for _, c := range clients {
				got := drain(t, c)
				switch {
				case !isJSON:
					require.Empty(t, got, "not JSON, passed on")
				case ev == "ready":
					// A restarted control partition: what the crashed one
					// had not answered fails, then the event comes.
					require.Len(t, got, waiting[c]+1)
					for _, a := range got[:waiting[c]] {
						require.Contains(t, string(a), "the control partition crashed before it answered")
					}
					require.Equal(t, line, got[waiting[c]], "the event, as it came")
				case ev != "":
					if ev == "console" && !c.vms[vm] {
						require.Empty(t, got, "a console event for %q to a client not attached to it", vm)
					} else {
						require.Equal(t, [][]byte{line}, got, "an event, as it came")
					}
				case p == nil || p.c != c:
					require.Empty(t, got, "an answer to id %d, sent to another client", id)
				default:
					require.Len(t, got, 1)
					var a map[string]json.RawMessage
					require.NoError(t, json.Unmarshal(got[0], &a))
					if p.id == nil {
						require.NotContains(t, a, "id")
					} else {
						require.Equal(t, string(p.id), string(a["id"]), "the client's own id")
					}
					want := len(m)
					if _, had := m["id"]; had {
						want--
					}
					if p.id != nil {
						want++
					}
					require.Len(t, a, want, "the answer as it came, but for its id: %s", got[0])
				}
			}
			if isJSON && ev == "" && p != nil {
				b.mu.Lock()
				_, still := b.pending[id]
				b.mu.Unlock()
				require.False(t, still, "answered once")
			}
		}
	})
}
