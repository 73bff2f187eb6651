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
	_ "embed"

	goredis "github.com/redis/go-redis/v9"
)

// The Lua scripts, one per operation, each atomic on the server. Lua has no
// includes: every script is prelude.lua (the fencing counter and the
// semaphore's bookkeeping, written once) followed by the operation's own
// file.
var (
	//go:embed prelude.lua
	preludeSrc string
	//go:embed acquire.lua
	acquireSrc string
	//go:embed acquire_semaphore.lua
	acquireSemaphoreSrc string
	//go:embed renew.lua
	renewSrc string
	//go:embed release.lua
	releaseSrc string
	//go:embed inspect.lua
	inspectSrc string

	acquireScript          = script(acquireSrc)
	acquireSemaphoreScript = script(acquireSemaphoreSrc)
	renewScript            = script(renewSrc)
	releaseScript          = script(releaseSrc)
	inspectScript          = script(inspectSrc)
)

// script returns the script whose body is src, after the prelude.
func script(src string) *goredis.Script {
	return goredis.NewScript(preludeSrc + "\n" + src)
}
