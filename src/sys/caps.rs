//! Least privilege: once its sockets are open, the daemon keeps only the capabilities of
//! KEEP_CAPABILITIES (by default CAP_NET_ADMIN, CAP_NET_RAW, CAP_NET_BIND_SERVICE), in its
//! effective, permitted and inheritable sets and in the bounding set. The bounding set is
//! what makes it stick: commands it runs are root processes too and would otherwise get every
//! capability back at exec, so they get at most the kept set (admins whose KILL_RUN_CMD needs
//! more list it, or `all`).
//!
//! In a container, or under a unit with `CapabilityBoundingSet=`, the process may lack some
//! of them: only those it has are kept (`capset` refuses to grant a capability the process
//! does not hold), and `caps::assess` says what the missing ones disable.

use std::io;

#[repr(C)]
struct CapHeader {
    version: u32,
    pid: i32,
}

#[repr(C)]
#[derive(Clone, Copy, Default)]
struct CapData {
    effective: u32,
    permitted: u32,
    inheritable: u32,
}

const VERSION_3: u32 = 0x2008_0522;

/// CAP_SETPCAP: needed to drop from the bounding set.
const CAP_SETPCAP: u8 = 8;

/// Whether the process holds `cap` (its permitted set).
fn holds(cap: u8) -> bool {
    permitted().is_ok_and(|p| p.0 & (1u64 << cap) != 0)
}

fn last_cap() -> u8 {
    std::fs::read_to_string("/proc/sys/kernel/cap_last_cap")
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(40)
}

/// The capabilities this process holds (its permitted set).
pub fn permitted() -> io::Result<crate::caps::CapSet> {
    let mut hdr = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    let mut data = [CapData::default(); 2];
    // SAFETY: capget writes a version-3 header and two data structs, which we pass.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_capget,
            &mut hdr as *mut CapHeader,
            data.as_mut_ptr(),
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    let bits = u64::from(data[0].permitted) | (u64::from(data[1].permitted) << 32);
    Ok(crate::caps::CapSet(bits))
}

/// Keep only `keep` (capability numbers), all of which the process must hold (see
/// [`permitted`]; `CapSet::intersect` gives that part of KEEP_CAPABILITIES).
pub fn restrict(keep: &[u8]) -> io::Result<()> {
    for cap in 0..=last_cap() {
        if keep.contains(&cap) {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let in_bounding =
            unsafe { libc::prctl(libc::PR_CAPBSET_READ, libc::c_ulong::from(cap), 0, 0, 0) };
        // Already out of the bounding set (a unit's CapabilityBoundingSet=, a container):
        // nothing to drop, and dropping needs CAP_SETPCAP, which such a unit withholds.
        if in_bounding == 0 {
            continue;
        }
        // SAFETY: prctl with integer arguments only.
        let rc = unsafe { libc::prctl(libc::PR_CAPBSET_DROP, libc::c_ulong::from(cap), 0, 0, 0) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                // The kernel does not know this capability number.
                Some(libc::EINVAL) => {}
                // No CAP_SETPCAP (a bounding set wider than KEEP_CAPABILITIES, without it):
                // the capability still leaves the permitted, effective and inheritable sets
                // below; a command could regain it only from a setuid or file-capability
                // binary, which the package's units forbid (NoNewPrivileges=).
                Some(libc::EPERM) if !holds(CAP_SETPCAP) => {}
                _ => return Err(e),
            }
        }
    }
    let mut data = [CapData::default(); 2];
    for &cap in keep {
        let (i, bit) = (usize::from(cap / 32), 1u32 << (cap % 32));
        if i < 2 {
            data[i].effective |= bit;
            data[i].permitted |= bit;
            data[i].inheritable |= bit;
        }
    }
    let mut hdr = CapHeader {
        version: VERSION_3,
        pid: 0,
    };
    // SAFETY: capset reads a version-3 header and two data structs, which we pass.
    let rc = unsafe { libc::syscall(libc::SYS_capset, &mut hdr as *mut CapHeader, data.as_ptr()) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn permitted_matches_proc_status() {
        let status = std::fs::read_to_string("/proc/self/status").unwrap();
        let line = status
            .lines()
            .find_map(|l| l.strip_prefix("CapPrm:"))
            .expect("CapPrm line");
        let want = u64::from_str_radix(line.trim(), 16).unwrap();
        assert_eq!(permitted().unwrap().0, want);
    }
}
