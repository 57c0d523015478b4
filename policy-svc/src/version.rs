//! Version strings compared the way people read them: dotted numbers, numerically, segment by
//! segment (`10.0.19045.3570` is a Windows build; `14.2.1` a macOS release).

use std::cmp::Ordering;

/// A parsed version: its numeric segments, trailing zero segments dropped so `14.2` equals `14.2.0`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version(Vec<u64>);

impl Version {
    /// Parses the leading dotted-number part of `text` (`"17.1.2 (21F90)"` reads as `17.1.2`).
    /// `None` when it does not start with a number or a segment overflows.
    pub fn parse(text: &str) -> Option<Self> {
        let mut segments = Vec::new();
        for segment in Segments::new(text) {
            segments.push(segment?);
        }
        if segments.is_empty() {
            return None;
        }
        while segments.len() > 1 && segments.last() == Some(&0) {
            segments.pop();
        }
        Some(Self(segments))
    }

    /// How the version `text` orders against this one, read as [`Version::parse`] reads it but
    /// without allocating (decisions compare a device's version on every sign-in).
    pub fn compare_text(&self, text: &str) -> Option<Ordering> {
        let mut order = Ordering::Equal;
        let mut count = 0;
        for (index, segment) in Segments::new(text).enumerate() {
            let segment = segment?;
            if order == Ordering::Equal {
                order = segment.cmp(self.0.get(index).unwrap_or(&0));
            }
            count = index + 1;
        }
        if count == 0 {
            return None;
        }
        if order == Ordering::Equal && self.0.iter().skip(count).any(|s| *s != 0) {
            order = Ordering::Less;
        }
        Some(order)
    }
}

/// The leading dotted-number segments of a version string: each `Some(n)`, or `None` for one
/// that overflows.
struct Segments<'a> {
    parts: std::str::Split<'a, char>,
    done: bool,
}

impl<'a> Segments<'a> {
    fn new(text: &'a str) -> Self {
        let text = text.trim();
        let text = text.strip_prefix(['v', 'V']).unwrap_or(text);
        Self {
            parts: text.split('.'),
            done: false,
        }
    }
}

impl Iterator for Segments<'_> {
    type Item = Option<u64>;

    fn next(&mut self) -> Option<Option<u64>> {
        if self.done {
            return None;
        }
        let part = self.parts.next()?;
        let digits = part.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            self.done = true;
            return None;
        }
        // A suffix (`1 (21F90)`, `2-beta`) ends the version.
        self.done = digits != part.len();
        Some(part.get(..digits).and_then(|d| d.parse().ok()))
    }
}

impl PartialOrd for Version {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Version {
    fn cmp(&self, other: &Self) -> Ordering {
        let len = self.0.len().max(other.0.len());
        (0..len)
            .map(|i| self.0.get(i).unwrap_or(&0).cmp(other.0.get(i).unwrap_or(&0)))
            .find(|o| o.is_ne())
            .unwrap_or(Ordering::Equal)
    }
}

/// Compares two version strings; `None` when either is not a version.
pub fn compare(left: &str, right: &str) -> Option<Ordering> {
    Some(Version::parse(left)?.cmp(&Version::parse(right)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_compare_numerically_not_as_text() {
        let cases = [
            ("10.0.19045", "10.0.9999", Ordering::Greater),
            ("14.2", "14.2.0", Ordering::Equal),
            ("14.10", "14.9.9", Ordering::Greater),
            ("10.0.22631.2861", "10.0.22631.3007", Ordering::Less),
            ("17.1.2 (21F90)", "17.1.2", Ordering::Equal),
            ("v1.2", "1.10", Ordering::Less),
            ("7", "7.0.1", Ordering::Less),
        ];
        for (left, right, expected) in cases {
            assert_eq!(compare(left, right), Some(expected), "{left} vs {right}");
        }
    }

    #[test]
    fn comparing_text_without_parsing_it_agrees_with_parsing_it() {
        let texts = [
            "10.0.19045",
            "10.0.9999",
            "14.2",
            "14.2.0",
            "14.10",
            "14.9.9",
            "17.1.2 (21F90)",
            "17.1.2",
            "v1.2",
            "1.10",
            "7",
            "7.0.1",
            "0",
            "latest",
            "",
            "99999999999999999999999",
            "1.99999999999999999999999",
        ];
        for left in texts {
            for right in texts {
                if let Some(right_version) = Version::parse(right) {
                    assert_eq!(
                        right_version.compare_text(left),
                        compare(left, right),
                        "{left} vs {right}"
                    );
                }
            }
        }
    }

    #[test]
    fn text_that_is_not_a_version_compares_as_nothing() {
        assert_eq!(compare("latest", "1.0"), None);
        assert_eq!(compare("1.0", ""), None);
        assert_eq!(compare("99999999999999999999999", "1"), None);
    }
}
