//! Dates for message headers and mbox `From ` lines.
//!
//! The caller supplies Unix seconds and the UTC offset in effect (looked up
//! by a layer-1 crate); this module only does calendar arithmetic (proleptic
//! Gregorian, days-from-epoch to civil date), so it needs no time-zone data.
//!
//! * [`rfc2822`]: `Sun, 22 Nov 2026 22:40:48 +0000` (RFC 5322 `date-time`; the
//!   day of month is not padded).
//! * [`mail_date`]: `Sun,  6 Dec 2026 00:26:53 +0000 (UTC)`, Postfix's format
//!   for the `Date:` and `Received:` headers it writes.
//! * [`mbox_from_date`]: `Sun Nov 22 22:40:48 2026`, the 24 characters of
//!   `ctime(3)` that mbox `From ` lines carry (day padded with a space).
//!
//! # Security
//! Pure; any `i64`/`i32` input is accepted without overflow or panic (years
//! far outside 0..=9999 print as they come).

const DAYS: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// A broken-down civil time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Civil {
    /// Year (may be negative or beyond 9999).
    pub year: i64,
    /// Month, 1..=12.
    pub month: u32,
    /// Day of month, 1..=31.
    pub day: u32,
    /// Hour, minute, second.
    pub hms: (u32, u32, u32),
    /// Day of week, 0 = Sunday.
    pub weekday: u32,
}

/// The civil date of a day count since 1970-01-01 (Gregorian calendar).
/// The method works in 400-year eras that start on March 1st, so that leap
/// days fall at the end of each computed year.
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468; // days since 0000-03-01
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097); // day of era, 0..=146096
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // 0..=399
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // 0..=365, from March 1st
    let mp = (5 * doy + 2) / 153; // month index from March, 0..=11
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Breaks `unix_secs + utc_offset_secs` down into a civil time.
pub fn civil(unix_secs: i64, utc_offset_secs: i32) -> Civil {
    let t = unix_secs.saturating_add(i64::from(utc_offset_secs));
    let days = t.div_euclid(86_400);
    let sod = t.rem_euclid(86_400) as u32;
    let (year, month, day) = civil_from_days(days);
    // 1970-01-01 was a Thursday (index 0 of DAYS); turn it into 0 = Sunday.
    let weekday = ((days.rem_euclid(7) + 4) % 7) as u32;
    Civil {
        year,
        month,
        day,
        hms: (sod / 3600, sod / 60 % 60, sod % 60),
        weekday,
    }
}

fn day_name(weekday: u32) -> &'static str {
    // DAYS starts on Thursday; weekday counts from Sunday.
    DAYS[((weekday + 3) % 7) as usize]
}

fn month_name(month: u32) -> &'static str {
    MONTHS[(month.clamp(1, 12) - 1) as usize]
}

fn offset_text(utc_offset_secs: i32) -> String {
    let sign = if utc_offset_secs < 0 { '-' } else { '+' };
    let mins = utc_offset_secs.unsigned_abs() / 60;
    format!("{sign}{:02}{:02}", (mins / 60) % 100, mins % 60)
}

/// An RFC 5322 date: `Sun, 22 Nov 2026 22:40:48 +0000`.
pub fn rfc2822(unix_secs: i64, utc_offset_secs: i32) -> String {
    let c = civil(unix_secs, utc_offset_secs);
    let day = c.day.to_string();
    rfc5322_with_day(&c, &day, utc_offset_secs)
}

fn rfc5322_with_day(c: &Civil, day: &str, utc_offset_secs: i32) -> String {
    format!(
        "{}, {day} {} {:04} {:02}:{:02}:{:02} {}",
        day_name(c.weekday),
        month_name(c.month),
        c.year,
        c.hms.0,
        c.hms.1,
        c.hms.2,
        offset_text(utc_offset_secs)
    )
}

/// The date Postfix's cleanup writes in `Date:` and `Received:` headers
/// (its `mail_date()`): `Sun,  6 Dec 2026 00:26:53 +0000 (UTC)`, the day of
/// month padded with a space and the zone abbreviation `zone` as a comment
/// (left out when empty).
pub fn mail_date(unix_secs: i64, utc_offset_secs: i32, zone: &str) -> String {
    let c = civil(unix_secs, utc_offset_secs);
    let mut s = rfc5322_with_day(&c, &format!("{:>2}", c.day), utc_offset_secs);
    let zone: String = zone
        .chars()
        .filter(|c| c.is_ascii_graphic() && !"()\\".contains(*c))
        .collect();
    if !zone.is_empty() {
        s.push_str(&format!(" ({zone})"));
    }
    s
}

/// A `ctime(3)`-style date for mbox `From ` lines: `Sun Nov  1 02:03:04 2026`.
pub fn mbox_from_date(unix_secs: i64, utc_offset_secs: i32) -> String {
    let c = civil(unix_secs, utc_offset_secs);
    format!(
        "{} {} {:>2} {:02}:{:02}:{:02} {}",
        day_name(c.weekday),
        month_name(c.month),
        c.day,
        c.hms.0,
        c.hms.1,
        c.hms.2,
        c.year
    )
}

/// Fuzz entry point.
pub fn fuzz(unix_secs: i64, utc_offset_secs: i32) {
    let _a = rfc2822(unix_secs, utc_offset_secs);
    let _b = mbox_from_date(unix_secs, utc_offset_secs);
    let _c = mail_date(unix_secs, utc_offset_secs, "UTC");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_dates() {
        assert_eq!(rfc2822(0, 0), "Thu, 1 Jan 1970 00:00:00 +0000");
        // date -u -d @1795387248
        assert_eq!(rfc2822(1_795_387_248, 0), "Sun, 22 Nov 2026 22:40:48 +0000");
        assert_eq!(mbox_from_date(1_795_387_248, 0), "Sun Nov 22 22:40:48 2026");
        // Leap day and the 2000 (divisible by 400) leap year.
        assert_eq!(rfc2822(951_782_400, 0), "Tue, 29 Feb 2000 00:00:00 +0000");
        assert_eq!(rfc2822(1_709_210_096, 0), "Thu, 29 Feb 2024 12:34:56 +0000");
        assert_eq!(rfc2822(4_107_542_400, 0), "Mon, 1 Mar 2100 00:00:00 +0000");
        assert_eq!(rfc2822(-1, 0), "Wed, 31 Dec 1969 23:59:59 +0000");
        assert_eq!(mbox_from_date(1_000_000_000, 0), "Sun Sep  9 01:46:40 2001");
    }

    #[test]
    fn postfix_mail_date() {
        assert_eq!(
            mail_date(1_796_516_813, 0, "UTC"),
            "Sun,  6 Dec 2026 00:26:53 +0000 (UTC)"
        );
        assert_eq!(
            mail_date(1_795_387_248, 3600, "CET"),
            "Sun, 22 Nov 2026 23:40:48 +0100 (CET)"
        );
        assert_eq!(mail_date(0, 0, ""), "Thu,  1 Jan 1970 00:00:00 +0000");
        assert_eq!(
            mail_date(0, 0, "a)b"),
            "Thu,  1 Jan 1970 00:00:00 +0000 (ab)"
        );
    }

    #[test]
    fn offsets() {
        assert_eq!(rfc2822(0, 3600), "Thu, 1 Jan 1970 01:00:00 +0100");
        assert_eq!(
            rfc2822(0, -5 * 3600 - 1800),
            "Wed, 31 Dec 1969 18:30:00 -0530"
        );
        assert_eq!(
            mbox_from_date(1_000_000_000, 2 * 3600),
            "Sun Sep  9 03:46:40 2001"
        );
    }

    #[test]
    fn every_day_of_four_centuries_round_trips() {
        // Day numbers must increase by one with consistent month/day rollover.
        let mut prev = civil_from_days(-146_097 * 2);
        for d in (-146_097 * 2 + 1)..(146_097 * 2) {
            let cur = civil_from_days(d);
            let next_day = prev.2 + 1 == cur.2 && prev.1 == cur.1 && prev.0 == cur.0;
            let next_month = cur.2 == 1 && (cur.1 == prev.1 % 12 + 1);
            assert!(next_day || next_month, "{prev:?} -> {cur:?}");
            prev = cur;
        }
    }

    #[test]
    fn extremes_do_not_panic() {
        for s in [i64::MIN, i64::MAX, i64::MIN + 1, -86_400 * 366 * 10_000] {
            for o in [i32::MIN, i32::MAX, 0] {
                fuzz(s, o);
            }
        }
    }
}
