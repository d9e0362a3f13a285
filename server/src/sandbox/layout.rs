//! Where a sandbox lives on the host's disk, and what its synthetic `/etc` holds.
//!
//! `<data dir>/sandboxes/` (with the disk quota on, `<data dir>/volume/sandboxes/`: see
//! [`super::volume`]) and each `<id>/` in it are root's alone (0700). `<id>/` holds
//! `root/` (the mount point of the sandbox's read-only tmpfs root) and `workspace/` (its
//! `/workspace`, owned by its uid). Sandboxed processes reach their workspace only through
//! the bind mount inside their mount namespace, never by this host path, so nobody but root
//! needs to traverse these directories: a host user or another sandbox's uid cannot list
//! the sandboxes or reach a workspace through a path.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::volume::Volume;

/// Host `/etc` entries the runtimes need, exposed read-only (missing ones are skipped).
pub const ETC_BINDS: &[&str] = &[
    "/etc/alternatives",
    "/etc/ld.so.cache",
    "/etc/ld.so.conf",
    "/etc/ld.so.conf.d",
    "/etc/localtime",
    "/etc/nsswitch.conf",
    "/etc/ssl",
    "/etc/ca-certificates",
    "/etc/mime.types",
    "/etc/bash.bashrc",
    "/etc/profile",
    "/etc/inputrc",
    "/etc/python3",
    "/etc/python3.11",
    // Debian's matplotlib reads its defaults from here (code-interpreter's data stack).
    "/etc/matplotlibrc",
    "/etc/fonts",
];

/// The sandboxes' directory of one data dir.
#[derive(Debug, Clone)]
pub struct Layout {
    sandboxes_dir: PathBuf,
    /// The disk quota's volume, when the quota is on (`<id>/workspace` is then a
    /// subvolume with a limit).
    volume: Option<Arc<Volume>>,
}

impl Layout {
    pub fn new(data_dir: &Path, volume: Option<Arc<Volume>>) -> std::io::Result<Self> {
        use std::os::unix::fs::PermissionsExt;
        let sandboxes_dir = match &volume {
            Some(volume) => volume.sandboxes_dir(),
            None => data_dir.join("sandboxes"),
        };
        std::fs::create_dir_all(&sandboxes_dir)?;
        std::fs::set_permissions(&sandboxes_dir, std::fs::Permissions::from_mode(0o700))?;
        Ok(Self {
            sandboxes_dir,
            volume,
        })
    }

    pub fn sandbox_dir(&self, id: &str) -> PathBuf {
        self.sandboxes_dir.join(id)
    }

    pub fn root_dir(&self, id: &str) -> PathBuf {
        self.sandbox_dir(id).join("root")
    }

    pub fn workspace_dir(&self, id: &str) -> PathBuf {
        self.sandbox_dir(id).join("workspace")
    }

    /// Makes the sandbox's directories; the workspace belongs to its uid, the sandbox
    /// directory itself to root alone (0700: see the module doc).
    pub fn prepare(&self, id: &str, uid: u32) -> std::io::Result<()> {
        use std::os::unix::fs::PermissionsExt;
        let (root, workspace) = (self.root_dir(id), self.workspace_dir(id));
        std::fs::create_dir_all(&root)?;
        match &self.volume {
            Some(volume) => volume.make_workspace(&workspace)?,
            None => std::fs::create_dir_all(&workspace)?,
        }
        std::os::unix::fs::chown(&workspace, Some(uid), Some(uid))?;
        std::fs::set_permissions(&workspace, std::fs::Permissions::from_mode(0o755))?;
        std::fs::set_permissions(self.sandbox_dir(id), std::fs::Permissions::from_mode(0o700))?;
        Ok(())
    }

    /// Bytes the sandbox's workspace holds, where the quota volume counts them.
    pub fn workspace_usage(&self, id: &str) -> Option<u64> {
        self.volume
            .as_ref()?
            .workspace_usage(&self.workspace_dir(id))
    }

    pub fn remove(&self, id: &str) {
        if let Some(volume) = &self.volume {
            if let Err(e) = volume.remove_workspace(&self.workspace_dir(id)) {
                tracing::warn!(sandbox = %id, "delete the workspace subvolume: {e}");
            }
        }
        let _ = std::fs::remove_dir_all(self.sandbox_dir(id));
    }

    /// Names of the sandbox directories on disk.
    pub fn on_disk(&self) -> std::io::Result<Vec<String>> {
        Ok(std::fs::read_dir(&self.sandboxes_dir)?
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect())
    }
}

pub fn hostname_of(id: &str) -> String {
    format!("sandbox-{}", &id[id.len().saturating_sub(8)..])
}

/// The sandbox's own `/etc` files: its user, its host name, no resolver.
pub fn etc_files(uid: u32, hostname: &str) -> Vec<(String, String)> {
    vec![
        (
            "passwd".into(),
            format!(
                "root:x:0:0:root:/root:/bin/bash\nuser:x:{uid}:{uid}:sandbox user:/workspace:/bin/bash\nnobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n"
            ),
        ),
        ("group".into(), format!("root:x:0:\nuser:x:{uid}:\nnogroup:x:65534:\n")),
        ("hosts".into(), format!("127.0.0.1 localhost\n::1 localhost\n127.0.1.1 {hostname}\n")),
        ("hostname".into(), format!("{hostname}\n")),
        ("resolv.conf".into(), String::new()),
    ]
}
