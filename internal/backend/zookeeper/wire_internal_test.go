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

package zookeeper

import (
	"bytes"
	"encoding/binary"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

// frame encodes body as a frame: its length, then the body.
func frame(body []byte) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(body))), body...)
}

// jstring encodes s as a jute string.
func jstring(s string) []byte {
	return append(binary.BigEndian.AppendUint32(nil, uint32(len(s))), s...)
}

// request encodes a request body: xid, opcode, then path and more.
func request(xid, op int32, path string, more ...byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(xid))
	b = binary.BigEndian.AppendUint32(b, uint32(op))
	return append(append(b, jstring(path)...), more...)
}

// createdAnswer encodes a Create2Response with error code errCode.
func createdAnswer(xid int32, errCode int32, path string, czxid int64) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(xid))
	b = binary.BigEndian.AppendUint64(b, uint64(czxid+1)) // the header's zxid
	b = binary.BigEndian.AppendUint32(b, uint32(errCode))
	if errCode != 0 {
		return b
	}
	b = append(b, jstring(path)...)
	b = binary.BigEndian.AppendUint64(b, uint64(czxid))
	return append(b, make([]byte, 60)...) // the rest of the Stat
}

func TestFramesSplitsAStreamHoweverItIsCut(t *testing.T) {
	t.Parallel()
	handshake := frame([]byte("connect request"))
	bodies := [][]byte{[]byte("first"), {}, bytes.Repeat([]byte("x"), maxCapture+100), []byte("last")}
	stream := slices.Clone(handshake)
	for _, b := range bodies {
		stream = append(stream, frame(b)...)
	}
	for _, chunk := range []int{1, 2, 3, 7, 4096, len(stream)} {
		var f frames
		var got [][]byte
		for p := stream; len(p) > 0; {
			n := min(chunk, len(p))
			f.feed(p[:n], func(body []byte) { got = append(got, slices.Clone(body)) })
			p = p[n:]
		}
		if len(got) != len(bodies) {
			t.Fatalf("chunks of %d: %d frames passed on; want %d (the handshake left out)", chunk, len(got), len(bodies))
		}
		for i, b := range bodies {
			want := b[:min(len(b), maxCapture)]
			if !bytes.Equal(got[i], want) {
				t.Errorf("chunks of %d: frame %d = %d bytes %.20q; want %d bytes %.20q", chunk, i, len(got[i]), got[i], len(want), want)
			}
		}
	}
}

func TestParseRequest(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body     []byte
		wantXid  int32
		wantOp   int32
		wantPath string
		wantOK   bool
	}{
		"a TTL creation": {
			body:    request(7, opCreateTTL, "/a/_c_x-lock-", 0, 0, 0, 4, 'd', 'a', 't', 'a'),
			wantXid: 7, wantOp: opCreateTTL, wantPath: "/a/_c_x-lock-", wantOK: true},
		"a listing":            {body: request(8, opGetChildren2, "/a", 0), wantXid: 8, wantOp: opGetChildren2, wantPath: "/a", wantOK: true},
		"a ping has no path":   {body: request(-2, 11, "")[:8]},
		"a multi is not read":  {body: request(9, 14, "/a")},
		"a path cut short":     {body: request(10, opDelete, "/a/b/c")[:13]},
		"a header cut short":   {body: []byte{0, 0, 0}},
		"a negative string":    {body: append(request(11, opExists, "")[:8], 0xff, 0xff, 0xff, 0xff)},
		"a container creation": {body: request(12, opCreateContainer, "/a"), wantXid: 12, wantOp: opCreateContainer, wantPath: "/a", wantOK: true},
	}
	for name, tc := range tests {
		xid, op, path, ok := parseRequest(tc.body)
		if ok != tc.wantOK || ok && (xid != tc.wantXid || op != tc.wantOp || string(path) != tc.wantPath) {
			t.Errorf("%s: parseRequest = %d, %d, %q, %v; want %d, %d, %q, %v",
				name, xid, op, path, ok, tc.wantXid, tc.wantOp, tc.wantPath, tc.wantOK)
		}
	}
}

func TestParseCreated(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body      []byte
		wantPath  string
		wantCzxid int64
		wantOK    bool
	}{
		"a created node": {
			body:     createdAnswer(3, 0, "/a/_c_x-lock-0000000001", 0x100000042),
			wantPath: "/a/_c_x-lock-0000000001", wantCzxid: 0x100000042, wantOK: true},
		"an error answer":       {body: createdAnswer(3, -101, "", 0)},
		"a Stat cut short":      {body: createdAnswer(3, 0, "/a/b", 5)[:answerHeaderLen+4+4+7]},
		"a header cut short":    {body: make([]byte, answerHeaderLen-1)},
		"a path longer than it": {body: append(createdAnswer(3, 0, "", 0)[:answerHeaderLen], 0, 0, 1, 0)},
	}
	for name, tc := range tests {
		path, czxid, ok := parseCreated(tc.body)
		if ok != tc.wantOK || ok && (string(path) != tc.wantPath || czxid != tc.wantCzxid) {
			t.Errorf("%s: parseCreated = %q, %d, %v; want %q, %d, %v", name, path, czxid, ok, tc.wantPath, tc.wantCzxid, tc.wantOK)
		}
	}
}

// tappedPipe returns the two ends of a net.Pipe, the client end tapped by w.
func tappedPipe(t *testing.T, w *wireTap) (client net.Conn, server net.Conn) {
	t.Helper()
	c, s := net.Pipe()
	t.Cleanup(func() { c.Close(); s.Close() })
	return w.wrap(c), s
}

func TestWireTapSeesRequestsSentAndCreatedStats(t *testing.T) {
	t.Parallel()
	w := newWireTap()
	client, server := tappedPipe(t, w)
	go func() { // the server: read everything
		buf := make([]byte, 4096)
		for {
			if _, err := server.Read(buf); err != nil {
				return
			}
		}
	}()
	write := func(b []byte) {
		t.Helper()
		if _, err := client.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	write(frame([]byte("handshake")))

	const node = "/lock/_c_a-lock-"
	sent, stop := w.expectSent(opCreateTTL, node)
	defer stop()
	other, stopOther := w.expectSent(opGetChildren2, "/lock")
	defer stopOther()
	take, done := w.expectCreated(node)
	defer done()
	if again, _ := w.expectCreated(node); func() bool { _, ok := again(node + "0000000001"); return ok }() {
		t.Errorf("a second caller waiting for the same creation got a result")
	}
	write(frame(request(5, opCreateTTL, node)))
	select {
	case <-sent:
	case <-time.After(time.Second):
		t.Fatal("the creation was written, but its waiter was not told")
	}
	select {
	case <-other:
		t.Fatal("the waiter for another request was told")
	default:
	}

	// The answers come back: the handshake, an unrelated answer, then the
	// creation's.
	go func() {
		answers := slices.Concat(frame([]byte("handshake answer")), frame(createdAnswer(4, 0, "/x0000000001", 99)),
			frame(createdAnswer(5, 0, node+"0000000001", 0x42)))
		_, _ = server.Write(answers)
	}()
	buf := make([]byte, 4096)
	var read []byte
	for len(read) < 3*4 || !strings.Contains(string(read), node+"0000000001") {
		n, err := client.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		read = append(read, buf[:n]...)
	}
	if czxid, ok := take(node + "0000000001"); !ok || czxid != 0x42 {
		t.Errorf("take = %#x, %v; want the Stat's czxid 0x42", czxid, ok)
	}
	if _, ok := take(node + "0000000002"); ok {
		t.Errorf("take of another path reported a czxid")
	}
}
