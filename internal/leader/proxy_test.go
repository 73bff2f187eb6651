/*
Copyright 2026 The distlock Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package leader

import (
	"net"
	"net/url"
	"sync"
	"testing"

	"k8s.io/client-go/rest"
)

// proxyState is what an apiProxy does with traffic.
type proxyState int

const (
	// proxyOpen forwards everything.
	proxyOpen proxyState = iota
	// proxyRefusing has no listener and no connections: connections are
	// refused, as when kube-apiserver is down.
	proxyRefusing
	// proxyUnanswered accepts connections and holds every byte, forwarding
	// it only when healed, as a network partition (or a hung API server).
	proxyUnanswered
	// proxyClosed is the end.
	proxyClosed
)

// apiProxy is a TCP proxy on 127.0.0.1 in front of the API server that a
// test can cut and heal. TLS passes through it: envtest's certificate
// covers 127.0.0.1, whatever the port.
type apiProxy struct {
	t      *testing.T
	target string
	addr   string
	wg     sync.WaitGroup

	mu      sync.Mutex
	state   proxyState
	changed chan struct{}
	ln      net.Listener
	conns   map[net.Conn]struct{}
}

// startAPIProxy starts a proxy to the API server of apiConfig; it is closed
// when the test ends.
func startAPIProxy(t *testing.T) *apiProxy {
	t.Helper()
	u, err := url.Parse(apiConfig.Host)
	if err != nil || u.Host == "" {
		t.Fatalf("parsing the API server address %q: %v", apiConfig.Host, err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("listening: %v", err)
	}
	p := &apiProxy{
		t:       t,
		target:  u.Host,
		addr:    ln.Addr().String(),
		changed: make(chan struct{}),
		ln:      ln,
		conns:   map[net.Conn]struct{}{},
	}
	p.wg.Go(func() { p.serve(ln) })
	t.Cleanup(p.close)
	return p
}

// config returns apiConfig with the proxy as the API server.
func (p *apiProxy) config() *rest.Config {
	c := rest.CopyConfig(apiConfig)
	c.Host = "https://" + p.addr
	return c
}

// refuse closes the listener and every connection.
func (p *apiProxy) refuse() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(proxyRefusing)
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
	}
}

// blackhole stops forwarding: every byte waits until heal.
func (p *apiProxy) blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.setLocked(proxyUnanswered)
}

// heal forwards again; after refuse it listens again on the same address.
func (p *apiProxy) heal() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		ln, err := net.Listen("tcp", p.addr)
		if err != nil {
			p.t.Errorf("listening again on %s: %v", p.addr, err)
			return
		}
		p.ln = ln
		p.wg.Go(func() { p.serve(ln) })
	}
	p.setLocked(proxyOpen)
}

// close stops the proxy and waits for its goroutines.
func (p *apiProxy) close() {
	p.refuse()
	p.mu.Lock()
	p.setLocked(proxyClosed)
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *apiProxy) setLocked(s proxyState) {
	if p.state == proxyClosed {
		return
	}
	p.state = s
	close(p.changed)
	p.changed = make(chan struct{})
}

// waitOpen waits while the proxy holds traffic; false if it refuses or is
// closed.
func (p *apiProxy) waitOpen() bool {
	for {
		p.mu.Lock()
		state, changed := p.state, p.changed
		p.mu.Unlock()
		switch state {
		case proxyOpen:
			return true
		case proxyUnanswered:
			<-changed
		default:
			return false
		}
	}
}

// track remembers c, to close it on refuse; false if the proxy refuses.
func (p *apiProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.state == proxyRefusing || p.state == proxyClosed {
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *apiProxy) forget(c net.Conn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	delete(p.conns, c)
	c.Close()
}

func (p *apiProxy) serve(ln net.Listener) {
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		p.wg.Go(func() { p.handle(c) })
	}
}

// handle forwards one connection both ways until either side ends.
func (p *apiProxy) handle(client net.Conn) {
	if !p.track(client) {
		client.Close()
		return
	}
	defer p.forget(client)
	if !p.waitOpen() {
		return
	}
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		return
	}
	if !p.track(server) {
		server.Close()
		return
	}
	defer p.forget(server)
	ended := make(chan struct{}, 2)
	p.wg.Go(func() { p.pipe(server, client); ended <- struct{}{} })
	p.wg.Go(func() { p.pipe(client, server); ended <- struct{}{} })
	<-ended
}

// pipe copies from src to dst, holding each chunk while the proxy holds
// traffic.
func (p *apiProxy) pipe(dst, src net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			if !p.waitOpen() {
				return
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}
