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

package redis

import (
	"errors"
	"fmt"
	"strings"
)

// The layout of a lock's keys: the lock key and its fencing counter.

const (
	// counterSuffix is appended to a lock key (or to its hash-tagged form
	// on a Redis Cluster) to name its fencing counter.
	counterSuffix = ":fencing"
	// slotCount is the number of hash slots of a Redis Cluster.
	slotCount = 16384
)

// ErrClusterKeyWithoutHashTag means that a lock key cannot be used on a
// Redis Cluster: it contains '}' but no hash tag, so no counter name built
// from it hashes to its slot.
var ErrClusterKeyWithoutHashTag = errors.New("redis: on a Redis Cluster, a lock key that contains '}' needs a hash tag " +
	"(a non-empty {...} before any other '}', such as locks:{reports}:nightly) so that its fencing counter can share its hash slot")

// counterKey names the fencing counter of the lock key.
//
// On a single server or behind Sentinels it is key+":fencing", as it always
// was (renaming it would start the tokens of existing locks again).
//
// On a Redis Cluster it must hash to key's slot, since the acquire script
// uses both keys: a key with a hash tag keeps key+":fencing" (appending
// keeps the tag); a key without one gets "{"+key+"}:fencing", whose tag is
// key itself, unless key contains '}' (the tag would end there), which
// gives ErrClusterKeyWithoutHashTag. The result is checked with the slot
// function all the same.
func counterKey(key string, cluster bool) (string, error) {
	counter := key + counterSuffix
	if !cluster {
		return counter, nil
	}
	if _, tagged := hashTag(key); !tagged {
		if strings.Contains(key, "}") {
			return "", ErrClusterKeyWithoutHashTag
		}
		counter = "{" + key + "}" + counterSuffix
	}
	if a, b := keySlot(key), keySlot(counter); a != b {
		// Unreachable by the rules above; kept as the invariant's guard.
		return "", fmt.Errorf("key %q (slot %d) and its counter %q (slot %d): %w", key, a, counter, b, ErrClusterKeyWithoutHashTag)
	}
	return counter, nil
}

// hashTag returns the part of key that Redis Cluster hashes, as the
// cluster specification defines it: when key has a '{' and, after the first
// one, a '}' with at least one byte between them, the bytes between the
// first '{' and the first '}' after it (tagged is then true); otherwise the
// whole key.
func hashTag(key string) (hashed string, tagged bool) {
	open := strings.IndexByte(key, '{')
	if open < 0 {
		return key, false
	}
	n := strings.IndexByte(key[open+1:], '}')
	if n <= 0 {
		return key, false
	}
	return key[open+1 : open+1+n], true
}

// keySlot returns the Redis Cluster hash slot of key, as CLUSTER KEYSLOT
// answers it: CRC16 of the hashed part of key, modulo 16384.
func keySlot(key string) int {
	hashed, _ := hashTag(key)
	return int(crc16(hashed)) % slotCount
}

// crc16Table is the byte-wise table of CRC16/XMODEM (polynomial 0x1021,
// initial value 0, no reflection), the checksum of Redis Cluster's key
// hashing (cluster specification, appendix A).
var crc16Table = func() [256]uint16 {
	var table [256]uint16
	for i := range table {
		crc := uint16(i) << 8
		for range 8 {
			if crc&0x8000 != 0 {
				crc = crc<<1 ^ 0x1021
			} else {
				crc <<= 1
			}
		}
		table[i] = crc
	}
	return table
}()

// crc16 returns the CRC16/XMODEM checksum of s.
func crc16(s string) uint16 {
	var crc uint16
	for i := 0; i < len(s); i++ {
		crc = crc<<8 ^ crc16Table[byte(crc>>8)^s[i]]
	}
	return crc
}
