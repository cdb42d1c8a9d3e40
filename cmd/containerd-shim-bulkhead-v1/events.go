package main

import (
	"context"
	"net"
	"os"
	"strings"
	"sync"
	"time"

	eventsapi "github.com/containerd/containerd/api/services/ttrpc/events/v1"
	"github.com/containerd/containerd/api/types"
	"github.com/containerd/ttrpc"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// publisher forwards task events to containerd's events service over its
// ttrpc socket ($TTRPC_ADDRESS, which containerd gives its shims), in
// order, from a queue, so a slow or restarting containerd never holds up
// the task service.
type publisher struct {
	namespace string
	address   string
	logf      func(string, ...any)
	queue     chan *types.Envelope
	done      chan struct{}
	once      sync.Once
}

func newPublisher(namespace string, logf func(string, ...any)) *publisher {
	p := &publisher{namespace: namespace, address: os.Getenv("TTRPC_ADDRESS"), logf: logf,
		queue: make(chan *types.Envelope, 128), done: make(chan struct{})}
	go p.run()
	return p
}

// publish queues an event under topic (/tasks/create, ...). The Any's
// type URL is the message's full protobuf name, as containerd's typeurl
// registry names its events.
func (p *publisher) publish(topic string, ev proto.Message) {
	b, err := proto.Marshal(ev)
	if err != nil {
		p.logf("event %s: %v", topic, err)
		return
	}
	env := &types.Envelope{Timestamp: timestamppb.Now(), Namespace: p.namespace, Topic: topic,
		Event: &anypb.Any{TypeUrl: string(ev.ProtoReflect().Descriptor().FullName()), Value: b}}
	select {
	case p.queue <- env:
	default:
		p.logf("event queue full: %s dropped", topic)
	}
}

func (p *publisher) run() {
	defer close(p.done)
	var cl *ttrpc.Client
	for env := range p.queue {
		if p.address == "" {
			continue // not under containerd (a test of the service alone)
		}
		for attempt := 0; ; attempt++ {
			if cl == nil {
				conn, err := net.Dial("unix", strings.TrimPrefix(p.address, "unix://"))
				if err == nil {
					cl = ttrpc.NewClient(conn)
				}
			}
			if cl != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				_, err := eventsapi.NewTTRPCEventsClient(cl).Forward(ctx, &eventsapi.ForwardRequest{Envelope: env})
				cancel()
				if err == nil {
					break
				}
				p.logf("forwarding %s: %v", env.Topic, err)
				cl.Close()
				cl = nil
			}
			if attempt == 5 {
				p.logf("event %s dropped: containerd's events service at %s is unreachable", env.Topic, p.address)
				break
			}
			time.Sleep(time.Duration(100<<attempt) * time.Millisecond)
		}
	}
	if cl != nil {
		cl.Close()
	}
}

// close sends what is queued, waiting a little, and stops.
func (p *publisher) close() {
	p.once.Do(func() { close(p.queue) })
	select {
	case <-p.done:
	case <-time.After(5 * time.Second):
	}
}
