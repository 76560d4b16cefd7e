//! Pure parsers of the system-wide /proc files the collector reads:
//! `/proc/loadavg`, `/proc/pressure/*`, `/proc/diskstats` and
//! `/proc/self/mounts`. Per-process files are read by
//! [`crate::host::procfs`].

use std::collections::{BTreeMap, HashMap};

use super::snapshot::{LoadAvg, PsiLine, PsiResource};

/// `/proc/loadavg`: "0.52 0.58 0.59 1/467 12345".
pub(super) fn parse_loadavg(s: &str) -> Option<LoadAvg> {
    let mut it = s.split_ascii_whitespace().map(str::parse::<f64>);
    Some(LoadAvg { one: it.next()?.ok()?, five: it.next()?.ok()?, fifteen: it.next()?.ok()? })
}

/// One `/proc/pressure/*` file.
pub(super) fn parse_psi(s: &str) -> Option<PsiResource> {
    let mut some = None;
    let mut full = None;
    for line in s.lines() {
        let mut words = line.split_ascii_whitespace();
        let kind = words.next();
        let mut l = PsiLine { avg10: f64::NAN, avg60: f64::NAN, avg300: f64::NAN, total_us: 0 };
        let mut total = None;
        for w in words {
            let Some((k, v)) = w.split_once('=') else { continue };
            match k {
                "avg10" => l.avg10 = v.parse().ok()?,
                "avg60" => l.avg60 = v.parse().ok()?,
                "avg300" => l.avg300 = v.parse().ok()?,
                "total" => total = Some(v.parse().ok()?),
                _ => {}
            }
        }
        l.total_us = total?;
        if !(l.avg10.is_finite() && l.avg60.is_finite() && l.avg300.is_finite()) {
            return None;
        }
        match kind {
            Some("some") => some = Some(l),
            Some("full") => full = Some(l),
            _ => {}
        }
    }
    Some(PsiResource { some: some?, full })
}

/// Sector counters from `/proc/diskstats`.
#[derive(Default)]
pub(super) struct DiskStats {
    /// name → (sectors read, sectors written)
    pub(super) by_name: HashMap<String, (u64, u64)>,
    /// (major, minor) → name
    pub(super) by_id: HashMap<(u32, u32), String>,
}

pub(super) fn parse_diskstats(s: &str) -> DiskStats {
    let mut out = DiskStats::default();
    for line in s.lines() {
        let f: Vec<&str> = line.split_ascii_whitespace().collect();
        if f.len() < 10 {
            continue;
        }
        let (Ok(major), Ok(minor), Ok(read), Ok(written)) =
            (f[0].parse::<u32>(), f[1].parse::<u32>(), f[5].parse::<u64>(), f[9].parse::<u64>())
        else {
            continue;
        };
        out.by_name.insert(f[2].to_owned(), (read, written));
        out.by_id.insert((major, minor), f[2].to_owned());
    }
    out
}

#[derive(Debug, PartialEq)]
pub(super) struct Mount {
    pub(super) device: String,
    pub(super) mount_point: String,
    pub(super) fs_type: String,
}

/// Pseudo filesystems that never hold user data.
const PSEUDO_FS: &[&str] = &[
    "proc",
    "sysfs",
    "cgroup",
    "cgroup2",
    "devpts",
    "devtmpfs",
    "mqueue",
    "debugfs",
    "tracefs",
    "securityfs",
    "pstore",
    "bpf",
    "fusectl",
    "configfs",
    "autofs",
    "binfmt_misc",
    "hugetlbfs",
    "nsfs",
    "rpc_pipefs",
    "selinuxfs",
    "efivarfs",
    "ramfs",
    // Read-only images (snaps): always 100 % used, would keep disk_full firing.
    "squashfs",
    "fuse.snapfuse",
];

/// Container root filesystems: overlays whose usage is the backing disk's.
const CONTAINER_MOUNT_PREFIXES: &[&str] =
    &["/var/lib/docker/", "/var/lib/containers/", "/run/containerd/", "/run/docker/", "/var/lib/containerd/"];

/// Real mounts from `/proc/self/mounts`: pseudo and container-internal
/// filesystems left out, one entry per mount point (the last, visible one).
pub(super) fn parse_mounts(s: &str) -> Vec<Mount> {
    let mut by_point: BTreeMap<String, Mount> = BTreeMap::new();
    for line in s.lines() {
        let mut f = line.split_ascii_whitespace();
        let (Some(device), Some(point), Some(fs_type)) = (f.next(), f.next(), f.next()) else { continue };
        if PSEUDO_FS.contains(&fs_type) {
            continue;
        }
        let mount_point = unescape_mount(point);
        if fs_type == "overlay" && CONTAINER_MOUNT_PREFIXES.iter().any(|p| mount_point.starts_with(p)) {
            continue;
        }
        by_point.insert(
            mount_point.clone(),
            Mount { device: unescape_mount(device), mount_point, fs_type: fs_type.to_owned() },
        );
    }
    by_point.into_values().collect()
}

/// Undoes the octal escapes of /proc/self/mounts (`\040` space, `\011` tab, `\012`, `\134`).
fn unescape_mount(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = u32::from(b[i + 1] - b'0') * 64 + u32::from(b[i + 2] - b'0') * 8 + u32::from(b[i + 3] - b'0');
            if let Ok(byte) = u8::try_from(v) {
                out.push(byte);
                i += 4;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

pub(super) fn is_network_fs(fs_type: &str) -> bool {
    const NET: &[&str] =
        &["nfs", "nfs4", "cifs", "smb3", "smbfs", "ceph", "glusterfs", "9p", "davfs", "afs", "lustre", "gfs2", "ocfs2"];
    NET.contains(&fs_type) || fs_type.starts_with("fuse")
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- /proc parsers on fixed text ----

    #[test]
    fn parsers() {
        assert_eq!(
            parse_loadavg("0.52 0.58 0.59 1/467 12345\n"),
            Some(LoadAvg { one: 0.52, five: 0.58, fifteen: 0.59 })
        );
        assert_eq!(parse_loadavg("garbage"), None);

        let psi = parse_psi(
            "some avg10=1.50 avg60=0.20 avg300=0.00 total=123\nfull avg10=0.10 avg60=0.00 avg300=0.00 total=45\n",
        )
        .unwrap();
        assert_eq!(psi.some.avg10, 1.5);
        assert_eq!(psi.full.as_ref().map(|f| f.total_us), Some(45));
        let cpu_only_some = parse_psi("some avg10=0.00 avg60=0.00 avg300=0.00 total=0\n").unwrap();
        assert!(cpu_only_some.full.is_none());
        assert!(parse_psi("some avg10=x").is_none());

        let ds =
            parse_diskstats(" 253  0 vda 100 0 2048 0 50 0 4096 0 0 0 0\n   7 0 loop0 0 0 0 0 0 0 0 0 0 0 0\nbad\n");
        assert_eq!(ds.by_name["vda"], (2048, 4096));
        assert_eq!(ds.by_id[&(253, 0)], "vda");

        let mounts = parse_mounts(
            "proc /proc proc rw 0 0\n/dev/vda / ext4 rw 0 0\ntmpfs /dev/shm tmpfs rw 0 0\ntmpfs /dev/shm tmpfs ro 0 0\n\
             cgroup2 /sys/fs/cgroup cgroup2 rw 0 0\n/dev/sdb1 /mnt/my\\040disk xfs rw 0 0\n\
             overlay /var/lib/docker/overlay2/abc/merged overlay rw 0 0\noverlay / overlay rw 0 0\n\
             /dev/loop3 /snap/core/1 squashfs ro 0 0\n",
        );
        let points: Vec<&str> = mounts.iter().map(|m| m.mount_point.as_str()).collect();
        assert_eq!(points, ["/", "/dev/shm", "/mnt/my disk"]);
        assert_eq!(mounts[0].fs_type, "overlay", "the last mount on a point wins");
        assert_eq!(unescape_mount("a\\011b\\134c\\0"), "a\tb\\c\\0");

        assert!(is_network_fs("nfs4") && is_network_fs("fuse.sshfs") && !is_network_fs("ext4"));
    }
}
