//! The cgroup reader on real file samples: v1 (hybrid) files copied from
//! this project's 2-core test machine (Debian docker.io 20.10, cgroupfs
//! driver) and v2 files in the shape a cgroup2 kernel writes them (a
//! systemd-driver host), laid out under a temp `/proc` and cgroup tree.

use std::fs;

use super::*;

const ID: &str = "6ca94ac8af6f183e7999efb33c2da2627ff22f29eaad12c4701f2a0de8991a37";
const OTHER: &str = "5e3fddffd6d46c9762bf1c42ef34d4a5e881b228fc4db602f2045af45d2534f6";

/// `/proc/self/mountinfo` of the hybrid v1 host (cpu and cpuacct are
/// separate hierarchies there); `ROOT` is replaced by the test's dir.
const MOUNTINFO_V1: &str = "\
22 1 0:21 / / rw,relatime - overlay overlay rw
23 22 0:22 / /sys rw,nosuid,nodev,noexec,relatime - sysfs sysfs rw
31 23 0:28 / ROOT/sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / ROOT/sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
33 31 0:30 / ROOT/sys/fs/cgroup/cpuacct rw,relatime - cgroup cgroup rw,cpuacct
34 31 0:31 / ROOT/sys/fs/cgroup/cpuset rw,relatime - cgroup cgroup rw,cpuset
35 31 0:32 / ROOT/sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
36 31 0:33 / ROOT/sys/fs/cgroup/devices rw,relatime - cgroup cgroup rw,devices
37 31 0:34 / ROOT/sys/fs/cgroup/freezer rw,relatime - cgroup cgroup rw,freezer
38 31 0:35 / ROOT/sys/fs/cgroup/blkio rw,relatime - cgroup cgroup rw,blkio
39 31 0:36 / ROOT/sys/fs/cgroup/pids rw,relatime - cgroup cgroup rw,pids
40 31 0:37 / ROOT/sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd
41 31 0:38 / ROOT/sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
";

/// `/proc/PID/cgroup` of a container's init there.
fn proc_cgroup_v1(id: &str) -> String {
    format!(
        "9:name=systemd:/docker/{id}\n8:pids:/docker/{id}\n7:blkio:/docker/{id}\n6:freezer:/docker/{id}\n\
         5:devices:/docker/{id}\n4:memory:/docker/{id}\n3:cpuset:/docker/{id}\n2:cpuacct:/docker/{id}\n\
         1:cpu:/docker/{id}\n0::/docker/{id}\n"
    )
}

/// `memory.stat` (v1) of a `--memory 64m` busybox container after writing
/// 5 MiB to a file: 5 MiB inactive page cache.
const MEMORY_STAT_V1: &str = "cache 5242880\nrss 49152\nrss_huge 0\nshmem 0\nmapped_file 0\ndirty 0\nwriteback 0\n\
workingset_refault_anon 0\nworkingset_refault_file 0\nswap 0\nswapcached 0\npgpgin 1448\npgpgout 1431\n\
pgfault 1872\npgmajfault 0\ninactive_anon 45056\nactive_anon 4096\ninactive_file 5242880\nactive_file 0\n\
unevictable 0\nhierarchical_memory_limit 67108864\nhierarchical_memsw_limit 134217728\ntotal_cache 5242880\n\
total_rss 49152\ntotal_rss_huge 0\ntotal_shmem 0\ntotal_mapped_file 0\ntotal_dirty 0\ntotal_writeback 0\n\
total_workingset_refault_anon 0\ntotal_workingset_refault_file 0\ntotal_swap 0\ntotal_swapcached 0\n\
total_pgpgin 1448\ntotal_pgpgout 1431\ntotal_pgfault 1872\ntotal_pgmajfault 0\ntotal_inactive_anon 45056\n\
total_active_anon 4096\ntotal_inactive_file 5242880\ntotal_active_file 0\ntotal_unevictable 0\n";

/// `blkio.throttle.io_service_bytes` (v1) with two devices.
const BLKIO_V1: &str = "8:16 Read 1048576\n8:16 Write 3145728\n8:16 Sync 4194304\n8:16 Async 0\n\
8:16 Discard 0\n8:16 Total 4194304\n8:0 Read 4096\n8:0 Write 0\n8:0 Sync 4096\n8:0 Async 0\n8:0 Discard 0\n\
8:0 Total 4096\nTotal 4198400\n";

/// `/proc/PID/net/dev` (the host's own on the test machine).
const NET_DEV: &str = "\
Inter-|   Receive                                                |  Transmit
 face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed
    lo: 21543352395 7136227    0    0    0     0          0         0 21543352395 7136227    0    0    0     0       0          0
  ifb0:       0       0    0    0    0     0          0         0        0       0    0    0    0     0       0          0
  eth0: 2246639267   91830    0    0    0     0          0         0  6925096   65791    0    0    0     0       0          0
";

const MEMINFO: &str = "MemTotal:       24684084 kB\nMemFree:         1234567 kB\nMemAvailable:   12345678 kB\n";

/// A v2 (systemd driver) host: the unified hierarchy at /sys/fs/cgroup.
const MOUNTINFO_V2: &str = "\
24 1 259:2 / / rw,relatime shared:1 - ext4 /dev/nvme0n1p2 rw
25 24 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:2 - sysfs sysfs rw
30 25 0:26 / ROOT/sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot
";

fn proc_cgroup_v2(id: &str) -> String {
    format!("0::/system.slice/docker-{id}.scope\n")
}

/// `cpu.stat` of the unified hierarchy (the test machine's, with the
/// throttling lines a v2 cpu controller adds).
const CPU_STAT_V2: &str = "usage_usec 57444389\nuser_usec 57411578\nsystem_usec 32811\nnice_usec 0\n\
core_sched.force_idle_usec 0\nnr_periods 1184\nnr_throttled 1151\nthrottled_usec 25626538\nnr_bursts 0\nburst_usec 0\n";

const MEMORY_STAT_V2: &str = "anon 1056768\nfile 8658944\nkernel 405504\nkernel_stack 16384\npagetables 45056\n\
sec_pagetables 0\npercpu 1200\nsock 0\nvmalloc 0\nshmem 0\nzswap 0\nzswapped 0\nfile_mapped 0\nfile_dirty 0\n\
file_writeback 0\nswapcached 0\nanon_thp 0\nfile_thp 0\nshmem_thp 0\ninactive_anon 1048576\nactive_anon 8192\n\
inactive_file 8388608\nactive_file 270336\nunevictable 0\nslab_reclaimable 131072\nslab_unreclaimable 180224\n\
slab 311296\nworkingset_refault_anon 0\nworkingset_refault_file 0\npgfault 2890\npgmajfault 0\n";

const IO_STAT_V2: &str = "259:0 rbytes=2277376 wbytes=40960 rios=70 wios=10 dbytes=0 dios=0\n\
253:0 rbytes=4096 wbytes=8192 rios=1 wios=2 dbytes=0 dios=0\n";

struct Tree {
    dir: tempfile::TempDir,
}

impl Tree {
    fn new(mountinfo: &str) -> Self {
        let dir = tempfile::tempdir().expect("tmp");
        let t = Tree { dir };
        let root = t.dir.path().display().to_string();
        t.write("proc/self/mountinfo", &mountinfo.replace("ROOT", &root));
        t.write("proc/meminfo", MEMINFO);
        t
    }

    fn write(&self, rel: &str, text: &str) {
        let p = self.dir.path().join(rel);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }

    fn host(&self) -> Host {
        Host::load(Roots { proc: self.dir.path().join("proc") }).expect("layout")
    }

    /// A container's v1 cgroup files (cgroupfs driver: /docker/<id>).
    fn v1_container(&self, id: &str, pid: u32) {
        self.write(&format!("proc/{pid}/cgroup"), &proc_cgroup_v1(id));
        self.write(&format!("proc/{pid}/net/dev"), NET_DEV);
        let cg = |c: &str, f: &str, text: &str| self.write(&format!("sys/fs/cgroup/{c}/docker/{id}/{f}"), text);
        cg("cpuacct", "cpuacct.usage", "57432634715\n");
        cg("memory", "memory.usage_in_bytes", "6094848\n");
        cg("memory", "memory.limit_in_bytes", "67108864\n");
        cg("memory", "memory.stat", MEMORY_STAT_V1);
        cg("pids", "pids.current", "1\n");
        cg("blkio", "blkio.throttle.io_service_bytes", BLKIO_V1);
    }

    fn v2_container(&self, id: &str, pid: u32) {
        self.write(&format!("proc/{pid}/cgroup"), &proc_cgroup_v2(id));
        self.write(&format!("proc/{pid}/net/dev"), NET_DEV);
        let cg = |f: &str, text: &str| self.write(&format!("sys/fs/cgroup/system.slice/docker-{id}.scope/{f}"), text);
        cg("cpu.stat", CPU_STAT_V2);
        cg("memory.current", "10121216\n");
        cg("memory.max", "max\n");
        cg("memory.stat", MEMORY_STAT_V2);
        cg("pids.current", "3\n");
        cg("io.stat", IO_STAT_V2);
    }
}

#[test]
fn mountinfo_picks_v1_on_a_hybrid_host_and_v2_on_a_unified_one() {
    let Some(Layout::V1 { cpuacct, memory, pids, blkio }) = parse_mountinfo(&MOUNTINFO_V1.replace("ROOT", "")) else {
        panic!("hybrid host is v1")
    };
    assert_eq!(cpuacct, [Mount { point: "/sys/fs/cgroup/cpuacct".into(), root: "/".into() }]);
    assert_eq!(memory[0].point, PathBuf::from("/sys/fs/cgroup/memory"));
    assert_eq!((pids.len(), blkio.len()), (1, 1));
    let Some(Layout::V2 { unified }) = parse_mountinfo(&MOUNTINFO_V2.replace("ROOT", "")) else { panic!("v2") };
    assert_eq!(unified, [Mount { point: "/sys/fs/cgroup".into(), root: "/".into() }]);
    // Co-mounted cpu,cpuacct (most v1 distributions), an escaped space in
    // the mount point, a bind-mounted subtree.
    let co = "1 0 0:1 / /c/cpu,cpuacct rw - cgroup cgroup rw,cpu,cpuacct\n\
              2 0 0:2 /docker /c/my\\040mem rw shared:9 - cgroup cgroup rw,memory\n";
    let Some(Layout::V1 { cpuacct, memory, pids, .. }) = parse_mountinfo(co) else { panic!("v1") };
    assert_eq!(cpuacct[0].point, PathBuf::from("/c/cpu,cpuacct"));
    assert_eq!(memory[0], Mount { point: "/c/my mem".into(), root: "/docker".into() });
    assert!(pids.is_empty());
    // No cgroup mounted at all, or garbage: no layout.
    assert_eq!(parse_mountinfo("22 1 0:21 / / rw - overlay overlay rw\n"), None);
    assert_eq!(parse_mountinfo("garbage\n\n- - -\n"), None);
}

#[test]
fn container_cgroup_needs_the_full_id_and_stays_inside_the_namespace() {
    let systemd = format!("/system.slice/docker-{ID}.scope");
    assert_eq!(container_cgroup(&format!("/docker/{ID}"), ID), Some(vec!["docker", ID]));
    assert_eq!(container_cgroup(&systemd, ID), Some(vec!["system.slice", &format!("docker-{ID}.scope")[..]]));
    // An init (systemd in the container) that moved into a child cgroup:
    // the container's own cgroup.
    assert_eq!(container_cgroup(&format!("{systemd}/init.scope"), ID).map(|c| c.len()), Some(2));
    // Docker in docker: the innermost component naming the id.
    let dind = format!("/docker/{OTHER}/docker/{ID}");
    assert_eq!(container_cgroup(&dind, ID).map(|c| c.len()), Some(4));
    assert_eq!(container_cgroup(&dind, OTHER).map(|c| c.len()), Some(2));
    // Another container's cgroup, a prefix of the id, the host's root,
    // outside tailops's cgroup namespace.
    for (path, why) in [
        (format!("/docker/{OTHER}"), "another id"),
        (format!("/docker/{}", &ID[..12]), "short id"),
        (format!("/docker/{ID}x"), "longer component"),
        ("/".to_string(), "root"),
        (format!("/../docker/{ID}"), "outside the namespace"),
        (format!("/docker/{ID}/../{OTHER}"), "dot-dot"),
    ] {
        assert_eq!(container_cgroup(&path, ID), None, "{why}: {path}");
    }
    assert!(is_full_id(ID) && !is_full_id(&ID[..63]) && !is_full_id(&ID.to_uppercase()));
    assert!(!is_full_id(&format!("{}g", &ID[..63])));
}

#[test]
fn resolve_maps_a_cgroup_into_the_mount_that_holds_it() {
    let mounts = [
        Mount { point: "/a".into(), root: "/kubepods".into() },
        Mount { point: "/b".into(), root: "/docker".into() },
        Mount { point: "/c".into(), root: "/".into() },
    ];
    assert_eq!(resolve(&mounts, &["docker", ID]), Some(PathBuf::from(format!("/b/{ID}"))));
    assert_eq!(resolve(&mounts, &["system.slice", "x.scope"]), Some(PathBuf::from("/c/system.slice/x.scope")));
    assert_eq!(resolve(&mounts[..2], &["system.slice"]), None);
    // Component-wise: /dockerx is not under /docker.
    assert_eq!(resolve(&mounts[1..2], &["dockerx", ID]), None);
}

#[test]
fn file_parsers_on_real_samples() {
    assert_eq!(keyed(MEMORY_STAT_V1, "total_inactive_file"), Some(5_242_880));
    assert_eq!(keyed(MEMORY_STAT_V1, "inactive_file"), Some(5_242_880));
    assert_eq!(keyed(MEMORY_STAT_V2, "inactive_file"), Some(8_388_608));
    assert_eq!(keyed(MEMORY_STAT_V2, "total_inactive_file"), None);
    assert_eq!(keyed(CPU_STAT_V2, "usage_usec"), Some(57_444_389));
    assert_eq!(keyed("usage_usec x\n", "usage_usec"), None);
    assert_eq!(parse_blkio_v1(BLKIO_V1), (1_048_576 + 4096, 3_145_728));
    assert_eq!(parse_blkio_v1("Total 0\n"), (0, 0));
    assert_eq!(parse_io_stat(IO_STAT_V2), (2_277_376 + 4096, 40_960 + 8192));
    assert_eq!(parse_io_stat(""), (0, 0));
    assert_eq!(parse_net_dev(NET_DEV), (2_246_639_267, 6_925_096), "every interface but lo");
    assert_eq!(parse_memtotal(MEMINFO), Some(24_684_084 * 1024));
    assert_eq!(parse_memtotal("MemTotal: 99999999999999999999 kB"), None);
    // Sums saturate instead of wrapping.
    let huge = format!("8:0 Read {m}\n8:1 Read {m}\n", m = u64::MAX);
    assert_eq!(parse_blkio_v1(&huge).0, u64::MAX);
    let pc = parse_proc_cgroup(&proc_cgroup_v1(ID));
    assert_eq!(pc.v1.get("cpuacct").map(String::as_str), Some(&format!("/docker/{ID}")[..]));
    assert_eq!(pc.v1.get("name=systemd").map(String::as_str), Some(&format!("/docker/{ID}")[..]));
    assert_eq!(pc.v2.as_deref(), Some(&format!("/docker/{ID}")[..]));
    let co = parse_proc_cgroup("4:cpu,cpuacct:/x\n");
    assert_eq!((co.v1.get("cpu"), co.v1.get("cpuacct")), (Some(&"/x".to_string()), Some(&"/x".to_string())));
}

#[test]
fn reads_a_v1_container() {
    let t = Tree::new(MOUNTINFO_V1);
    t.v1_container(ID, 4242);
    let h = t.host();
    assert!(matches!(h.layout, Layout::V1 { .. }));
    let u = h.read(4242, ID).expect("a v1 container is read");
    assert_eq!(u.cpu_ns, 57_432_634_715);
    // 6094848 − 5 MiB of inactive page cache: what `docker stats` showed (832 KiB).
    assert_eq!(u.memory_bytes, 851_968);
    assert_eq!(u.memory_limit_bytes, Some(64 << 20));
    assert_eq!(u.pids, Some(1));
    assert_eq!((u.block_read_bytes, u.block_write_bytes), (1_052_672, 3_145_728));
    assert_eq!((u.net_rx_bytes, u.net_tx_bytes), (2_246_639_267, 6_925_096));
    // No limit (v1 writes a page-rounded i64::MAX): the host's memory.
    t.write(&format!("sys/fs/cgroup/memory/docker/{ID}/memory.limit_in_bytes"), "9223372036854771712\n");
    assert_eq!(h.read(4242, ID).expect("read").memory_limit_bytes, Some(24_684_084 * 1024));
}

#[test]
fn reads_a_v2_container() {
    let t = Tree::new(MOUNTINFO_V2);
    t.v2_container(ID, 77);
    let h = t.host();
    assert!(matches!(h.layout, Layout::V2 { .. }));
    let u = h.read(77, ID).expect("a v2 container is read");
    assert_eq!(u.cpu_ns, 57_444_389_000);
    assert_eq!(u.memory_bytes, 10_121_216 - 8_388_608);
    assert_eq!(u.memory_limit_bytes, Some(24_684_084 * 1024), "memory.max = max: the host's memory");
    assert_eq!(u.pids, Some(3));
    assert_eq!((u.block_read_bytes, u.block_write_bytes), (2_281_472, 49_152));
    // A limit is kept; pids and io controllers not enabled: no figure, still read.
    t.write(&format!("sys/fs/cgroup/system.slice/docker-{ID}.scope/memory.max"), "268435456\n");
    fs::remove_file(t.dir.path().join(format!("sys/fs/cgroup/system.slice/docker-{ID}.scope/pids.current")))
        .expect("rm");
    fs::remove_file(t.dir.path().join(format!("sys/fs/cgroup/system.slice/docker-{ID}.scope/io.stat"))).expect("rm");
    let u = h.read(77, ID).expect("read");
    assert_eq!((u.memory_limit_bytes, u.pids, u.block_read_bytes), (Some(256 << 20), None, 0));
    // Inactive cache larger than the usage (racy counters): the usage.
    t.write(&format!("sys/fs/cgroup/system.slice/docker-{ID}.scope/memory.current"), "4096\n");
    assert_eq!(h.read(77, ID).expect("read").memory_bytes, 4096);
}

#[test]
fn misses_fall_back_instead_of_reading_the_wrong_thing() {
    let t = Tree::new(MOUNTINFO_V1);
    t.v1_container(ID, 10);
    t.v1_container(OTHER, 11);
    let h = t.host();
    assert!(h.read(10, ID).is_some());
    // A reused PID now in another container: not read as this one.
    assert_eq!(h.read(11, ID), None);
    // No such process (another PID namespace), bad PIDs and ids.
    assert_eq!(h.read(12, ID), None);
    for pid in [0, -1, i64::MIN] {
        assert_eq!(h.read(pid, ID), None, "pid {pid}");
    }
    assert_eq!(h.read(10, &ID[..12]), None, "only a full id");
    // The container's cgroup files are gone (it stopped): a miss.
    fs::remove_dir_all(t.dir.path().join(format!("sys/fs/cgroup/memory/docker/{ID}"))).expect("rm");
    assert_eq!(h.read(10, ID), None);
    // Outside tailops's cgroup namespace.
    t.write("proc/11/cgroup", &proc_cgroup_v1(&format!("../{OTHER}")));
    assert_eq!(h.read(11, OTHER), None);
    // No cgroup hierarchy mounted at all: no host layout.
    let bare = Tree::new("22 1 0:21 / / rw - overlay overlay rw\n");
    assert!(Host::load(Roots { proc: bare.dir.path().join("proc") }).is_none());
}

#[test]
fn file_size_caps_at_their_edges() {
    let t = Tree::new(MOUNTINFO_V1);
    t.v1_container(ID, 10);
    let h = t.host();
    let cap = MAX_CGROUP_FILE_BYTES as usize;
    // memory.stat padded with a trailing key to exactly the cap, then one more byte.
    let pad = |n: usize| {
        let mut s = MEMORY_STAT_V1.to_string();
        s.push_str("zz ");
        s.push_str(&"0".repeat(n - s.len()));
        s
    };
    for (len, ok) in [(cap - 1, true), (cap, true), (cap + 1, false)] {
        let text = pad(len);
        assert_eq!(text.len(), len);
        t.write(&format!("sys/fs/cgroup/memory/docker/{ID}/memory.stat"), &text);
        assert_eq!(h.read(10, ID).is_some(), ok, "memory.stat of {len} bytes");
    }
    let mi = t.dir.path().join("proc/self/mountinfo");
    let real = fs::read_to_string(&mi).expect("mountinfo");
    let cap = MAX_MOUNTINFO_BYTES as usize;
    for (len, ok) in [(cap, true), (cap + 1, false)] {
        let mut text = real.clone();
        text.push_str(&"x".repeat(len - text.len() - 1));
        text.push('\n');
        fs::write(&mi, &text).expect("write");
        assert_eq!(Host::load(Roots { proc: t.dir.path().join("proc") }).is_some(), ok, "mountinfo of {len} bytes");
    }
}

#[test]
fn known_pids_expire_misses_and_are_bounded() {
    let p = Pids::default();
    let t0 = Instant::now();
    p.set("a", Known::Pid(5));
    p.set("b", Known::Api(t0));
    assert_eq!(p.get("a", t0), Some(Known::Pid(5)));
    assert_eq!(p.get("b", t0 + CGROUP_RETRY - Duration::from_millis(1)), Some(Known::Api(t0)));
    assert_eq!(p.get("b", t0 + CGROUP_RETRY), None, "a miss is retried after CGROUP_RETRY");
    p.retain(&["a"]);
    assert_eq!(p.len(), 1);
    p.forget("a");
    assert_eq!(p.len(), 0);
    for i in 0..MAX_KNOWN_PIDS {
        p.set(&format!("c{i}"), Known::Pid(i as i64));
    }
    assert_eq!(p.len(), MAX_KNOWN_PIDS);
    p.set("c0", Known::Pid(9));
    assert_eq!(p.len(), MAX_KNOWN_PIDS, "updating a kept one keeps the rest");
    p.set("new", Known::Pid(1));
    assert_eq!(p.len(), 1, "one more than the limit: all forgotten, the new one kept");
}
