//! Builds the Go shim in `go/` as a c-archive and links it.
//!
//! Facts this relies on (see shared/DESIGN.md):
//! - `tailscale.com` v1.102.3 needs Go >= 1.26.6, so an older `go` fails here
//!   with one sentence saying what to install, instead of a wall of errors.
//! - `netgo,osusergo` keep the archive free of libc resolver/user lookups,
//!   so nothing beyond pthread needs linking.
//! - `GOTOOLCHAIN=local` stops `go` from trying to download a toolchain.
//! - GOCACHE is left at Go's default (or the caller's), which is stable
//!   across cargo builds, so a rebuild after a Rust-only change is a no-op
//!   and a Go change recompiles only the shim package.

use std::env;
use std::path::PathBuf;
use std::process::Command;

const MIN_GO: (u32, u32, u32) = (1, 26, 6);

/// Build tags. `netgo,osusergo`: no libc resolver. The `ts_omit_*` tags
/// drop tailscale features a headless server node must not have:
/// - `peerapiserver`: in netstack mode the peer API opens a real kernel
///   TCP listener on *all* host interfaces (a placeholder that netstack
///   shadows). It refuses non-tailnet peers, but it is still a port open
///   outside the tailnet; our e2e test found it. We use no peer API feature.
/// - `portmapper`: UPnP/NAT-PMP/PCP probes of the LAN gateway.
/// - `captiveportal`: HTTP probes to detect captive portals.
/// - `ssh`, `taildrop`, `drive`, `webclient`, `clientupdate`, `wakeonlan`,
///   `relayserver`, `tap`: features of a full client we do not expose.
const GO_TAGS: &str = "netgo,osusergo,ts_omit_peerapiserver,ts_omit_portmapper,ts_omit_captiveportal,\
ts_omit_ssh,ts_omit_taildrop,ts_omit_drive,ts_omit_webclient,ts_omit_clientupdate,ts_omit_wakeonlan,\
ts_omit_relayserver,ts_omit_tap";

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let go_dir = manifest.join("go");
    for f in ["shim.go", "go.mod", "go.sum"] {
        println!("cargo:rerun-if-changed={}", go_dir.join(f).display());
    }
    println!("cargo:rerun-if-env-changed=GO");
    println!("cargo:rerun-if-env-changed=GOCACHE");

    let go = env::var("GO").unwrap_or_else(|_| "go".to_string());
    check_go_version(&go);

    let archive = out.join("libtailscale.a");
    let status = Command::new(&go)
        .current_dir(&go_dir)
        .env("CGO_ENABLED", "1")
        .env("GOTOOLCHAIN", "local")
        .env("GOFLAGS", "-mod=readonly -buildvcs=false")
        .args(["build", "-buildmode=c-archive", "-trimpath", "-tags", GO_TAGS])
        .arg("-o")
        .arg(&archive)
        .arg(".")
        .status()
        .unwrap_or_else(|e| fail(&format!("could not run `{go} build`: {e}")));
    if !status.success() {
        fail("`go build -buildmode=c-archive` of libtailscale-sys/go failed (see the output above)");
    }

    println!("cargo:rustc-link-search=native={}", out.display());
    println!("cargo:rustc-link-lib=static=tailscale");
    println!("cargo:rustc-link-lib=dylib=pthread");
    println!("cargo:rustc-link-lib=dylib=dl");
    println!("cargo:rustc-link-lib=dylib=m");
}

fn check_go_version(go: &str) {
    let want = format!("{}.{}.{}", MIN_GO.0, MIN_GO.1, MIN_GO.2);
    let output = match Command::new(go).arg("env").arg("GOVERSION").env("GOTOOLCHAIN", "local").output() {
        Ok(o) if o.status.success() => o,
        _ => fail(&format!(
            "libtailscale-sys needs Go >= {want} on PATH (or in $GO) to build the tsnet shim; install it from your distribution or go.dev/dl"
        )),
    };
    let v = String::from_utf8_lossy(&output.stdout).trim().to_string();
    let parsed = parse_go_version(&v);
    match parsed {
        Some(have) if have >= MIN_GO => {}
        _ => fail(&format!(
            "libtailscale-sys needs Go >= {want} (tailscale.com v1.102.3 requires it) but `{go}` is {v}; install a newer Go"
        )),
    }
}

/// "go1.26.8" → (1, 26, 8); "go1.27" → (1, 27, 0); "go1.27rc1" → (1, 27, 0).
fn parse_go_version(v: &str) -> Option<(u32, u32, u32)> {
    let v = v.strip_prefix("go")?;
    let mut parts = v.split('.').map(|p| {
        let digits: String = p.chars().take_while(|c| c.is_ascii_digit()).collect();
        digits.parse::<u32>().ok()
    });
    let major = parts.next()??;
    let minor = parts.next().flatten().unwrap_or(0);
    let patch = parts.next().flatten().unwrap_or(0);
    Some((major, minor, patch))
}

fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}
