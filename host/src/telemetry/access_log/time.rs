//! `%START_TIME(FORMAT)%`: a useful subset of strftime, compiled once, rendered in UTC as Envoy does.
//!
//! Supported: `%Y %y %m %d %e %H %I %M %S %p %j %a %A %b %B %h %F %T %D %R %s %z %Z %n %t %%`, plus Envoy's fractional
//! seconds: `%f` (nanoseconds, 9 digits), `%1f`…`%9f` (that many digits) and `%E1S`…`%E9S` / `%E*S` (seconds with
//! that many fraction digits; `*` = 9). Anything else is a config error naming the conversion.

use std::{
    fmt::Write as _,
    time::{SystemTime, UNIX_EPOCH},
};

/// A compiled time format.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TimeFormat(Vec<Piece>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Piece {
    Text(Box<str>),
    Year,
    Year2,
    Month,
    Day,
    DaySpace,
    Hour,
    Hour12,
    AmPm,
    Minute,
    Second,
    DayOfYear,
    Weekday {
        long: bool,
    },
    MonthName {
        long: bool,
    },
    Epoch,
    Zone {
        name: bool,
    },
    /// Fraction digits alone (`%3f`).
    Fraction(u8),
    /// Seconds with fraction digits (`%E3S`).
    SecondFraction(u8),
}

/// Envoy's default `%START_TIME%`: `2024-01-02T03:04:05.678Z`.
pub fn default_format() -> TimeFormat {
    TimeFormat(vec![
        Piece::Year,
        Piece::Text("-".into()),
        Piece::Month,
        Piece::Text("-".into()),
        Piece::Day,
        Piece::Text("T".into()),
        Piece::Hour,
        Piece::Text(":".into()),
        Piece::Minute,
        Piece::Text(":".into()),
        Piece::SecondFraction(3),
        Piece::Text("Z".into()),
    ])
}

impl TimeFormat {
    /// Compiles a strftime-style format; `Err` names the unsupported conversion.
    pub fn compile(format: &str) -> Result<Self, String> {
        let mut pieces = Vec::new();
        let mut text = String::new();
        let mut chars = format.chars().peekable();
        while let Some(c) = chars.next() {
            if c != '%' {
                text.push(c);
                continue;
            }
            let mut expand = |s: &str| -> Result<(), String> {
                let inner = TimeFormat::compile(s)?;
                if !text.is_empty() {
                    pieces.push(Piece::Text(std::mem::take(&mut text).into()));
                }
                pieces.extend(inner.0);
                Ok(())
            };
            let piece = match chars.next() {
                Some('%') => {
                    text.push('%');
                    continue;
                }
                Some('n') => {
                    text.push('\n');
                    continue;
                }
                Some('t') => {
                    text.push('\t');
                    continue;
                }
                Some('F') => {
                    expand("%Y-%m-%d")?;
                    continue;
                }
                Some('T') => {
                    expand("%H:%M:%S")?;
                    continue;
                }
                Some('D') => {
                    expand("%m/%d/%y")?;
                    continue;
                }
                Some('R') => {
                    expand("%H:%M")?;
                    continue;
                }
                Some('Y') => Piece::Year,
                Some('y') => Piece::Year2,
                Some('m') => Piece::Month,
                Some('d') => Piece::Day,
                Some('e') => Piece::DaySpace,
                Some('H') => Piece::Hour,
                Some('I') => Piece::Hour12,
                Some('p') => Piece::AmPm,
                Some('M') => Piece::Minute,
                Some('S') => Piece::Second,
                Some('j') => Piece::DayOfYear,
                Some('a') => Piece::Weekday { long: false },
                Some('A') => Piece::Weekday { long: true },
                Some('b' | 'h') => Piece::MonthName { long: false },
                Some('B') => Piece::MonthName { long: true },
                Some('s') => Piece::Epoch,
                Some('z') => Piece::Zone { name: false },
                Some('Z') => Piece::Zone { name: true },
                Some('f') => Piece::Fraction(9),
                Some(d @ '1'..='9') => match chars.next() {
                    Some('f') => Piece::Fraction(d as u8 - b'0'),
                    other => return Err(unsupported(&format!("%{d}{}", opt(other)))),
                },
                Some('E') => {
                    let digits = match chars.next() {
                        Some('*') => 9,
                        Some(d @ '1'..='9') => d as u8 - b'0',
                        other => return Err(unsupported(&format!("%E{}", opt(other)))),
                    };
                    match chars.next() {
                        Some('S') => Piece::SecondFraction(digits),
                        other => {
                            return Err(unsupported(&format!("%E{digits}{}", opt(other))));
                        }
                    }
                }
                Some(other) => return Err(unsupported(&format!("%{other}"))),
                None => return Err("a lone `%` at the end of the time format".into()),
            };
            if !text.is_empty() {
                pieces.push(Piece::Text(std::mem::take(&mut text).into()));
            }
            pieces.push(piece);
        }
        if !text.is_empty() {
            pieces.push(Piece::Text(text.into()));
        }
        Ok(TimeFormat(pieces))
    }

    /// Appends `t` (UTC) to `out`.
    pub fn render(&self, t: SystemTime, out: &mut String) {
        let since = t.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs() as i64;
        let nanos = since.subsec_nanos();
        let days = secs.div_euclid(86_400);
        let of_day = secs.rem_euclid(86_400);
        let (year, month, day) = civil_from_days(days);
        let (hour, minute, second) = (of_day / 3600, of_day / 60 % 60, of_day % 60);
        for p in &self.0 {
            let _ = match p {
                Piece::Text(s) => {
                    out.push_str(s);
                    Ok(())
                }
                Piece::Year => write!(out, "{year:04}"),
                Piece::Year2 => write!(out, "{:02}", year.rem_euclid(100)),
                Piece::Month => write!(out, "{month:02}"),
                Piece::Day => write!(out, "{day:02}"),
                Piece::DaySpace => write!(out, "{day:2}"),
                Piece::Hour => write!(out, "{hour:02}"),
                Piece::Hour12 => write!(out, "{:02}", (hour + 11) % 12 + 1),
                Piece::AmPm => {
                    out.push_str(if hour < 12 { "AM" } else { "PM" });
                    Ok(())
                }
                Piece::Minute => write!(out, "{minute:02}"),
                Piece::Second => write!(out, "{second:02}"),
                Piece::DayOfYear => write!(out, "{:03}", days - days_from_civil(year, 1, 1) + 1),
                Piece::Weekday { long } => {
                    // 1970-01-01 was a Thursday.
                    let name = WEEKDAYS[(days + 4).rem_euclid(7) as usize];
                    out.push_str(if *long { name } else { &name[..3] });
                    Ok(())
                }
                Piece::MonthName { long } => {
                    let name = MONTHS[month as usize - 1];
                    out.push_str(if *long { name } else { &name[..3] });
                    Ok(())
                }
                Piece::Epoch => write!(out, "{secs}"),
                Piece::Zone { name: true } => {
                    out.push_str("UTC");
                    Ok(())
                }
                Piece::Zone { name: false } => {
                    out.push_str("+0000");
                    Ok(())
                }
                Piece::Fraction(n) => fraction(nanos, *n, out),
                Piece::SecondFraction(n) => {
                    let _ = write!(out, "{second:02}.");
                    fraction(nanos, *n, out)
                }
            };
        }
    }
}

const WEEKDAYS: [&str; 7] = [
    "Sunday",
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
];
const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];

fn fraction(nanos: u32, digits: u8, out: &mut String) -> std::fmt::Result {
    let scaled = nanos / 10u32.pow(9 - u32::from(digits));
    write!(out, "{scaled:0width$}", width = digits as usize)
}

fn unsupported(conversion: &str) -> String {
    format!("unsupported time conversion `{conversion}`")
}

fn opt(c: Option<char>) -> String {
    c.map(String::from).unwrap_or_default()
}

/// (year, month, day) of a day count since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Days since 1970-01-01 of a civil date (the inverse of [`civil_from_days`]).
fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// 2024-02-29T13:04:05.123456789Z, a Thursday, day 60 of a leap year.
    fn t() -> SystemTime {
        UNIX_EPOCH + Duration::new(1_709_211_845, 123_456_789)
    }

    #[test]
    fn render_table() {
        let cases: &[(&str, &str)] = &[
            ("%Y-%m-%dT%H:%M:%S%z", "2024-02-29T13:04:05+0000"),
            ("%F %T %Z", "2024-02-29 13:04:05 UTC"),
            ("%D %R", "02/29/24 13:04"),
            ("%a %A %b %B %h", "Thu Thursday Feb February Feb"),
            ("%I%p %j %e", "01PM 060 29"),
            ("%s", "1709211845"),
            ("%f|%3f|%1f", "123456789|123|1"),
            ("%E3S|%E*S|%E6S", "05.123|05.123456789|05.123456"),
            ("100%% [%n%t]", "100% [\n\t]"),
            ("plain", "plain"),
        ];
        for (format, want) in cases {
            let mut out = String::new();
            TimeFormat::compile(format)
                .expect(format)
                .render(t(), &mut out);
            assert_eq!(out, *want, "{format}");
        }
        let mut out = String::new();
        default_format().render(t(), &mut out);
        assert_eq!(out, "2024-02-29T13:04:05.123Z");
    }

    #[test]
    fn bad_formats_name_the_conversion() {
        let cases: &[(&str, &str)] = &[
            ("%Q", "`%Q`"),
            ("%E3x", "`%E3x`"),
            ("%Ex", "`%Ex`"),
            ("%3x", "`%3x`"),
            ("abc%", "lone `%`"),
        ];
        for (format, want) in cases {
            let e = TimeFormat::compile(format).expect_err(format);
            assert!(e.contains(want), "{format}: {e}");
        }
    }

    #[test]
    fn civil_dates_round_trip() {
        for days in [-719_468_i64, -1, 0, 59, 365, 10_957, 19_782, 2_932_896] {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days, "{y}-{m}-{d}");
        }
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(19_782), (2024, 2, 29));
    }
}
