//! How long a rate-limited provider asked us to wait.
//!
//! Providers say it in several ways, read in this order of precision:
//!
//! 1. `retry-after-ms: 2500`: milliseconds (Azure OpenAI, OpenAI).
//! 2. `Retry-After: 7` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`: delta
//!    seconds or an HTTP date (RFC 9110 §10.2.3; OpenAI, Anthropic, most
//!    servers).
//! 3. `x-ratelimit-reset-requests: 1m30s` / `x-ratelimit-reset-tokens: 250ms`:
//!    Go-style durations (OpenAI). When `x-ratelimit-remaining-*` says which
//!    limit is spent, that limit's reset is used; otherwise the longest.
//!
//! Whatever a header says, the wait is at most [`MAX_RETRY_AFTER`]: a
//! provider's header is untrusted input, and a wait of a billion years would
//! otherwise overflow every deadline computed from it.

use std::time::{Duration, SystemTime};

use http::HeaderMap;

const RETRY_AFTER_MS: &str = "retry-after-ms";
const RESET_REQUESTS: &str = "x-ratelimit-reset-requests";
const RESET_TOKENS: &str = "x-ratelimit-reset-tokens";
const REMAINING_REQUESTS: &str = "x-ratelimit-remaining-requests";
const REMAINING_TOKENS: &str = "x-ratelimit-remaining-tokens";

/// The longest wait a provider's header can ask for: one hour.
///
/// Every duration read from `retry-after-ms`, `Retry-After` (seconds or an
/// HTTP date) and the `x-ratelimit-reset-*` headers is clamped to it, so a
/// header such as `Retry-After: 10000000000000000000` means an hour's
/// cooldown, not an overflow. No provider asks for more: their limits reset
/// within the hour.
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use understudy_core::classify::{MAX_RETRY_AFTER, parse_retry_after};
///
/// assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(3600));
/// assert_eq!(
///     parse_retry_after("10000000000000000000", SystemTime::now()),
///     Some(MAX_RETRY_AFTER),
/// );
/// ```
pub const MAX_RETRY_AFTER: Duration = Duration::from_hours(1);

/// The wait a response's headers ask for, if any, at most
/// [`MAX_RETRY_AFTER`]; `now` resolves HTTP dates.
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime};
/// use http::HeaderMap;
/// use understudy_core::classify::retry_after;
///
/// let mut headers = HeaderMap::new();
/// headers.insert("retry-after", "7".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_secs(7)));
///
/// // The millisecond header is more precise and wins.
/// headers.insert("retry-after-ms", "6500".parse().unwrap());
/// assert_eq!(retry_after(&headers, SystemTime::now()), Some(Duration::from_millis(6500)));
/// ```
pub fn retry_after(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    if let Some(wait) = header_str(headers, RETRY_AFTER_MS).and_then(parse_millis) {
        return Some(wait);
    }
    if let Some(wait) = header_str(headers, http::header::RETRY_AFTER.as_str())
        .and_then(|v| parse_retry_after(v, now))
    {
        return Some(wait);
    }
    ratelimit_reset(headers)
}

/// Parses a `Retry-After` value: delta seconds (`"7"`, also `"1.5"` as some
/// servers send) or an HTTP date, which is measured from `now` (a date in the
/// past means no wait). The wait is at most [`MAX_RETRY_AFTER`].
///
/// # Example
///
/// ```
/// use std::time::{Duration, SystemTime, UNIX_EPOCH};
/// use understudy_core::classify::parse_retry_after;
///
/// let now = UNIX_EPOCH + Duration::from_secs(1_445_412_480); // Wed, 21 Oct 2015 07:28:00 GMT
/// assert_eq!(parse_retry_after("120", now), Some(Duration::from_secs(120)));
/// assert_eq!(
///     parse_retry_after("Wed, 21 Oct 2015 07:28:30 GMT", now),
///     Some(Duration::from_secs(30)),
/// );
/// assert_eq!(parse_retry_after("soon", now), None);
/// ```
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Some(wait) = parse_seconds(value) {
        return Some(wait);
    }
    let date = httpdate::parse_http_date(value).ok()?;
    Some(clamp(date.duration_since(now).unwrap_or(Duration::ZERO)))
}

/// Parses a Go-style duration as OpenAI's `x-ratelimit-reset-*` headers send
/// it: `"1s"`, `"250ms"`, `"6m0s"`, `"1h2m3.5s"`. The sum is at most
/// [`MAX_RETRY_AFTER`].
///
/// # Example
///
/// ```
/// use std::time::Duration;
/// use understudy_core::classify::{MAX_RETRY_AFTER, parse_reset_duration};
///
/// assert_eq!(parse_reset_duration("6m0s"), Some(Duration::from_mins(6)));
/// assert_eq!(parse_reset_duration("1.5s"), Some(Duration::from_millis(1500)));
/// assert_eq!(parse_reset_duration("20ms"), Some(Duration::from_millis(20)));
/// assert_eq!(parse_reset_duration("later"), None);
/// assert_eq!(parse_reset_duration("99999999999h"), Some(MAX_RETRY_AFTER));
/// ```
pub fn parse_reset_duration(value: &str) -> Option<Duration> {
    let mut rest = value.trim();
    if rest.is_empty() {
        return None;
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if number_len == 0 {
            return None;
        }
        let number: f64 = rest[..number_len].parse().ok()?;
        rest = &rest[number_len..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let seconds_per_unit = match &rest[..unit_len] {
            "h" => 3600.0,
            "m" => 60.0,
            "s" => 1.0,
            "ms" => 1e-3,
            "us" | "µs" => 1e-6,
            "ns" => 1e-9,
            _ => return None,
        };
        rest = &rest[unit_len..];
        total = total.saturating_add(seconds(number * seconds_per_unit)?);
    }
    Some(clamp(total))
}

fn ratelimit_reset(headers: &HeaderMap) -> Option<Duration> {
    let requests = header_str(headers, RESET_REQUESTS).and_then(parse_reset_duration);
    let tokens = header_str(headers, RESET_TOKENS).and_then(parse_reset_duration);
    let spent = |name| header_str(headers, name).map(str::trim) == Some("0");
    match (spent(REMAINING_REQUESTS), spent(REMAINING_TOKENS)) {
        (true, false) if requests.is_some() => requests,
        (false, true) if tokens.is_some() => tokens,
        _ => requests.max(tokens),
    }
}

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name)?.to_str().ok()
}

fn parse_seconds(value: &str) -> Option<Duration> {
    if !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let number: f64 = value.parse().ok()?;
    seconds(number)
}

fn parse_millis(value: &str) -> Option<Duration> {
    let value = value.trim();
    if !value.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return None;
    }
    let millis: f64 = value.parse().ok()?;
    seconds(millis / 1000.0)
}

/// A non-negative number of seconds as a duration, at most
/// [`MAX_RETRY_AFTER`] (so a number too large for a `Duration` is the
/// maximum, not an error); `None` for a negative number or NaN.
fn seconds(number: f64) -> Option<Duration> {
    if number.is_nan() || number < 0.0 {
        return None;
    }
    Some(
        Duration::try_from_secs_f64(number.min(MAX_RETRY_AFTER.as_secs_f64()))
            .unwrap_or(MAX_RETRY_AFTER),
    )
}

fn clamp(wait: Duration) -> Duration {
    wait.min(MAX_RETRY_AFTER)
}

#[cfg(test)]
mod tests {
    use std::time::UNIX_EPOCH;

    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, http::HeaderValue::from_static(value));
        }
        map
    }

    #[allow(clippy::arithmetic_side_effects)] // a fixed date, far from the clock's ends
    fn now() -> SystemTime {
        // Sun, 06 Nov 1994 08:49:37 GMT, RFC 9110's own example date.
        UNIX_EPOCH + Duration::from_secs(784_111_777)
    }

    #[test]
    fn delta_seconds() {
        assert_eq!(parse_retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            parse_retry_after("1.5", now()),
            Some(Duration::from_millis(1500))
        );
        assert_eq!(parse_retry_after("-3", now()), None);
        assert_eq!(parse_retry_after("", now()), None);
    }

    #[test]
    fn http_date_in_the_future_and_the_past() {
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:49:44 GMT", now()),
            Some(Duration::from_secs(7))
        );
        // The obsolete RFC 850 and asctime forms are valid too.
        assert_eq!(
            parse_retry_after("Sunday, 06-Nov-94 08:49:47 GMT", now()),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            parse_retry_after("Sun Nov  6 08:50:37 1994", now()),
            Some(Duration::from_mins(1))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn header_precedence() {
        let all = headers(&[
            ("retry-after-ms", "2500"),
            ("retry-after", "3"),
            ("x-ratelimit-reset-requests", "9s"),
        ]);
        assert_eq!(retry_after(&all, now()), Some(Duration::from_millis(2500)));

        let no_ms = headers(&[("retry-after", "3"), ("x-ratelimit-reset-requests", "9s")]);
        assert_eq!(retry_after(&no_ms, now()), Some(Duration::from_secs(3)));

        let bad_ms = headers(&[("retry-after-ms", "soon"), ("retry-after", "3")]);
        assert_eq!(retry_after(&bad_ms, now()), Some(Duration::from_secs(3)));

        assert_eq!(retry_after(&HeaderMap::new(), now()), None);
    }

    #[test]
    fn ratelimit_reset_picks_the_spent_limit() {
        let tokens_spent = headers(&[
            ("x-ratelimit-remaining-requests", "59"),
            ("x-ratelimit-remaining-tokens", "0"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(
            retry_after(&tokens_spent, now()),
            Some(Duration::from_mins(6))
        );

        let requests_spent = headers(&[
            ("x-ratelimit-remaining-requests", "0"),
            ("x-ratelimit-remaining-tokens", "100"),
            ("x-ratelimit-reset-requests", "1s"),
            ("x-ratelimit-reset-tokens", "6m0s"),
        ]);
        assert_eq!(
            retry_after(&requests_spent, now()),
            Some(Duration::from_secs(1))
        );

        let unknown = headers(&[
            ("x-ratelimit-reset-requests", "120ms"),
            ("x-ratelimit-reset-tokens", "2s"),
        ]);
        assert_eq!(retry_after(&unknown, now()), Some(Duration::from_secs(2)));
    }

    #[test]
    fn go_durations() {
        assert_eq!(
            parse_reset_duration("0h2m3.5s"),
            Some(Duration::from_millis(123_500))
        );
        assert_eq!(parse_reset_duration("1h"), Some(Duration::from_hours(1)));
        // Past the hour, clamped.
        assert_eq!(parse_reset_duration("1h2m3.5s"), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_reset_duration("17ms"),
            Some(Duration::from_millis(17))
        );
        assert_eq!(parse_reset_duration("0s"), Some(Duration::ZERO));
        assert_eq!(parse_reset_duration("5"), None);
        assert_eq!(parse_reset_duration("s"), None);
        assert_eq!(parse_reset_duration("3d"), None);
    }

    #[test]
    fn huge_waits_are_clamped_to_an_hour() {
        assert_eq!(
            parse_retry_after("10000000000000000000", now()),
            Some(MAX_RETRY_AFTER)
        );
        // Larger than a `Duration` can hold.
        assert_eq!(
            parse_retry_after(&"9".repeat(400), now()),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_retry_after("3601", now()), Some(MAX_RETRY_AFTER));
        assert_eq!(
            parse_retry_after("3599.5", now()),
            Some(Duration::from_millis(3_599_500))
        );
        // A date far ahead.
        assert_eq!(
            parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", now()),
            Some(MAX_RETRY_AFTER)
        );
        assert_eq!(parse_reset_duration("99999999999h"), Some(MAX_RETRY_AFTER));
        // Two terms that each fit a `Duration` but whose sum does not.
        assert_eq!(
            parse_reset_duration("5000000000000000h5000000000000000h"),
            Some(MAX_RETRY_AFTER)
        );
        // Every term of a sum may be huge.
        let huge = format!("{0}h{0}h{0}m{0}s", "9".repeat(30));
        assert_eq!(parse_reset_duration(&huge), Some(MAX_RETRY_AFTER));
        let all = headers(&[
            ("retry-after-ms", "18446744073709551615000"),
            ("retry-after", "10000000000000000000"),
        ]);
        assert_eq!(retry_after(&all, now()), Some(MAX_RETRY_AFTER));
        let resets = headers(&[
            ("x-ratelimit-reset-requests", "99999999999h"),
            ("x-ratelimit-reset-tokens", "99999999999h99999999999m"),
        ]);
        assert_eq!(retry_after(&resets, now()), Some(MAX_RETRY_AFTER));
    }
}
