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

static QUANTITY: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(QUANTITY_PATTERN).ok());

/// A quantity, as [`QUANTITY_PATTERN`] says.
pub fn is_quantity(text: &str) -> bool {
    QUANTITY.as_ref().is_some_and(|re| re.is_match(text))
}

/// A quantity's exact value: `digits` × 10^`exponent` (no leading zeros in
/// `digits`; empty for zero).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Decimal {
    negative: bool,
    digits: Vec<u8>,
    exponent: i64,
}

impl Decimal {
    /// Reads a quantity as `resource.ParseQuantity` does, exactly, including its
    /// one quirk: an exponent (`e…`) is cut to 32 bits. `None` when it is not one.
    fn parse(text: &str) -> Option<Self> {
        if !is_quantity(text) {
            return None;
        }
        let (negative, unsigned) = match text.as_bytes().first() {
            Some(b'-') => (true, &text[1..]),
            Some(b'+') => (false, &text[1..]),
            _ => (false, text),
        };
        let number_end = unsigned.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(unsigned.len());
        let (number, suffix) = unsigned.split_at(number_end);
        let (whole, fraction) = number.split_once('.').unwrap_or((number, ""));
        let (mut exponent, binary): (i64, u32) = match suffix {
            "" => (0, 0),
            "n" => (-9, 0),
            "u" => (-6, 0),
            "m" => (-3, 0),
            "k" => (3, 0),
            "M" => (6, 0),
            "G" => (9, 0),
            "T" => (12, 0),
            "P" => (15, 0),
            "E" => (18, 0),
            "Ki" => (0, 10),
            "Mi" => (0, 20),
            "Gi" => (0, 30),
            "Ti" => (0, 40),
            "Pi" => (0, 50),
            "Ei" => (0, 60),
            // Go's int32(parsed): the exponent wraps like Rust's `as`.
            exponent => (i64::from(exponent[1..].parse::<i64>().ok()? as i32), 0),
        };
        exponent -= fraction.len() as i64;
        let mut digits: Vec<u8> = whole.bytes().chain(fraction.bytes()).map(|b| b - b'0').collect();
        for _ in 0..binary {
            digits = double(&digits);
        }
        Some(Self { negative, digits, exponent }.normalised())
    }

    fn normalised(mut self) -> Self {
        let leading = self.digits.iter().take_while(|d| **d == 0).count();
        self.digits.drain(..leading);
        while self.digits.last() == Some(&0) {
            self.digits.pop();
            self.exponent += 1;
        }
        if self.digits.is_empty() {
            self.negative = false;
            self.exponent = 0;
        }
        self
    }

    fn from_integer(value: u64, exponent: i64) -> Self {
        let digits = value.to_string().bytes().map(|b| b - b'0').collect();
        Self { negative: false, digits, exponent }.normalised()
    }

    /// Compares magnitudes first (digits plus exponent), then the digits.
    fn cmp_value(&self, other: &Self) -> std::cmp::Ordering {
        use std::cmp::Ordering;
        match (self.negative, other.negative) {
            (true, false) => return Ordering::Less,
            (false, true) => return Ordering::Greater,
            _ => {}
        }
        let magnitude = |d: &Self| (!d.digits.is_empty(), d.digits.len() as i64 + d.exponent);
        let unsigned = magnitude(self).cmp(&magnitude(other)).then_with(|| {
            let width = self.digits.len().max(other.digits.len());
            let padded =
                |d: &Self| d.digits.iter().copied().chain(std::iter::repeat(0)).take(width).collect::<Vec<_>>();
            padded(self).cmp(&padded(other))
        });
        if self.negative { unsigned.reverse() } else { unsigned }
    }

    /// The value rounded up to a whole number, as `Quantity.Value()` gives it;
    /// `None` when negative or beyond `u64`.
    fn ceil_integer(&self) -> Option<u64> {
        if self.negative {
            return None;
        }
        let whole = (self.digits.len() as i64 + self.exponent).max(0) as usize;
        let mut value: u64 = 0;
        for index in 0..whole {
            let digit = self.digits.get(index).copied().unwrap_or(0);
            value = value.checked_mul(10)?.checked_add(u64::from(digit))?;
        }
        let fraction = self.digits.len() > whole;
        if fraction { value.checked_add(1) } else { Some(value) }
    }
}

/// `digits` × 2, in decimal.
fn double(digits: &[u8]) -> Vec<u8> {
    let mut carry = 0;
    let mut doubled: Vec<u8> = digits
        .iter()
        .rev()
        .map(|d| {
            let value = d * 2 + carry;
            carry = value / 10;
            value % 10
        })
        .collect();
    if carry > 0 {
        doubled.push(carry);
    }
    doubled.reverse();
    doubled
}

/// Bounds of a memory size (`spec.cache.memory`, `spec.httpCache.memory`), as
/// quantities and in bytes.
pub const MIN_MEMORY: (&str, u64) = ("16Mi", 16 << 20);
/// The upper bound.
pub const MAX_MEMORY: (&str, u64) = ("64Gi", 64 << 30);

/// What a memory size out of bounds is told.
pub fn memory_range_hint() -> String {
    format!("must be a quantity from {} to {}, for example 128Mi or 1Gi", MIN_MEMORY.0, MAX_MEMORY.0)
}

/// The CEL rule of a memory size: within [`MIN_MEMORY`] and [`MAX_MEMORY`]. A
/// string that is no quantity is the pattern's to report.
pub fn memory_range_rule() -> String {
    let (min, max) = (MIN_MEMORY, MAX_MEMORY);
    format!(
        "type(self) == int ? (self >= {} && self <= {}) : (!isQuantity(self) || \
         (quantity(self).compareTo(quantity('{}')) >= 0 && quantity(self).compareTo(quantity('{}')) <= 0))",
        min.1, max.1, min.0, max.0
    )
}

/// Bytes of a memory size within bounds, as [`memory_range_rule`] checks it:
/// `None` when it is no quantity or out of bounds. The API server rounds a
/// quantity up to whole nano units before it compares: a value less than one
/// nano unit below the minimum passes.
pub fn memory_bytes(quantity: &str) -> Option<u64> {
    let value = Decimal::parse(quantity)?;
    let nano_below_min = Decimal::from_integer(MIN_MEMORY.1 * 1_000_000_000 - 1, -9);
    let max = Decimal::from_integer(MAX_MEMORY.1, 0);
    let within = value.cmp_value(&nano_below_min).is_gt() && value.cmp_value(&max).is_le();
    within.then(|| value.ceil_integer()).flatten()
}

/// Bytes as a quantity: in Mi or Ki when they divide it, else plain.
pub fn bytes_quantity(bytes: u64) -> String {
    match bytes {
        b if b % (1 << 20) == 0 => format!("{}Mi", b >> 20),
        b if b % (1 << 10) == 0 => format!("{}Ki", b >> 10),
        b => b.to_string(),
    }
}

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

    /// Memory sizes as the API server's `quantity()` compares them: exact
    /// values, rounded up to whole nano units, exponents cut to 32 bits.
    #[test]
    fn memory_sizes() {
        let mib = 1 << 20;
        for (text, bytes) in [
            ("16Mi", Some(16 * mib)),
            ("16777216", Some(16 * mib)),
            ("64Gi", Some(64 << 30)),
            ("68719476736", Some(64 << 30)),
            ("100M", Some(100_000_000)),
            ("1.5Gi", Some(1536 * mib)),
            (".5Gi", Some(512 * mib)),
            ("0.015625Gi", Some(16 * mib)),
            ("16777216000m", Some(16 * mib)),
            ("1.6777216e7", Some(16 * mib)),
            ("16777215.9999999999", Some(16 * mib)),
            ("16777216e4294967296", Some(16 * mib)),
            ("16777216.5", Some(16 * mib + 1)),
            ("16777215.999999999", None),
            ("16777215", None),
            ("15.9Mi", None),
            ("64.0000001Gi", None),
            ("68719476737", None),
            ("70G", None),
            ("-1Gi", None),
            ("0", None),
            ("1e999999999999999999", None),
            ("lots", None),
        ] {
            assert_eq!(memory_bytes(text), bytes, "{text}");
        }
    }

    #[test]
    fn bytes_as_quantities() {
        assert_eq!(bytes_quantity(80 << 20), "80Mi");
        assert_eq!(bytes_quantity(2048), "2Ki");
        assert_eq!(bytes_quantity(1536), "1536");
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
