//! Results of forwarded calls, turned into `Errno` for handlers that fail with them.

use mote_abi::errno::Errno;

/// The `Errno` of a failed forwarded call's raw result `r` (negative); `EIO` for a
/// value Linux does not define.
pub fn from_result(r: i64) -> Errno {
    i32::try_from(r.wrapping_neg())
        .ok()
        .and_then(Errno::from_code)
        .unwrap_or(Errno::EIO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn linux_values_come_back() {
        assert_eq!(from_result(-2), Errno::ENOENT);
        assert_eq!(from_result(-22), Errno::EINVAL);
        assert_eq!(from_result(-41), Errno::EIO);
        assert_eq!(from_result(i64::MIN), Errno::EIO);
    }
}
