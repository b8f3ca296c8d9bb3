//! Sizes in, sizes and times out, the way people write and read them.

use std::time::Duration;

use bytesize::ByteSize;

/// Parses a size with an optional binary unit (`4096`, `64K`, `8M`, `2G`); zero is refused.
pub fn parse_size(text: &str) -> Result<u64, String> {
    match parse_offset(text)? {
        0 => Err("sizes must be larger than zero".into()),
        size => Ok(size),
    }
}

/// Parses an offset: a size that may be zero.
pub fn parse_offset(text: &str) -> Result<u64, String> {
    parse_size::Config::new()
        .with_binary()
        .parse_size(text)
        .map_err(|err| format!("{text:?} is not a size: {err}"))
}

/// `8.0 MiB`.
pub fn bytes(size: u64) -> String {
    ByteSize::b(size).display().iec().to_string()
}

/// `12.34 ms`.
pub fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1e3)
}

/// `512.3 MiB/s`.
pub fn rate(size: u64, duration: Duration) -> String {
    let per_second = size as f64 / duration.as_secs_f64().max(1e-9);
    format!("{}/s", bytes(per_second as u64))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_may_be_zero_and_sizes_may_not() {
        assert_eq!(parse_offset("0K"), Ok(0));
        assert_eq!(parse_offset("1M"), Ok(1 << 20));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert!(parse_size("0").is_err());
        assert!(parse_offset("1Q").is_err());
    }
}
