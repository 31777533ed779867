//! CPU time and page faults of benchmark processes, from `/proc/PID/stat`, for "CPU per
//! message" figures measured while the load runs.

/// What a process has used so far, from `/proc/PID/stat`: CPU seconds (user and system, all
/// threads) and minor page faults.
#[derive(Clone, Copy, Default)]
pub struct Usage {
    pub cpu_s: f64,
    pub faults: f64,
}

impl Usage {
    /// What processes `pids` have used together.
    pub fn of_all(pids: &[u32]) -> Self {
        pids.iter().fold(Self::default(), |sum, &pid| {
            let one = Self::of(pid);
            Self { cpu_s: sum.cpu_s + one.cpu_s, faults: sum.faults + one.faults }
        })
    }

    fn of(pid: u32) -> Self {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            return Self::default();
        };
        // Fields after the command name (which may hold spaces) close with ')'; minflt, utime and
        // stime are fields 10, 14 and 15 of the line (ticks for the times).
        let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        Self { cpu_s: (field(11) + field(12)) / clock_ticks_per_second(), faults: field(7) }
    }

    /// Per unit of `count` since `start`: CPU in µs, faults.
    pub fn since(self, start: Usage, count: f64) -> Self {
        Self { cpu_s: (self.cpu_s - start.cpu_s) * 1e6 / count, faults: (self.faults - start.faults) / count }
    }
}

fn clock_ticks_per_second() -> f64 {
    #[allow(unsafe_code)]
    // SAFETY: sysconf reads a constant of the system and touches no memory of ours.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if hz > 0 {
        hz as f64
    } else {
        100.0
    }
}
