//! The value formats that both admission (CRD patterns and CEL rules) and
//! `render` check, written once: Kubernetes quantities, cron schedules as
//! CronJobs accept them, and IANA time zones. The CRD's rules are generated
//! from these functions and `super::validate` evaluates the same patterns, so
//! the two verdicts cannot drift apart.

use std::sync::LazyLock;

use regex::Regex;

/// A Kubernetes quantity as `resource.ParseQuantity` accepts it: a signed
/// decimal number with at least one digit, then optionally a binary suffix
/// (Ki … Ei), a decimal suffix (n u m k M G T P E) or an integer exponent
/// (`e3`, `E-2`; at most 18 digits, so it fits the parser's int64).
/// Stricter than the parser only for digit-less strings such as `Gi` or `.`,
/// which it reads as zero.
pub const QUANTITY_PATTERN: &str = r"^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([KMGTPE]i|[numkMGTPE]|[eE][+-]?[0-9]{1,18})?$";

/// What a quantity looks like, for error messages.
pub const QUANTITY_HINT: &str = "must be a quantity such as 10Gi, 512Mi, 500m or 1.5: a number, then optionally \
                                 one suffix of Ki Mi Gi Ti Pi Ei n u m k M G T P E or an exponent such as e3";

/// The `@` macros Kubernetes CronJobs accept in place of five fields.
pub const CRON_MACROS: [&str; 7] = ["yearly", "annually", "monthly", "weekly", "daily", "midnight", "hourly"];

/// One field of a five-field cron schedule.
struct CronField {
    min: u32,
    max: u32,
    /// Names accepted for the values `min..` in order (case-insensitive).
    names: &'static [&'static str],
}

const MONTHS: [&str; 12] = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The fields and ranges of Kubernetes' cron parser (robfig/cron: day of week 0-6).
const CRON_FIELDS: [CronField; 5] = [
    CronField { min: 0, max: 59, names: &[] },
    CronField { min: 0, max: 23, names: &[] },
    CronField { min: 1, max: 31, names: &[] },
    CronField { min: 1, max: 12, names: &MONTHS },
    CronField { min: 0, max: 6, names: &WEEKDAYS },
];

/// What a schedule looks like, for error messages.
pub const SCHEDULE_HINT: &str = "must be a cron schedule of 5 fields (minute 0-59, hour 0-23, day-of-month 1-31, \
                                 month 1-12 or JAN-DEC, day-of-week 0-6 or SUN-SAT), each `*`, a value, a range \
                                 `a-b`, any of these with a step `/n` (n from 1 to 99), or a comma-separated list; \
                                 or one of @yearly @annually @monthly @weekly @daily @midnight @hourly";

/// What a schedule whose range runs backwards is told.
pub const SCHEDULE_RANGE_HINT: &str = "each range `a-b` must have a <= b (for example 10-30, not 30-10)";

/// Numbers `min..=max` (at most two digits; one leading zero allowed, as in `05`).
fn number_pattern(min: u32, max: u32) -> String {
    (min / 10..=max / 10)
        .map(|tens| {
            let low = if tens == min / 10 { min % 10 } else { 0 };
            let high = if tens == max / 10 { max % 10 } else { 9 };
            let units = if low == high { low.to_string() } else { format!("[{low}-{high}]") };
            if tens == 0 { format!("0?{units}") } else { format!("{tens}{units}") }
        })
        .collect::<Vec<_>>()
        .join("|")
}

impl CronField {
    /// A comma-separated list of `*`, values or ranges, each with an optional
    /// step. A range's ends are both numbers or both names.
    fn pattern(&self) -> String {
        let numbers = number_pattern(self.min, self.max);
        let mut values = format!("|({numbers})(-({numbers}))?");
        if !self.names.is_empty() {
            let names = format!("(?i:{})", self.names.join("|"));
            values.push_str(&format!("|{names}(-{names})?"));
        }
        let element = format!("([*]{values})(/[1-9][0-9]?)?");
        format!("{element}(,{element})*")
    }
}

/// The whole schedule: a macro, or five fields separated by blanks.
pub fn schedule_pattern() -> String {
    let fields: Vec<String> = CRON_FIELDS.iter().map(|f| format!("({})", f.pattern())).collect();
    format!("^(@({})|{})$", CRON_MACROS.join("|"), fields.join("[[:blank:]]+"))
}

/// The CEL rule of `spec.jobs[].schedule`: the schedule pattern.
pub fn schedule_rule() -> String {
    format!("self.matches('{}')", schedule_pattern())
}

/// Ranges of numbers and ranges of names in a schedule.
const NUMBER_RANGE: &str = "[0-9]+-[0-9]+";
const NAME_RANGE: &str = "[A-Za-z]+-[A-Za-z]+";

/// The names of every field in order, lower case, each three letters long: a
/// name's offset orders it among the names of its field.
fn cron_names() -> String {
    CRON_FIELDS.iter().flat_map(|f| f.names.iter()).copied().collect()
}

/// The CEL rule that every range of a well-formed schedule runs upwards
/// (a malformed schedule is the pattern rule's to report).
pub fn schedule_ranges_rule() -> String {
    let ends = |side: usize| format!("r.split('-')[{side}]");
    format!(
        "!self.matches('{pattern}') || (self.findAll('{NUMBER_RANGE}').all(r, int({low}) <= int({high})) && \
         self.findAll('{NAME_RANGE}').all(r, '{names}'.indexOf({low}.lowerAscii()) <= '{names}'.indexOf({high}.lowerAscii())))",
        pattern = schedule_pattern(),
        names = cron_names(),
        low = ends(0),
        high = ends(1)
    )
}

static SCHEDULE: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(&schedule_pattern()).ok());
static RANGES: LazyLock<Option<(Regex, Regex)>> =
    LazyLock::new(|| Regex::new(NUMBER_RANGE).ok().zip(Regex::new(NAME_RANGE).ok()));

/// The schedule pattern, as [`schedule_rule`] checks it.
pub fn is_schedule(schedule: &str) -> bool {
    SCHEDULE.as_ref().is_some_and(|re| re.is_match(schedule))
}

/// Every range `a-b` of a schedule [`is_schedule`] accepts has `a <= b`, as
/// [`schedule_ranges_rule`] checks it.
pub fn schedule_ranges_ascend(schedule: &str) -> bool {
    let names = cron_names();
    let ascend = |re: &Regex, value: &dyn Fn(&str) -> Option<usize>| {
        re.find_iter(schedule).all(|range| {
            let (low, high) = range.as_str().split_once('-').unwrap_or_default();
            value(low) <= value(high)
        })
    };
    RANGES.as_ref().is_some_and(|(numbers, words)| {
        ascend(numbers, &|n| n.parse().ok()) && ascend(words, &|w| names.find(&w.to_ascii_lowercase()))
    })
}

/// Longest time-zone name accepted (the longest IANA name has 32 characters).
pub const MAX_TIME_ZONE_LENGTH: usize = 64;

/// Every name of the bundled IANA time-zone database, sorted.
pub fn time_zones() -> Vec<String> {
    let mut names: Vec<String> = jiff::tz::db().available().map(|name| name.as_str().to_string()).collect();
    names.sort();
    names
}

/// The CEL rule of `spec.jobs[].timeZone`: a name of the time-zone database (exactly, case included).
pub fn time_zone_rule() -> String {
    let names: Vec<String> = time_zones().iter().map(|name| format!("'{name}'")).collect();
    format!("self in [{}]", names.join(", "))
}

static TIME_ZONES: LazyLock<Vec<String>> = LazyLock::new(time_zones);

/// A name of the time-zone database, as [`time_zone_rule`] checks it.
pub fn is_time_zone(name: &str) -> bool {
    TIME_ZONES.binary_search_by(|known| known.as_str().cmp(name)).is_ok()
}

/// What a time zone looks like, for error messages.
pub const TIME_ZONE_HINT: &str =
    "must be a name of the IANA time-zone database, spelt exactly, for example Europe/Berlin, America/New_York or UTC";

#[cfg(test)]
mod tests {
    use super::*;

    fn quantity(s: &str) -> bool {
        Regex::new(QUANTITY_PATTERN).map(|re| re.is_match(s)).unwrap_or(false)
    }

    #[test]
    fn quantities() {
        for ok in ["1", "10Gi", "500m", "1.5", ".5", "5.", "+1k", "-2Mi", "1e3", "1E-2", "1E", "3n", "7u", "0"] {
            assert!(quantity(ok), "{ok}");
        }
        for bad in ["", "lots", "two cores", "1ki", "1K", "1e", "1e2.5", "1 Gi", "Gi", ".", "1.2.3", "1Gi ", "0x10"] {
            assert!(!quantity(bad), "{bad}");
        }
    }

    #[test]
    fn numbers_in_ranges() {
        assert_eq!(number_pattern(0, 59), "0?[0-9]|1[0-9]|2[0-9]|3[0-9]|4[0-9]|5[0-9]");
        assert_eq!(number_pattern(1, 12), "0?[1-9]|1[0-2]");
        assert_eq!(number_pattern(0, 6), "0?[0-6]");
    }

    #[test]
    fn schedules() {
        for ok in [
            "* * * * *",
            "13 */2 * * *",
            "0 0 1 1 0",
            "59 23 31 12 6",
            "00 05 * * *",
            "0-30/5 1,2,3 1-15 JAN-jun mon-FRI",
            "* * * 1-12 0-6",
            "5/15 * * * *",
            "0 0 * * SUN",
            "@hourly",
            "@yearly",
            "0\t0 * * *",
        ] {
            assert!(is_schedule(ok), "{ok}");
            assert!(schedule_ranges_ascend(ok), "{ok}");
        }
        for bad in [
            "61 * * * *",
            "* 24 * * *",
            "* * 0 * *",
            "* * * 13 *",
            "* * * * 7",
            "*/0 * * * *",
            "* * * *",
            "* * * * * *",
            "@every 1h",
            "@fortnightly",
            " @hourly",
            "1,,2 * * * *",
            "* * * JANUARY *",
            "? * * * *",
            "TZ=UTC * * * * *",
            "* * * 1-FEB *",
        ] {
            assert!(!is_schedule(bad), "{bad}");
        }
        assert!(!schedule_ranges_ascend("30-10 * * * *"));
        assert!(!schedule_ranges_ascend("* * * DEC-JAN *"));
        assert!(!schedule_ranges_ascend("* * * * SAT-MON"));
        assert!(!is_schedule("* * * * 6-MON"));
    }

    #[test]
    fn time_zones_are_exact_names() {
        assert!(time_zones().len() > 400);
        for ok in ["UTC", "Europe/Berlin", "America/Argentina/Buenos_Aires", "Etc/GMT+5"] {
            assert!(is_time_zone(ok), "{ok}");
        }
        for bad in ["", "Mars/Olympus", "europe/berlin", "Local", "Europe/Berlin ", "../etc/passwd"] {
            assert!(!is_time_zone(bad), "{bad}");
        }
        assert!(time_zones().iter().all(|name| name.len() <= MAX_TIME_ZONE_LENGTH && !name.contains('\'')));
    }
}
