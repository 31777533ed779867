//! The process's open-file limit: raised to what the system allows, so `MAX_CONNECTIONS` can be
//! reached, and used to cap it, so an accept never fails with EMFILE (a listener that cannot
//! accept stays readable and would leave peers hanging in the backlog).

use std::io;

/// File descriptors kept for listeners, connectors, epoll and the process's own files.
pub const RESERVED_DESCRIPTORS: usize = 64;

/// Raises the soft `RLIMIT_NOFILE` towards the hard limit, enough for `connections` plus the
/// reserve when allowed. Returns how many connections the resulting limit leaves room for.
#[allow(unsafe_code)]
pub fn fit_connections(connections: usize) -> io::Result<usize> {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit writes one rlimit struct through a valid pointer to a local.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) } != 0 {
        return Err(io::Error::last_os_error());
    }
    let wanted = (connections + RESERVED_DESCRIPTORS) as libc::rlim_t;
    if limit.rlim_cur < wanted {
        let raised = libc::rlimit { rlim_cur: wanted.min(limit.rlim_max), rlim_max: limit.rlim_max };
        // SAFETY: setrlimit reads one rlimit struct through a valid pointer to a local.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            limit = raised;
        }
    }
    let room = usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX).saturating_sub(RESERVED_DESCRIPTORS);
    Ok(connections.min(room.max(1)))
}
