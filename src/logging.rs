//! Log lines for operators, on stderr: `2026-11-29T13:42:41.123Z INFO ezarch::broker message`,
//! a UTC time stamp (RFC 3339, milliseconds), the level, where from, what happened.

/// Sends `log` records at `level` and above to stderr.
pub fn init(level: log::LevelFilter) {
    let _ = fern::Dispatch::new()
        .format(|out, message, record| {
            let now = crate::time::rfc3339_utc(std::time::SystemTime::now());
            out.finish(format_args!("{now} {} {} {message}", record.level(), record.target()))
        })
        .level(level)
        .chain(std::io::stderr())
        .apply();
}
