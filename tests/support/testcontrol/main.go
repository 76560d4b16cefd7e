// Command testcontrol is TailOps' test control plane for what headscale
// cannot do: MagicDNS certificates (an embedded ACME CA) and Tailscale
// Services state. It runs, in one process and on loopback only:
//
//   - tailscale.com/tstest/integration/testcontrol (pinned to the
//     tailscale.com of libtailscale-sys) with MagicDNS, CertDomains for
//     every node, and TagOwners so `--advertise-tags` tags a node;
//   - a DERP server (plain HTTP: nodes run with TS_DEBUG_USE_DERP_HTTP=1)
//     and a STUN server;
//   - pebble (github.com/letsencrypt/pebble/v2) as a library, with
//     PEBBLE_VA_ALWAYS_VALID so DNS-01 needs no DNS, served over HTTPS
//     with a certificate from a CA this process makes up.
//
// It prints one JSON line (see [ready]) and runs until stdin closes or it
// is killed. Test-only endpoints under /tailops-test/ on the control URL
// let a test read the nodes and give a node a Service VIP (see
// handleService).
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"flag"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
	"tailscale.com/derp/derpserver"
	"tailscale.com/net/stunserver"
	"tailscale.com/tailcfg"
	"tailscale.com/tstest/integration/testcontrol"
	"tailscale.com/types/key"
)

// ready is the one line printed on stdout once everything listens.
type ready struct {
	ControlURL string `json:"control_url"`
	// ACMEURL is the ACME directory (TS_DEBUG_ACME_DIRECTORY_URL).
	ACMEURL string `json:"acme_url"`
	// ACMETrustFile is the PEM of the CA that signed the ACME server's own
	// HTTPS certificate: the tailops process trusts it via SSL_CERT_FILE.
	ACMETrustFile string `json:"acme_trust_file"`
	// IssuingRootFile is the PEM of the root pebble issues node
	// certificates under: clients that should accept them trust it.
	IssuingRootFile string `json:"issuing_root_file"`
	Domain          string `json:"domain"`
}

func main() {
	dir := flag.String("dir", "", "directory for the PEM files (required)")
	domain := flag.String("domain", "tailnet.test", "MagicDNS suffix")
	appCaps := flag.String("app-caps", "", `global app capabilities (grant src "*" dst "*"), JSON {"cap":[value,...]}`)
	certDomains := flag.String("cert-domains", "", "extra CertDomains for every node, comma-separated (e.g. a Service's FQDN)")
	verbose := flag.Bool("v", false, "log control and ACME traffic to stderr")
	flag.Parse()
	if *dir == "" {
		log.Fatal("-dir is required")
	}
	logf := func(string, ...any) {}
	if *verbose {
		logf = log.Printf
	}

	derpMap := startDERP(logf)
	acmeURL, acmeTrust, issuingRoot := startACME(*dir, *verbose)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	base := "http://" + ln.Addr().String()
	tc := &testcontrol.Server{
		Logf:            logf,
		DERPMap:         derpMap,
		MagicDNSDomain:  *domain,
		DNSConfig:       &tailcfg.DNSConfig{Proxied: true, Domains: []string{*domain}},
		TagOwners:       map[string][]string{"tag:tailops": nil, "tag:ci": nil},
		AllOnline:       true,
		ExplicitBaseURL: base,
	}
	if *certDomains != "" {
		// Set before serving: testcontrol has no locked setter for them.
		// Every node may then get a certificate for these names (and
		// SetDNS accepts their ACME challenges); real control gives a
		// Service's name to its hosts only.
		tc.DNSConfig.CertDomains = strings.Split(*certDomains, ",")
	}
	if *appCaps != "" {
		var caps tailcfg.PeerCapMap
		if err := json.Unmarshal([]byte(*appCaps), &caps); err != nil {
			log.Fatalf("-app-caps: %v", err)
		}
		tc.SetGlobalAppCaps(caps)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /tailops-test/nodes", func(w http.ResponseWriter, r *http.Request) { handleNodes(tc, w) })
	mux.HandleFunc("POST /tailops-test/service", func(w http.ResponseWriter, r *http.Request) { handleService(tc, *domain, w, r) })
	mux.Handle("/", tc)
	go func() { log.Fatal(http.Serve(ln, mux)) }()

	out, _ := json.Marshal(ready{
		ControlURL:      base,
		ACMEURL:         acmeURL,
		ACMETrustFile:   acmeTrust,
		IssuingRootFile: issuingRoot,
		Domain:          *domain,
	})
	fmt.Println(string(out))

	// Exit when the test that started us goes away (stdin closes).
	io.Copy(io.Discard, os.Stdin)
}

// startDERP serves DERP over plain HTTP and STUN, both on 127.0.0.1.
func startDERP(logf func(string, ...any)) *tailcfg.DERPMap {
	d := derpserver.New(key.NewNode(), logf)
	mux := http.NewServeMux()
	mux.Handle("/derp", derpserver.Handler(d))
	mux.HandleFunc("/derp/probe", derpserver.ProbeHandler)
	mux.HandleFunc("/derp/latency-check", derpserver.ProbeHandler)
	mux.HandleFunc("/generate_204", derpserver.ServeNoContent)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	go func() { log.Fatal(http.Serve(ln, mux)) }()
	stun := stunserver.New(context.Background())
	if err := stun.Listen("127.0.0.1:0"); err != nil {
		log.Fatal(err)
	}
	go stun.Serve()
	return &tailcfg.DERPMap{Regions: map[int]*tailcfg.DERPRegion{
		900: {
			RegionID:   900,
			RegionCode: "test",
			RegionName: "TailOps test DERP",
			Nodes: []*tailcfg.DERPNode{{
				Name:             "900a",
				RegionID:         900,
				HostName:         "127.0.0.1",
				IPv4:             "127.0.0.1",
				IPv6:             "none",
				DERPPort:         ln.Addr().(*net.TCPAddr).Port,
				STUNPort:         stun.LocalAddr().(*net.UDPAddr).Port,
				STUNTestIP:       "127.0.0.1",
				InsecureForTests: true,
			}},
		},
	}}
}

// startACME runs pebble's WFE over HTTPS on 127.0.0.1 and returns the
// directory URL, the file trusting its HTTPS certificate, and the file
// holding the root it issues under.
func startACME(dir string, verbose bool) (url, trustFile, rootFile string) {
	// Read by pebble's constructors: no random sleeps, every challenge is
	// valid without looking (DNS-01 needs no DNS), no injected bad nonces.
	os.Setenv("PEBBLE_VA_NOSLEEP", "1")
	os.Setenv("PEBBLE_VA_ALWAYS_VALID", "1")
	os.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	// No reuse of valid authorizations: tsnet Accepts every dns-01
	// challenge it is given, and pebble refuses that on a valid one, so a
	// retried issuance would fail for good.
	os.Setenv("PEBBLE_AUTHZREUSE", "0")
	out := io.Discard
	if verbose {
		out = os.Stderr
	}
	logger := log.New(out, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	profiles := map[string]ca.Profile{"default": {Description: "default"}}
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	// The resolver is never used: the VA always answers valid.
	vaImpl := va.New(logger, 0, 0, false, "127.0.0.1:1", store)
	w := wfe.New(logger, store, vaImpl, authority, []string{"pebble.letsencrypt.org"}, false, false, 0, 0)

	rootFile = filepath.Join(dir, "issuing-root.pem")
	must(os.WriteFile(rootFile, authority.GetRootCert(0).PEM(), 0o644))

	cert, trustPEM := serverCert()
	trustFile = filepath.Join(dir, "acme-trust.pem")
	must(os.WriteFile(trustFile, trustPEM, 0o644))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	must(err)
	base := "https://" + ln.Addr().String()
	srv := &http.Server{
		Handler:   orderLocation(base, w.Handler()),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}},
		ErrorLog:  logger,
	}
	go func() { log.Fatal(srv.ServeTLS(ln, "", "")) }()
	return base + wfe.DirectoryPath, trustFile, rootFile
}

// orderLocation adds the order's URL as Location to pebble's finalize
// answers. pebble finalizes asynchronously ("processing") and sends no
// Location; tailscale.com/tempfork/acme's CreateOrderCert then polls the
// order at the Location it did not get (pebble wfe.go orderPath /
// orderFinalizePath are unexported, hence the literals) (`Post "": unsupported protocol
// scheme`). Let's Encrypt's Boulder sends it.
func orderLocation(base string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if id, ok := strings.CutPrefix(r.URL.Path, "/finalize-order/"); ok {
			w.Header().Set("Location", base+"/my-order/"+id)
		}
		h.ServeHTTP(w, r)
	})
}

// serverCert makes a throwaway CA and a certificate for 127.0.0.1 signed
// by it; returns the certificate and the CA's PEM.
func serverCert() (tls.Certificate, []byte) {
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tailops test ACME server CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	must(err)
	caCert, err := x509.ParseCertificate(caDER)
	must(err)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     []string{"localhost"},
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	must(err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
}

type nodeInfo struct {
	Name      string   `json:"name"`
	Hostname  string   `json:"hostname"`
	Tags      []string `json:"tags"`
	Addresses []string `json:"addresses"`
}

func handleNodes(tc *testcontrol.Server, w http.ResponseWriter) {
	var out []nodeInfo
	for _, n := range tc.AllNodes() {
		ni := nodeInfo{Name: n.Name, Hostname: n.Hostinfo.Hostname(), Tags: n.Tags}
		for _, a := range n.Addresses {
			ni.Addresses = append(ni.Addresses, a.Addr().String())
		}
		out = append(out, ni)
	}
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(out)
}

// handleService gives the node with hostname `host` the Service `name`
// (svc:NAME) on the VIP `vip`, built from testcontrol's generic knobs
// because testcontrol has no Services model of its own: the host's
// self-node capability `service-host` carries the ServiceIPMappings
// (SetNodeCapMap, which replaces the whole map, so the defaults are kept),
// peers see the VIP in the host's AllowedIPs (SetSubnetRoutes), and
// NAME.<domain> resolves to the VIP (AddDNSRecords).
func handleService(tc *testcontrol.Server, domain string, w http.ResponseWriter, r *http.Request) {
	name := r.URL.Query().Get("name")
	host := r.URL.Query().Get("host")
	vip, err := netip.ParseAddr(r.URL.Query().Get("vip"))
	if err != nil || !strings.HasPrefix(name, "svc:") || host == "" {
		http.Error(w, "want ?name=svc:NAME&host=HOSTNAME&vip=IP", http.StatusBadRequest)
		return
	}
	var node *tailcfg.Node
	for _, n := range tc.AllNodes() {
		if n.Hostinfo.Hostname() == host {
			node = n
		}
	}
	if node == nil {
		http.Error(w, "no node with hostname "+host, http.StatusNotFound)
		return
	}
	mappings, err := json.Marshal(tailcfg.ServiceIPMappings{tailcfg.ServiceName(name): {vip}})
	must(err)
	tc.SetNodeCapMap(node.Key, tailcfg.NodeCapMap{
		tailcfg.CapabilityHTTPS:     nil,
		tailcfg.NodeAttrServiceHost: {tailcfg.RawMessage(mappings)},
	})
	tc.SetSubnetRoutes(node.Key, []netip.Prefix{netip.PrefixFrom(vip, vip.BitLen())})
	tc.AddDNSRecords(tailcfg.DNSRecord{Name: strings.TrimPrefix(name, "svc:") + "." + domain, Value: vip.String()})
	w.WriteHeader(http.StatusNoContent)
}

func must(err error) {
	if err != nil {
		log.Fatal(err)
	}
}
