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

// Command worker is the main container of the end-to-end test's Jobs: the
// critical section. It appends "start" and "end" lines, with the time, its
// pod name and its fencing token, to a record file on the node (a hostPath
// volume), holding for a while in between. The end-to-end test reads that
// file — a record independent of distlock's own status — to check that no two
// critical sections overlapped.
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	record := flag.String("record", "/record/record.log", "file to append start and end lines to")
	tokenFile := flag.String("token-file", "/distlock/fencing-token", "file the waiter wrote the fencing token to")
	hold := flag.Duration("hold", 2*time.Second, "how long the critical section lasts")
	flag.Parse()

	pod := os.Getenv("POD_NAME")
	token, err := os.ReadFile(*tokenFile)
	if err != nil {
		fmt.Fprintf(os.Stderr, "worker: reading the fencing token: %v\n", err)
		os.Exit(1)
	}
	tok := strings.TrimSpace(string(token))
	if err := appendLine(*record, "start", pod, tok); err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("worker %s: in the critical section with fencing token %s for %s\n", pod, tok, *hold)
	// The critical section is waiting for hold to pass. A pod deleted
	// meanwhile gets SIGTERM: it records the end of its section before it
	// exits, so the record shows when it really stopped.
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM, os.Interrupt)
	exit := 0
	select {
	case <-time.After(*hold):
	case <-term:
		fmt.Printf("worker %s: terminated inside the critical section\n", pod)
		exit = 143
	}
	if err := appendLine(*record, "end", pod, tok); err != nil {
		fmt.Fprintf(os.Stderr, "worker: %v\n", err)
		os.Exit(1)
	}
	os.Exit(exit)
}

// appendLine appends one line in a single write: O_APPEND writes of a line
// this short are atomic, so concurrent writers never interleave.
func appendLine(path, what, pod, token string) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY|os.O_SYNC, 0o666)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer f.Close()
	line := fmt.Sprintf("%s %d %s %s\n", what, time.Now().UnixNano(), pod, token)
	if _, err := f.WriteString(line); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}
