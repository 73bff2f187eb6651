// Copyright 2026 The distlock Authors.
// SPDX-License-Identifier: Apache-2.0

// Command probe is the tiny worker that `hack/local-cluster.sh smoke` runs in
// the containers of its smoke-test Job. It runs its steps in order and exits
// non-zero at the first that fails:
//
//	probe exit CODE         exit with CODE
//	probe sleep DURATION    sleep, e.g. 2s
//	probe redis HOST:PORT   send PING to a Redis server, expect +PONG
//	probe whoami            ask the API server, with the pod's service-account
//	                        token and CA (in-cluster), who the pod is
//
// e.g. `probe redis 10.213.0.1:6390 whoami exit 0`. It uses the standard
// library only, so it builds with the project's module as a static binary.
package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

const saDir = "/var/run/secrets/kubernetes.io/serviceaccount"

func main() {
	args := os.Args[1:]
	for len(args) > 0 {
		step := args[0]
		var err error
		switch step {
		case "exit":
			code, convErr := strconv.Atoi(arg(args, 1))
			if convErr != nil {
				fail(step, convErr)
			}
			fmt.Printf("probe: exit %d\n", code)
			os.Exit(code)
		case "sleep":
			var d time.Duration
			d, err = time.ParseDuration(arg(args, 1))
			if err == nil {
				fmt.Printf("probe: sleeping %s\n", d)
				time.Sleep(d)
			}
			args = args[2:]
		case "redis":
			err = pingRedis(arg(args, 1))
			args = args[2:]
		case "whoami":
			err = whoami()
			args = args[1:]
		default:
			fail(step, fmt.Errorf("unknown step"))
		}
		if err != nil {
			fail(step, err)
		}
	}
}

func arg(args []string, i int) string {
	if i >= len(args) {
		fail(args[0], fmt.Errorf("missing argument"))
	}
	return args[i]
}

func fail(step string, err error) {
	fmt.Fprintf(os.Stderr, "probe: %s: %v\n", step, err)
	os.Exit(1)
}

// pingRedis speaks just enough RESP to send PING and read the reply.
func pingRedis(addr string) error {
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	if err := conn.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return err
	}
	if _, err := io.WriteString(conn, "*1\r\n$4\r\nPING\r\n"); err != nil {
		return err
	}
	reply, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		return err
	}
	reply = strings.TrimSpace(reply)
	if reply != "+PONG" {
		return fmt.Errorf("unexpected reply %q", reply)
	}
	fmt.Printf("probe: redis %s (from %s) answered %s\n", addr, conn.LocalAddr(), reply)
	return nil
}

// whoami posts a SelfSubjectReview, which every authenticated user may do,
// to the API server named by the in-cluster environment.
func whoami() error {
	host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
	if host == "" || port == "" {
		return fmt.Errorf("KUBERNETES_SERVICE_HOST/PORT are not set")
	}
	token, err := os.ReadFile(saDir + "/token")
	if err != nil {
		return err
	}
	caPEM, err := os.ReadFile(saDir + "/ca.crt")
	if err != nil {
		return err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caPEM) {
		return fmt.Errorf("no certificate in %s/ca.crt", saDir)
	}
	client := &http.Client{
		Timeout:   10 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}},
	}
	url := "https://" + net.JoinHostPort(host, port) + "/apis/authentication.k8s.io/v1/selfsubjectreviews"
	body := []byte(`{"apiVersion":"authentication.k8s.io/v1","kind":"SelfSubjectReview"}`)
	req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(token)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer func() { _ = resp.Body.Close() }()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusCreated && resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s", resp.Status, data)
	}
	var review struct {
		Status struct {
			UserInfo struct {
				Username string   `json:"username"`
				Groups   []string `json:"groups"`
			} `json:"userInfo"`
		} `json:"status"`
	}
	if err := json.Unmarshal(data, &review); err != nil {
		return err
	}
	fmt.Printf("probe: API server %s says I am %s %v\n", net.JoinHostPort(host, port),
		review.Status.UserInfo.Username, review.Status.UserInfo.Groups)
	return nil
}
