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

import "encoding/binary"

// The ZooKeeper client protocol, as far as the wire tap reads it (jute
// encoding: big-endian integers, strings as a 4-byte length and the bytes).
// Every packet is a frame: a 4-byte length, then the body. The first frame
// each way on a connection is the session handshake; after it, a request
// body starts with its header (xid int32, opcode int32) and an answer body
// with its own (xid int32, zxid int64, err int32).
const (
	opDelete          int32 = 2
	opExists          int32 = 3
	opGetData         int32 = 4
	opSetData         int32 = 5
	opGetChildren2    int32 = 12
	opCreateContainer int32 = 19
	opCreateTTL       int32 = 21

	requestHeaderLen = 8
	answerHeaderLen  = 16
	// maxCapture is how much of a frame's body the tap keeps: enough for
	// the headers and a lock path. Longer paths are not followed (the
	// backend then asks the server).
	maxCapture = 2048
)

// pathOps are the requests whose body starts with the path they act on.
var pathOps = map[int32]bool{
	opDelete: true, opExists: true, opGetData: true, opSetData: true,
	opGetChildren2: true, opCreateContainer: true, opCreateTTL: true,
}

// frames splits one direction of a connection into frames and passes the
// start of each body (up to maxCapture bytes) to a callback once the frame
// is complete. The first frame, the handshake, is not passed on.
type frames struct {
	length [4]byte
	got    int // bytes of the length read so far
	left   int // bytes of the current body still to come
	body   []byte
	count  int // frames completed
}

// feed parses the next bytes of the stream.
func (f *frames) feed(p []byte, done func(body []byte)) {
	for len(p) > 0 {
		if f.got < len(f.length) {
			n := copy(f.length[f.got:], p)
			f.got += n
			p = p[n:]
			if f.got < len(f.length) {
				return
			}
			f.left = int(binary.BigEndian.Uint32(f.length[:]))
			f.body = f.body[:0]
			if f.left == 0 {
				f.finish(done)
			}
			continue
		}
		n := min(f.left, len(p))
		if room := maxCapture - len(f.body); room > 0 {
			f.body = append(f.body, p[:min(n, room)]...)
		}
		f.left -= n
		p = p[n:]
		if f.left == 0 {
			f.finish(done)
		}
	}
}

func (f *frames) finish(done func(body []byte)) {
	f.got = 0
	f.count++
	if f.count > 1 {
		done(f.body)
	}
}

// readString reads a jute string at off in b. The bytes are b's: the tap
// looks strings up without copying them.
func readString(b []byte, off int) (s []byte, next int, ok bool) {
	if len(b) < off+4 {
		return nil, 0, false
	}
	n := int(int32(binary.BigEndian.Uint32(b[off:])))
	if n < 0 || len(b) < off+4+n {
		return nil, 0, false
	}
	return b[off+4 : off+4+n], off + 4 + n, true
}

// parseRequest reads a request body: its xid, its opcode and, for the
// requests in pathOps, the path (body's bytes). ok is false for other
// requests and for bodies cut short.
func parseRequest(body []byte) (xid, op int32, path []byte, ok bool) {
	if len(body) < requestHeaderLen {
		return 0, 0, nil, false
	}
	xid = int32(binary.BigEndian.Uint32(body))
	op = int32(binary.BigEndian.Uint32(body[4:]))
	if !pathOps[op] {
		return 0, 0, nil, false
	}
	path, _, ok = readString(body, requestHeaderLen)
	return xid, op, path, ok
}

// responseXid reads the xid of an answer body.
func responseXid(body []byte) (int32, bool) {
	if len(body) < answerHeaderLen {
		return 0, false
	}
	return int32(binary.BigEndian.Uint32(body)), true
}

// parseCreated reads a successful creation's answer (Create2Response): the
// created path (body's bytes) and the Czxid, the first field of its Stat.
// ok is false for an error answer and for bodies cut short.
func parseCreated(body []byte) (path []byte, czxid int64, ok bool) {
	if len(body) < answerHeaderLen || binary.BigEndian.Uint32(body[12:]) != 0 {
		return nil, 0, false
	}
	path, off, ok := readString(body, answerHeaderLen)
	if !ok || len(body) < off+8 {
		return nil, 0, false
	}
	return path, int64(binary.BigEndian.Uint64(body[off:])), true
}
