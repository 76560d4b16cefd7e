// Package main is the Go half of libtailscale-sys: a small C API over
// tailscale.com/tsnet, built as a c-archive and linked into the tailops
// binary.
//
// The API follows upstream libtailscale where it has a function for the job
// (tailscale_new, tailscale_set_dir, tailscale_up, tailscale_listen,
// tailscale_dial, tailscale_close, tailscale_errmsg …) and adds what we need
// beside it (whois, status, listen_service, a log sink, an envknob setter).
//
// Two deliberate differences from upstream:
//
//   - A listener is one end of a SOCK_SEQPACKET socketpair. Each accepted
//     connection is handed over as one message: SCM_RIGHTS carries the conn's
//     fd and the payload carries the remote address ("ip:port"). Upstream
//     keeps remote addresses in a map keyed by the Go-side fd, which races
//     with fd reuse; a message carries its own address, so it cannot.
//   - Strings returned to C (JSON documents) are malloc'ed and must be
//     released with tailscale_free.
//
// Every blocking call (up, whois, status, dial) takes a timeout in
// milliseconds, so the Rust side never waits forever.
package main

/*
#include <stdlib.h>
#include <string.h>
*/
import "C"

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"tailscale.com/envknob"
	"tailscale.com/ipn/ipnstate"
	"tailscale.com/tailcfg"
	"tailscale.com/tsnet"
)

// memory (issue 15, resource figures): see the block at the end.
import (
	"runtime/debug"
	"runtime/metrics"
)

func main() {}

func init() {
	// Quiet and offline by default: no log upload to Tailscale's log
	// service. The embedding program may turn it back on with
	// tailscale_setenv("TS_NO_LOGS_NO_SUPPORT", "false") before start.
	envknob.SetNoLogsNoSupport()
}

// node is one tsnet.Server plus the per-node state the C API needs.
type node struct {
	s *tsnet.Server

	// ctx is cancelled by tailscale_close, so a blocking call in flight
	// (up waiting for a login, a dial) returns at once instead of at its
	// timeout.
	ctx    context.Context
	cancel context.CancelFunc

	mu      sync.Mutex
	lastErr string
	logFile *os.File
	verbose bool
}

var (
	nodesMu sync.Mutex
	nodes         = map[C.int]*node{}
	nextID  C.int = 1
)

func getNode(sd C.int) *node {
	nodesMu.Lock()
	defer nodesMu.Unlock()
	return nodes[sd]
}

// fail records err as the node's last error and returns -1.
func (n *node) fail(err error) C.int {
	n.mu.Lock()
	n.lastErr = err.Error()
	n.mu.Unlock()
	return -1
}

func (n *node) logLine(prefix byte, format string, args ...any) {
	n.mu.Lock()
	f, verbose := n.logFile, n.verbose
	n.mu.Unlock()
	if f == nil || (prefix == 'D' && !verbose) {
		return
	}
	msg := fmt.Sprintf(format, args...)
	msg = strings.ReplaceAll(strings.TrimRight(msg, "\n"), "\n", " ")
	// One write per line, so concurrent writers never interleave.
	_, _ = f.Write([]byte(string(prefix) + " " + msg + "\n"))
}

//export tailscale_new
func tailscale_new() C.int {
	nodesMu.Lock()
	defer nodesMu.Unlock()
	id := nextID
	nextID++
	ctx, cancel := context.WithCancel(context.Background())
	n := &node{s: &tsnet.Server{}, ctx: ctx, cancel: cancel}
	n.s.Logf = func(format string, args ...any) { n.logLine('D', format, args...) }
	n.s.UserLogf = func(format string, args ...any) { n.logLine('U', format, args...) }
	nodes[id] = n
	return id
}

func setString(sd C.int, v *C.char, set func(*tsnet.Server, string)) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	set(n.s, C.GoString(v))
	return 0
}

//export tailscale_set_dir
func tailscale_set_dir(sd C.int, dir *C.char) C.int {
	return setString(sd, dir, func(s *tsnet.Server, v string) { s.Dir = v })
}

//export tailscale_set_hostname
func tailscale_set_hostname(sd C.int, hostname *C.char) C.int {
	return setString(sd, hostname, func(s *tsnet.Server, v string) { s.Hostname = v })
}

//export tailscale_set_authkey
func tailscale_set_authkey(sd C.int, authkey *C.char) C.int {
	return setString(sd, authkey, func(s *tsnet.Server, v string) { s.AuthKey = v })
}

//export tailscale_set_control_url
func tailscale_set_control_url(sd C.int, url *C.char) C.int {
	return setString(sd, url, func(s *tsnet.Server, v string) { s.ControlURL = v })
}

//export tailscale_set_ephemeral
func tailscale_set_ephemeral(sd C.int, ephemeral C.int) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	n.s.Ephemeral = ephemeral != 0
	return 0
}

// tailscale_set_advertise_tags takes a comma-separated list ("tag:a,tag:b").
//
//export tailscale_set_advertise_tags
func tailscale_set_advertise_tags(sd C.int, tags *C.char) C.int {
	return setString(sd, tags, func(s *tsnet.Server, v string) {
		s.AdvertiseTags = nil
		for _, t := range strings.Split(v, ",") {
			if t = strings.TrimSpace(t); t != "" {
				s.AdvertiseTags = append(s.AdvertiseTags, t)
			}
		}
	})
}

// tailscale_set_logfd makes the node write its log lines to fd, one line
// per write, each prefixed "U " (user-facing: login URLs, state changes) or
// "D " (backend debug, only when verbose != 0). fd == -1 discards all logs,
// which is the default. The fd is duplicated; the caller keeps its own.
//
//export tailscale_set_logfd
func tailscale_set_logfd(sd C.int, fd C.int, verbose C.int) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	var f *os.File
	if fd >= 0 {
		dup, err := syscall.Dup(int(fd))
		if err != nil {
			return n.fail(fmt.Errorf("dup log fd: %w", err))
		}
		syscall.CloseOnExec(dup)
		f = os.NewFile(uintptr(dup), "tailscale-log")
	}
	n.mu.Lock()
	old := n.logFile
	n.logFile, n.verbose = f, verbose != 0
	n.mu.Unlock()
	if old != nil {
		old.Close()
	}
	return 0
}

// tailscale_setenv sets an environment knob for the Go side. The Go runtime
// copies the process environment at start-up, so variables set later by the
// host program are invisible to os.Getenv; envknob.Setenv updates both the
// Go environment and already-registered knobs.
//
//export tailscale_setenv
func tailscale_setenv(key, value *C.char) C.int {
	envknob.Setenv(C.GoString(key), C.GoString(value))
	return 0
}

// upInfo is what tailscale_up returns.
type upInfo struct {
	IPs            []string `json:"ips"`
	DNSName        string   `json:"dns_name"`
	Hostname       string   `json:"hostname"`
	MagicDNSSuffix string   `json:"magic_dns_suffix"`
	BackendState   string   `json:"backend_state"`
	CertDomains    []string `json:"cert_domains"`
}

func (n *node) timeoutCtx(ms C.int) (context.Context, context.CancelFunc) {
	if ms <= 0 {
		ms = 60_000
	}
	return context.WithTimeout(n.ctx, time.Duration(ms)*time.Millisecond)
}

// tailscale_up starts the node and waits (at most timeout_ms) until it is
// connected to the tailnet. On success *out is a JSON document (upInfo) to be
// freed with tailscale_free.
//
//export tailscale_up
func tailscale_up(sd C.int, timeoutMs C.int, out **C.char) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	ctx, cancel := n.timeoutCtx(timeoutMs)
	defer cancel()
	st, err := n.s.Up(ctx)
	if err != nil {
		if n.ctx.Err() != nil {
			return n.fail(errors.New("node closed while waiting for it to come up"))
		}
		if ctx.Err() != nil {
			return n.fail(fmt.Errorf("timed out after %d ms waiting for the node to reach Running (state: %s): %w", int(timeoutMs), backendState(n.s), err))
		}
		return n.fail(err)
	}
	info := upInfo{BackendState: st.BackendState, CertDomains: st.CertDomains}
	if st.CurrentTailnet != nil {
		info.MagicDNSSuffix = st.CurrentTailnet.MagicDNSSuffix
	}
	for _, ip := range st.TailscaleIPs {
		info.IPs = append(info.IPs, ip.String())
	}
	if st.Self != nil {
		info.DNSName = strings.TrimSuffix(st.Self.DNSName, ".")
		info.Hostname = st.Self.HostName
	}
	return writeJSON(n, out, info)
}

func backendState(s *tsnet.Server) string {
	lc, err := s.LocalClient()
	if err != nil {
		return "unknown"
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	st, err := lc.StatusWithoutPeers(ctx)
	if err != nil {
		return "unknown"
	}
	if st.AuthURL != "" {
		return st.BackendState + ", login at " + st.AuthURL
	}
	return st.BackendState
}

func writeJSON(n *node, out **C.char, v any) C.int {
	b, err := json.Marshal(v)
	if err != nil {
		return n.fail(err)
	}
	*out = C.CString(string(b))
	return 0
}

//export tailscale_free
func tailscale_free(p *C.char) {
	C.free(unsafe.Pointer(p))
}

// tailscale_close shuts the node down (an ephemeral node logs out) and
// forgets it.
//
//export tailscale_close
func tailscale_close(sd C.int) C.int {
	nodesMu.Lock()
	n := nodes[sd]
	delete(nodes, sd)
	nodesMu.Unlock()
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	n.cancel()
	err := n.s.Close()
	n.mu.Lock()
	if n.logFile != nil {
		n.logFile.Close()
		n.logFile = nil
	}
	n.mu.Unlock()
	if err != nil && !errors.Is(err, net.ErrClosed) {
		return -1
	}
	return 0
}

// tailscale_errmsg copies the node's last error message into buf
// (NUL-terminated, truncated to buflen). Same contract as upstream.
//
//export tailscale_errmsg
func tailscale_errmsg(sd C.int, buf *C.char, buflen C.size_t) C.int {
	if buf == nil || buflen == 0 {
		return C.int(syscall.EINVAL)
	}
	n := getNode(sd)
	msg := "no such tailscale node"
	if n != nil {
		n.mu.Lock()
		msg = n.lastErr
		n.mu.Unlock()
	}
	dst := unsafe.Slice((*byte)(unsafe.Pointer(buf)), int(buflen))
	k := copy(dst[:len(dst)-1], msg)
	dst[k] = 0
	if k < len(msg) {
		return C.int(syscall.ERANGE)
	}
	return 0
}

// tailscale_listen listens on the tailnet (network "tcp", addr ":80") and
// stores in *listener_out a SOCK_SEQPACKET fd that yields one message per
// accepted connection (see the package comment). Closing that fd closes the
// tailnet listener.
//
//export tailscale_listen
func tailscale_listen(sd C.int, network, addr *C.char, listenerOut *C.int) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	ln, err := n.s.Listen(C.GoString(network), C.GoString(addr))
	if err != nil {
		return n.fail(err)
	}
	return handOver(n, ln, listenerOut)
}

// tailscale_listen_tls is tailscale_listen with TLS terminated on the Go
// side using the node's MagicDNS certificate (needs HTTPS enabled on the
// tailnet).
//
//export tailscale_listen_tls
func tailscale_listen_tls(sd C.int, network, addr *C.char, listenerOut *C.int) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	ln, err := n.s.ListenTLS(C.GoString(network), C.GoString(addr))
	if err != nil {
		return n.fail(err)
	}
	return handOver(n, ln, listenerOut)
}

// tailscale_listen_service advertises this (tagged) node as a host of the
// Tailscale Service name ("svc:tailops") in HTTP mode on port, with TLS
// when https != 0. *fqdn_out receives the Service's MagicDNS name (free with
// tailscale_free). Connections arrive through the node's serve proxy, which
// adds Tailscale-User-Login / Tailscale-App-Capabilities headers.
//
//export tailscale_listen_service
func tailscale_listen_service(sd C.int, name *C.char, port C.int, https C.int, listenerOut *C.int, fqdnOut **C.char) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	if port <= 0 || port > 65535 {
		return n.fail(fmt.Errorf("service port %d out of range", int(port)))
	}
	ln, err := n.s.ListenService(C.GoString(name), tsnet.ServiceModeHTTP{Port: uint16(port), HTTPS: https != 0})
	if err != nil {
		return n.fail(err)
	}
	if rc := handOver(n, ln, listenerOut); rc != 0 {
		return rc
	}
	*fqdnOut = C.CString(ln.FQDN)
	return 0
}

// handOver creates the seqpacket pair for ln and starts its accept loop.
func handOver(n *node, ln net.Listener, listenerOut *C.int) C.int {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_SEQPACKET|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		ln.Close()
		return n.fail(fmt.Errorf("socketpair: %w", err))
	}
	goSide := os.NewFile(uintptr(fds[1]), "tailscale-listener")
	fc, err := net.FileConn(goSide)
	goSide.Close() // FileConn dup'ed it
	if err != nil {
		syscall.Close(fds[0])
		ln.Close()
		return n.fail(fmt.Errorf("listener conn: %w", err))
	}
	uc := fc.(*net.UnixConn)
	go watchPeerClose(uc, ln)
	go acceptLoop(n, ln, uc)
	*listenerOut = C.int(fds[0])
	return 0
}

// watchPeerClose closes ln when the host program closes its end of the
// pair: a read on a seqpacket socket returns EOF once the peer is gone.
func watchPeerClose(uc *net.UnixConn, ln net.Listener) {
	buf := make([]byte, 1)
	for {
		if _, err := uc.Read(buf); err != nil {
			ln.Close()
			return
		}
	}
}

func acceptLoop(n *node, ln net.Listener, uc *net.UnixConn) {
	defer uc.Close()
	defer ln.Close()
	for {
		conn, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				n.logLine('D', "tailops listener: accept: %v", err)
			}
			return
		}
		fd, err := bridge(conn)
		if err != nil {
			n.logLine('U', "tailops listener: cannot hand over connection: %v", err)
			conn.Close()
			continue
		}
		rights := syscall.UnixRights(fd)
		payload := []byte(conn.RemoteAddr().String())
		_, _, err = uc.WriteMsgUnix(payload, rights, nil)
		syscall.Close(fd) // the receiver holds its own copy now (or nobody does)
		if err != nil {
			// The host program closed the listener: stop accepting.
			return
		}
	}
}

// bridge connects conn to a new SOCK_STREAM socketpair and returns the end
// for the host program. Bytes are copied both ways; a half-close on one
// side is passed on as a half-close on the other.
func bridge(conn net.Conn) (int, error) {
	fds, err := syscall.Socketpair(syscall.AF_UNIX, syscall.SOCK_STREAM|syscall.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	f := os.NewFile(uintptr(fds[1]), "tailscale-conn")
	local, err := net.FileConn(f)
	f.Close()
	if err != nil {
		syscall.Close(fds[0])
		return -1, err
	}
	go pipe(conn, local.(*net.UnixConn))
	return fds[0], nil
}

type closeWriter interface{ CloseWrite() error }

func pipe(remote net.Conn, local *net.UnixConn) {
	var wg sync.WaitGroup
	wg.Add(2)
	copyHalf := func(dst, src net.Conn) {
		defer wg.Done()
		_, err := io.Copy(dst, src)
		if cw, ok := dst.(closeWriter); ok && err == nil {
			_ = cw.CloseWrite()
		} else {
			// Reset-like: an error on one side ends both.
			remote.Close()
			local.Close()
		}
	}
	go copyHalf(remote, local)
	go copyHalf(local, remote)
	wg.Wait()
	remote.Close()
	local.Close()
}

// tailscale_dial dials addr over the tailnet and stores a connected
// SOCK_STREAM fd in *conn_out.
//
//export tailscale_dial
func tailscale_dial(sd C.int, network, addr *C.char, timeoutMs C.int, connOut *C.int) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	ctx, cancel := n.timeoutCtx(timeoutMs)
	defer cancel()
	conn, err := n.s.Dial(ctx, C.GoString(network), C.GoString(addr))
	if err != nil {
		return n.fail(err)
	}
	fd, err := bridge(conn)
	if err != nil {
		conn.Close()
		return n.fail(err)
	}
	*connOut = C.int(fd)
	return 0
}

// whoIs is the JSON shape of tailscale_whois.
type whoIs struct {
	LoginName    string                       `json:"login_name"`
	DisplayName  string                       `json:"display_name"`
	UserID       int64                        `json:"user_id"`
	NodeName     string                       `json:"node_name"`
	NodeID       string                       `json:"node_id"`
	ComputedName string                       `json:"computed_name"`
	Tags         []string                     `json:"tags"`
	Addresses    []string                     `json:"addresses"`
	OS           string                       `json:"os"`
	CapMap       map[string][]json.RawMessage `json:"cap_map"`
}

// tailscale_whois looks up the tailnet identity behind remote_addr
// ("ip:port" or "ip") and stores a JSON document (whoIs) in *out.
//
//export tailscale_whois
func tailscale_whois(sd C.int, remoteAddr *C.char, timeoutMs C.int, out **C.char) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	lc, err := n.s.LocalClient()
	if err != nil {
		return n.fail(err)
	}
	ctx, cancel := n.timeoutCtx(timeoutMs)
	defer cancel()
	res, err := lc.WhoIs(ctx, C.GoString(remoteAddr))
	if err != nil {
		return n.fail(err)
	}
	w := whoIs{CapMap: map[string][]json.RawMessage{}, Tags: []string{}, Addresses: []string{}}
	if res.Node != nil {
		w.NodeName = strings.TrimSuffix(res.Node.Name, ".")
		w.NodeID = string(res.Node.StableID)
		w.ComputedName = res.Node.ComputedName
		w.Tags = append(w.Tags, res.Node.Tags...)
		for _, a := range res.Node.Addresses {
			w.Addresses = append(w.Addresses, a.Addr().String())
		}
		if res.Node.Hostinfo.Valid() {
			w.OS = res.Node.Hostinfo.OS()
		}
	}
	if res.UserProfile != nil && len(w.Tags) == 0 {
		w.LoginName = res.UserProfile.LoginName
		w.DisplayName = res.UserProfile.DisplayName
		w.UserID = int64(res.UserProfile.ID)
	}
	for cap, vals := range res.CapMap {
		raws := make([]json.RawMessage, 0, len(vals))
		for _, v := range vals {
			raws = append(raws, json.RawMessage(v))
		}
		w.CapMap[string(cap)] = raws
	}
	return writeJSON(n, out, w)
}

type peerStatus struct {
	ID       string     `json:"id"`
	HostName string     `json:"hostname"`
	DNSName  string     `json:"dns_name"`
	IPs      []string   `json:"ips"`
	OS       string     `json:"os"`
	Tags     []string   `json:"tags"`
	User     string     `json:"user"`
	Online   bool       `json:"online"`
	Active   bool       `json:"active"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
	Relay    string     `json:"relay"`
	CurAddr  string     `json:"cur_addr"`
	Direct   bool       `json:"direct"`
	RxBytes  int64      `json:"rx_bytes"`
	TxBytes  int64      `json:"tx_bytes"`
	// net-read (issue 11): node key expiry, the last WireGuard handshake
	// and the peer relay in use, for tailnet_status.
	KeyExpiry     *time.Time `json:"key_expiry,omitempty"`
	LastHandshake *time.Time `json:"last_handshake,omitempty"`
	PeerRelay     string     `json:"peer_relay,omitempty"`
}

type statusOut struct {
	BackendState   string       `json:"backend_state"`
	AuthURL        string       `json:"auth_url,omitempty"`
	MagicDNSSuffix string       `json:"magic_dns_suffix"`
	TailnetName    string       `json:"tailnet_name"`
	Self           *peerStatus  `json:"self"`
	Peers          []peerStatus `json:"peers"`
	Health         []string     `json:"health"`
}

func toPeer(st *ipnstate.Status, p *ipnstate.PeerStatus) peerStatus {
	out := peerStatus{
		ID: string(p.ID), HostName: p.HostName, DNSName: strings.TrimSuffix(p.DNSName, "."),
		OS: p.OS, Online: p.Online, Active: p.Active, Relay: p.Relay, CurAddr: p.CurAddr,
		Direct: p.CurAddr != "", RxBytes: p.RxBytes, TxBytes: p.TxBytes, IPs: []string{}, Tags: []string{},
	}
	for _, ip := range p.TailscaleIPs {
		out.IPs = append(out.IPs, ip.String())
	}
	if p.Tags != nil {
		out.Tags = append(out.Tags, p.Tags.AsSlice()...)
	}
	if u, ok := st.User[p.UserID]; ok && len(out.Tags) == 0 {
		out.User = u.LoginName
	}
	if !p.LastSeen.IsZero() {
		t := p.LastSeen
		out.LastSeen = &t
	}
	out.KeyExpiry = p.KeyExpiry
	if !p.LastHandshake.IsZero() {
		t := p.LastHandshake
		out.LastHandshake = &t
	}
	out.PeerRelay = p.PeerRelay
	return out
}

// tailscale_status stores the node's view of the tailnet as JSON in *out.
//
//export tailscale_status
func tailscale_status(sd C.int, timeoutMs C.int, out **C.char) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	lc, err := n.s.LocalClient()
	if err != nil {
		return n.fail(err)
	}
	ctx, cancel := n.timeoutCtx(timeoutMs)
	defer cancel()
	st, err := lc.Status(ctx)
	if err != nil {
		return n.fail(err)
	}
	o := statusOut{BackendState: st.BackendState, AuthURL: st.AuthURL, Peers: []peerStatus{}, Health: st.Health}
	if o.Health == nil {
		o.Health = []string{}
	}
	if st.CurrentTailnet != nil {
		o.MagicDNSSuffix = st.CurrentTailnet.MagicDNSSuffix
		o.TailnetName = st.CurrentTailnet.Name
	}
	if st.Self != nil {
		self := toPeer(st, st.Self)
		o.Self = &self
	}
	for _, k := range st.Peers() {
		o.Peers = append(o.Peers, toPeer(st, st.Peer[k]))
	}
	return writeJSON(n, out, o)
}

// ---- net-read (issue 11): tailnet_ping ----

// tailscale_ping sends ONE ping of kind "disco" or "tsmp" to the tailnet
// IP ip through this node and stores the result (ipnstate.PingResult:
// latency, direct endpoint or DERP region) as JSON in *out. A peer that
// does not answer within timeoutMs is an error result, not a failure.
//
//export tailscale_ping
func tailscale_ping(sd C.int, ip, kind *C.char, timeoutMs C.int, out **C.char) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	addr, err := netip.ParseAddr(C.GoString(ip))
	if err != nil {
		return n.fail(err)
	}
	var pt tailcfg.PingType
	switch C.GoString(kind) {
	case "disco":
		pt = tailcfg.PingDisco
	case "tsmp":
		pt = tailcfg.PingTSMP
	default:
		return n.fail(fmt.Errorf("unknown ping kind %q", C.GoString(kind)))
	}
	lc, err := n.s.LocalClient()
	if err != nil {
		return n.fail(err)
	}
	ctx, cancel := n.timeoutCtx(timeoutMs)
	defer cancel()
	res, err := lc.Ping(ctx, addr, pt)
	if err != nil {
		if ctx.Err() != nil {
			return writeJSON(n, out, &ipnstate.PingResult{IP: addr.String(), Err: "timeout: no reply"})
		}
		return n.fail(err)
	}
	return writeJSON(n, out, res)
}

// ---- reach: Tailscale Service with forwarded app capabilities ----

// tailscale_listen_service_caps is tailscale_listen_service with
// AcceptAppCaps: caps is a newline-separated list of app capability names
// the serve proxy forwards (for every path, mount "/") in the
// Tailscale-App-Capabilities header. An empty list forwards none.
//
//export tailscale_listen_service_caps
func tailscale_listen_service_caps(sd C.int, name *C.char, port C.int, https C.int, caps *C.char, listenerOut *C.int, fqdnOut **C.char) C.int {
	n := getNode(sd)
	if n == nil {
		return C.int(-int(syscall.EBADF))
	}
	if port <= 0 || port > 65535 {
		return n.fail(fmt.Errorf("service port %d out of range", int(port)))
	}
	mode := tsnet.ServiceModeHTTP{Port: uint16(port), HTTPS: https != 0}
	var list []string
	for _, c := range strings.Split(C.GoString(caps), "\n") {
		if c != "" {
			list = append(list, c)
		}
	}
	if len(list) > 0 {
		mode.AcceptAppCaps = map[string][]string{"/": list}
	}
	ln, err := n.s.ListenService(C.GoString(name), mode)
	if err != nil {
		return n.fail(err)
	}
	if rc := handOver(n, ln, listenerOut); rc != 0 {
		return rc
	}
	*fqdnOut = C.CString(ln.FQDN)
	return 0
}

// ---- memory: the Go runtime's memory knobs and figures (issue 15) ----

// tailscale_set_go_memory sets the Go runtime's soft memory limit (bytes;
// <= 0 leaves it as it is) and its GC percent (GOGC; 0 leaves it, < 0
// turns the proportional GC off so only the limit triggers collections).
// The Go runtime read GOMEMLIMIT and GOGC from the environment when the
// process started; the host program calls this only when they were unset,
// so an operator's environment still wins.
//
//export tailscale_set_go_memory
func tailscale_set_go_memory(limitBytes C.longlong, gcPercent C.int) C.int {
	if limitBytes > 0 {
		debug.SetMemoryLimit(int64(limitBytes))
	}
	if gcPercent != 0 {
		debug.SetGCPercent(int(gcPercent))
	}
	return 0
}

// goMemory is what tailscale_go_memory returns: a few runtime/metrics
// figures, in bytes unless named otherwise.
type goMemory struct {
	Total        uint64 `json:"total"`
	HeapObjects  uint64 `json:"heap_objects"`
	HeapFree     uint64 `json:"heap_free"`
	HeapReleased uint64 `json:"heap_released"`
	HeapUnused   uint64 `json:"heap_unused"`
	Stacks       uint64 `json:"stacks"`
	Metadata     uint64 `json:"metadata"`
	Other        uint64 `json:"other"`
	HeapGoal     uint64 `json:"heap_goal"`
	MemoryLimit  uint64 `json:"memory_limit"`
	GCPercent    uint64 `json:"gc_percent"`
	GCCycles     uint64 `json:"gc_cycles"`
	Goroutines   uint64 `json:"goroutines"`
}

var goMemoryMetrics = []struct {
	name string
	dst  func(*goMemory) *uint64
}{
	{"/memory/classes/total:bytes", func(m *goMemory) *uint64 { return &m.Total }},
	{"/memory/classes/heap/objects:bytes", func(m *goMemory) *uint64 { return &m.HeapObjects }},
	{"/memory/classes/heap/free:bytes", func(m *goMemory) *uint64 { return &m.HeapFree }},
	{"/memory/classes/heap/released:bytes", func(m *goMemory) *uint64 { return &m.HeapReleased }},
	{"/memory/classes/heap/unused:bytes", func(m *goMemory) *uint64 { return &m.HeapUnused }},
	{"/memory/classes/heap/stacks:bytes", func(m *goMemory) *uint64 { return &m.Stacks }},
	{"/memory/classes/metadata/other:bytes", func(m *goMemory) *uint64 { return &m.Metadata }},
	{"/memory/classes/other:bytes", func(m *goMemory) *uint64 { return &m.Other }},
	{"/gc/heap/goal:bytes", func(m *goMemory) *uint64 { return &m.HeapGoal }},
	{"/gc/gomemlimit:bytes", func(m *goMemory) *uint64 { return &m.MemoryLimit }},
	{"/gc/gogc:percent", func(m *goMemory) *uint64 { return &m.GCPercent }},
	{"/gc/cycles/total:gc-cycles", func(m *goMemory) *uint64 { return &m.GCCycles }},
	{"/sched/goroutines:goroutines", func(m *goMemory) *uint64 { return &m.Goroutines }},
}

// tailscale_go_memory stores a goMemory JSON document in *out (free with
// tailscale_free). When freeOS is non-zero it first runs a GC and returns
// every free page to the OS (debug.FreeOSMemory), as a diagnostic.
//
//export tailscale_go_memory
func tailscale_go_memory(freeOS C.int, out **C.char) C.int {
	if freeOS != 0 {
		debug.FreeOSMemory()
	}
	samples := make([]metrics.Sample, len(goMemoryMetrics))
	for i, m := range goMemoryMetrics {
		samples[i].Name = m.name
	}
	metrics.Read(samples)
	var g goMemory
	for i, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			*goMemoryMetrics[i].dst(&g) = s.Value.Uint64()
		}
	}
	// Every value is a number: Marshal cannot fail.
	b, _ := json.Marshal(g)
	*out = C.CString(string(b))
	return 0
}
