//! RFC 3339 UTC timestamps with millisecond precision, the only time format of the API.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;

const MILLIS_Z: &[time::format_description::BorrowedFormatItem<'static>] =
    format_description!("[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z");

/// Formats epoch milliseconds as `2026-11-21T06:30:00.000Z`.
pub fn rfc3339_ms(epoch_ms: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(epoch_ms) * 1_000_000)
        .ok()
        .and_then(|t| t.format(MILLIS_Z).ok())
        .unwrap_or_else(|| epoch_ms.to_string())
}

/// Parses any RFC 3339 timestamp (any offset) into epoch milliseconds.
pub fn parse_rfc3339_ms(text: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(text, &Rfc3339).map_err(|e| format!("`{text}` is not an RFC 3339 timestamp: {e}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).map_err(|_| format!("`{text}` is out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_and_parses_with_milliseconds() {
        let ms = 1_795_000_000_123;
        let text = rfc3339_ms(ms);
        assert_eq!(text, "2026-11-18T11:06:40.123Z");
        assert_eq!(parse_rfc3339_ms(&text), Ok(ms));
        assert_eq!(parse_rfc3339_ms("2026-11-18T12:06:40.123+01:00"), Ok(ms));
        assert!(parse_rfc3339_ms("yesterday").is_err());
    }
}
