//! Hosting a Tailscale Service with forwarded app capabilities (reach).

use std::ffi::{c_char, c_int};

use libtailscale_sys as sys;

use super::ffi::{check, cstring, own_fd, take_string};
use super::{Listener, Node, Result};

impl Node {
    /// Hosts the Tailscale Service `name` (`svc:…`) in HTTP mode on `port`,
    /// the serve proxy forwarding the callers' `accept_caps` app
    /// capabilities (`Tailscale-App-Capabilities`). Needs a tagged node.
    /// Returns the listener and the Service's MagicDNS name.
    pub fn listen_service_caps(
        &self,
        name: &str,
        port: u16,
        https: bool,
        accept_caps: &[String],
    ) -> Result<(Listener, String)> {
        let sd = self.sd()?;
        let n = cstring("service name", name)?;
        let caps = cstring("app capabilities", &accept_caps.join("\n"))?;
        let mut fd: c_int = -1;
        let mut fqdn: *mut c_char = std::ptr::null_mut();
        // SAFETY: n and caps outlive the call; fd and fqdn are valid out slots.
        let rc = unsafe {
            sys::tailscale_listen_service_caps(
                sd,
                n.as_ptr(),
                c_int::from(port),
                c_int::from(https),
                caps.as_ptr(),
                &mut fd,
                &mut fqdn,
            )
        };
        // SAFETY: fqdn is null or a C.CString from the Go side.
        let fqdn = unsafe { take_string(fqdn) };
        check(sd, "listen_service", rc)?;
        Ok((Listener::new(own_fd(fd))?, fqdn))
    }
}
