//! The field violations of one request: every field that is wrong, named by its path in
//! proto field names, so a refusal says exactly what to fix.
//!
//! A hostile request can be wrong in tens of thousands of places. What a refusal carries is
//! bounded here, whatever the request: each violation is cut to [`FIELD_MAX_BYTES`] and
//! [`DESCRIPTION_MAX_BYTES`], at most [`KEPT`] are kept, the rest only counted, and the
//! sentence a caller is shown lists the first few ([`Violations::shown`]) and how many more
//! there are. The gRPC layer sends the same few as details, so the answer's trailers stay far
//! below the 8 KiB that the strictest gRPC clients accept.

/// Most bytes of a field path kept in a violation.
pub const FIELD_MAX_BYTES: usize = 160;
/// Most bytes of a violation's description.
pub const DESCRIPTION_MAX_BYTES: usize = 240;
/// Most violations kept in full; the others are counted.
pub const KEPT: usize = 32;
/// Most violations shown in a refusal.
pub const SHOWN_MAX: usize = 10;
/// Most bytes of the violations shown in a refusal (paths and descriptions together).
pub const SHOWN_MAX_BYTES: usize = 768;

/// Field violations collected while validating one message, each with the field path in proto
/// field names (`envelope.seizure_notification.items[0].hs_code`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Violations {
    /// `(field path, what is wrong)` in the order found; at most [`KEPT`].
    items: Vec<(String, String)>,
    /// How many were found, kept or not.
    total: usize,
}

impl Violations {
    /// Records that `field` is wrong, and why.
    pub fn add(&mut self, field: impl Into<String>, description: impl Into<String>) {
        self.total += 1;
        if self.items.len() < KEPT {
            self.items.push((
                bounded(field.into(), FIELD_MAX_BYTES),
                bounded(description.into(), DESCRIPTION_MAX_BYTES),
            ));
        }
    }

    /// True when nothing was found wrong.
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// How many violations were found, including those not kept.
    pub fn len(&self) -> usize {
        self.total
    }

    /// The violations kept, `(field path, description)`, in the order found: all of them
    /// unless there were more than [`KEPT`].
    pub fn items(&self) -> &[(String, String)] {
        &self.items
    }

    /// The violations a refusal shows: the first ones, at most [`SHOWN_MAX`] and
    /// [`SHOWN_MAX_BYTES`] together (always at least one when there are any).
    pub fn shown(&self) -> &[(String, String)] {
        let mut bytes = 0;
        let mut n = 0;
        for (field, description) in self.items.iter().take(SHOWN_MAX) {
            bytes += field.len() + description.len() + 4;
            if n > 0 && bytes > SHOWN_MAX_BYTES {
                break;
            }
            n += 1;
        }
        &self.items[..n]
    }

    /// Moves every violation of `other` into `self`.
    pub fn append(&mut self, other: Violations) {
        let uncounted = other.total - other.items.len();
        for (field, description) in other.items {
            self.add(field, description);
        }
        self.total += uncounted;
    }
}

impl std::fmt::Display for Violations {
    /// The violations [`Violations::shown`], then how many more there are.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let shown = self.shown();
        for (i, (field, description)) in shown.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{field}: {description}")?;
        }
        let more = self.total - shown.len();
        if more > 0 {
            write!(f, "; and {more} more")?;
        }
        Ok(())
    }
}

/// `text` cut to at most `max` bytes at a character boundary, ending in "…" when cut.
pub fn bounded(mut text: String, max: usize) -> String {
    const ELLIPSIS: &str = "…";
    if text.len() <= max {
        return text;
    }
    let mut end = max.saturating_sub(ELLIPSIS.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text.truncate(end);
    text.push_str(ELLIPSIS);
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn many_violations_are_counted_and_few_shown() {
        let mut v = Violations::default();
        for i in 0..10_000 {
            v.add(
                format!("envelope.territorial_scope[{i}]"),
                "\"XX\" is not a country",
            );
        }
        assert_eq!(v.len(), 10_000);
        assert_eq!(v.items().len(), KEPT);
        assert_eq!(v.shown().len(), SHOWN_MAX);
        let text = v.to_string();
        assert!(text.ends_with("; and 9990 more"), "{text}");
        assert!(text.len() < SHOWN_MAX_BYTES + 40, "{}", text.len());

        let mut batch = Violations::default();
        batch.add("envelopes[0].id", "is required");
        batch.append(v);
        assert_eq!(batch.len(), 10_001);
        assert!(batch.to_string().ends_with("; and 9991 more"));
    }

    #[test]
    fn long_violations_are_cut_at_a_character_boundary() {
        let mut v = Violations::default();
        v.add("é".repeat(500), "ü".repeat(500));
        let (field, description) = &v.items()[0];
        assert!(field.len() <= FIELD_MAX_BYTES && field.ends_with('…'));
        assert!(description.len() <= DESCRIPTION_MAX_BYTES && description.ends_with('…'));
        assert_eq!(bounded("short".into(), 10), "short");
        assert_eq!(bounded("abcdefghij".into(), 6), "abc…");
    }
}
