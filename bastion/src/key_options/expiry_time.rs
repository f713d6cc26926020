//! `expiry-time` parsing, UTC timestamps for messages (on the `time` crate's calendar), and the
//! current time in unix seconds that every validity check compares with.

use time::{Date, Month, OffsetDateTime, PrimitiveDateTime, Time};

/// Parse an `expiry-time` as sshd's `parse_absolute_time`: `YYYYMMDD`, `YYYYMMDDHHMM` or
/// `YYYYMMDDHHMMSS`, optionally followed by `Z` or `UTC` (case-insensitive). Returns unix
/// seconds.
///
/// sshd reads a time without `Z` as the server's local time; this server runs in UTC
/// containers and reads every time as UTC. A date-only time means its first second
/// (00:00:00). Ranges are validated (month 1-12, day within the month, hour 0-23,
/// minute and second 0-59); years before 1970 are refused, and so is the epoch itself
/// (sshd treats 0 as "invalid expires time").
pub fn parse_expiry_time(s: &str) -> Result<u64, String> {
    let digits = strip_zone(s);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return Err(
            "expected YYYYMMDD, YYYYMMDDHHMM or YYYYMMDDHHMMSS, optionally followed by Z \
             (all times are UTC)"
                .into(),
        );
    }
    let field = |range: std::ops::Range<usize>| -> u8 {
        digits
            .get(range)
            .and_then(|f| f.parse().ok())
            .unwrap_or_default()
    };
    let year: u16 = digits
        .get(0..4)
        .and_then(|f| f.parse().ok())
        .unwrap_or_default();
    let (month, day) = (field(4..6), field(6..8));
    let (hour, minute, second) = match digits.len() {
        8 => (0, 0, 0),
        12 => (field(8..10), field(10..12), 0),
        _ => (field(8..10), field(10..12), field(12..14)),
    };
    let date = checked_date(year, month, day)?;
    let time = checked_time(hour, minute, second)?;
    let secs = PrimitiveDateTime::new(date, time)
        .assume_utc()
        .unix_timestamp();
    match u64::try_from(secs) {
        Ok(0) | Err(_) => {
            Err("the time is the unix epoch itself, which sshd treats as invalid".into())
        }
        Ok(t) => Ok(t),
    }
}

/// The digits of an `expiry-time`, without a trailing `Z` or `UTC`.
fn strip_zone(s: &str) -> &str {
    if let Some(d) = s.strip_suffix(['Z', 'z']) {
        return d;
    }
    match s
        .len()
        .checked_sub(3)
        .and_then(|cut| s.split_at_checked(cut))
    {
        Some((d, zone)) if !d.is_empty() && zone.eq_ignore_ascii_case("utc") => d,
        _ => s,
    }
}

fn checked_date(year: u16, month: u8, day: u8) -> Result<Date, String> {
    if year < 1970 {
        return Err(format!("year {year} is before 1970"));
    }
    let m = Month::try_from(month).map_err(|_| format!("month {month:02} is not 01-12"))?;
    let last = m.length(i32::from(year));
    Date::from_calendar_date(i32::from(year), m, day).map_err(|_| {
        format!("day {day:02} does not exist in {year:04}-{month:02} (which has {last} days)")
    })
}

fn checked_time(hour: u8, minute: u8, second: u8) -> Result<Time, String> {
    if hour > 23 {
        return Err(format!("hour {hour:02} is not 00-23"));
    }
    if minute > 59 {
        return Err(format!("minute {minute:02} is not 00-59"));
    }
    if second > 59 {
        return Err(format!("second {second:02} is not 00-59"));
    }
    Time::from_hms(hour, minute, second).map_err(|e| e.to_string())
}

/// Unix seconds as an RFC 3339 UTC timestamp, e.g. `2026-01-01T00:00:00Z`. Times after
/// 9999-12-31T23:59:59Z (only seen in malformed certificates) read `unix time N`.
pub fn format_utc(unix: u64) -> String {
    let Some(t) = i64::try_from(unix)
        .ok()
        .and_then(|t| OffsetDateTime::from_unix_timestamp(t).ok())
    else {
        return format!("unix time {unix}");
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// The current time in unix seconds (0 if the clock is before 1970).
pub fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
