//! A small tmpfs a test mounts (we run as root) and unmounts lazily on
//! drop, so a failing test leaves no mount behind: a filesystem whose fill
//! level the test controls exactly (a full audit disk, a disk alert).

use std::path::{Path, PathBuf};
use std::process::Command;

pub struct Tmpfs {
    pub mnt: PathBuf,
}

impl Tmpfs {
    /// Mounts a private (mode 0700) tmpfs of `bytes` at `mnt`, creating
    /// the directory.
    pub fn mount(mnt: &Path, bytes: u64) -> Tmpfs {
        std::fs::create_dir_all(mnt).expect("mount point");
        let st = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={bytes},mode=0700"), "tailops-test"])
            .arg(mnt)
            .status();
        assert!(st.is_ok_and(|s| s.success()), "mounting a tmpfs at {} (needs root)", mnt.display());
        Tmpfs { mnt: mnt.to_path_buf() }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.mnt).status();
    }
}
