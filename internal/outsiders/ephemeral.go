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

package outsiders

import (
	"errors"
	"fmt"
	"path"

	"github.com/go-zookeeper/zk"
)

// PlainEphemeral is the plainest ZooKeeper lock: a program holds the lock
// while one ephemeral node exists exactly at the lock path, and releases it
// by deleting the node (or by its session ending).
type PlainEphemeral struct {
	conn *zk.Conn
	path string
}

// NewPlainEphemeral returns the recipe for the lock at path.
func NewPlainEphemeral(conn *zk.Conn, lockPath string) *PlainEphemeral {
	return &PlainEphemeral{conn: conn, path: lockPath}
}

// TryLock creates the node (and missing parents, as persistent nodes). It
// reports false when the path already exists: someone else holds the lock.
func (p *PlainEphemeral) TryLock() (bool, error) {
	if err := p.ensureParents(path.Dir(p.path)); err != nil {
		return false, err
	}
	_, err := p.conn.Create(p.path, []byte("plain"), zk.FlagEphemeral, zk.WorldACL(zk.PermAll))
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, zk.ErrNodeExists):
		return false, nil
	default:
		return false, fmt.Errorf("plain ephemeral lock: creating %s: %w", p.path, err)
	}
}

func (p *PlainEphemeral) ensureParents(dir string) error {
	if dir == "/" {
		return nil
	}
	if err := p.ensureParents(path.Dir(dir)); err != nil {
		return err
	}
	_, err := p.conn.Create(dir, nil, zk.FlagPersistent, zk.WorldACL(zk.PermAll))
	if err != nil && !errors.Is(err, zk.ErrNodeExists) {
		return fmt.Errorf("plain ephemeral lock: creating %s: %w", dir, err)
	}
	return nil
}

// Unlock deletes the node.
func (p *PlainEphemeral) Unlock() error {
	if err := p.conn.Delete(p.path, -1); err != nil {
		return fmt.Errorf("plain ephemeral lock: deleting %s: %w", p.path, err)
	}
	return nil
}
