package testservers

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// ping authenticates if needed and sends PING and INFO server using the
// raw RESP protocol. It fails unless the answering server is process pid,
// which rules out another server that took the port.
func (r *Redis) ping(ctx context.Context, pid int) error {
	conn, closeConn, err := dialProbe(ctx, r.Addr)
	if err != nil {
		return err
	}
	defer closeConn()
	rd := bufio.NewReader(conn)
	// roundTrip sends a command and returns a simple reply line, or the
	// contents of a bulk string reply.
	roundTrip := func(args ...string) (string, error) {
		var b strings.Builder
		fmt.Fprintf(&b, "*%d\r\n", len(args))
		for _, a := range args {
			fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
		}
		if _, err := io.WriteString(conn, b.String()); err != nil {
			return "", fmt.Errorf("%s: %w", args[0], err)
		}
		line, err := rd.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("%s: %w", args[0], err)
		}
		line = strings.TrimRight(line, "\r\n")
		if !strings.HasPrefix(line, "$") {
			return line, nil
		}
		n, err := strconv.Atoi(line[1:])
		if err != nil || n < 0 {
			return "", fmt.Errorf("%s: bad bulk reply %q", args[0], line)
		}
		body := make([]byte, n+2)
		if _, err := io.ReadFull(rd, body); err != nil {
			return "", fmt.Errorf("%s: %w", args[0], err)
		}
		return string(body[:n]), nil
	}
	var auth []string
	switch {
	case r.Password != "":
		auth = []string{"AUTH", r.Password}
	case r.Username != "":
		auth = []string{"AUTH", r.Username, r.UserPassword}
	}
	if auth != nil {
		reply, err := roundTrip(auth...)
		if err != nil {
			return err
		}
		if reply != "+OK" {
			return fmt.Errorf("AUTH answered %q", reply)
		}
	}
	reply, err := roundTrip("PING")
	if err != nil {
		return err
	}
	if reply != "+PONG" {
		return fmt.Errorf("PING answered %q", reply)
	}
	info, err := roundTrip("INFO", "server")
	if err != nil {
		return err
	}
	want := fmt.Sprintf("process_id:%d", pid)
	for line := range strings.Lines(info) {
		if strings.TrimSpace(line) == want {
			return nil
		}
	}
	return fmt.Errorf("the server on %s is not process %d (INFO server has no %q)", r.Addr, pid, want)
}
