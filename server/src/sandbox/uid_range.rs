//! The host ids sandboxes run as, checked against the host's own ids at start.
//!
//! Each sandbox runs as its own uid, with a gid of the same number, taken from one fixed
//! range. An id in that range that the host already uses would be shared with a sandbox:
//! a host user's files in a sandbox's reach, signals and `/proc` access between them, one
//! `RLIMIT_NPROC` count for both. So sandlotd refuses to start when the range meets a user
//! in `/etc/passwd`, a group in `/etc/group`, or a subordinate range in `/etc/subuid` or
//! `/etc/subgid` (which rootless containers of that user run as), and names each conflict.
//! Users known only to NSS (LDAP and the like) are not seen here.

use std::io;
use std::path::Path;

/// A half-open range of ids: `first .. first + count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdRange {
    pub first: u32,
    pub count: u32,
}

impl IdRange {
    fn end(self) -> u64 {
        self.first as u64 + self.count as u64
    }

    fn overlaps(self, other: IdRange) -> bool {
        (self.first as u64) < other.end() && (other.first as u64) < self.end()
    }

    fn contains(self, id: u32) -> bool {
        self.overlaps(IdRange {
            first: id,
            count: 1,
        })
    }
}

impl std::fmt::Display for IdRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.first, self.end().saturating_sub(1))
    }
}

/// Checks the sandbox range against the id files under `etc` (normally `/etc`; missing
/// files count as empty). The error names every conflict.
pub fn check_host(sandboxes: IdRange, etc: &Path) -> io::Result<()> {
    let mut conflicts = Vec::new();
    for (file, kind) in [
        ("passwd", Kind::Users),
        ("group", Kind::Groups),
        ("subuid", Kind::SubIds),
        ("subgid", Kind::SubIds),
    ] {
        let path = etc.join(file);
        let content = match std::fs::read_to_string(&path) {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("cannot check sandbox ids against {}: {e}", path.display()),
                ))
            }
        };
        conflicts.extend(
            conflicts_in(sandboxes, &content, kind)
                .into_iter()
                .map(|c| format!("{}: {c}", path.display())),
        );
    }
    if conflicts.is_empty() {
        return Ok(());
    }
    Err(io::Error::new(
        io::ErrorKind::AlreadyExists,
        format!(
            "sandboxes run as uids and gids {sandboxes}, but the host already uses ids in that \
             range ({}); move those users, groups or subordinate ranges out of it",
            conflicts.join("; ")
        ),
    ))
}

/// What an id file lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `name:password:uid:...` (`/etc/passwd`).
    Users,
    /// `name:password:gid:...` (`/etc/group`).
    Groups,
    /// `name:first:count` (`/etc/subuid`, `/etc/subgid`).
    SubIds,
}

/// The entries of one file's content that fall inside `sandboxes`, described for a person.
/// Comments, blank and malformed lines are skipped.
pub fn conflicts_in(sandboxes: IdRange, content: &str, kind: Kind) -> Vec<String> {
    let mut found = Vec::new();
    for line in content.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').collect();
        match kind {
            Kind::Users | Kind::Groups => {
                let Some(id) = fields.get(2).and_then(|f| f.parse::<u32>().ok()) else {
                    continue;
                };
                if sandboxes.contains(id) {
                    let what = if kind == Kind::Users { "uid" } else { "gid" };
                    found.push(format!("'{}' has {what} {id}", fields[0]));
                }
            }
            Kind::SubIds => {
                let (Some(first), Some(count)) = (
                    fields.get(1).and_then(|f| f.parse::<u32>().ok()),
                    fields.get(2).and_then(|f| f.parse::<u32>().ok()),
                ) else {
                    continue;
                };
                let range = IdRange { first, count };
                if count > 0 && sandboxes.overlaps(range) {
                    found.push(format!("'{}' owns {range}", fields[0]));
                }
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    const SANDBOXES: IdRange = IdRange {
        first: 100_000,
        count: 60_000,
    };

    #[test]
    fn users_and_groups_inside_the_range_are_conflicts() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      # a comment\n\
                      alice:x:1000:1000::/home/alice:/bin/bash\n\
                      edge-low:x:99999:99999::/:/bin/false\n\
                      bob:x:100000:100:bob:/home/bob:/bin/bash\n\
                      carol:x:159999:100::/:/bin/sh\n\
                      edge-high:x:160000:160000::/:/bin/false\n\
                      broken line\n";
        assert_eq!(
            conflicts_in(SANDBOXES, passwd, Kind::Users),
            ["'bob' has uid 100000", "'carol' has uid 159999"]
        );
        let group = "root:x:0:\nusers:x:100:\ndocker:x:120000:alice\n";
        assert_eq!(
            conflicts_in(SANDBOXES, group, Kind::Groups),
            ["'docker' has gid 120000"]
        );
    }

    #[test]
    fn subordinate_ranges_that_touch_the_range_are_conflicts() {
        // Debian's adduser gives the first user 100000:65536, exactly sandlot's start.
        let subuid = "alice:100000:65536\n\
                      below:34464:65536\n\
                      ends-inside:40000:60001\n\
                      above:160000:65536\n\
                      empty:120000:0\n";
        assert_eq!(
            conflicts_in(SANDBOXES, subuid, Kind::SubIds),
            [
                "'alice' owns 100000-165535",
                "'ends-inside' owns 40000-100000"
            ]
        );
    }

    #[test]
    fn a_clean_host_passes_and_a_conflict_is_named() {
        let dir = std::env::temp_dir().join(format!("sandlot-uids-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("passwd"), "root:x:0:0::/root:/bin/sh\n").unwrap();
        check_host(SANDBOXES, &dir).expect("no conflict, missing files are empty");
        std::fs::write(dir.join("subgid"), "alice:100000:65536\n").unwrap();
        let err = check_host(SANDBOXES, &dir).unwrap_err().to_string();
        assert!(err.contains("100000-159999"), "{err}");
        assert!(err.contains("subgid: 'alice' owns 100000-165535"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
