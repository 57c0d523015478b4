//! Date-times as Unix milliseconds in UTC, read from and written as ISO-8601 the way Java's
//! `ZonedDateTime` does, since that is what Okta's expressions produce.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time, UtcOffset};

/// Reads `2015-06-17T00:23:19.676Z` or `2015-06-17T02:23:19+02:00` (seconds and fraction
/// optional); `None` for anything else, including bracketed zone names, which need a zone
/// database.
pub(super) fn parse_iso(text: &str) -> Option<i64> {
    let mut cursor = Cursor { rest: text.as_bytes() };
    let year = cursor.digits(4)?;
    cursor.expect(b'-')?;
    let month = cursor.digits(2)?;
    cursor.expect(b'-')?;
    let day = cursor.digits(2)?;
    cursor.expect(b'T')?;
    let hour = cursor.digits(2)?;
    cursor.expect(b':')?;
    let minute = cursor.digits(2)?;
    let mut second = 0;
    let mut millis = 0;
    if cursor.eat(b':') {
        second = cursor.digits(2)?;
        if cursor.eat(b'.') {
            let fraction = cursor.take_digits();
            if fraction.is_empty() || fraction.len() > 9 {
                return None;
            }
            // Milliseconds are the precision kept; finer digits are dropped, not rounded.
            millis = fraction
                .iter()
                .chain([b'0'; 3].iter())
                .take(3)
                .fold(0, |n, d| n * 10 + u32::from(d - b'0'));
        }
    }
    let offset = if cursor.eat(b'Z') {
        UtcOffset::UTC
    } else {
        let sign = if cursor.eat(b'+') {
            1
        } else if cursor.eat(b'-') {
            -1
        } else {
            return None;
        };
        let hours = cursor.digits(2)?;
        cursor.expect(b':')?;
        let minutes = cursor.digits(2)?;
        let hours = i8::try_from(hours).ok()?;
        let minutes = i8::try_from(minutes).ok()?;
        UtcOffset::from_hms(sign * hours, sign * minutes, 0).ok()?
    };
    if !cursor.rest.is_empty() {
        return None;
    }
    let date = Date::from_calendar_date(
        i32::try_from(year).ok()?,
        Month::try_from(u8::try_from(month).ok()?).ok()?,
        u8::try_from(day).ok()?,
    )
    .ok()?;
    let time = Time::from_hms_milli(
        u8::try_from(hour).ok()?,
        u8::try_from(minute).ok()?,
        u8::try_from(second).ok()?,
        u16::try_from(millis).ok()?,
    )
    .ok()?;
    let instant = PrimitiveDateTime::new(date, time).assume_offset(offset);
    i64::try_from(instant.unix_timestamp_nanos() / 1_000_000).ok()
}

/// Writes UTC ISO-8601 as Java's `ZonedDateTime.toString()` does: seconds only when not zero,
/// milliseconds only when not zero (`2015-07-30T23:58Z`, `2015-07-30T23:58:32Z`,
/// `2015-07-31T17:18:37.979Z`). `None` outside years 0 to 9999.
pub(super) fn format_iso(millis: i64) -> Option<String> {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(millis) * 1_000_000).ok()?;
    if !(0..=9999).contains(&at.year()) {
        return None;
    }
    let mut text = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute()
    );
    let (second, milli) = (at.second(), at.millisecond());
    if second != 0 || milli != 0 {
        text.push_str(&format!(":{second:02}"));
    }
    if milli != 0 {
        text.push_str(&format!(".{milli:03}"));
    }
    text.push('Z');
    Some(text)
}

struct Cursor<'t> {
    rest: &'t [u8],
}

impl<'t> Cursor<'t> {
    fn eat(&mut self, byte: u8) -> bool {
        match self.rest.split_first() {
            Some((first, rest)) if *first == byte => {
                self.rest = rest;
                true
            }
            _ => false,
        }
    }

    fn expect(&mut self, byte: u8) -> Option<()> {
        self.eat(byte).then_some(())
    }

    fn take_digits(&mut self) -> &'t [u8] {
        let count = self.rest.iter().take_while(|b| b.is_ascii_digit()).count();
        let (digits, rest) = self.rest.split_at(count);
        self.rest = rest;
        digits
    }

    /// Exactly `count` digits as a number.
    fn digits(&mut self, count: usize) -> Option<u32> {
        let digits = self.rest.get(..count)?;
        if !digits.iter().all(u8::is_ascii_digit) {
            return None;
        }
        self.rest = self.rest.get(count..)?;
        Some(digits.iter().fold(0, |n, d| n * 10 + u32::from(d - b'0')))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn iso_text_reads_with_offsets_and_fractions() {
        assert_eq!(parse_iso("2015-06-17T00:23:19.676Z"), Some(1_434_500_599_676));
        assert_eq!(parse_iso("2015-06-17T02:23:19.676+02:00"), Some(1_434_500_599_676));
        assert_eq!(parse_iso("2015-06-17T00:23:19.676123456Z"), Some(1_434_500_599_676));
        assert_eq!(parse_iso("2015-06-17T00:23Z"), Some(1_434_500_580_000));
        assert_eq!(parse_iso("1970-01-01T00:00:00Z"), Some(0));
    }

    #[test]
    fn text_that_is_not_iso_reads_as_nothing() {
        for text in [
            "",
            "2015-06-17",
            "2015-06-17T00:23:19",
            "2015-13-17T00:23:19Z",
            "2015-02-30T00:23:19Z",
            "2015-06-17T24:00:00Z",
            "2015-06-17T00:23:19.Z",
            "2015-06-17T00:23:19Z[UTC]",
            "17 June 2015 00:23:19",
            "２０１５-06-17T00:23:19Z",
        ] {
            assert_eq!(parse_iso(text), None, "{text}");
        }
    }

    #[test]
    fn iso_output_drops_zero_seconds_and_milliseconds_like_java() {
        assert_eq!(format_iso(1_438_300_712_000).as_deref(), Some("2015-07-30T23:58:32Z"));
        assert_eq!(
            format_iso(1_438_363_117_979).as_deref(),
            Some("2015-07-31T17:18:37.979Z")
        );
        assert_eq!(format_iso(1_438_300_680_000).as_deref(), Some("2015-07-30T23:58Z"));
        assert_eq!(format_iso(i64::MAX), None);
        assert_eq!(format_iso(-62_167_219_200_001), None);
    }
}
