package testservers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// ErrNotRunning is returned (wrapped) by Pause and Resume when the server
// process is not running, e.g. after Kill.
var ErrNotRunning = errors.New("server is not running")

// ErrStopped is returned (wrapped) by Restart after Stop: Stop removes the
// data directory, so there is nothing left to restart.
var ErrStopped = errors.New("server was stopped and its directory removed")

const (
	// stopGrace is how long Stop waits after SIGTERM before it sends SIGKILL.
	stopGrace = 5 * time.Second
	// killWait bounds the wait for the process to be reaped after SIGKILL.
	killWait = 10 * time.Second
	// pollInterval is the delay between two readiness probes.
	pollInterval = 50 * time.Millisecond
	// probeTimeout bounds a single readiness probe.
	probeTimeout = time.Second
	// startAttempts is how often a start is tried with fresh ports when the
	// server fails because its port was taken in the meantime.
	startAttempts = 5
	// logTailBytes is how much of a server log goes into error messages.
	logTailBytes = 4096
)

// process is one running server process, the leader of its own process
// group.
type process struct {
	cmd     *exec.Cmd
	logPath string
	done    chan struct{} // closed once the process has been reaped
	waitErr error         // result of cmd.Wait, valid after done is closed
}

// startProcess starts bin with args in its own process group, appending
// stdout and stderr to logPath. The process gets SIGKILL when the thread
// that started it dies, so it cannot outlive the test binary.
//
// No context is attached to the process: its lifetime is controlled only by
// the stop/kill methods, so a start context with a timeout does not kill a
// server that is still in use.
func startProcess(bin string, args []string, dir, logPath string) (*process, error) {
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening server log: %w", err)
	}
	// The child has its own copy of the descriptor.
	defer logFile.Close()

	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdin = nil
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Setpgid:   true,
		Pdeathsig: syscall.SIGKILL,
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", bin, err)
	}
	p := &process{cmd: cmd, logPath: logPath, done: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// pid returns the process id (which is also the process group id).
func (p *process) pid() int { return p.cmd.Process.Pid }

// exited reports whether the process has exited and been reaped.
func (p *process) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// signalGroup sends sig to the whole process group. The group is only
// signalled while its leader has not been reaped, so the id cannot have been
// reused by an unrelated process.
func (p *process) signalGroup(sig syscall.Signal) error {
	if p.exited() {
		return nil
	}
	if err := syscall.Kill(-p.pid(), sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("sending %v to process group %d: %w", sig, p.pid(), err)
	}
	return nil
}

// kill sends SIGKILL to the process group and waits until the process is
// reaped.
func (p *process) kill() error {
	if err := p.signalGroup(syscall.SIGKILL); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(killWait):
		return fmt.Errorf("process %d did not exit within %v after SIGKILL", p.pid(), killWait)
	}
}

// stop sends SIGTERM (and SIGCONT, in case the process is paused) to the
// process group, waits up to stopGrace for the process to exit, and then
// kills it.
func (p *process) stop() error {
	grace := stopGrace
	if err := p.signalGroup(syscall.SIGTERM); err != nil {
		return err
	}
	if err := p.signalGroup(syscall.SIGCONT); err != nil {
		return err
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(grace):
		return p.kill()
	}
}

// exitDescription describes how the process ended, for error messages.
func (p *process) exitDescription() string {
	if p.waitErr == nil {
		return "exited with status 0"
	}
	return p.waitErr.Error()
}

// waitReady polls probe until it succeeds, the process exits or ctx ends.
// Errors carry the tail of the server log.
//
// The probe must make sure it talks to process p and not to another server
// that took the port in the meantime (p then fails with "Address already in
// use" and the start is retried on another port).
func waitReady(ctx context.Context, p *process, what string, probe func(ctx context.Context) error) error {
	var lastErr error
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-p.done:
			return &startError{
				what:    what,
				reason:  fmt.Sprintf("process %d %s before it became ready", p.pid(), p.exitDescription()),
				logPath: p.logPath,
				logTail: logTail(p.logPath),
			}
		case <-ctx.Done():
			reason := fmt.Sprintf("not ready: %v", ctx.Err())
			if lastErr != nil {
				reason += fmt.Sprintf(" (last probe: %v)", lastErr)
			}
			return &startError{
				what:    what,
				reason:  reason,
				logPath: p.logPath,
				logTail: logTail(p.logPath),
				err:     ctx.Err(),
			}
		case <-timer.C:
		}
		// A probe is cut short as soon as the process exits.
		probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
		go func() {
			select {
			case <-p.done:
				cancel()
			case <-probeCtx.Done():
			}
		}()
		lastErr = probe(probeCtx)
		cancel()
		if lastErr == nil {
			return nil
		}
		timer.Reset(pollInterval)
	}
}

// dialProbe connects to addr for a readiness probe. The connection is
// closed when ctx ends, which also interrupts blocked reads and writes.
func dialProbe(ctx context.Context, addr string) (net.Conn, func(), error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dialing %s: %w", addr, err)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	return conn, func() { stop(); conn.Close() }, nil
}

// startError reports a server that did not come up, with the end of its log.
type startError struct {
	what    string
	reason  string
	logPath string
	logTail string
	err     error
}

func (e *startError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", e.what, e.reason)
	if e.logTail != "" {
		fmt.Fprintf(&b, "\n--- tail of %s ---\n%s\n--- end of log ---", e.logPath, strings.TrimRight(e.logTail, "\n"))
	}
	return b.String()
}

func (e *startError) Unwrap() error { return e.err }

// portInUse reports whether the server failed because its port was taken.
func (e *startError) portInUse() bool {
	return strings.Contains(e.logTail, "Address already in use")
}

// isPortInUse reports whether err is a start failure caused by a port that
// was already taken; such starts are retried with other ports.
func isPortInUse(err error) bool {
	var se *startError
	return errors.As(err, &se) && se.portInUse()
}

// logTail returns the last logTailBytes of the file at path, starting at a
// line boundary, or "" if it cannot be read.
func logTail(path string) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	info, err := f.Stat()
	if err != nil {
		return ""
	}
	offset := max(info.Size()-logTailBytes, 0)
	buf := make([]byte, info.Size()-offset)
	n, err := f.ReadAt(buf, offset)
	if err != nil && !errors.Is(err, io.EOF) {
		return ""
	}
	buf = buf[:n]
	if offset > 0 {
		if i := bytes.IndexByte(buf, '\n'); i >= 0 {
			buf = buf[i+1:]
		}
	}
	return string(buf)
}

// loopback is the address servers listen on unless a test names another.
const loopback = "127.0.0.1"

// freePorts returns n distinct free TCP ports on 127.0.0.1.
func freePorts(n int) ([]int, error) { return freePortsOn(loopback, n) }

// freePortsOn returns n distinct free TCP ports on host. All listeners are
// held open until every port has been picked, so the ports are distinct;
// another process can still take one before the server binds it, which the
// start functions handle by retrying.
func freePortsOn(host string, n int) ([]int, error) {
	listeners := make([]net.Listener, 0, n)
	defer func() {
		for _, l := range listeners {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err != nil {
			return nil, fmt.Errorf("finding a free port on %s: %w", host, err)
		}
		listeners = append(listeners, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// lookBinary finds a binary: the value of envVar if set, else name on PATH.
// The error says what to install.
func lookBinary(envVar, name, install string) (string, error) {
	if v := os.Getenv(envVar); v != "" {
		path, err := exec.LookPath(v)
		if err != nil {
			return "", fmt.Errorf("%s not found at $%s=%q: %s: %w", name, envVar, v, install, err)
		}
		return path, nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not found: %s (or set $%s): %w", name, install, envVar, err)
	}
	return path, nil
}

// withDefaultTimeout returns ctx bounded by d unless ctx already has an
// earlier deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if deadline, ok := ctx.Deadline(); ok && time.Until(deadline) < d {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// lifecycle is the process management that Redis and ZooKeeper share: the
// running process and the Stop, Kill, Restart, Pause and Resume logic. The
// server types embed it, fill in its hooks before the first start and wrap
// its methods with their documented exported ones. Its methods are safe for
// concurrent use.
type lifecycle struct {
	// name names the kind of server in restart errors, e.g. "redis-server".
	name string
	// describe names this server in error messages.
	describe func() string
	// start launches the server process, waits until it is ready and sets
	// proc (see setRunningLocked). It is called with mu held.
	start func(ctx context.Context) error
	// removeDir removes the server's directory, which dirName names in
	// errors ("redis directory"). stop calls it after the process has ended.
	removeDir func() error
	dirName   string
	// startTimeout bounds a restart when the caller's context has no
	// earlier deadline.
	startTimeout time.Duration
	// retryDelay is the pause before a restart is retried because the port
	// is still in use.
	retryDelay time.Duration

	mu      sync.Mutex
	proc    *process // nil when not running
	paused  bool     // proc is stopped by pause
	stopped bool     // stop has been called; the directory is gone
}

// setRunningLocked records p as the running, unpaused server process. mu
// must be held.
func (l *lifecycle) setRunningLocked(p *process) {
	l.proc = p
	l.paused = false
}

// stop shuts the process down gracefully, waits for it to exit and removes
// the directory. It is idempotent; afterwards restart fails with
// ErrStopped.
func (l *lifecycle) stop() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return nil
	}
	l.stopped = true
	var errs []error
	if l.proc != nil {
		if err := l.proc.stop(); err != nil {
			errs = append(errs, fmt.Errorf("stopping %s: %w", l.describe(), err))
		}
		l.proc = nil
	}
	if err := l.removeDir(); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", l.dirName, err))
	}
	return errors.Join(errs...)
}

// kill crashes the process with SIGKILL and waits for it to exit. Killing a
// server that is not running does nothing.
func (l *lifecycle) kill() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc == nil {
		return nil
	}
	err := l.proc.kill()
	l.proc = nil
	if err != nil {
		return fmt.Errorf("killing %s: %w", l.describe(), err)
	}
	return nil
}

// restart shuts a running process down gracefully and starts the server
// again, retrying after retryDelay while its port is still in use. ctx
// bounds the start (by default startTimeout).
func (l *lifecycle) restart(ctx context.Context) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.stopped {
		return fmt.Errorf("restarting %s: %w", l.describe(), ErrStopped)
	}
	if l.proc != nil {
		if err := l.proc.stop(); err != nil {
			return fmt.Errorf("restarting %s: %w", l.describe(), err)
		}
		l.proc = nil
	}
	ctx, cancel := withDefaultTimeout(ctx, l.startTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		err := l.start(ctx)
		if err == nil {
			return nil
		}
		if !isPortInUse(err) || attempt == startAttempts || ctx.Err() != nil {
			return fmt.Errorf("restarting %s: %w", l.name, err)
		}
		time.Sleep(l.retryDelay)
	}
}

// pause freezes the process with SIGSTOP.
func (l *lifecycle) pause() error {
	return l.signal("pausing", syscall.SIGSTOP)
}

// resume lets a paused process continue (SIGCONT).
func (l *lifecycle) resume() error {
	return l.signal("resuming", syscall.SIGCONT)
}

// signal sends sig to the process group; verb describes it in errors. It
// fails with ErrNotRunning when there is no running process.
func (l *lifecycle) signal(verb string, sig syscall.Signal) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc == nil || l.proc.exited() {
		return fmt.Errorf("%s %s: %w", verb, l.describe(), ErrNotRunning)
	}
	if err := l.proc.signalGroup(sig); err != nil {
		return fmt.Errorf("%s %s: %w", verb, l.describe(), err)
	}
	l.paused = sig == syscall.SIGSTOP
	return nil
}

// running reports whether the server process is running and not paused.
func (l *lifecycle) running() bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.proc != nil && !l.proc.exited() && !l.paused
}

// pid returns the process id of the running server, or 0 if it is not
// running.
func (l *lifecycle) pid() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.proc == nil {
		return 0
	}
	return l.proc.pid()
}
