//! The disk quota: every sandbox's `/workspace` is a btrfs subvolume with a qgroup limit,
//! so writing past `--sandbox-disk-mb` fails inside with `EDQUOT` and the host's free space
//! never drops by more than the quota.
//!
//! Why btrfs: ext4 and XFS project quotas need kernel options (`CONFIG_QFMT_V2`,
//! `CONFIG_XFS_QUOTA`) that common kernels, this project's CI among them, leave out, and a
//! loop-mounted image per sandbox costs a `mkfs` and a mount on every create. A qgroup limit
//! on a subvolume is two ioctls (measured: create p50 unchanged within noise). Inodes on
//! btrfs are allocated on demand, not from a table one sandbox could exhaust, and their
//! metadata is charged to the qgroup (about 350 bytes each), so the byte limit bounds them.
//!
//! When the data dir is itself on btrfs the subvolumes live there. Otherwise sandlotd keeps
//! one sparse image (`<data dir>/volume.img`, `--volume-size-gb`), formats it once with
//! `mkfs.btrfs`, loop-mounts it at `<data dir>/volume` with `discard` (space freed inside is
//! given back to the host) and unmounts it at shutdown.

use std::ffi::CString;
use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tracing::{info, warn};

const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
const BTRFS_FIRST_FREE_OBJECTID: u64 = 256;

// From <linux/btrfs.h> (checked against the header: see the test below).
const BTRFS_IOC_SUBVOL_CREATE: libc::c_ulong = 0x5000_940E;
const BTRFS_IOC_SNAP_DESTROY: libc::c_ulong = 0x5000_940F;
const BTRFS_IOC_QUOTA_CTL: libc::c_ulong = 0xC010_9428;
const BTRFS_IOC_QGROUP_LIMIT: libc::c_ulong = 0x8030_942B;
const BTRFS_IOC_FS_INFO: libc::c_ulong = 0x8400_941F;
const BTRFS_IOC_INO_LOOKUP: libc::c_ulong = 0xD000_9412;
const BTRFS_QUOTA_CTL_ENABLE: u64 = 1;
const BTRFS_QGROUP_LIMIT_MAX_RFER: u64 = 1;

#[repr(C)]
struct VolArgs {
    fd: i64,
    name: [u8; 4088],
}

#[repr(C)]
struct QuotaCtlArgs {
    cmd: u64,
    status: u64,
}

#[repr(C)]
struct QgroupLimitArgs {
    qgroupid: u64,
    flags: u64,
    max_rfer: u64,
    max_excl: u64,
    rsv_rfer: u64,
    rsv_excl: u64,
}

#[repr(C)]
struct FsInfoArgs {
    max_id: u64,
    num_devices: u64,
    fsid: [u8; 16],
    rest: [u8; 1024 - 32],
}

#[repr(C)]
struct InoLookupArgs {
    treeid: u64,
    objectid: u64,
    name: [u8; 4080],
}

/// The btrfs filesystem that holds the sandboxes' directories.
#[derive(Debug)]
pub struct Volume {
    mount_point: PathBuf,
    /// Set when sandlotd loop-mounted the image (and so unmounts it at shutdown).
    mounted_here: bool,
    quota_bytes: u64,
    /// `/sys/fs/btrfs/<fsid>/qgroups`, where per-subvolume usage is read.
    qgroups_dir: PathBuf,
}

impl Volume {
    /// Opens the quota volume of a data dir, making and mounting its image when needed.
    pub fn open(data_dir: &Path, quota_mb: u64, image_gb: u64) -> io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let mount_point = data_dir.join("volume");
        std::fs::create_dir_all(&mount_point)?;
        std::fs::set_permissions(&mount_point, std::fs::Permissions::from_mode(0o700))?;
        // Ours to mount (and unmount) unless the data dir is on btrfs already. A run that
        // was killed leaves it mounted: then it is used as it is.
        let mounted_here = !is_btrfs(data_dir)?;
        if mounted_here && !is_btrfs(&mount_point)? {
            let image = data_dir.join("volume.img");
            if !image.exists() {
                make_image(&image, image_gb)?;
            }
            mount_image(&image, &mount_point)?;
            info!(image = %image.display(), "mounted the sandboxes' quota volume");
        }
        let dir = File::open(&mount_point)?;
        let mut ctl = QuotaCtlArgs {
            cmd: BTRFS_QUOTA_CTL_ENABLE,
            status: 0,
        };
        // SAFETY: the ioctl reads and writes the struct it is given.
        if unsafe { libc::ioctl(dir.as_raw_fd(), BTRFS_IOC_QUOTA_CTL, &mut ctl) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EEXIST) {
                return Err(io::Error::new(
                    e.kind(),
                    format!("enable btrfs quotas: {e}"),
                ));
            }
        }
        let qgroups_dir = Path::new("/sys/fs/btrfs").join(fsid(&dir)?).join("qgroups");
        Ok(Self {
            mount_point,
            mounted_here,
            quota_bytes: quota_mb * 1024 * 1024,
            qgroups_dir,
        })
    }

    /// Where the sandboxes' directories go.
    pub fn sandboxes_dir(&self) -> PathBuf {
        self.mount_point.join("sandboxes")
    }

    /// Makes `path` a subvolume limited to the quota (or re-applies the limit to one that
    /// exists, after a restart).
    pub fn make_workspace(&self, path: &Path) -> io::Result<()> {
        if !path.exists() {
            let parent = File::open(path.parent().expect("a workspace has a parent"))?;
            let name = path.file_name().expect("a workspace has a name").as_bytes();
            let mut args = VolArgs {
                fd: 0,
                name: [0; 4088],
            };
            args.name[..name.len()].copy_from_slice(name);
            // SAFETY: the ioctl reads the struct it is given.
            if unsafe { libc::ioctl(parent.as_raw_fd(), BTRFS_IOC_SUBVOL_CREATE, &args) } != 0 {
                let e = io::Error::last_os_error();
                return Err(io::Error::new(e.kind(), format!("create subvolume: {e}")));
            }
        }
        let workspace = File::open(path)?;
        // A limit through a plain directory would land on the subvolume holding it, which
        // is every sandbox's: only a subvolume's root has this inode number.
        use std::os::unix::fs::MetadataExt;
        if workspace.metadata()?.ino() != BTRFS_FIRST_FREE_OBJECTID {
            return Err(io::Error::other(format!(
                "{} is not a btrfs subvolume",
                path.display()
            )));
        }
        let limit = QgroupLimitArgs {
            qgroupid: 0, // the subvolume the descriptor is in
            flags: BTRFS_QGROUP_LIMIT_MAX_RFER,
            max_rfer: self.quota_bytes,
            max_excl: 0,
            rsv_rfer: 0,
            rsv_excl: 0,
        };
        // SAFETY: the ioctl reads the struct it is given.
        if unsafe { libc::ioctl(workspace.as_raw_fd(), BTRFS_IOC_QGROUP_LIMIT, &limit) } != 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("set the quota: {e}")));
        }
        Ok(())
    }

    /// Deletes a workspace subvolume (its space is reclaimed in the background).
    pub fn remove_workspace(&self, path: &Path) -> io::Result<()> {
        let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
            return Ok(());
        };
        let parent = match File::open(parent) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let mut args = VolArgs {
            fd: 0,
            name: [0; 4088],
        };
        args.name[..name.len()].copy_from_slice(name.as_bytes());
        // SAFETY: the ioctl reads the struct it is given.
        if unsafe { libc::ioctl(parent.as_raw_fd(), BTRFS_IOC_SNAP_DESTROY, &args) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::ENOENT) {
                return Err(e);
            }
        }
        Ok(())
    }

    /// Bytes a workspace holds (data and metadata), as its qgroup counts them.
    pub fn workspace_usage(&self, path: &Path) -> Option<u64> {
        let workspace = File::open(path).ok()?;
        let mut args = InoLookupArgs {
            treeid: 0,
            objectid: BTRFS_FIRST_FREE_OBJECTID,
            name: [0; 4080],
        };
        // SAFETY: the ioctl reads and writes the struct it is given.
        if unsafe { libc::ioctl(workspace.as_raw_fd(), BTRFS_IOC_INO_LOOKUP, &mut args) } != 0 {
            return None;
        }
        let file = self
            .qgroups_dir
            .join(format!("0_{}", args.treeid))
            .join("referenced");
        std::fs::read_to_string(file).ok()?.trim().parse().ok()
    }

    pub fn quota_bytes(&self) -> u64 {
        self.quota_bytes
    }

    /// Shutdown: unmounts the image if sandlotd mounted it (the loop device goes with it).
    pub fn unmount(&self) {
        if !self.mounted_here {
            return;
        }
        let Ok(path) = CString::new(self.mount_point.as_os_str().as_bytes()) else {
            return;
        };
        // SAFETY: a NUL-terminated path.
        if unsafe { libc::umount2(path.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            warn!("unmount the quota volume: {e}; detaching it");
            // SAFETY: as above.
            unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

fn is_btrfs(path: &Path) -> io::Result<bool> {
    let c = CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: statfs fills the zeroed struct; the path is NUL-terminated.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(st.f_type as i64 == BTRFS_SUPER_MAGIC)
}

fn make_image(image: &Path, size_gb: u64) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(image)?;
    file.set_len(size_gb * 1024 * 1024 * 1024)?;
    drop(file);
    // Single copies of data and metadata: the quota then counts what the host stores.
    // sbin is not on every PATH.
    let mkfs = ["/usr/sbin/mkfs.btrfs", "/sbin/mkfs.btrfs"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or("mkfs.btrfs");
    let made = Command::new(mkfs)
        .args(["-q", "-m", "single", "-d", "single"])
        .arg(image)
        .output();
    match made {
        Ok(out) if out.status.success() => Ok(()),
        Ok(out) => {
            let _ = std::fs::remove_file(image);
            Err(io::Error::other(format!(
                "mkfs.btrfs failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            )))
        }
        Err(e) => {
            let _ = std::fs::remove_file(image);
            Err(io::Error::new(
                e.kind(),
                format!(
                    "the disk quota needs mkfs.btrfs (Debian: apt-get install btrfs-progs), \
                     or run with --sandbox-disk-mb 0: {e}"
                ),
            ))
        }
    }
}

fn mount_image(image: &Path, at: &Path) -> io::Result<()> {
    let out = Command::new("mount")
        .args([
            "-t",
            "btrfs",
            "-o",
            "loop,discard=async,noatime,nosuid,nodev",
        ])
        .arg(image)
        .arg(at)
        .output()?;
    if !out.status.success() {
        return Err(io::Error::other(format!(
            "mount the quota volume (a btrfs image on a loop device; or run with \
             --sandbox-disk-mb 0): {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )));
    }
    Ok(())
}

/// The filesystem's id as sysfs names its directory.
fn fsid(dir: &File) -> io::Result<String> {
    let mut info = FsInfoArgs {
        max_id: 0,
        num_devices: 0,
        fsid: [0; 16],
        rest: [0; 1024 - 32],
    };
    // SAFETY: the ioctl fills the struct it is given.
    if unsafe { libc::ioctl(dir.as_raw_fd(), BTRFS_IOC_FS_INFO, &mut info) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let hex: String = info.fsid.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ioctl_structs_have_the_kernel_sizes() {
        assert_eq!(std::mem::size_of::<VolArgs>(), 4096);
        assert_eq!(std::mem::size_of::<QuotaCtlArgs>(), 16);
        assert_eq!(std::mem::size_of::<QgroupLimitArgs>(), 48);
        assert_eq!(std::mem::size_of::<FsInfoArgs>(), 1024);
        assert_eq!(std::mem::size_of::<InoLookupArgs>(), 4096);
        // The size is in bits 16..30 of each request number.
        for (req, size) in [
            (BTRFS_IOC_SUBVOL_CREATE, 4096),
            (BTRFS_IOC_SNAP_DESTROY, 4096),
            (BTRFS_IOC_QUOTA_CTL, 16),
            (BTRFS_IOC_QGROUP_LIMIT, 48),
            (BTRFS_IOC_FS_INFO, 1024),
            (BTRFS_IOC_INO_LOOKUP, 4096),
        ] {
            assert_eq!((req >> 16) & 0x3fff, size);
            assert_eq!((req >> 8) & 0xff, 0x94);
        }
    }
}
