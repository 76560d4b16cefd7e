//! The D-Bus interfaces of systemd that tailops uses, as zbus proxies
//! (`org.freedesktop.systemd1.Manager`; unit, service and timer
//! properties are read with `Properties.GetAll`).

use zbus::zvariant::OwnedObjectPath;

/// One row of `ListUnits*`: name, description, load, active, sub state,
/// followed unit, object path, job id, job type, job path.
pub type UnitTuple = (String, String, String, String, String, String, OwnedObjectPath, u32, String, OwnedObjectPath);

pub const DESTINATION: &str = "org.freedesktop.systemd1";
pub const UNIT_IFACE: &str = "org.freedesktop.systemd1.Unit";
pub const SERVICE_IFACE: &str = "org.freedesktop.systemd1.Service";
pub const TIMER_IFACE: &str = "org.freedesktop.systemd1.Timer";

#[zbus::proxy(
    interface = "org.freedesktop.systemd1.Manager",
    default_service = "org.freedesktop.systemd1",
    default_path = "/org/freedesktop/systemd1",
    gen_blocking = false
)]
pub trait Manager {
    fn list_units_by_patterns(&self, states: &[&str], patterns: &[&str]) -> zbus::Result<Vec<UnitTuple>>;
    fn load_unit(&self, name: &str) -> zbus::Result<OwnedObjectPath>;
    fn start_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn stop_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn restart_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn reload_unit(&self, name: &str, mode: &str) -> zbus::Result<OwnedObjectPath>;
    fn subscribe(&self) -> zbus::Result<()>;

    #[zbus(signal)]
    fn job_removed(&self, id: u32, job: OwnedObjectPath, unit: String, result: String) -> zbus::Result<()>;

    #[zbus(property)]
    fn version(&self) -> zbus::Result<String>;
}
