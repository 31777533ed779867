//! SIGINT and SIGTERM set a flag the run loops check; the reactor's `epoll_wait` returns early
//! when a signal arrives, so the flag is seen at once.

use std::sync::atomic::{AtomicBool, Ordering};

static STOP: AtomicBool = AtomicBool::new(false);
static RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    // Only an atomic store: async-signal-safe.
    STOP.store(true, Ordering::Relaxed);
}

extern "C" fn on_hangup(_: libc::c_int) {
    RELOAD.store(true, Ordering::Relaxed);
}

/// Installs the SIGHUP handler once and returns the flag it sets (a node reloads its CURVE
/// allowlist then).
#[allow(unsafe_code)]
pub fn install_reload() -> &'static AtomicBool {
    // SAFETY: as in `install`: the handler only stores to an atomic.
    unsafe {
        libc::signal(libc::SIGHUP, on_hangup as *const () as libc::sighandler_t);
    }
    &RELOAD
}

/// Installs the handlers once and returns the flag they set.
#[allow(unsafe_code)]
pub fn install() -> &'static AtomicBool {
    for signal in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: `on_signal` is an `extern "C" fn(c_int)` that only stores to an atomic, which
        // is async-signal-safe; `signal` is given a valid handler address and a valid signal.
        unsafe {
            libc::signal(signal, on_signal as *const () as libc::sighandler_t);
        }
    }
    &STOP
}
