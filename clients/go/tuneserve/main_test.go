package tuneserve

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// live is the server that clients/testserver.py started for the tests (nil: Python is missing).
var live *testServer

type testServer struct {
	Target     string `json:"target"`
	TinyBase   string `json:"tiny_base"`
	Fixtures   string `json:"fixtures"`
	AdminToken string `json:"admin_token"`
	logs       *syncBuffer
}

var skipReason string

// TestMain starts clients/testserver.py (a real tuneserve server with tiny models on a loopback
// port) with the Python of TUNESERVE_PYTHON, default <repo>/.venv/bin/python (`make install`).
// TUNESERVE_TESTSERVER_CACHE keeps its tiny models between runs (default: the user cache folder).
func TestMain(m *testing.M) {
	os.Exit(run(m))
}

func run(m *testing.M) int {
	repo, err := filepath.Abs("../../..")
	if err != nil {
		panic(err)
	}
	python := os.Getenv("TUNESERVE_PYTHON")
	if python == "" {
		python = filepath.Join(repo, ".venv", "bin", "python")
	}
	if _, err := os.Stat(python); err != nil {
		skipReason = fmt.Sprintf("live tests skipped: no Python at %s (run `make install` or set TUNESERVE_PYTHON)", python)
		fmt.Fprintln(os.Stderr, skipReason)
		return m.Run()
	}
	cache := os.Getenv("TUNESERVE_TESTSERVER_CACHE")
	if cache == "" {
		dir, err := os.UserCacheDir()
		if err != nil {
			dir = os.TempDir()
		}
		cache = filepath.Join(dir, "tuneserve", "testserver")
	}
	token := make([]byte, 16)
	_, _ = rand.Read(token)
	harness = func(args ...string) (*testServer, func(), error) {
		args = append([]string{filepath.Join(repo, "clients", "testserver.py"), "--cache", cache}, args...)
		return startServer(python, args...)
	}
	srv, stop, err := harness("--admin-token", hex.EncodeToString(token))
	if err != nil {
		fmt.Fprintf(os.Stderr, "clients/testserver.py did not start: %v\n", err)
		return 1
	}
	live = srv
	code := m.Run()
	stop()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "server logs (tail):\n%s\n", srv.logs.tail(6000))
	}
	return code
}

// harness starts another clients/testserver.py with these arguments (nil: Python is missing).
var harness func(args ...string) (*testServer, func(), error)

// startServer runs python with args (clients/testserver.py ...) and reads the JSON line it prints once
// serving; stop closes its stdin, which stops the server.
func startServer(python string, args ...string) (*testServer, func(), error) {
	cmd := exec.Command(python, args...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return nil, nil, err
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return nil, nil, err
	}
	logs := &syncBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		return nil, nil, err
	}
	stop := func() {
		stdin.Close()
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case <-done:
		case <-time.After(60 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	srv := &testServer{logs: logs}
	ready := make(chan error, 1)
	go func() {
		line, err := bufio.NewReader(stdout).ReadBytes('\n')
		if err == nil {
			err = json.Unmarshal(line, srv)
		}
		ready <- err
		_, _ = io.Copy(io.Discard, stdout)
	}()
	select {
	case err = <-ready:
	case <-time.After(10 * time.Minute):
		err = fmt.Errorf("not serving after 10 minutes")
	}
	if err != nil {
		stop()
		return nil, nil, fmt.Errorf("%w\n%s", err, logs.tail(6000))
	}
	return srv, stop, nil
}

// needServer skips t when the live server could not be started for want of Python.
func needServer(t *testing.T) *testServer {
	t.Helper()
	if live == nil {
		t.Skip(skipReason)
	}
	return live
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) tail(n int) string {
	b.mu.Lock()
	defer b.mu.Unlock()
	s := b.buf.String()
	if len(s) > n {
		s = s[len(s)-n:]
	}
	return s
}
