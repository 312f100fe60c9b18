//! HTTP dates in the preferred format of RFC 9110 (IMF-fixdate, `Sun, 06 Nov 1994 08:49:37 GMT`), to and from seconds
//! since the Unix epoch. Only that format is accepted: a signed date must have one spelling.

const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// Seconds since the Unix epoch of an IMF-fixdate; the error says what is wrong.
pub fn parse(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not an HTTP date like `Sun, 06 Nov 1994 08:49:37 GMT`");
    let b = text.as_bytes();
    if b.len() != 29 || !text.is_ascii() || &text[3..5] != ", " || &text[25..] != " GMT" {
        return Err(bad());
    }
    let number = |range: std::ops::Range<usize>| -> Result<u32, String> {
        let s = &text[range];
        if s.bytes().all(|c| c.is_ascii_digit()) {
            s.parse().map_err(|_| bad())
        } else {
            Err(bad())
        }
    };
    let sep = |i: usize, c: u8| if b[i] == c { Ok(()) } else { Err(bad()) };
    sep(7, b' ')?;
    sep(11, b' ')?;
    sep(16, b' ')?;
    sep(19, b':')?;
    sep(22, b':')?;
    let weekday = DAYS.iter().position(|d| *d == &text[..3]).ok_or_else(bad)?;
    let day = number(5..7)?;
    let month = MONTHS
        .iter()
        .position(|m| *m == &text[8..11])
        .ok_or_else(bad)? as u32
        + 1;
    let year = number(12..16)?;
    let (hour, minute, second) = (number(17..19)?, number(20..22)?, number(23..25)?);
    if day == 0 || day > days_in_month(year, month) || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let days = days_from_civil(i64::from(year), month, day);
    if weekday_of(days) != weekday {
        return Err(format!("`{text}`: that day is not a {}", &text[..3]));
    }
    Ok(days * 86_400 + i64::from(hour * 3600 + minute * 60 + second))
}

/// The IMF-fixdate of `secs` since the Unix epoch (years 0 to 9999).
pub fn format(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{}, {day:02} {} {year:04} {:02}:{:02}:{:02} GMT",
        DAYS[weekday_of(days)],
        MONTHS[month as usize - 1],
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

fn days_in_month(year: u32, month: u32) -> u32 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// 0 = Sunday (1970-01-01 was a Thursday).
fn weekday_of(days: i64) -> usize {
    (days + 4).rem_euclid(7) as usize
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = i64::from((month + 9) % 12);
    let doy = (153 * mp + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_table() {
        let cases: &[(&str, Result<i64, &str>)] = &[
            ("Thu, 01 Jan 1970 00:00:00 GMT", Ok(0)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Ok(784_111_777)),
            ("Tue, 14 Nov 2023 22:13:20 GMT", Ok(1_700_000_000)),
            ("Thu, 29 Feb 2024 12:00:00 GMT", Ok(1_709_208_000)),
            ("Fri, 29 Feb 2023 12:00:00 GMT", Err("not an HTTP date")),
            ("Mon, 06 Nov 1994 08:49:37 GMT", Err("not a Mon")),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Err("not an HTTP date")),
            ("Sun Nov  6 08:49:37 1994", Err("not an HTTP date")),
            ("Sun, 06 Nov 1994 08:49:37 UTC", Err("not an HTTP date")),
            ("Sun, 06 Nov 1994 24:00:00 GMT", Err("not an HTTP date")),
            ("Sun, 06 Nox 1994 08:49:37 GMT", Err("not an HTTP date")),
            ("Sun, +6 Nov 1994 08:49:37 GMT", Err("not an HTTP date")),
            ("Sun, 06 Nov 1994 08:49:37 GMTé", Err("not an HTTP date")),
            ("Sué 06 Nov 1994 08:49:37 GMT", Err("not an HTTP date")),
            ("", Err("not an HTTP date")),
        ];
        for (text, want) in cases {
            match (parse(text), want) {
                (Ok(got), Ok(w)) => assert_eq!(got, *w, "{text}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{text}: {e}"),
                (got, want) => panic!("{text}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn format_round_trips() {
        for secs in [
            0,
            784_111_777,
            1_700_000_000,
            1_709_208_000,
            4_102_444_799,
            253_402_300_799,
        ] {
            let text = format(secs);
            assert_eq!(parse(&text), Ok(secs), "{text}");
        }
        assert_eq!(format(1_700_000_000), "Tue, 14 Nov 2023 22:13:20 GMT");
    }
}
